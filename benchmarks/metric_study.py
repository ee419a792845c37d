"""Which sensitivity metric predicts? ``pdbviz.metric_study`` at a larger setting than notebook 05.

Run: python benchmarks/metric_study.py [--dataset digits] [--model lenet] [--seeds 0 1 2 3 4]
     [--budgets 1.25 1.5 2 2.5 3 4] [--metrics fisher probe hawq output_error sqnr kl cka loss_increase]
     [--epochs 20] [--finetune-epochs 3] [--out metric-study]

Per seed a float model is trained; every metric is measured on it and
allocates weight bits at every budget from the exact front of its predicted
loss; every allocation (and the uniform k-bit reference within each budget)
is fine-tuned from the float model. Printed: Spearman's rho between each
metric's predicted loss and the measured accuracy drop (higher is better)
with its bootstrap 95% interval over seeds and the test set, and the accuracy
at each budget with its 95% interval. With ``--out``, the tables and
``report.html`` are written there.

The default setting (5 seeds, 6 budgets, 8 metrics, LeNet on the digits)
takes some minutes on a laptop CPU; ``--quick`` runs a check in seconds.
"""

from __future__ import annotations

import argparse
import time

import torch

import pdbviz
from pdbviz.report import write_study_report


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--model", default="lenet")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--budgets", type=float, nargs="+", default=[1.25, 1.5, 2, 2.5, 3, 4])
    ap.add_argument("--metrics", nargs="+",
                    default=["fisher", "probe", "hawq", "output_error", "sqnr", "kl", "cka", "loss_increase"])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--n-samples", type=int, default=512)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--monotone", action="store_true", help="weight bits never increase with depth")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (small models train fastest on one)")
    ap.add_argument("--out", default=None, help="folder for the tables and report.html")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 2 budgets, 3 metrics, 2+1 epochs: a check")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budgets, args.metrics = args.seeds[:2], [1.5, 3], ["hawq", "sqnr", "fisher"]
        args.epochs, args.finetune_epochs, args.n_samples, args.n_boot = 2, 1, 128, 200
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    study = pdbviz.metric_study(args.dataset, model=args.model, width=args.width, metrics=args.metrics,
                                budgets=args.budgets, seeds=args.seeds, epochs=args.epochs,
                                finetune_epochs=args.finetune_epochs, n_samples=args.n_samples,
                                n_boot=args.n_boot, monotone=args.monotone, progress=True)
    seconds = time.perf_counter() - t0
    trained = study.runs[study.runs.family != "float"].groupby("seed").w_bits.nunique().sum()
    print(f"\n{args.model} on {args.dataset}: {len(args.seeds)} seeds, {len(args.metrics)} metrics, "
          f"{len(args.budgets)} budgets; {trained} distinct schedules fine-tuned in {seconds:.0f} s "
          f"({torch.get_num_threads()} torch thread(s))\n")
    print(study.pretty())
    if args.out:
        out = write_study_report(study, args.out, formats=("html",))
        print(f"\nwrote {out['report']}")


if __name__ == "__main__":
    main()
