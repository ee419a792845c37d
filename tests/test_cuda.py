"""On a machine with a CUDA device: model, data and quantizers on the device, no host sync in the quantizers.

Skipped where torch sees no CUDA device.
"""

import pytest
import torch
from torch.utils.data import TensorDataset

import pdbviz

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


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
