"""Export beyond the zoo: each model of a small catalogue to ONNX and QONNX, run by the format's own runtime, its
stored weights read back."""

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pdbviz
from pdbviz import export
from pdbviz.quant.discovery import discover

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("qonnx")

TOL = 1e-4  # of the outputs' scale


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
        self.emb, self.lstm, self.gru = nn.Embedding(30, 8), nn.LSTM(8, 8, batch_first=True), nn.GRU(8, 6,
                                                                                                      batch_first=True)
        self.head = nn.Linear(6, 4)

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


def _timm(name, **kw):
    timm = pytest.importorskip("timm")
    return timm.create_model(name, pretrained=False, num_classes=10, **kw)


def _hf(kind):
    transformers = pytest.importorskip("transformers")
    if kind == "bert":
        cfg = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=64, max_position_embeddings=32, num_labels=3)
        return transformers.BertForSequenceClassification(cfg)
    cfg = transformers.GPT2Config(vocab_size=100, n_embd=32, n_layer=1, n_head=2, n_positions=32, use_cache=False)
    return transformers.GPT2LMHeadModel(cfg)


def _tokens(batch, length, seed=0):
    return torch.randint(0, 30, (batch, length), generator=torch.Generator().manual_seed(seed))


def _images(batch, seed=0):
    return torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


#: name -> (build, example batch (its shape is what QONNX fixes), another batch ONNX must take, schedule)
CATALOGUE = {
    "grouped-conv": (GroupedConvNet, lambda s: torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(s)),
                     None, "4/8"),
    "recurrent": (Recurrent, lambda s: _tokens(2, 5, s), lambda: _tokens(3, 7, 9), "symmetric:4"),
    "transformer-encoder": (Encoder, lambda s: torch.rand(2, 5, 16, generator=torch.Generator().manual_seed(s)),
                            lambda: torch.rand(3, 7, 16), "4"),
    "mobilenetv3": (lambda: _timm("mobilenetv3_small_050"), lambda s: _images(2, s), lambda: _images(3, 9), "4"),
    "deit": (lambda: _timm("deit_tiny_patch16_224", img_size=32, depth=1), lambda s: _images(2, s),
             lambda: _images(3, 9), "4"),
    "bert": (lambda: _hf("bert"), lambda s: _tokens(2, 6, s), lambda: _tokens(3, 9, 9), "4"),
    "gpt2": (lambda: _hf("gpt2"), lambda s: _tokens(2, 6, s), lambda: _tokens(3, 9, 9), "4"),
}


def _out(model, x):
    with torch.no_grad():
        y = model(x)
    return (y.logits if hasattr(y, "logits") else y).numpy()


SLOW = ("mobilenetv3", "deit", "bert", "gpt2")  # 10 to 40 s each on a laptop core


@pytest.fixture(scope="module", params=[pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n
                                        for n in CATALOGUE])
