"""Do layer sensitivities add up? ``pdbviz.interactions`` on a trained model, and the interaction-aware
allocation against the additive exact front at equal budget.

Run: python benchmarks/interactions.py [--model lenet] [--dataset digits] [--seeds 0 1 2] [--bits 2]
     [--budgets 1.5 2 3] [--epochs 10] [--finetune-epochs 2] [--quick]
     python benchmarks/interactions.py --model resnet20 --dataset mnist5k --pad 32   (ResNet-20, 32x32 MNIST)

Per seed: the float model is trained; ``interactions`` measures every pair of
layers (the most sensitive 8 on larger models) at ``--bits`` on 512 test
samples, with paired standard errors, and prints its verdict on additivity.
The additive allocation (the exact front of the ``loss_increase`` metric's
predicted loss) and the interaction-aware one (the front's point with the
least interaction-corrected loss within the same budget) are both fine-tuned
from the float model; their per-image correctness on the test set gives the
paired difference over seeds and test images (``pdbviz.stats``) with its 95%
interval and minimum detectable effect. A budget where both allocate the same
bits is reported as such (not testable).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from torch.nn import functional as F

import pdbviz
from pdbviz.analysis import allocate, predicted_loss, sensitivity_metrics
from pdbviz.analysis.interactions import allocate_with_interactions, interactions
from pdbviz.experiment import finetune
from pdbviz.stats import paired_difference


def padded(data, size: int):
    """The images padded with the background value to ``size x size``."""
    h, w = data.input_shape[1:]
    top, left = (size - h) // 2, (size - w) // 2
    pad = (left, size - w - left, top, size - h - top)
    background = -data.mean[0] / data.std[0] if data.mean else 0.0
    return pdbviz.Data(f"{data.name}-{size}px", F.pad(data.X_train, pad, value=background), data.y_train,
                       F.pad(data.X_test, pad, value=background), data.y_test, data.classes, data.mean, data.std,
                       data.augment)


def correct(model, data, batch_size: int = 512) -> np.ndarray:
    """Per-image correctness on the test split, in its order."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(data.y_test), batch_size):
            out.append(model(data.X_test[i:i + batch_size]).argmax(1) == data.y_test[i:i + batch_size])
    return torch.cat(out).numpy()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--pad", type=int, default=None, help="pad the images to this size (ResNet-20: 32)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--bits", type=int, default=2, help="weight bits at which the pairs are measured")
    ap.add_argument("--budgets", type=float, nargs="+", default=[1.5, 2, 3], help="average weight bits")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--finetune-epochs", type=int, default=2)
    ap.add_argument("--n-samples", type=int, default=512)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="2 seeds, one budget, 4+1 epochs: a check")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budgets, args.epochs, args.finetune_epochs = args.seeds[:2], args.budgets[:1], 4, 1
    torch.set_num_threads(1)
    data = pdbviz.load_dataset(args.dataset)
    if args.pad:
        data = padded(data, args.pad)
    t0 = time.perf_counter()
    per_budget = {b: {"additive": [], "aware": [], "same": 0} for b in args.budgets}
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = pdbviz.build_model(args.model, data.input_shape, data.num_classes)
        pdbviz.fit(model, data, epochs=args.epochs, seed=seed, progress=False)
        t1 = time.perf_counter()
        result = interactions(model, data, bits=args.bits, n_samples=args.n_samples, seed=seed, top_k=args.top_k)
        t_int = time.perf_counter() - t1
        print(f"\nseed {seed}: {len(result.pairs)} pairs of {len(result.layers)} layers at {args.bits} bits, "
              f"{result.n_samples} samples, measured in {t_int:.1f} s")
        print(result.pairs[["layer_a", "layer_b", "sum_alone", "interaction", "se", "relative", "significant"]]
              .to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
        print(result.verdict)
        sens = sensitivity_metrics(model, data, metrics=["loss_increase"], bits=(1, 2, 4, 8),
                                   n_samples=args.n_samples, seed=seed)
        loss = predicted_loss(sens, "loss_increase", w_bits=(1, 2, 4, 8))
        for budget in args.budgets:
            additive = allocate(model, loss, budget)
            aware = allocate_with_interactions(model, loss, result, budget)
            line = f"  budget {budget:g} bits: additive {additive.w_bits}, interaction-aware {aware.w_bits}"
            if additive.w_bits == aware.w_bits:
                per_budget[budget]["same"] += 1
                print(line + " (the same allocation)")
                continue
            runs = {}
            for name, schedule in (("additive", additive), ("aware", aware)):
                torch.manual_seed(seed)
                q, _ = finetune(model, schedule, data, epochs=args.finetune_epochs, seed=seed, progress=False)
                runs[name] = correct(q, data)
                per_budget[budget][name].append(runs[name])
            print(line + f": test accuracy {100 * runs['additive'].mean():.2f}% vs {100 * runs['aware'].mean():.2f}%")
    print(f"\n{args.model} on {data.name}, seeds {args.seeds}: interaction-aware minus additive allocation "
          f"(points, paired over seeds and {len(data.y_test)} test images)")
    for budget, got in per_budget.items():
        if not got["aware"]:
            print(f"  {budget:g} bits: not testable (the same allocation for every seed)")
            continue
        e = paired_difference(np.vstack(got["aware"]), np.vstack(got["additive"]))
        same = f"; the same allocation for {got['same']} other seeds" if got["same"] else ""
        print(f"  {budget:g} bits: {e.estimate:+.2f} [{e.low:+.2f}, {e.high:+.2f}] over {e.n_seeds} seeds, "
              f"minimum detectable effect {e.mde():.2f}{same}")
    print(f"wall time {time.perf_counter() - t0:.0f} s (1 thread)")


if __name__ == "__main__":
    main()
