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


class _Block(nn.Module):
    """One of many blocks of the same class: dynamo guards on each owner's class, so the blocks of a deep model
    share one graph only when nothing breaks it."""

    def __init__(self, width):
        super().__init__()
        self.fc = nn.Linear(width, width)

    def forward(self, x):
        return torch.relu(self.fc(x)) + x


@pytest.mark.slow
def test_fit_compiles_a_deep_quantized_model_into_one_graph_and_trains_as_eager():
    from torch._dynamo.utils import counters

    torch.manual_seed(0)
    width, depth = 16, 10  # more blocks than dynamo's recompile limit (8)
    x, y = torch.randn(96, width), torch.randint(0, 4, (96,))
    float_model = nn.Sequential(*[_Block(width) for _ in range(depth)], nn.Linear(width, 4))
    histories = {}
    for compiled in (False, True):
        q = pdbviz.quantize(float_model, "4/4", example_input=x[:2])
        assert sum(s.a_bits == 4 for s in pdbviz.schedule_of(q).values()) == depth  # the first input stays float
        torch._dynamo.reset()
        counters.clear()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            histories[compiled] = pdbviz.fit(q, (x, y, x, y), epochs=2, batch_size=32, lr=1e-3, progress=False,
                                             augment=False, compile=compiled).to_frame()
        graphs = counters["stats"]["unique_graphs"]
        assert graphs == (1 if compiled else 0), dict(counters["stats"])
        assert not counters["graph_break"], dict(counters["graph_break"])
    eager, comp = histories[False], histories[True]
    assert len(comp) == 2 and comp.loss.notna().all()
    assert comp.loss.tolist() == pytest.approx(eager.loss.tolist(), rel=1e-4)
    assert comp.test_acc.tolist() == pytest.approx(eager.test_acc.tolist(), abs=100 / 96 + 1e-9)


def test_fit_checks_compile():
    with pytest.raises(ValueError, match="compile must be True or False, got 'yes'"):
        pdbviz.fit(nn.Linear(4, 2), (torch.randn(8, 4), torch.randint(0, 2, (8,))), epochs=1, progress=False,
                   compile="yes")
