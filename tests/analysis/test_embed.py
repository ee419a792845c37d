import numpy as np
import pytest
import torch

from pdbviz import build_model, embed_layers, load_dataset
from pdbviz.analysis import EmbeddingCache, embed_features, is_umap_warm, procrustes_align, warm_up_umap


def test_procrustes_undoes_rotation_and_reflection():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(50, 2))
    theta = 1.1
    R = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]) @ np.diag([1, -1])
    B = 3.0 * A @ R + 7.0
    aligned = procrustes_align(B, A)
    An = (A - A.mean(0)) / np.sqrt(((A - A.mean(0)) ** 2).sum() / len(A))
    np.testing.assert_allclose(aligned, An, atol=1e-9)


def test_cache_is_keyed_by_content():
    cache = EmbeddingCache(max_items=2)
    F = np.arange(12, dtype=np.float32).reshape(6, 2)
    k1 = cache.key(F, {"n_neighbors": 5})
    assert k1 == cache.key(F.copy(), {"n_neighbors": 5})
    assert k1 != cache.key(F + 1, {"n_neighbors": 5}) != cache.key(F, {"n_neighbors": 6})
    cache.put("a", np.zeros(2)), cache.put("b", np.ones(2)), cache.put("c", np.ones(2))
    assert cache.get("a") is None and cache.get("c") is not None and len(cache) == 2


@pytest.mark.slow
def test_embed_layers_aligned_cached_and_warm():
    thread = warm_up_umap(background=True)
    if thread is not None:
        thread.join(timeout=120)
    assert is_umap_warm()
    data = load_dataset("digits")
    model = build_model("lenet", data.input_shape, data.num_classes)
    cache = EmbeddingCache()
    calls = []
    emb = embed_layers(model, data, layers=["fc1", "fc2"], n_samples=150, n_epochs=50, cache=cache,
                       progress=lambda done, total, layer: calls.append((done, total, layer)))
    assert list(emb.columns) == ["layer", "depth", "sample", "label", "x", "y"]
    assert emb.layer.unique().tolist() == ["fc1", "fc2", "logits"]
    assert len(emb) == 3 * 150 and calls[-1] == (3, 3, "logits")
    assert cache.misses == 3 and cache.hits == 0
    again = embed_layers(model, data, layers=["fc1", "fc2"], n_samples=150, n_epochs=50, cache=cache)
    assert cache.hits == 3 and again.equals(emb)
    # weights that change what fc1 receives make a new request; fc1's own weights do not
    with torch.no_grad():
        model.fc1.weight.mul_(-1.5)
    embed_layers(model, data, layers=["fc1"], n_samples=150, n_epochs=50, cache=cache, include_logits=False)
    assert cache.misses == 3 and cache.hits == 4
    with torch.no_grad():
        model.conv1.weight.mul_(-1.5)
    embed_layers(model, data, layers=["fc1"], n_samples=150, n_epochs=50, cache=cache, include_logits=False)
    assert cache.misses == 4 and cache.hits == 4
    with pytest.raises(ValueError, match="at least 3 rows"):
        embed_features(np.zeros((2, 2)))
