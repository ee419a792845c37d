"""On a machine with a CUDA device: model, data and quantizers on the device, no host sync in the quantizers.

The CUDA tests are skipped where torch sees no CUDA device; the device options
of ``fit`` (bfloat16 autocast, channels-last, data moved once) are also tested
on the CPU.
"""

import pytest
import torch
from torch.utils.data import TensorDataset

import pdbviz
from pdbviz.data import as_data
from pdbviz.train import _on_device



@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quantized_training_step_runs_on_the_device_without_host_sync():
    model = pdbviz.build_model("resnet20", (3, 32, 32), 10, width=0.5).cuda()
    q = pdbviz.quantize(model, "8-4-2-1/4")
    x, y = torch.randn(16, 3, 32, 32, device="cuda"), torch.randint(0, 10, (16,), device="cuda")
    opt = torch.optim.SGD(q.parameters(), 0.1)
    q.train()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host synchronisation inside raises
    try:
        loss = torch.nn.functional.cross_entropy(q(x), y)
        loss.backward()
        opt.step()
        q.eval()
        with torch.no_grad():
            q(x)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(p.device.type == "cuda" for p in q.parameters())
    assert all(p.grad is not None for p in q.parameters() if p.requires_grad)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fit_evaluate_calibrate_and_measures_on_the_device():
    data = pdbviz.load_dataset("digits")
    streamed = (TensorDataset(data.X_train, data.y_train), TensorDataset(data.X_test, data.y_test))
    m = pdbviz.build_model("lenet", data.input_shape, 10)
    h = pdbviz.fit(m, streamed, epochs=1, device="cuda", progress=False, amp=True)
    assert next(m.parameters()).device.type == "cuda" and h.final_test_acc > 0.3
    q = pdbviz.quantize(m, "4/4")
    pdbviz.calibrate(q, data, device="cuda")
    ev = pdbviz.evaluate(q, data, device="cuda")
    assert 0 <= ev["accuracy"] <= 1
    prof = pdbviz.separability_profile(q, data, metrics=("fisher",), n_samples=100, device="cuda")
    assert len(prof) == 6
    cpu = pdbviz.evaluate(q, data, device="cpu")
    assert abs(cpu["accuracy"] - ev["accuracy"]) <= 2 / ev["n"]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_in_memory_data_is_moved_to_the_device_once_and_options_train_there():
    data = pdbviz.load_dataset("digits")
    resident = _on_device(data.train, torch.device("cuda"))
    assert resident.X.is_cuda and resident.y.is_cuda
    x, y = next(resident.batches(32, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert x.is_cuda and y.is_cuda and x.data_ptr() != data.X_train.data_ptr()
    q = pdbviz.quantize(pdbviz.build_model("lenet", data.input_shape, 10), "4/4")
    h = pdbviz.fit(q, data, epochs=1, device="cuda", progress=False, precision="bf16", channels_last=True)
    assert h.records[0]["loss"] == h.records[0]["loss"] and 0 <= h.final_test_acc <= 1


def _small(seed=0):
    data = pdbviz.load_dataset("digits")
    n = 96
    return (data.X_train[:n], data.y_train[:n], data.X_test[:n], data.y_test[:n]), data.input_shape


def test_bf16_autocast_trains_on_the_cpu_with_bfloat16_convolutions():
    data, shape = _small()
    q = pdbviz.quantize(pdbviz.build_model("lenet", shape, 10, seed=0), "4/4")
    seen = []
    q.get_submodule(pdbviz.quantizable_layers(q)[1]).register_forward_hook(
        lambda m, i, o: seen.append((i[0].dtype, o.dtype)) if m.training else None)
    h = pdbviz.fit(q, data, epochs=1, batch_size=32, device="cpu", progress=False, precision="bf16")
    assert len(seen) == 3 and all(o == torch.bfloat16 for _, o in seen)
    assert seen[0][0] == torch.bfloat16  # the quantized input of a later layer arrives in bfloat16
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in h.records)
    assert all(p.dtype == torch.float32 for p in q.parameters())


def test_channels_last_trains_on_the_cpu_like_the_default_layout():
    g = torch.Generator().manual_seed(0)
    data, shape = (torch.rand(96, 3, 16, 16, generator=g), torch.randint(0, 10, (96,), generator=g)), (3, 16, 16)
    results = []
    for cl in (False, True):
        q = pdbviz.quantize(pdbviz.build_model("lenet", shape, 10, seed=0), "4/4")
        convs = [m for m in q.modules() if isinstance(m, torch.nn.Conv2d)]
        layouts = []
        convs[0].register_forward_hook(lambda m, i, o: layouts.append(
            i[0].is_contiguous(memory_format=torch.channels_last)) if m.training else None)
        h = pdbviz.fit(q, data, epochs=1, batch_size=32, device="cpu", progress=False, channels_last=cl,
                       augment=False)
        assert convs and all(m.parametrizations.weight.original.is_contiguous(memory_format=torch.channels_last)
                             == cl for m in convs)
        assert layouts == [cl] * 3  # the quantized input of the convolution too
        results.append(h.records[0]["loss"])
    assert results[1] == pytest.approx(results[0], rel=1e-2)  # the same training, up to summation order


@pytest.mark.parametrize("kwargs, match", [
    ({"precision": "fp16"}, "precision must be one of"),
    ({"precision": "bf16", "amp": True}, "pass only one"),
    ({"amp": "yes"}, "amp must be True or False"),
    ({"channels_last": 1}, "channels_last must be True or False"),
])
def test_bad_device_options_are_rejected(kwargs, match):
    data, shape = _small()
    with pytest.raises(ValueError, match=match):
        pdbviz.fit(pdbviz.build_model("mlp", shape, 10), data, epochs=1, progress=False, device="cpu", **kwargs)


def test_a_resident_split_gives_the_batches_of_the_split_in_the_same_order():
    split = as_data(_small()[0]).train
    from pdbviz.train import _ResidentSplit

    resident = _ResidentSplit(split.X.clone(), split.y.clone())
    assert _on_device(split, torch.device("cpu")) is split  # already there: nothing copied
    ours = list(resident.batches(40, shuffle=True, generator=torch.Generator().manual_seed(3)))
    theirs = list(split.batches(40, shuffle=True, generator=torch.Generator().manual_seed(3)))
    assert [len(y) for _, y in ours] == [40, 40, 16] == [len(y) for _, y in theirs]
    assert all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(ours, theirs))
    assert resident.n_batches(40) == split.n_batches(40) == 3
