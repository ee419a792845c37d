"""Peak memory of the per-layer measures on a large model: resnet18 at 224x224.

Run: python benchmarks/measure_memory.py [--samples 256] [--pool auto]

In a child process: a torchvision resnet18 (random weights, 1000 classes),
``separability_profile`` with every measure on 256 images of 3x224x224 made by
torchvision's FakeData (no download). The parent prints the child's peak
resident set size and the time. Target: <= 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CHILD = r"""
import json, sys, time, torch, torchvision
import pdbviz

n, pool = int(sys.argv[1]), sys.argv[2]
torch.set_num_threads(2)
data = torchvision.datasets.FakeData(size=n, image_size=(3, 224, 224), num_classes=10,
                                     transform=torchvision.transforms.ToTensor())
model = torchvision.models.resnet18()
t0 = time.perf_counter()
prof = pdbviz.separability_profile(model, pdbviz.as_data(data, classes=10), n_samples=n, pool=pool)
print(json.dumps({"seconds": time.perf_counter() - t0, "layers": len(prof), "dims": int(prof.dims.max())}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--pool", default="auto", choices=("auto", "avg", "project", "flatten"))
    args = ap.parse_args()
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.samples), args.pool], capture_output=True, text=True,
                         check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"resnet18, {args.samples} images of 3x224x224, pool={args.pool}: separability profile of "
          f"{result['layers']} layers (at most {result['dims']} values per sample) in {result['seconds']:.1f} s")
    print(f"peak RSS: {peak:,.0f} MiB ({peak / 1024:.2f} GiB; target <= 2 GB)")


if __name__ == "__main__":
    main()
