"""Speed of every sensitivity metric on ResNet-20 (3x32x32 inputs, 512 samples), all layers and bit-widths.

Run: python benchmarks/metrics_speed.py [--samples 512] [--threads 2] [--inputs] [--only hawq kl ...]
The network-level metrics alone: --only sqnr kl ablation loss_increase

The model has random weights with BatchNorm statistics re-estimated on the
random inputs (so that activations have sane scales); the data are random
images with random labels: nothing to download, and the cost of a metric does
not depend on what the weights learned. Each metric is timed alone, by one
call of ``sensitivity_metrics(model, data, metrics=[m], bits=(1, 2, 4, 8))``
(so a metric that shares a pass with others pays for that pass alone), then
all of them in one call. ``--inputs`` adds input rows at 2, 4 and 8 bits.

Each line gives the wall-clock seconds and the process's CPU seconds (user and
system, all threads): on a machine shared with other jobs the wall clock
stretches, the CPU time much less, so compare CPU times between two versions
run on the same machine (and a version against another in alternation).
"""

from __future__ import annotations

import argparse
import time

import torch

import pdbviz
from pdbviz.analysis import SENSITIVITY_METRICS, sensitivity_metrics
from pdbviz.quant import recalibrate_batchnorm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--inputs", action="store_true", help="input rows at 2, 4 and 8 bits too")
    ap.add_argument("--only", nargs="+", default=list(SENSITIVITY_METRICS), choices=list(SENSITIVITY_METRICS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    X = torch.randn(args.samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (args.samples,), generator=g)
    model = pdbviz.build_model("resnet20", (3, 32, 32), 10)
    recalibrate_batchnorm(model, X)
    a_bits = (2, 4, 8) if args.inputs else ()
    n_layers = len(pdbviz.quantizable_layers(model))
    print(f"pdbviz {pdbviz.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-20, "
          f"{n_layers} layers, {args.samples} samples, weight bits (1, 2, 4, 8), input bits {a_bits or 'none'}")
    sensitivity_metrics(model, (X[:64], y[:64]), metrics="kl", bits=(2,), n_samples=None)  # warm-up
    print(f"{'metric':<15}{'seconds':>9}{'cpu s':>9}{'rows':>7}")
    for label, metrics in [*((m, [m]) for m in args.only), ("all together", args.only)]:
        t, c = time.perf_counter(), time.process_time()
        frame = sensitivity_metrics(model, (X, y), metrics=metrics, bits=(1, 2, 4, 8), a_bits=a_bits, n_samples=None)
        print(f"{label:<15}{time.perf_counter() - t:>9.2f}{time.process_time() - c:>9.2f}{len(frame):>7}", flush=True)


if __name__ == "__main__":
    main()
