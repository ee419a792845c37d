"""One epoch of quantization-aware training streamed from a Dataset bigger than memory allows.

Run: python benchmarks/streaming.py [--n 200000] [--model lenet] [--workers 1]

The Dataset makes 3x32x32 float32 images on the fly (200,000 of them are
2.4 GB as float32), so nothing but the current batches is ever in memory.
The run happens in a child process; the parent reads its peak resident set
size (``ru_maxrss`` of the child) and prints it with the epoch time.
Target: peak RSS <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

CHILD = r"""
import json, sys, time, torch
from torch.utils.data import Dataset
import pdbviz

n, model_name, workers, schedule = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(2)

class Generated(Dataset):
    # image i is drawn from a generator seeded with i: the same every epoch, never stored
    def __len__(self):
        return n
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        x = torch.rand(3, 32, 32, generator=g)
        return x, i % 10

data = pdbviz.as_data(Generated(), classes=10, name="generated")
model = pdbviz.quantize(pdbviz.build_model(model_name, (3, 32, 32), 10), schedule)
t0 = time.perf_counter()
h = pdbviz.fit(model, data, epochs=1, batch_size=256, progress=False, num_workers=workers)
print(json.dumps({"seconds": time.perf_counter() - t0, "loss": h.records[-1]["loss"], "images": n}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--schedule", default="4/4")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, str(args.n), args.model, str(args.workers), args.schedule],
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux -> MiB
    size = args.n * 3 * 32 * 32 * 4 / 1024**3
    print(f"{args.n:,} images of 3x32x32 ({size:.2f} GiB as float32), {args.model} {args.schedule}, "
          f"{args.workers} loader worker(s)")
    print(f"one epoch: {result['seconds']:.1f} s ({args.n / result['seconds']:,.0f} images/s), "
          f"whole process {time.perf_counter() - t0:.1f} s")
    print(f"peak RSS of the training process: {peak:,.0f} MiB ({peak / 1024:.2f} GiB; target <= 1.5 GB)")


if __name__ == "__main__":
    main()
