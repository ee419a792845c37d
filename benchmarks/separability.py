"""The paper's motivating observation, measured: separability by depth, and allocation from it.

Run: python benchmarks/separability.py [--seeds 0 1 2]

For a float LeNet trained on digits and on mnist5k: every measure of the
separability profile by depth and its Spearman correlation with depth; the
separability-allocated schedules at the memory of uniform 2-bit and at 25%
less, fine-tuned, beside uniform 2-bit and "8-4-2-1"; the time of a full
profile on digits and of a UMAP of one layer (1,000 points), cold and warm.
"""

from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
from scipy.stats import spearmanr

import pdbviz
from pdbviz.analysis import METRICS, embed_layers, is_umap_warm

FLOAT_EPOCHS = {"digits": 30, "mnist5k": 15}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(2)
    pd.set_option("display.width", 140)
    print(f"pdbviz {pdbviz.__version__}, torch {torch.__version__}")
    for name, epochs in FLOAT_EPOCHS.items():
        data = pdbviz.load_dataset(name)
        model = pdbviz.build_model("lenet", data.input_shape, data.num_classes, seed=0)
        pdbviz.fit(model, data, epochs=epochs, lr=3e-3, progress=False)
        prof = pdbviz.separability_profile(model, data, n_samples=1000)
        print(f"\n== {name}: float lenet, test acc {pdbviz.evaluate(model, data)['accuracy']:.4f}")
        print(prof.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        rho = {m: spearmanr(prof.depth, prof[m]).statistic for m in METRICS}
        print("Spearman(depth, measure): " + ", ".join(f"{m} {r:+.3f}" for m, r in rho.items()))

        two = pdbviz.average_bits(model, "2")
        schedules = {
            "uniform 2": pdbviz.BitSchedule.uniform(model, 2),
            "8-4-2-1": pdbviz.BitSchedule.from_string("8-4-2-1", model),
            "alloc @2-bit mem": pdbviz.allocate_bits(prof, model, two),
            "alloc @25% less": pdbviz.allocate_bits(prof, model, 0.75 * two),
        }
        print(f"{'schedule':<18}{'bits':<14}{'avg bits':>9}{'KiB':>8}{'acc % (mean over seeds)':>26}")
        for label, sched in schedules.items():
            accs = []
            for seed in args.seeds:
                base = pdbviz.build_model("lenet", data.input_shape, data.num_classes, seed=seed)
                pdbviz.fit(base, data, epochs=epochs, lr=3e-3, seed=seed, progress=False)
                _, h = pdbviz.finetune(base, sched, data, epochs=3, seed=seed, progress=False)
                accs.append(h.final_test_acc)
            s = pdbviz.memory_summary(model, sched)
            print(f"{label:<18}{sched.to_string():<14}{s.avg_bits:>9.3f}{s.quantized_weight_kib:>8.2f}"
                  f"{100 * statistics.mean(accs):>14.2f} (min {100 * min(accs):.2f}, max {100 * max(accs):.2f})")

    data = pdbviz.load_dataset("digits")
    model = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    pdbviz.fit(model, data, epochs=5, progress=False)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        pdbviz.separability_profile(model, data, n_samples=1000)
        times.append(time.perf_counter() - t0)
    print(f"\nprofile of all layers on digits (4 measures, 450 test samples): min {min(times):.3f} s, "
          f"median {statistics.median(times):.3f} s, max {max(times):.3f} s")

    mnist = pdbviz.load_dataset("mnist5k")
    assert not is_umap_warm()
    runs = []
    for i in range(4):
        t0 = time.perf_counter()
        embed_layers(pdbviz.build_model("lenet", mnist.input_shape, 10), mnist, layers=["fc1"],
                     n_samples=1000, include_logits=False, cache=None, seed=i)
        runs.append(time.perf_counter() - t0)
    print(f"UMAP of one layer, 1,000 points: cold (numba compile included) {runs[0]:.2f} s; warm min "
          f"{min(runs[1:]):.2f} s, median {statistics.median(runs[1:]):.2f} s, max {max(runs[1:]):.2f} s")


if __name__ == "__main__":
    main()
