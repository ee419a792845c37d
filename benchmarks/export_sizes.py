"""Sizes and agreement of the export formats: packed, QONNX and ONNX files against the memory table,
outputs of qonnx's executor and onnxruntime against pdbviz's, and torchao's config applied for serving.

    python benchmarks/export_sizes.py [--quick]

LeNet (1x28x28) is trained on mnist5k (embedded: float 4 epochs, each schedule fine-tuned 2 epochs), so its
accuracies mean something; ResNet-20 (3x32x32) has random weights with BatchNorm re-estimated under each
schedule on random images (no CIFAR offline): its rows measure sizes and agreement only. Needs
pip install -e ".[export]" (and brevitas, from ".[bench]", for the last table).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

import pdbviz
from pdbviz import export

TOL = 1e-5


def _outputs(model, x, batch=256):
    with torch.no_grad():
        return torch.cat([model(x[i:i + batch]) for i in range(0, len(x), batch)]).numpy()


def _runtime_row(label, ref, got, y, ref64=None):
    a = export.agreement(ref, got, y)
    beyond = int((np.abs(got - ref).max(1) > TOL).sum())
    rel = a.max_abs_diff / float(np.abs(ref).max())
    ties = "" if ref64 is None else f" (pdbviz float32 vs float64: {int((np.abs(ref64 - ref).max(1) > TOL).sum())})"
    acc = "" if y is None else f"  acc {100 * a.accuracy_other:.2f}% vs {100 * a.accuracy_reference:.2f}%"
    return (f"    {label:<22} max |diff| {a.max_abs_diff:.2e} ({rel:.1e} of max |out|)  samples beyond {TOL:g}: "
            f"{beyond}/{len(ref)}{ties}"
            f"  argmax agree {100 * a.argmax_agreement:.2f}%{acc}")


def _brevitas_port(q: nn.Module) -> nn.Module | None:
    """pdbviz's quantized values in Brevitas layers with Brevitas's default integer weight quantizer."""
    try:
        import brevitas.nn as qnn
    except ImportError:
        return None
    baked = pdbviz.dequantize(q, bake=True)
    spec = pdbviz.schedule_of(q)
    for name in spec:
        parent, _, leaf = name.rpartition(".")
        owner = baked.get_submodule(parent) if parent else baked
        old = getattr(owner, leaf)
        bits = spec[name].w_bits
        if isinstance(old, nn.Conv2d):
            new = qnn.QuantConv2d(old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                                  bias=old.bias is not None, weight_bit_width=bits)
        else:
            new = qnn.QuantLinear(old.in_features, old.out_features, bias=old.bias is not None, weight_bit_width=bits)
        with torch.no_grad():
            new.weight.copy_(old.weight)
            if old.bias is not None:
                new.bias.copy_(old.bias)
        setattr(owner, leaf, new)
    return baked.eval()


def measure(model, shape, schedule, data, n_qonnx, tmp: Path):
    name = model.pdbviz_info.config["name"]
    if data is not None:
        q, _ = pdbviz.finetune(model, schedule, data, epochs=2, progress=False)
        x, y = data.X_test, data.y_test
    else:
        g = torch.Generator().manual_seed(0)
        q = pdbviz.quantize(model, schedule, calibrate=torch.rand(256, *shape, generator=g))
        x, y = torch.rand(64, *shape, generator=g), None
    q.eval()
    s = pdbviz.memory_summary(q)
    stem = tmp / f"{name}_{schedule.replace('/', '_')}"
    packed = pdbviz.save_packed(q, f"{stem}.pdbq").stat().st_size
    t0 = time.perf_counter()
    qonnx_file = export.to_qonnx(q, f"{stem}.qonnx.onnx")
    onnx_file = export.to_onnx(q, f"{stem}.onnx")
    seconds = time.perf_counter() - t0
    cost = export.qonnx_cost(qonnx_file.path)
    table_bits = int(pdbviz.memory_report(q).table.weight_bits.sum())
    print(f"\n{name} {'x'.join(map(str, shape))} under {schedule!r}, outputs up to "
          f"{np.abs(_outputs(q, x[:256])).max():.1f}"
          f"{' (trained on mnist5k)' if data is not None else ' (random weights)'}")
    print(f"  memory table: {s.total_kib:,.1f} KiB ({s.quantized_weight_kib:,.1f} KiB quantized weights, "
          f"{s.other_kib:,.1f} KiB float), float-32 model {s.float32_total_kib:,.1f} KiB")
    for label, size in (("packed .pdbq", packed), ("QONNX", qonnx_file.nbytes), ("ONNX QDQ", onnx_file.nbytes)):
        print(f"  {label:<13} {size / 1024:9,.1f} KiB  {size / 1024 / s.total_kib:5.2f}x the table")
    print(f"  qonnx inference_cost: weight bits {cost.weight_bits:,.0f} (table {table_bits:,}), "
          f"MACs {cost.macs:,.0f}; both exports took {seconds:.1f} s")
    ref = _outputs(q, x)
    ref64 = _outputs(copy.deepcopy(q).double(), x.double())
    print("  outputs against pdbviz's:")
    n = min(n_qonnx, len(x))
    print(_runtime_row(f"qonnx ({n} samples)", ref[:n], export.run_qonnx(qonnx_file.path, x[:n]),
                       None if y is None else y[:n], ref64[:n]))
    print(_runtime_row(f"onnxruntime ({len(x)})", ref, export.run_onnx(onnx_file.path, x), y, ref64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ao = export.torchao_config(q)
        served = ao.apply(q)
    print(_runtime_row(f"torchao ({len(x)})", ref, _outputs(served, x), y))
    print(f"    torchao layers: {', '.join(f'{k} {v}' for k, v in ao.layers.items())}; float there: "
          f"{', '.join(k for k, v in ao.notes.items() if 'stays float' in v and 'Linear' in v) or 'none'}")
    port = _brevitas_port(q) if data is not None else None
    if port is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _outputs(port, x)
        print(_runtime_row("brevitas default port", ref, np.nan_to_num(got, nan=0.0), y))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples through qonnx's (slow) executor")
    args = p.parse_args()
    torch.manual_seed(0)
    data = pdbviz.load_dataset("mnist5k")
    lenet = pdbviz.build_model("lenet", (1, 28, 28), 10)
    pdbviz.fit(lenet, data, epochs=4, lr=3e-3, progress=False)
    resnet = pdbviz.build_model("resnet20", (3, 32, 32), 10)
    with tempfile.TemporaryDirectory() as tmp:
        for schedule in ("8-4-2-1/8", "8-4-2-1", "8"):
            measure(lenet, (1, 28, 28), schedule, data, 50 if args.quick else 200, Path(tmp))
        for schedule in ("8-4-2-1/8", "8-4-2-1"):
            measure(resnet, (3, 32, 32), schedule, None, 8 if args.quick else 32, Path(tmp))


if __name__ == "__main__":
    main()
