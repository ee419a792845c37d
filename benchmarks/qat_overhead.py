"""Cost of quantization-aware training against float-32, pdbviz beside its peers.

Run: python benchmarks/qat_overhead.py [--rounds 7] [--steps 10]

One process, the same LeNet-style CNN on 28x28 inputs (pdbviz's "lenet"),
batch 128, Adam. Variants are interleaved round by round so that the
machine's drift hits them all alike. For each: the median (min, max) time of
a training step (forward, backward, optimizer step) and of an evaluation
forward pass (eval mode, no_grad), and their ratios to float-32.

Peers: torch.ao eager-mode QAT (int8 fake quantization, default x86 qconfig),
Brevitas W4A4 (``pip install -e .[bench]``), and a naive DoReFa W4A4 written
with the usual ``x + (q - x).detach()`` straight-through trick.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
from torch import nn
from torch.nn import functional as F

import pdbviz

SHAPE, CLASSES, BATCH = (1, 28, 28), 10, 128


def lenet() -> nn.Module:
    return pdbviz.build_model("lenet", SHAPE, CLASSES, seed=0)


# -- peers ---------------------------------------------------------------------
def _naive_dorefa(x, weight, bits=4):
    """DoReFa input and weight quantization written with the ``x + (q - x).detach()`` STE."""
    n = 2**bits - 1
    xc = x.clamp(0, 1)
    x = xc + (torch.round(xc * n) / n - xc).detach()
    t = torch.tanh(weight)
    wn = t / (2 * t.abs().max()) + 0.5
    return x, 2 * (wn + (torch.round(wn * n) / n - wn).detach()) - 1


class NaiveDoReFaConv(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(*_naive_dorefa(x, self.weight), self.bias)


class NaiveDoReFaLinear(nn.Linear):
    def forward(self, x):
        return F.linear(*_naive_dorefa(x, self.weight), self.bias)


def naive_w4a4() -> nn.Module:
    model = lenet()
    first = True
    for name, m in list(model.named_modules()):
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            cls = NaiveDoReFaConv if isinstance(m, nn.Conv2d) else NaiveDoReFaLinear
            new = cls.__new__(cls)
            new.__dict__.update(m.__dict__)
            if first:  # the image stays float, as in pdbviz
                new.forward = (lambda self_: (lambda x: self_._conv_forward(x, self_.weight, self_.bias)))(new)
                first = False
            setattr(model, name, new)
    return model


class _Stubbed(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.quant, self.inner, self.dequant = torch.ao.quantization.QuantStub(), inner, \
            torch.ao.quantization.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.inner(self.quant(x)))


def torch_ao_qat() -> nn.Module:
    import torch.ao.quantization as tq

    model = _Stubbed(lenet())
    model.qconfig = tq.get_default_qat_qconfig("x86")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return tq.prepare_qat(model.train())


def brevitas_w4a4() -> nn.Module | None:
    try:
        import brevitas.nn as qnn
    except ImportError:
        return None

    class BrevitasLeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = qnn.QuantConv2d(1, 16, 5, padding=2, bias=False, weight_bit_width=4)
            self.bn1, self.r1 = nn.BatchNorm2d(16), qnn.QuantReLU(bit_width=4)
            self.conv2 = qnn.QuantConv2d(16, 32, 5, padding=2, bias=False, weight_bit_width=4)
            self.bn2, self.r2 = nn.BatchNorm2d(32), qnn.QuantReLU(bit_width=4)
            self.fc1, self.bn3, self.r3 = qnn.QuantLinear(1568, 120, bias=True, weight_bit_width=4), \
                nn.BatchNorm1d(120), qnn.QuantReLU(bit_width=4)
            self.fc2, self.bn4, self.r4 = qnn.QuantLinear(120, 84, bias=True, weight_bit_width=4), \
                nn.BatchNorm1d(84), qnn.QuantReLU(bit_width=4)
            self.fc3 = qnn.QuantLinear(84, 10, bias=True, weight_bit_width=4)

        def forward(self, x):
            x = F.max_pool2d(self.r1(self.bn1(self.conv1(x))), 2)
            x = F.max_pool2d(self.r2(self.bn2(self.conv2(x))), 2)
            x = self.r3(self.bn3(self.fc1(x.flatten(1))))
            x = self.r4(self.bn4(self.fc2(x)))
            return self.fc3(x)

    torch.manual_seed(0)
    return BrevitasLeNet()


def variants() -> dict[str, nn.Module]:
    out = {
        "float-32": lenet(),
        "pdbviz W4A4": pdbviz.quantize(lenet(), "4/4"),
        "pdbviz 8-4-2-1": pdbviz.quantize(lenet(), "8-4-2-1"),
        "pdbviz 8-4-2-1/8-4-2-1": pdbviz.quantize(lenet(), "8-4-2-1/8-4-2-1"),
        "pdbviz W1A1": pdbviz.quantize(lenet(), "1/1"),
        "naive DoReFa W4A4": naive_w4a4(),
        "torch.ao QAT int8": torch_ao_qat(),
    }
    b = brevitas_w4a4()
    if b is not None:
        out["Brevitas W4A4"] = b
    return out


# -- timing ----------------------------------------------------------------------
def time_train(model, opt, x, y, steps):
    model.train()
    t0 = time.perf_counter()
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return (time.perf_counter() - t0) / steps


@torch.no_grad()
def time_eval(model, x, steps):
    model.eval()
    t0 = time.perf_counter()
    for _ in range(steps):
        model(x)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCH, *SHAPE, generator=g)
    y = torch.randint(0, CLASSES, (BATCH,), generator=g)
    models = variants()
    opts = {k: torch.optim.Adam(m.parameters(), 1e-3) for k, m in models.items()}
    for k, m in models.items():  # warm-up
        time_train(m, opts[k], x, y, 2)
        time_eval(m, x, 2)
    train = {k: [] for k in models}
    evals = {k: [] for k in models}
    for _ in range(args.rounds):
        for k, m in models.items():
            train[k].append(time_train(m, opts[k], x, y, args.steps))
            evals[k].append(time_eval(m, x, args.steps))
    base_t, base_e = statistics.median(train["float-32"]), statistics.median(evals["float-32"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {BATCH}, input {SHAPE}, "
          f"{args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'variant':<26}{'train ms median (min-max)':>28}{'ratio':>8}{'eval ms median (min-max)':>28}{'ratio':>8}")
    for k in models:
        t, e = train[k], evals[k]
        print(f"{k:<26}{1000 * statistics.median(t):>12.2f} ({1000 * min(t):.2f}-{1000 * max(t):.2f})"
              f"{statistics.median(t) / base_t:>8.2f}x{1000 * statistics.median(e):>12.2f} "
              f"({1000 * min(e):.2f}-{1000 * max(e):.2f}){statistics.median(e) / base_e:>8.2f}x")


if __name__ == "__main__":
    main()
