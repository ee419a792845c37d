"""Torchvision models under a schedule: coverage, end-to-end compression, packed size against the table.

Run: python benchmarks/any_model.py [--models vit_b_16 swin_t resnet18] [--schedule 8-4-2-1] [--size 224]

For each model (``weights=None``: the sizes do not depend on the values),
quantize it under the schedule, print the memory report's totals (quantized
weights, whole model, coverage line, BOPs), write the packed file, and print
its size against the table's end-to-end total, the round trip's largest
output difference on one random batch, and the time each step took.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch
import torchvision

import pdbviz


def measure(name: str, schedule: str, size: int) -> None:
    torch.manual_seed(0)
    model = getattr(torchvision.models, name)(weights=None).eval()
    x = torch.randn(1, 3, size, size)
    t0 = time.perf_counter()
    q = pdbviz.quantize(model, schedule, example_input=x)
    t_quantize = time.perf_counter() - t0
    report = pdbviz.memory_report(q, example_input=x)
    s = report.summary
    print(f"\n{name} under {schedule!r} ({size}x{size}), quantized in {t_quantize:.1f} s")
    for line in report.totals():
        print("  " + line)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{name}.pdbq")
        t0 = time.perf_counter()
        pdbviz.save_packed(q, path)
        t_save = time.perf_counter() - t0
        size_kib = os.path.getsize(path) / 1024
        t0 = time.perf_counter()
        back = pdbviz.load_packed(path, model=getattr(torchvision.models, name)(weights=None)).eval()
        t_load = time.perf_counter() - t0
    with torch.no_grad():
        diff = float((q(x) - back(x)).abs().max())
    print(f"  packed file {size_kib:,.1f} KiB against the table's {s.total_kib:,.1f} KiB end to end "
          f"({100 * (size_kib / s.total_kib - 1):+.2f}%); save {t_save:.1f} s, load {t_load:.1f} s; "
          f"round trip max |output difference| {diff:.3g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["vit_b_16"])
    ap.add_argument("--schedule", default="8-4-2-1")
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args()
    print(f"pdbviz {pdbviz.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")
    for name in args.models:
        measure(name, args.schedule, args.size)


if __name__ == "__main__":
    main()