def case(request, tmp_path_factory):
    build, example, other, schedule = CATALOGUE[request.param]
    torch.manual_seed(0)
    model = build().eval()
    x = example(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = pdbviz.quantize(model, schedule, example_input=x).eval()
    root = tmp_path_factory.mktemp(request.param)
    onnx_file = export.to_onnx(q, root / "m.onnx", example_input=x)
    qonnx_file = export.to_qonnx(q, root / "m.qonnx.onnx", example_input=x)
    return request.param, q, x, other, onnx_file, qonnx_file


def _close(ref, got):
    assert got.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(got - ref).max() <= TOL * scale, np.abs(got - ref).max()
    assert (got.argmax(-1) == ref.argmax(-1)).all()


def _levels_per_layer(path, q, fmt):
    """Distinct levels of each quantized weight as stored in the file (read back from it, not from pdbviz)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    table = pdbviz.memory_report(q).table
    out = {}
    for name, params in zip(table.layer, table.params):
        hint = name.replace(".", "_")
        if fmt == "onnx":  # the integer codes feeding DequantizeLinear
            arrays = [v for k, v in inits.items() if re.fullmatch(rf"{hint}_int[48](_\d+)?", k)]
            out[name] = len(np.unique(np.concatenate([a.astype(np.int64).ravel() for a in arrays]))) if arrays else 0
        else:  # QONNX: stacked binary planes (k planes: 2^k levels), or a Quant's weight on its grid
            arrays = [v for k, v in inits.items() if re.fullmatch(rf"{hint}(_planes|_\d+)?_w(_\d+)?", k)]
            values = np.unique(np.concatenate([a.ravel() for a in arrays])) if arrays else np.array([])
            planes = sum(a.size for a in arrays) // params
            out[name] = 2**planes if set(values.tolist()) == {-1.0, 1.0} else len(values)
    return out


def test_onnx_runs_in_onnxruntime_like_pdbviz(case):
    name, q, x, other, onnx_file, _ = case
    _close(_out(q, x), export.run_onnx(onnx_file.path, x))
    if other is not None:  # another batch size and sequence length: the axes are dynamic
        assert onnx_file.dynamic_axes[:1] == ("batch",)
        y = other()
        _close(_out(q, y), export.run_onnx(onnx_file.path, y))
    import onnx

    stored = {i.name: len(i.raw_data) or i.ByteSize() for i in onnx.load(onnx_file.path).graph.initializer}
    table = pdbviz.memory_report(q).table
    for name, params, bits in zip(table.layer, table.params, table.w_bits):  # int4 / int8, not float
        codes = sum(v for k, v in stored.items() if re.fullmatch(rf"{name.replace('.', '_')}_int[48](_\d+)?", k))
        assert codes <= (params + 1) // 2 + 16 if bits <= 4 else codes <= params + 16, (name, codes, params)


@pytest.mark.parametrize("fmt", ["onnx", "qonnx"])
def test_the_file_stores_at_most_2_to_the_k_levels_per_k_bit_weight(case, fmt):
    _, q, _, _, onnx_file, qonnx_file = case
    result = onnx_file if fmt == "onnx" else qonnx_file
    levels = _levels_per_layer(result.path, q, fmt)
    for layer in result.layers:
        if layer.w_bits < 32:
            assert 2 <= levels[layer.name] <= 2**layer.w_bits, (layer, levels[layer.name])


def test_qonnx_runs_in_qonnx_like_pdbviz(case):
    name, q, x, _, _, qonnx_file = case
    _close(_out(q, x[:1]), export.run_qonnx(qonnx_file.path, x[:1]))
    assert qonnx_file.dynamic_axes == ()  # batch 1, FINN's convention


def test_qonnx_cost_counts_the_tables_bits_for_the_layers_it_costs(case):
    name, q, _, _, _, qonnx_file = case
    if name == "mobilenetv3":
        pytest.skip("qonnx's inference_cost folds one constant per pass: minutes on mobilenetv3's graph")
    cost = export.qonnx_cost(qonnx_file.path)
    table = pdbviz.memory_report(q).table
    written = {layer.name: layer.weight for layer in qonnx_file.layers}
    # qonnx costs Conv, Gemm and MatMul weights: not an embedding's Gather, a ConvTranspose or the fused LSTM/GRU
    kinds = dict(zip(table.layer, table.kind))
    counted = [n for n in table.layer if kinds[n] not in ("Embedding", "ConvTranspose2d")
               and not kinds[n].startswith(("LSTM", "GRU"))]
    if name == "gpt2":  # the tied embedding is costed where the head multiplies it
        counted += ["transformer.wte"]
    assert all("typed float" not in written[n] for n in counted)
    layout = discover(q)
    zeros = {n: int((getattr(q.get_submodule(layout[n].owners[0][0]), layout[n].owners[0][1]).detach() == 0).sum())
             for n in counted}
    rows = table.set_index("layer").loc[counted]
    expected = int((rows.weight_bits - rows.index.map(zeros) * rows.w_bits).sum())  # only true zeros discounted
    floats = cost.bits_by_type.get("FLOAT32", 0)
    if name == "gpt2":  # its Conv1D layers are not quantized (not a known weight kind): float MatMuls
        floats -= sum(m.weight.numel() for m in q.modules() if type(m).__name__ == "Conv1D")
    assert floats == 0
    assert cost.weight_bits - 32 * cost.bits_by_type.get("FLOAT32", 0) == expected


class Odd(nn.Module):
    """A weight_norm'd Linear, one Linear registered under two names and a weight-standardised convolution,
    then a plain four-Linear MLP, on (N, T, F) input."""

    class StdConv(nn.Conv1d):
        def forward(self, x):
            w = (self.weight - self.weight.mean((1, 2), keepdim=True)) / (self.weight.std((1, 2), keepdim=True) + 1)
            return nn.functional.conv1d(x, w, self.bias, padding=1)

    def __init__(self):
        super().__init__()
        self.norm = nn.utils.parametrizations.weight_norm(nn.Linear(16, 16))
        self.shared = nn.Linear(16, 16)
        self.alias = self.shared
        self.std = Odd.StdConv(16, 16, 3)
        self.mlp = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 8),
                                 nn.ReLU(), nn.Linear(8, 4))

    def forward(self, x):
        x = self.alias(torch.relu(self.shared(torch.relu(self.norm(x)))))
        return self.mlp(self.std(x.transpose(1, 2)).transpose(1, 2))


@pytest.mark.parametrize("fmt", ["onnx", "qonnx"])
def test_each_weight_is_found_whatever_its_name_rank_or_form(tmp_path, fmt):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = pdbviz.quantize(Odd().eval(), "4", example_input=x).eval()
    write, run = (export.to_onnx, export.run_onnx) if fmt == "onnx" else (export.to_qonnx, export.run_qonnx)
    result = write(q, tmp_path / "odd.onnx", example_input=x)
    assert [layer.name for layer in result.layers] == pdbviz.quantizable_layers(q)
    _close(_out(q, x[:1]), run(result.path, x[:1]))


@pytest.mark.parametrize("fmt", ["onnx", "qonnx"])
def test_the_audit_of_the_exported_file_finds_no_lie(case, fmt):
    from pdbviz import audit_onnx

    _, _, _, _, onnx_file, qonnx_file = case
    report = audit_onnx((onnx_file if fmt == "onnx" else qonnx_file).path)
    assert report.lies == 0, report.table[report.table.verdict != "ok"]
    assert (report.table.bits < 32).any()  # the quantized weights were found and counted
