"""The audit catalogue: every model of tests/catalogue_models.py audited at each schedule, and the audit's cost.

Run: python benchmarks/audit_catalogue.py [--models hf-bert lstm-gru ...] [--repeat 5]

For each model and schedule ("1", "8-4-2-1", "8-4-2-1/4"): quantize, ``pdbviz.audit`` (train and eval passes),
and print its summary line; then one line for the whole catalogue (models, weights, uses, lies, unreported uses,
untraced operands). The cost column is the audit's time over one eval forward pass of the same quantized model,
both measured in this process, interleaved, median of ``--repeat`` (the audit runs two passes, train and eval,
under the recorder, and counts distinct values). Then the same ratio for the zoo's LeNet (batch 256) and
ResNet-20 (batch 64), where batches are large enough that the per-op cost of the recorder is not all there is.
Beside each ratio, the floor of any dispatch-level recorder: the same train and eval passes under a dispatch mode
that records nothing, over the same eval forward pass.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import pdbviz
from pdbviz.quant.forward_trace import call_with

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "auditing"))
from catalogue_models import CATALOGUE  # noqa: E402

SCHEDULES = ("1", "8-4-2-1", "8-4-2-1/4")


def _forward(model, x):
    with torch.no_grad():
        return model(**x) if isinstance(x, dict) else model(x)


class PassThrough(TorchDispatchMode):
    """A dispatch mode that runs every op and records nothing: the cost of being at the dispatcher at all."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return func(*args, **(kwargs or {}))


def _passes_under_pass_through(q, x) -> None:
    with torch.random.fork_rng(devices=[]):
        for mode in ("train", "eval"):
            q.train(mode == "train")
            with (torch.enable_grad() if mode == "train" else torch.no_grad()), PassThrough():
                call_with(q, x)


def cost(q, x, repeat: int) -> tuple[float, float]:
    """The audit's and the pass-through floor's median times over one eval forward pass's, interleaved."""
    fwd, aud, floor = [], [], []
    state = {k: v.clone() for k, v in q.state_dict().items()}
    for _ in range(repeat):
        q.eval()
        t = time.perf_counter()
        _forward(q, x)
        fwd.append(time.perf_counter() - t)
        t = time.perf_counter()
        pdbviz.audit(q, x)
        aud.append(time.perf_counter() - t)
        t = time.perf_counter()
        _passes_under_pass_through(q, x)
        floor.append(time.perf_counter() - t)
        q.load_state_dict(state)  # the train pass moved BatchNorm's statistics
    q.eval()
    return statistics.median(aud) / statistics.median(fwd), statistics.median(floor) / statistics.median(fwd)


def realistic_cost(repeat: int) -> None:
    """The audit's cost on zoo models at training batch sizes, with and without input bits."""
    for name, shape, batch in (("lenet", (1, 28, 28), 256), ("resnet20", (3, 32, 32), 64)):
        model = pdbviz.build_model(name, shape, 10)
        x = torch.randn(batch, *shape)
        for schedule in ("8-4-2-1", "8-4-2-1/8"):
            q = pdbviz.quantize(model, schedule, example_input=x[:2])
            pdbviz.audit(q, x)
            audit, floor = cost(q, x, repeat)
            print(f"{name} batch {batch} {schedule}: audit {audit:.1f}x one eval forward pass "
                  f"(two passes under a pass-through dispatch mode: {floor:.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(CATALOGUE), choices=list(CATALOGUE))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    totals = dict(models=0, weights=0, uses=0, lies=0, unreported=0, untraced=0)
    ratios, floors = [], []
    for name in args.models:
        model, x = CATALOGUE[name][0]()
        totals["models"] += 1
        for schedule in SCHEDULES:
            q = pdbviz.quantize(model, schedule, example_input=x).eval()
            report = pdbviz.audit(q, x)
            for key in ("weights", "uses", "lies", "unreported", "untraced"):
                totals[key] += getattr(report, key)
            ratio, floor = cost(q, x, args.repeat)
            ratios.append(ratio)
            floors.append(floor)
            print(f"{name:28s} {schedule:10s} {report.summary:36s} audit {ratio:5.1f}x one forward pass "
                  f"(pass-through {floor:4.1f}x)")
    print(f"catalogue: {totals['models']} models x {len(SCHEDULES)} schedules, {totals['weights']} weights, "
          f"{totals['uses']} uses, {totals['lies']} lies, {totals['unreported']} unreported uses, "
          f"{totals['untraced']} untraced operands; audit cost {min(ratios):.1f}x-{max(ratios):.1f}x one eval "
          f"forward (median {statistics.median(ratios):.1f}x; the two passes under a pass-through dispatch mode: median "
          f"{statistics.median(floors):.1f}x)")
    realistic_cost(args.repeat)


if __name__ == "__main__":
    main()
