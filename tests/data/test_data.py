import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from pdbviz import load_dataset
from pdbviz.data import read_idx


def test_digits_split_is_fixed_stratified_and_normalised():
    d = load_dataset("digits")
    assert d.input_shape == (1, 8, 8) and d.num_classes == 10 and d.classes[3] == "3"
    assert len(d.y_train) == 1347 and len(d.y_test) == 450
    assert abs(float(d.X_train.mean())) < 1e-3 and abs(float(d.X_train.std()) - 1) < 1e-3
    counts = torch.bincount(d.y_test, minlength=10)
    assert counts.min() >= 43 and counts.max() <= 47  # stratified: ~45 per class
    again = load_dataset("digits")
    assert torch.equal(again.X_train, d.X_train) and torch.equal(again.y_test, d.y_test)
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.y_train, d.y_train)


def test_mnist5k_is_real_mnist():
    d = load_dataset("mnist5k")
    assert d.input_shape == (1, 28, 28) and len(d.y_train) + len(d.y_test) == 5000
    assert d.mean == (0.1307,) and d.std == (0.3081,)
    assert sorted(torch.unique(d.y_train).tolist()) == list(range(10))


def test_train_subset_is_stratified():
    d = load_dataset("digits", train_subset=200)
    assert len(d.y_train) == 200 and len(d.y_test) == 450
    assert torch.bincount(d.y_train, minlength=10).min() >= 18


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match="unknown dataset name 'mnist4k'.*available: digits, mnist5k.*Did you mean 'mnist5k'"):
        load_dataset("mnist4k")
    with pytest.raises(ValueError, match="test_size must be a float between 0 and 1"):
        load_dataset("digits", test_size=2)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "cifar10", "cifar100"])
def test_missing_download_says_where_and_how(tmp_path, name):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(name, root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path) in msg and f"pdbviz.load_dataset({name!r}, root=" in msg and "download=True" in msg


def _write_idx(path, array, compress=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx_files_on_disk(tmp_path, name, folder, compress):
    raw = tmp_path / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    imgs = {"train": rng.integers(0, 256, (20, 28, 28)), "t10k": rng.integers(0, 256, (10, 28, 28))}
    labels = {"train": np.arange(20) % 10, "t10k": np.arange(10) % 10}
    suffix = ".gz" if compress else ""
    for split in ("train", "t10k"):
        _write_idx(raw / f"{split}-images-idx3-ubyte{suffix}", imgs[split], compress)
        _write_idx(raw / f"{split}-labels-idx1-ubyte{suffix}", labels[split], compress)
    d = load_dataset(name, root=tmp_path)
    assert d.X_train.shape == (20, 1, 28, 28) and d.X_test.shape == (10, 1, 28, 28)
    assert d.y_train.tolist() == labels["train"].tolist()
    mean, std = d.mean[0], d.std[0]
    expected = (imgs["train"][3] / 255.0 - mean) / std
    np.testing.assert_allclose(d.X_train[3, 0].numpy(), expected, atol=1e-5)
    if name == "fashion-mnist":
        assert d.classes[9] == "Ankle boot"


def test_truncated_idx_is_reported(tmp_path):
    p = tmp_path / "x-idx3-ubyte"
    _write_idx(p, np.zeros((4, 2, 2)))
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(p)


def _write_cifar(root, name, n_train, n_test, n_classes):
    rng = np.random.default_rng(1)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = {f"data_batch_{i}": n_train for i in range(1, 6)} | {"test_batch": n_test}
        label_key, meta, meta_key = "labels", "batches.meta", "label_names"
    else:
        folder = root / "cifar-100-python"
        files = {"train": n_train, "test": n_test}
        label_key, meta, meta_key = "fine_labels", "meta", "fine_label_names"
    folder.mkdir(parents=True)
    written = {}
    for fname, n in files.items():
        batch = {b"data": rng.integers(0, 256, (n, 3072)).astype(np.uint8),
                 label_key.encode(): list(rng.integers(0, n_classes, n).tolist())}
        written[fname] = batch
        with open(folder / fname, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    with open(folder / meta, "wb") as fh:
        pickle.dump({meta_key: [f"class{i}" for i in range(n_classes)]}, fh, protocol=2)
    return folder, written


@pytest.mark.parametrize("name, n_classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_batches_on_disk(tmp_path, name, n_classes):
    folder, written = _write_cifar(tmp_path, name, 4, 6, n_classes)
    d = load_dataset(name, root=tmp_path)
    n_train = 20 if name == "cifar10" else 4
    assert d.X_train.shape == (n_train, 3, 32, 32) and d.X_test.shape == (6, 3, 32, 32)
    assert d.num_classes == n_classes and d.augment == "crop-flip"
    first = "data_batch_1" if name == "cifar10" else "train"
    img = written[first][b"data"][0].reshape(3, 32, 32) / 255.0
    expected = (img - np.array(d.mean)[:, None, None]) / np.array(d.std)[:, None, None]
    np.testing.assert_allclose(d.X_train[0].numpy(), expected, atol=1e-5)


def test_cifar_loader_refuses_arbitrary_pickles(tmp_path):
    folder, _ = _write_cifar(tmp_path, "cifar10", 2, 2, 10)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": [0]}, fh)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load builtins.print"):
        load_dataset("cifar10", root=tmp_path)


def test_data_modules_import_no_circle():
    """split <- core <- named <- convert: each module imports only those before it (function-level imports too)."""
    import grimp

    graph = grimp.build_graph("pdbviz")
    modules = graph.find_descendants("pdbviz.data")
    circles = [(a, b) for a in modules for b in graph.find_modules_directly_imported_by(a)
               if b in modules and graph.find_shortest_chain(importer=b, imported=a)]
    assert circles == []


def test_data_constructors_take_data_and_leave_names_to_as_data():
    import numpy as np

    from pdbviz.data import Data, as_data

    d = Data.from_numpy(np.random.rand(20, 3), np.arange(20) % 2, test_size=0.25)
    assert d.input_shape == (3,) and len(d.test) == 5
    with pytest.raises(TypeError, match="dataset name .*'digits'.* as_data or load_dataset"):
        Data.from_dataset("digits")
    assert as_data("digits").name == "digits"


def test_a_split_says_how_it_is_held_and_kind_is_its_deprecated_name():
    import warnings

    split = load_dataset("digits").train
    assert split.form == "tensors"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert split.kind == "tensors"
    assert [str(w.message) for w in caught] == ["Split.kind is deprecated; use Split.form (how the split is held)"]
