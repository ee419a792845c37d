"""Accuracy of float and quantized LeNets on the embedded datasets, and fine-tune time.

Run: python benchmarks/train_accuracy.py [--seeds 0 1 2]

Prints, per dataset: float test accuracy, then uniform 1-bit, uniform 2-bit and
"8-4-2-1" fine-tuned from the float model (weights only, activations float),
mean over seeds; and the wall time of a 3-epoch fine-tune on digits
(min / median / max over repeats).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pdbviz

SCHEDULES = ["1", "2", "8-4-2-1", "1/1", "2/2", "8-4-2-1/8-4-2-1"]
FLOAT_EPOCHS = {"digits": 30, "mnist5k": 15}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--finetune-epochs", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"pdbviz {pdbviz.__version__}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for name, epochs in FLOAT_EPOCHS.items():
        data = pdbviz.load_dataset(name)
        acc = {"float": []} | {s: [] for s in SCHEDULES}
        for seed in args.seeds:
            model = pdbviz.build_model("lenet", data.input_shape, data.num_classes, seed=seed)
            h = pdbviz.fit(model, data, epochs=epochs, lr=3e-3, seed=seed, progress=False)
            acc["float"].append(h.final_test_acc)
            for s in SCHEDULES:
                _, hq = pdbviz.finetune(model, s, data, epochs=args.finetune_epochs, lr=1e-3, seed=seed,
                                        progress=False)
                acc[s].append(hq.final_test_acc)
        print(f"\n{name}: lenet, float {epochs} epochs, fine-tune {args.finetune_epochs} epochs, seeds {args.seeds}")
        print(f"{'schedule':<18}{'mean acc %':>11}{'min':>8}{'max':>8}{'avg bits':>10}")
        for s, values in acc.items():
            bits = 32.0 if s == "float" else pdbviz.memory_summary(model, pdbviz.BitSchedule.from_string(s, model)).avg_bits
            print(f"{s:<18}{100 * statistics.mean(values):>11.2f}{100 * min(values):>8.2f}{100 * max(values):>8.2f}"
                  f"{bits:>10.2f}")

    data = pdbviz.load_dataset("digits")
    model = pdbviz.build_model("lenet", data.input_shape, data.num_classes)
    pdbviz.fit(model, data, epochs=5, progress=False)
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        pdbviz.finetune(model, "8-4-2-1", data, epochs=3, progress=False)
        times.append(time.perf_counter() - t0)
    print(f"\nfine-tune lenet on digits, '8-4-2-1', 3 epochs: min {min(times):.3f} s, "
          f"median {statistics.median(times):.3f} s, max {max(times):.3f} s (7 runs)")


if __name__ == "__main__":
    main()
