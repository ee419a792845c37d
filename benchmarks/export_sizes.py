"""Sizes and agreement of the export formats: packed, QONNX and ONNX files against the memory table,
outputs of qonnx's executor and onnxruntime against pdbviz's, and torchao's config applied for serving.

    python benchmarks/export_sizes.py [--quick] [--catalogue-only]

The catalogue (``catalogue``): grouped/depthwise and transposed convolutions, LSTM/GRU, nn.TransformerEncoder,
timm mobilenetv3_small_050 and deit_tiny (32 px, random weights), BERT and GPT-2 from tiny configs, each
exported to ONNX and QONNX: file sizes against the memory table, agreement with pdbviz in onnxruntime and
qonnx's executor, qonnx's weight bits (default options) against the table's, and the export time.

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


def catalogue_models():
    """name -> (model, example batch, schedule): the catalogue the export tests use, built here."""
    import timm
    import transformers

    class GroupedConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.grouped = nn.Conv2d(8, 12, 1, groups=4)
            self.up = nn.ConvTranspose2d(12, 6, 2, stride=2, groups=2)
            self.head = nn.Linear(6, 5)

        def forward(self, x):
            x = torch.relu(self.depthwise(torch.relu(self.stem(x))))
            return self.head(self.up(torch.relu(self.grouped(x))).mean((2, 3)))

    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.lstm = nn.Embedding(30, 8), nn.LSTM(8, 8, batch_first=True)
            self.gru, self.head = nn.GRU(8, 6, batch_first=True), nn.Linear(6, 4)

        def forward(self, x):
            return self.head(self.gru(self.lstm(self.emb(x))[0])[0][:, -1])

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            layer = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
            self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.head = nn.Linear(16, 3)

        def forward(self, x):
            return self.head(self.encoder(x))

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 30, (8, 6), generator=g)
    bert = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=32, num_labels=3)
    gpt2 = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=32, use_cache=False)
    return {
        "grouped-conv": (GroupedConvNet(), torch.rand(8, 3, 8, 8, generator=g), "4/8"),
        "recurrent": (Recurrent(), tokens, "symmetric:4"),
        "transformer-encoder": (Encoder(), torch.rand(8, 5, 16, generator=g), "4"),
        "mobilenetv3_small_050": (timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10),
                                  torch.rand(8, 3, 32, 32, generator=g), "4"),
        "deit_tiny (1 block)": (timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=10,
                                                  img_size=32, depth=1), torch.rand(8, 3, 32, 32, generator=g), "4"),
        "bert (tiny)": (transformers.BertForSequenceClassification(bert), tokens, "4"),
        "gpt2 (tiny)": (transformers.GPT2LMHeadModel(gpt2), tokens, "4"),
    }


def _logits(model, x):
    with torch.no_grad():
        y = model(x)
    return (y.logits if hasattr(y, "logits") else y).numpy()


def catalogue(tmp: Path, cost_limit: int = 400) -> None:
    """One row per catalogue model (qonnx's cost is skipped for graphs of more than ``cost_limit`` nodes)."""
    import onnx

    rows = []
    for name, (model, x, schedule) in catalogue_models().items():
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = pdbviz.quantize(model.eval(), schedule, example_input=x[:2]).eval()
        report = pdbviz.memory_report(q)
        t0 = time.perf_counter()
        onnx_file = export.to_onnx(q, tmp / f"{name}.onnx", example_input=x[:2])
        t1 = time.perf_counter()
        qonnx_file = export.to_qonnx(q, tmp / f"{name}.qonnx.onnx", example_input=x[:2])
        t2 = time.perf_counter()
        ref = _logits(q, x)
        got = export.run_onnx(onnx_file.path, x)
        rel = float(np.abs(got - ref).max() / max(1.0, np.abs(ref).max()))
        agree = float((got.argmax(-1) == ref.argmax(-1)).mean())
        qgot = export.run_qonnx(qonnx_file.path, x[:2])
        qrel = float(np.abs(qgot - ref[:2]).max() / max(1.0, np.abs(ref).max()))
        nodes = len(onnx.load(qonnx_file.path).graph.node)
        if nodes <= cost_limit:
            cost = export.qonnx_cost(qonnx_file.path)
            kinds = dict(zip(report.table.layer, report.table.kind))
            costed = [n for n in report.table.layer if kinds[n] not in ("Embedding", "ConvTranspose2d")
                      and not kinds[n].startswith(("LSTM", "GRU"))] + (["transformer.wte"] if "gpt2" in name else [])
            table_bits = int(report.table.set_index("layer").loc[costed, "weight_bits"].sum())
            floats = cost.bits_by_type.get("FLOAT32", 0)
            bits = f"{cost.weight_bits - 32 * floats:,.0f} / {table_bits:,}"
        else:
            bits = f"not run ({nodes} nodes)"
        s = report.summary
        rows.append((name, schedule, f"{s.float32_total_kib:,.1f}", f"{s.total_kib:,.1f}",
                     f"{onnx_file.nbytes / 1024:,.1f}", f"{qonnx_file.nbytes / 1024:,.1f}", f"{rel:.1e}",
                     f"{100 * agree:.0f}%", f"{qrel:.1e}", bits, f"{t1 - t0:.1f} / {t2 - t1:.1f}"))
    head = ("model", "schedule", "float-32 KiB", "table KiB", "ONNX KiB", "QONNX KiB", "ORT max abs diff / scale",
            "ORT argmax", "qonnx max abs diff / scale", "qonnx weight bits / table", "export s (ONNX / QONNX)")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for row in rows:
        print("| " + " | ".join(row) + " |")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer samples through qonnx's (slow) executor")
    p.add_argument("--catalogue-only", action="store_true", help="only the catalogue table")
    args = p.parse_args()
    if args.catalogue_only:
        with tempfile.TemporaryDirectory() as tmp:
            catalogue(Path(tmp))
        return
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
        print("\ncatalogue (random weights; qonnx on 2 samples, onnxruntime on 8):")
        catalogue(Path(tmp))


if __name__ == "__main__":
    main()
