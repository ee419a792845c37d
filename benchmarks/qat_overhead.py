"""Cost of quantization-aware training against float-32, pdbviz beside its peers, on two nets.

Run: python benchmarks/qat_overhead.py [--nets lenet resnet20] [--rounds 7] [--steps 10] [--no-compile]
     [--only W4A4 float ...] [--clock cpu]

Nets: pdbviz's "lenet" on 1x28x28 inputs, batch 128; and "resnet20" on
3x32x32, batch 64. Adam. Variants are interleaved round by round so that the
machine's drift hits them all alike. For each: the median (min, max) time of
a training step (forward, backward, optimizer step) and of an evaluation
forward pass (eval mode, no_grad), and their ratios to float-32 (eager).
Inputs quantized ("/4", "/1", "/8-4-2-1") everywhere but the network input.

Peers, in the same run: torch.ao eager-mode QAT (int8 fake quantization,
default x86 qconfig), Brevitas W4A4 (weights 4 bits, inputs 4 bits; ``pip
install -e .[bench]``), and a naive DoReFa W4A4 written with the usual
``x + (q - x).detach()`` straight-through trick. Compiled rows
(``torch.compile(..., dynamic=False)`` of the training step and of the
evaluation forward) show what the compiler adds on top. "pdbviz W4A4, mask
inputs" computes DoReFa inputs as pdbviz did before its fused backward (a
boolean mask saved forward, multiplied into the gradient backward), so the two
are compared in the same run. ``--only`` keeps the variants whose names
contain one of the given words (float-32 always stays: it is the baseline).
``--clock cpu`` times the process's CPU time (``time.process_time``) instead
of the wall clock: with one thread on a machine that other jobs share, waiting
for a core is then not counted.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
from torch import nn
from torch.nn import functional as F

import pdbviz
from pdbviz.quant import activation_quantizer, register_activation_quantizer
from pdbviz.quant.quantizers import DoReFaActivation
from pdbviz.quant.ste import clipped_round_ste

NETS = {"lenet": ((1, 28, 28), 128), "resnet20": ((3, 32, 32), 64)}
CLASSES = 10


def build(net: str) -> nn.Module:
    return pdbviz.build_model(net, NETS[net][0], CLASSES, seed=0)


@register_activation_quantizer
class MaskDoReFaInputs(DoReFaActivation):
    """DoReFa inputs with a boolean mask saved forward and multiplied into the gradient backward."""

    name, label = "dorefa-mask", "DoReFa (mask)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = float(2**self.bits - 1)
        if not (x.requires_grad and torch.is_grad_enabled()):
            return x.clamp(0.0, 1.0).mul_(n).round_().div_(n)
        return clipped_round_ste(x, n)


# -- peers ---------------------------------------------------------------------
def _naive_dorefa(x, weight, bits=4):
    """DoReFa input and weight quantization written with the ``x + (q - x).detach()`` STE."""
    n = 2**bits - 1
    xc = x.clamp(0, 1)
    x = xc + (torch.round(xc * n) / n - xc).detach()
    t = torch.tanh(weight)
    wn = t / (2 * t.abs().max()) + 0.5
    return x, 2 * (wn + (torch.round(wn * n) / n - wn).detach()) - 1


class _NaiveConv(nn.Conv2d):
    first = False

    def forward(self, x):
        qx, qw = _naive_dorefa(x, self.weight)
        return self._conv_forward(x if self.first else qx, qw, self.bias)


class _NaiveLinear(nn.Linear):
    def forward(self, x):
        return F.linear(*_naive_dorefa(x, self.weight), self.bias)


def _swap(model: nn.Module, make) -> nn.Module:
    """Replace every Conv2d/Linear (registration order) by ``make(module, is_first)``."""
    first = pdbviz.quantizable_layers(model)[0]
    for name, m in list(model.named_modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, make(m, name == first))
    return model


def naive_w4a4(net: str) -> nn.Module:
    def make(m, first):
        cls = _NaiveConv if isinstance(m, nn.Conv2d) else _NaiveLinear
        new = cls.__new__(cls)
        new.__dict__.update(m.__dict__)
        new.first = first
        return new

    return _swap(build(net), make)


class _Stubbed(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.quant, self.inner, self.dequant = torch.ao.quantization.QuantStub(), inner, \
            torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.inner(self.quant(x)))


def torch_ao_qat(net: str) -> nn.Module:
    import torch.ao.quantization as tq

    model = _Stubbed(build(net))
    model.qconfig = tq.get_default_qat_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.prepare_qat(model.train())


def brevitas_w4a4(net: str) -> nn.Module | None:
    try:
        import brevitas.nn as qnn
        from brevitas.quant import Uint8ActPerTensorFloat
    except ImportError:
        return None

    def make(m, first):
        kw = {} if first else {"input_quant": Uint8ActPerTensorFloat, "input_bit_width": 4}
        if isinstance(m, nn.Conv2d):
            new = qnn.QuantConv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                                  bias=m.bias is not None, weight_bit_width=4, **kw)
        else:
            new = qnn.QuantLinear(m.in_features, m.out_features, bias=m.bias is not None, weight_bit_width=4, **kw)
        new.load_state_dict(m.state_dict(), strict=False)  # the learned input scales keep their defaults
        return new

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _swap(build(net), make)


def variants(net: str, compiled: bool) -> dict[str, nn.Module]:
    out = {
        "float-32": build(net),
        "pdbviz W4A4": pdbviz.quantize(build(net), "4/4"),
        "pdbviz W4A4, mask inputs": pdbviz.quantize(
            build(net), pdbviz.BitSchedule.uniform(build(net), 4, 4, act_mode="dorefa-mask")),
        "pdbviz W4A4 PACT": pdbviz.quantize(build(net), pdbviz.BitSchedule.uniform(build(net), 4, 4, act_mode="pact")),
        "pdbviz 8-4-2-1": pdbviz.quantize(build(net), "8-4-2-1"),
        "pdbviz 8-4-2-1/8-4-2-1": pdbviz.quantize(build(net), "8-4-2-1/8-4-2-1"),
        "pdbviz W1A1": pdbviz.quantize(build(net), "1/1"),
        "naive DoReFa W4A4": naive_w4a4(net),
        "torch.ao QAT int8": torch_ao_qat(net),
    }
    b = brevitas_w4a4(net)
    if b is not None:
        out["Brevitas W4A4"] = b
    if compiled:
        out["float-32, compiled"] = build(net)
        out["pdbviz W4A4, compiled"] = pdbviz.quantize(build(net), "4/4")
    return out


# -- timing ----------------------------------------------------------------------
def make_steps(name: str, model: nn.Module, x, y):
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def train_step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_step():
        with torch.no_grad():
            return model(x)  # returned: a compiled step whose output is unused would compute nothing

    if name.endswith("compiled"):
        return torch.compile(train_step, dynamic=False), torch.compile(eval_step, dynamic=False)
    return train_step, eval_step


CLOCK = time.perf_counter


def timed(step, train: bool, model: nn.Module, steps: int) -> float:
    model.train(train)
    t0 = CLOCK()
    for _ in range(steps):
        step()
    return (CLOCK() - t0) / steps


def run(net: str, rounds: int, steps: int, compiled: bool, only=None) -> None:
    shape, batch = NETS[net]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g)
    y = torch.randint(0, CLASSES, (batch,), generator=g)
    models = {k: m for k, m in variants(net, compiled).items()
              if k == "float-32" or not only or any(w in k for w in only)}
    stepfns = {k: make_steps(k, m, x, y) for k, m in models.items()}
    for k, m in models.items():  # warm-up (and compilation)
        timed(stepfns[k][0], True, m, 3)
        timed(stepfns[k][1], False, m, 3)
    train = {k: [] for k in models}
    evals = {k: [] for k in models}
    for _ in range(rounds):
        for k, m in models.items():
            train[k].append(timed(stepfns[k][0], True, m, steps))
            evals[k].append(timed(stepfns[k][1], False, m, steps))
    base_t, base_e = statistics.median(train["float-32"]), statistics.median(evals["float-32"])
    print(f"\n{net}: input {shape}, batch {batch}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{rounds} interleaved rounds x {steps} steps, {'CPU time' if CLOCK is time.process_time else 'wall clock'}")
    print(f"{'variant':<26}{'train ms median (min-max)':>28}{'ratio':>8}{'eval ms median (min-max)':>28}{'ratio':>8}")
    for k in models:
        t, e = train[k], evals[k]
        print(f"{k:<26}{1000 * statistics.median(t):>12.2f} ({1000 * min(t):.2f}-{1000 * max(t):.2f})"
              f"{statistics.median(t) / base_t:>8.2f}x{1000 * statistics.median(e):>12.2f} "
              f"({1000 * min(e):.2f}-{1000 * max(e):.2f}){statistics.median(e) / base_e:>8.2f}x")
    if "float-32, compiled" in models:
        ct, ce = statistics.median(train["float-32, compiled"]), statistics.median(evals["float-32, compiled"])
        for k in (k for k in models if k.endswith(", compiled") and not k.startswith("float-32")):
            print(f"{k} against float-32, compiled: train {statistics.median(train[k]) / ct:.2f}x, "
                  f"eval {statistics.median(evals[k]) / ce:.2f}x")


def op_timing(rounds: int) -> None:
    """The DoReFa input quantizer alone, forward and backward on one ResNet-20 activation: mask-saving against
    pdbviz's, interleaved."""
    x0 = torch.randn(64, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    g = torch.randn_like(x0)
    cases = {"mask inputs": MaskDoReFaInputs(4), "pdbviz": activation_quantizer("dorefa")(4)}
    res = {k: [] for k in cases}
    for _ in range(rounds):
        for k, q in cases.items():
            x = x0.clone().requires_grad_()
            t0 = CLOCK()
            q(x).backward(g)
            res[k].append(CLOCK() - t0)
    base = statistics.median(res["mask inputs"])
    print(f"\nDoReFa 4-bit inputs alone, forward + backward, {tuple(x0.shape)}, {rounds} interleaved rounds")
    for k, v in res.items():
        print(f"{k:<26}{1000 * statistics.median(v):>12.2f} ({1000 * min(v):.2f}-{1000 * max(v):.2f})"
              f"{statistics.median(v) / base:>8.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--only", nargs="+", default=None, help="keep the variants whose names contain one of these")
    ap.add_argument("--op", action="store_true", help="also time the input quantizer alone")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="wall clock or the process's CPU time")
    args = ap.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(args.threads)
    if args.op:
        op_timing(20 * args.rounds)
    for net in args.nets:
        run(net, args.rounds, args.steps, not args.no_compile, args.only)


if __name__ == "__main__":
    main()
