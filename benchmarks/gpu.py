"""Images per second of training and evaluation, float beside QAT, eager and compiled, on the best device here.

Run: python benchmarks/gpu.py [--device auto] [--net resnet20] [--batch 256] [--steps 20] [--bf16]
     [--channels-last] [--no-compile] [--demo]

Variants: float-32, pdbviz W4A4 (DoReFa weights and inputs), pdbviz 8-4-2-1
(weights only), each eager and ``torch.compile``-d; beside them torch.ao
eager-mode QAT (int8) and Brevitas W4A4 when they import. A training step is
forward, backward and Adam step on one batch already on the device; an
evaluation is a no-grad forward in eval mode. ``--demo`` also times
``python -m pdbviz.cli demo --full`` end to end. Without a CUDA device it runs
on the CPU and says which parts it skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time

import torch
from torch.nn import functional as F

import pdbviz

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qat_overhead import brevitas_w4a4, torch_ao_qat  # noqa: E402  (the same peers as the CPU benchmark)

SHAPES = {"lenet": (1, 28, 28), "resnet20": (3, 32, 32)}


def variants(net: str, compiled: bool) -> dict:
    build = lambda: pdbviz.build_model(net, SHAPES[net], 10, seed=0)  # noqa: E731
    out = {"float-32": build(), "pdbviz W4A4": pdbviz.quantize(build(), "4/4"),
           "pdbviz 8-4-2-1": pdbviz.quantize(build(), "8-4-2-1")}
    if compiled:
        out["float-32, compiled"] = build()
        out["pdbviz W4A4, compiled"] = pdbviz.quantize(build(), "4/4")
        out["pdbviz 8-4-2-1, compiled"] = pdbviz.quantize(build(), "8-4-2-1")
    for name, make in (("torch.ao QAT int8", torch_ao_qat), ("Brevitas W4A4", brevitas_w4a4)):
        try:
            model = make(net)
        except Exception as e:  # a peer that does not build here is reported, not fatal
            print(f"{name}: skipped ({type(e).__name__}: {e})")
            continue
        if model is None:
            print(f"{name}: skipped (not installed)")
        else:
            out[name] = model
    return out


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(name, model, x, y, steps: int, autocast, dev) -> tuple[float, float]:
    """Images/s of training and of evaluation (after warm-up, and compilation for compiled variants)."""
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def train_step():
        with autocast():
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def eval_step():
        with torch.no_grad(), autocast():
            model(x)

    if name.endswith("compiled"):
        train_step, eval_step = torch.compile(train_step), torch.compile(eval_step)
    rates = []
    for step, training in ((train_step, True), (eval_step, False)):
        model.train(training)
        for _ in range(3):
            step()
        sync(dev)
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync(dev)
        rates.append(steps * len(x) / (time.perf_counter() - t0))
    return rates[0], rates[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--net", default="resnet20", choices=list(SHAPES))
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    ap.add_argument("--demo", action="store_true", help="also time `pdbviz demo --full`")
    args = ap.parse_args()
    dev = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                       "cpu" if args.device == "auto" else args.device)
    if dev.type == "cuda":
        print(f"device: {torch.cuda.get_device_name(dev)}; torch {torch.__version__}")
        torch.backends.cudnn.benchmark = True
    else:
        print(f"device: CPU ({torch.get_num_threads()} threads); torch {torch.__version__}. No CUDA device: "
              "CUDA-only parts (device synchronisation, cuDNN autotuning) skipped; these are CPU figures")
    autocast = (lambda: torch.autocast(dev.type, dtype=torch.bfloat16)) if args.bf16 else contextlib.nullcontext
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, *SHAPES[args.net], generator=g).to(dev)
    y = torch.randint(0, 10, (args.batch,), generator=g).to(dev)
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    models = variants(args.net, not args.no_compile)
    print(f"\n{args.net}, batch {args.batch}, {args.steps} steps, {'bf16 autocast' if args.bf16 else 'float32'}"
          f"{', channels-last' if args.channels_last else ''}")
    print(f"{'variant':<28}{'train img/s':>14}{'eval img/s':>14}")
    for name, model in models.items():
        model.to(dev)
        if args.channels_last:
            model.to(memory_format=torch.channels_last)
        try:
            tr, ev = measure(name, model, x, y, args.steps, autocast, dev)
        except Exception as e:  # a variant that fails here (a compiler or a peer) is reported, not fatal
            print(f"{name:<28}failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}")
            continue
        print(f"{name:<28}{tr:>14.0f}{ev:>14.0f}")
    if args.demo:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pdbviz.cli", "demo", "--full"], capture_output=True, text=True)
        status = "ok" if done.returncode == 0 else f"failed (exit {done.returncode})"
        print(f"\npdbviz demo --full: {time.perf_counter() - t0:.1f} s, {status}")


if __name__ == "__main__":
    main()
