"""A training step under torch.compile gives eager's loss and gradients (float32 tolerance) for every weight and
input mode, and both match a float64 run of the same formulas.

The network pools by averaging: a quantized weight times a quantized input gives values on a lattice, and a
max-pool over them has exact ties whose arg-max (where the gradient goes) depends on the order a kernel sums in,
which float32 and float64, eager and compiled kernels do differently: every such choice is a valid subgradient,
none is a property of the quantizers.
"""

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import pdbviz
from pdbviz.quant import BitSchedule, BitSpec


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.b1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.c2, self.b2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.f1, self.f2, self.f3 = nn.Linear(8 * 4 * 4, 32), nn.Linear(32, 32), nn.Linear(32, 5)

    def forward(self, x):
        h = F.avg_pool2d(torch.relu(self.b1(self.c1(x))), 2)
        h = F.avg_pool2d(torch.relu(self.b2(self.c2(h))), 2)
        h = torch.relu(self.f1(h.flatten(1)))
        return self.f3(torch.relu(self.f2(h)))


#: every registered weight mode and input mode, one per layer
SCHEDULE = [("c1", BitSpec(4, 32, "dorefa")), ("c2", BitSpec(2, 4, "symmetric", "pact")),
            ("f1", BitSpec(3, 2, "lsq", "dorefa")), ("f2", BitSpec(1, 8, "dorefa", "pact")),
            ("f3", BitSpec(1, 1, "symmetric", "dorefa"))]


def _step(model, x, y):
    model.zero_grad(set_to_none=True)
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = {n.removeprefix("_orig_mod."): p.grad.detach().double() for n, p in model.named_parameters()
             if p.grad is not None}
    return loss.detach().double(), grads


def _rel(a, b):
    return float((a - b).abs().sum() / b.abs().sum().clamp_min(1e-12))


@pytest.mark.slow
def test_compiled_training_step_equals_eager_and_float64():
    torch.manual_seed(0)
    x, y = torch.randn(32, 3, 16, 16), torch.randint(0, 5, (32,))
    q = pdbviz.quantize(Net(), BitSchedule(SCHEDULE), example_input=x[:2]).train()
    assert {s.weight_mode for s in pdbviz.schedule_of(q).values()} == {"dorefa", "symmetric", "lsq"}
    assert {s.act_mode for s in pdbviz.schedule_of(q).values() if s.a_bits < 32} == {"dorefa", "pact"}
    loss_e, g_e = _step(copy.deepcopy(q), x, y)
    loss_d, g_d = _step(copy.deepcopy(q).double(), x.double(), y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch._dynamo.reset()
        loss_c, g_c = _step(torch.compile(copy.deepcopy(q)), x, y)
    assert float(abs(loss_c - loss_e)) <= 1e-5 * float(loss_e)
    assert float(abs(loss_e - loss_d)) <= 1e-5 * float(loss_d)
    weights = [n for n in g_e if not n.endswith("bias")]  # biases before a BatchNorm have a zero gradient
    assert len(weights) >= 9
    for n in weights:
        assert _rel(g_c[n], g_e[n]) <= 1e-5, (n, _rel(g_c[n], g_e[n]))
        assert _rel(g_e[n], g_d[n]) <= 1e-5, (n, _rel(g_e[n], g_d[n]))
