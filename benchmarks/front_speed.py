"""Speed of the exact allocation front on ResNet-20: every weight bit-width 1..8, inputs at 2, 4, 8 or 32 bits.

Run: python benchmarks/front_speed.py [--repeats 5] [--threads 2]

The predicted losses are synthetic (``d_l 4^-w + e_l 4^-a`` with random
positive ``d_l``, ``e_l``): the front's cost depends on the number of layers,
choices and distinct costs, not on where the losses come from. Each row times
``pareto_front`` (median of the repeats, after one warm-up) for one primary
cost and set of constraints, and reports the number of front points. The last line times ``allocate`` (one point under
two budgets: only the front below the memory budget is computed).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd
import torch

import pdbviz
from pdbviz.analysis import allocate, pareto_front
from pdbviz.quant import input_bits_allowed, memory_summary


def loss_table(model, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    allowed = input_bits_allowed(model)
    for name in pdbviz.quantizable_layers(model):
        d, e = rng.uniform(0.1, 1.0, 2)
        for w in range(1, 9):
            for a in (2, 4, 8, 32):
                if a != 32 and not allowed[name]:
                    continue
                rows.append((name, w, a, d * 4.0 ** -w + (e * 4.0 ** -a if a != 32 else 0.0)))
    return pd.DataFrame(rows, columns=["layer", "w_bits", "a_bits", "loss"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = pdbviz.build_model("resnet20", (3, 32, 32), 10)
    loss = loss_table(model)
    uniform4 = memory_summary(model, pdbviz.BitSchedule.uniform(model, 4, 4))
    cases = [
        ("memory", None, False),
        ("memory", None, True),
        ("bops", None, False),
        ("bops", None, True),
        ("memory", {"bops": uniform4.bops}, False),
        ("bops", {"bits": 4.0}, True),
    ]
    print(f"pdbviz {pdbviz.__version__}, torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet-20, "
          f"{loss.layer.nunique()} layers, {len(loss)} choices")
    print(f"{'primary':<8}{'constraints':<28}{'monotone':<10}{'points':>8}{'median s':>10}{'max s':>8}")
    for primary, budget, monotone in cases:
        pareto_front(model, loss, primary, budget, monotone=monotone)
        times = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            front = pareto_front(model, loss, primary, budget, monotone=monotone)
            times.append(time.perf_counter() - t)
        text = "-" if budget is None else ", ".join(f"{k} <= {v:.3g}" for k, v in budget.items())
        print(f"{primary:<8}{text:<28}{str(monotone):<10}{len(front):>8}{statistics.median(times):>10.3f}"
              f"{max(times):>8.3f}")
    budget = {"bits": 3.0, "bops": uniform4.bops}
    times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        sched = allocate(model, loss, budget)
        times.append(time.perf_counter() - t)
    print(f"allocate (one point, memory <= 3 average bits and BOPs <= W4A4's): median {statistics.median(times):.3f} s,"
          f" max {max(times):.3f} s; {sched.to_string(model)}")


if __name__ == "__main__":
    main()
