"""Homogeneous baselines: accuracy against bits for every weight mode, before and after the fixes.

Run: python benchmarks/baselines.py [--datasets digits mnist5k] [--seeds 0 1 2] [--bits 1 2 3 4 8] [--threads 2]

For each dataset and seed a float LeNet is trained (20 epochs), then every
uniform schedule is fine-tuned from it for 3 epochs (``compare``'s defaults).
Modes measured side by side in one run:

- ``dorefa-paper``: DoReFa-Net's k-bit weights as published, in [-1, 1]
  whatever the layer's scale (pdbviz's weights before the fix); 1 bit:
  ``mean|w| sign(w)``.
- ``symmetric-max``: the thesis's symmetric formula on ``w / max|w|``
  (pdbviz's symmetric mode before the fix): the threshold at half of ``max|w|``.
- ``dorefa``: DoReFa-Net rescaled by its least-squares scale (pdbviz's default now).
- ``symmetric``: the thesis family (binary; ternary with TWN's threshold and
  scale; a least-squares step above).
- ``lsq``: learned step size (k >= 2).

Also printed, as the diagnosis: the standard deviation of the logits of the
quantized model before fine-tuning, relative to the float model's, for each
mode at 2 bits: a head whose weights come out in [-1, 1] scales the logits
by ``max|w_q| / max|w|`` (LeNet's last layer has no BatchNorm to absorb it).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import pdbviz
from pdbviz.quant import register_weight_quantizer
from pdbviz.quant.quantizers import WeightQuantizer, check_bits, dorefa_weight
from pdbviz.quant.ste import round_ste


@register_weight_quantizer
class _DoReFaPaper(WeightQuantizer):
    name, label, min_bits = "dorefa-paper", "DoReFa (paper)", 1

    @classmethod
    def levels(cls, bits):
        return 2**bits

    def forward(self, w):
        return dorefa_weight(w, self.bits, rescale=False)


@register_weight_quantizer
class _SymmetricMax(WeightQuantizer):
    name, label, min_bits = "symmetric-max", "symmetric (max scale)", 2

    @classmethod
    def levels(cls, bits):
        return 2**bits - 1

    def forward(self, w):
        m = float(2 ** (check_bits(self.bits) - 1) - 1)
        return round_ste(w / w.abs().max().clamp_min(1e-12), m)


MODES = {"dorefa-paper": (1, 2, 3, 4, 8), "symmetric-max": (2, 3, 4, 8), "dorefa": (1, 2, 3, 4, 8),
         "symmetric": (1, 2, 3, 4, 8), "lsq": (2, 3, 4, 8)}


def logit_ratio(model, schedule, data) -> float:
    q = pdbviz.quantize(model, schedule)
    with torch.no_grad():
        x = data.X_test[:256]
        return float(q.eval()(x).std() / model.eval()(x).std())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=["digits", "mnist5k"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--bits", type=int, nargs="+", default=[1, 2, 3, 4, 8])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.datasets:
        t0 = time.perf_counter()
        data = pdbviz.load_dataset(name)
        acc: dict[tuple[str, int], list[float]] = {}
        floats, ratios = [], {}
        for seed in args.seeds:
            model = pdbviz.build_model("lenet", data.input_shape, data.num_classes, seed=seed)
            pdbviz.fit(model, data, epochs=20, lr=3e-3, seed=seed, progress=False)
            floats.append(100 * pdbviz.evaluate(model, data)["accuracy"])
            for mode, ks in MODES.items():
                for k in ks:
                    if k not in args.bits:
                        continue
                    schedule = f"{mode}:{k}" if mode != "dorefa" else str(k)
                    q, _ = pdbviz.finetune(model, schedule, data, epochs=3, lr=1e-3, seed=seed, progress=False)
                    acc.setdefault((mode, k), []).append(100 * pdbviz.evaluate(q, data)["accuracy"])
                if seed == args.seeds[0] and 2 in ks:
                    ratios[mode] = logit_ratio(model, f"{mode}:2" if mode != "dorefa" else "2", data)
        print(f"\n{name}: LeNet, float 20 epochs, each uniform schedule fine-tuned 3 epochs; seeds {args.seeds} "
              f"({time.perf_counter() - t0:.0f} s)")
        print(f"float-32: {statistics.mean(floats):.2f} ± {statistics.stdev(floats) if len(floats) > 1 else 0:.2f}")
        print(f"{'mode':<15}" + "".join(f"{f'{k}-bit':>16}" for k in args.bits) + "   logit std / float at 2 bits")
        for mode, ks in MODES.items():
            cells = []
            for k in args.bits:
                v = acc.get((mode, k))
                cells.append(f"{statistics.mean(v):>9.2f} ± {statistics.stdev(v) if len(v) > 1 else 0:.2f}"
                             if v else f"{'-':>16}")
            ratio = f"{ratios[mode]:.2f}" if mode in ratios else "-"
            print(f"{mode:<15}" + "".join(f"{c:>16}" for c in cells) + f"   {ratio}")


if __name__ == "__main__":
    main()
