"""Export to QONNX, ONNX (QDQ) and torchao, each checked by its own tool."""

import copy
import json
import subprocess
import sys
import types
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import pdbviz
from pdbviz import export
from pdbviz.quant.quantizers import WEIGHT_QUANTIZERS, quantize_activation

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("qonnx")

TOL = 1e-5
SMALL = {"lenet": dict(input_shape=(1, 12, 12), width=0.5), "resnet20": dict(input_shape=(3, 8, 8), width=0.25),
         "mlp": dict(input_shape=(1, 6, 6), width=0.25)}
QONNX_CASES = [("lenet", "1"), ("lenet", "2"), ("mlp", "4"), ("lenet", "8-4-2-1/8"), ("resnet20", "8-4-2-1/8"),
               ("mlp", "symmetric:2/4")]
ONNX_CASES = [("lenet", "2"), ("lenet", "8-4-2-1/8"), ("resnet20", "8-4-2-1/8"), ("mlp", "6-3-5/2")]


def _quantized(name, schedule, seed=0):
    kw = SMALL[name]
    model = pdbviz.build_model(name, kw["input_shape"], 10, width=kw["width"], seed=seed)
    g = torch.Generator().manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = pdbviz.quantize(model, schedule, calibrate=torch.rand(64, *kw["input_shape"], generator=g))
    return q.eval(), torch.rand(3, *kw["input_shape"], generator=g)


def _assert_agrees(q, x, got):
    """Within TOL of pdbviz's outputs (relative to their size). Where inputs are quantized, a value on a rounding
    tie rounds either way under any change in the order of float additions (pdbviz's own float32 and float64
    outputs part there too), so a minority of samples may be off by a few steps of an input, no more."""
    with torch.no_grad():
        ref = q(x).numpy()
        ref64 = copy.deepcopy(q).double()(x.double()).numpy()
    tol = TOL * max(1.0, float(np.abs(ref).max()))
    close = np.minimum(np.abs(got - ref).max(axis=1), np.abs(got - ref64).max(axis=1)) <= tol
    if all(s.a_bits == 32 for s in pdbviz.schedule_of(q).values()):
        assert close.all(), np.abs(got - ref).max(axis=1)
    else:
        assert close.sum() >= (len(x) + 1) // 2, np.abs(got - ref).max(axis=1)
        assert np.abs(got - ref).max() <= 0.05 * np.abs(ref).max()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = {}
    root = tmp_path_factory.mktemp("export")
    for name, schedule in dict.fromkeys(QONNX_CASES + ONNX_CASES):
        q, x = _quantized(name, schedule)
        stem = root / f"{name}_{schedule.replace('/', '_').replace(':', '_')}"
        out[name, schedule] = (q, x, export.to_qonnx(q, f"{stem}.qonnx.onnx") if (name, schedule) in QONNX_CASES
                               else None, export.to_onnx(q, f"{stem}.onnx") if (name, schedule) in ONNX_CASES else None)
    return out


# -- the integer grids ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode, bits", [("dorefa", k) for k in range(1, 9)] + [("symmetric", k) for k in range(1, 9)]
                         + [("lsq", k) for k in range(2, 9)])
def test_every_weight_mode_has_an_exact_integer_grid(mode, bits):
    quantizer = WEIGHT_QUANTIZERS[mode](bits)
    w = torch.randn(64, 32, generator=torch.Generator().manual_seed(bits))
    quantizer.init_from(w)
    wq = quantizer(w).detach()
    grid = export.weight_grid(quantizer, wq, w)
    codes = grid.codes(wq)
    lo, hi = grid.int_range
    assert lo <= codes.min() and codes.max() <= hi
    assert np.allclose(grid.values(codes), wq.numpy(), atol=1e-6)
    assert hi - lo + 1 == (3 if grid.bipolar else quantizer.levels(bits))  # bipolar: -1, +1 (no 0 code used)
    assert grid.bits == bits and (grid.zero_point == 0 or not grid.bipolar)
    if mode == "dorefa" and bits >= 2:  # 2^k levels without a zero: the signed k-bit range, zero-point -1/2
        assert (grid.zero_point, grid.signed, grid.narrow) == (-0.5, True, False)
        assert len(np.unique(codes)) == 2**bits if bits <= 4 else len(np.unique(codes)) <= 2**bits


@pytest.mark.parametrize("mode", ["dorefa", "pact"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_input_grid_reproduces_the_activation_quantizer(mode, bits):
    from pdbviz.quant import activation_quantizer

    quantizer = activation_quantizer(mode)(bits)
    x = (torch.rand(1000, generator=torch.Generator().manual_seed(bits)) * 2 - 0.5) * (8 if mode == "pact" else 1)
    grid = export.activation_grid(quantizer)
    codes = np.clip(np.round(x.numpy() / grid.scale + grid.zero_point), *grid.int_range)
    with torch.no_grad():
        assert np.allclose(grid.values(codes), quantizer(x).numpy(), atol=1e-5)


def test_a_mode_without_integer_form_is_a_clear_error():
    with pytest.raises(export.ExportError, match="define tensor_scale and grid"):
        export.weight_grid(types.SimpleNamespace(name="learned", bits=4), torch.zeros(3))
    with pytest.raises(export.ExportError, match="define integer_grid"):
        export.activation_grid(types.SimpleNamespace(name="learned-clip", bits=4))
    with pytest.raises(ValueError, match="zero_point"):
        export.IntegerGrid(0.5, 0.25, 4, signed=True)


# -- QONNX ------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", QONNX_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_qonnx_runs_in_qonnx_like_pdbviz_and_counts_its_bits(exported, case):
    q, x, qonnx_file, _ = exported[case]
    _assert_agrees(q, x[:2], export.run_qonnx(qonnx_file.path, x[:2]))  # one sample at a time: keep it short
    cost = export.qonnx_cost(qonnx_file.path)  # qonnx's default options: zero weights discounted
    table = pdbviz.memory_report(q).table
    spec = pdbviz.schedule_of(q)
    zeros = {name: int((getattr(q.get_submodule(name), "weight").detach() == 0).sum()) for name in table.layer}
    assert cost.weight_bits == (table.weight_bits - table.layer.map(zeros) * table.w_bits).sum()
    assert sum(zeros.values()) == 0 or spec[table.layer[0]].weight_mode == "symmetric"  # only true zeros discounted
    # DoReFa's k-bit weights (levels without a zero) are k binary planes, each a copy of its layer
    planes = [b if spec[n].weight_mode == "dorefa" else 1 for n, b in zip(table.layer, table.w_bits)]
    density = 1 - table.layer.map(zeros) / table.params
    assert cost.macs == pytest.approx((table.macs * planes * density).sum())
    assert cost.bops == pytest.approx((table.bops * density).sum())
    binary = [spec[n].weight_mode == "dorefa" or b == 1 for n, b in zip(table.layer, table.w_bits)]
    counted = {}
    for dtype, n in cost.bits_by_type.items():
        bits = 1 if dtype == "BIPOLAR" else 32 if dtype == "FLOAT32" else int("".join(c for c in dtype if c.isdigit()))
        counted[bits] = counted.get(bits, 0) + n
    expected = {}
    for b, n, z, is_binary in zip(table.w_bits, table.params, table.layer.map(zeros), binary):
        key, elems = (1, n * b) if is_binary else (b, n - z)
        expected[key] = expected.get(key, 0) + elems
    assert counted == expected


def test_qonnx_nodes_carry_the_schedule(exported):
    import onnx

    q, _, result, _ = exported["lenet", "8-4-2-1/8"]
    model = onnx.load(result.path)
    quant = [n for n in model.graph.node if n.op_type == "Quant"]
    bipolar = [n for n in model.graph.node if n.op_type == "BipolarQuant"]
    assert {n.domain for n in quant + bipolar} == {"qonnx.custom_op.general"}
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    weight_bits = sorted(int(inits[n.input[3]]) for n in quant if n.input[0] in inits)
    input_bits = [int(inits[n.input[3]]) for n in quant if n.input[0] not in inits]
    # DoReFa's weights: k binary planes each (no zero stored), one BipolarQuant per layer on the stacked planes,
    # their signs stored as int8
    table = pdbviz.memory_report(q).table
    casts = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Cast"}
    signs = [inits[casts[n.input[0]]] for n in bipolar]
    assert weight_bits == [] and len(bipolar) == len(table)
    assert sorted(a.size for a in signs) == sorted(table.params * table.w_bits)
    assert all(a.dtype == np.int8 and set(np.unique(a)) == {-1, 1} for a in signs)
    assert input_bits == [8] * 4  # every input but the network's own
    assert all(float(inits[n.input[2]]) == 0 for n in quant)  # zero-points 0: qonnx types them as integers
    assert dict((p.key, p.value) for p in model.metadata_props)["pdbviz_format"] == "qonnx"
    assert [layer.name for layer in result.layers] == pdbviz.quantizable_layers(q)


# -- ONNX QDQ ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ONNX_CASES, ids=lambda c: f"{c[0]}-{c[1]}")
def test_onnx_runs_in_onnxruntime_like_pdbviz(exported, case):
    q, x, _, onnx_file = exported[case]
    _assert_agrees(q, x, export.run_onnx(onnx_file.path, x))
    _assert_agrees(q, torch.cat([x, x]), export.run_onnx(onnx_file.path, torch.cat([x, x])))  # any batch size


@pytest.mark.parametrize("case", [("lenet", "2"), ("mlp", "6-3-5/2"), ("lenet", "8-4-2-1/8")],
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_onnx_stores_integer_weights_and_really_shrinks(exported, case):
    import onnx

    q, _, _, result = exported[case]
    model = onnx.load(result.path)
    dq = {n.input[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    clips = {n.output[0]: n for n in model.graph.node if n.op_type == "Clip"}
    inits = {i.name: i for i in model.graph.initializer}
    stored = {}
    for src in dq:
        name = clips[src].input[0] if src in clips else src
        if name in inits:
            stored[name] = (inits[name].data_type, src in clips)
    rows = pdbviz.memory_report(q).table
    expected = [(onnx.TensorProto.INT4 if b <= 4 else onnx.TensorProto.INT8, 4 < b < 8) for b in rows.w_bits]
    assert sorted(stored.values()) == sorted(expected)
    summary = pdbviz.memory_summary(q)
    weight_bytes = sum((n * 4 + 7) // 8 if b <= 4 else n for n, b in zip(rows.params, rows.w_bits))
    assert result.nbytes < weight_bytes + summary.other_kib * 1024 + 8192  # the codes, the floats, a little graph
    assert result.nbytes < summary.float32_total_kib * 1024 / (3 if rows.w_bits.max() <= 4 else 1.8)


# -- torchao ----------------------------------------------------------------------------------------------------------
def test_torchao_config_maps_linear_layers_at_the_schedules_bits():
    pytest.importorskip("torchao")
    from torchao.core.config import config_from_dict

    q, x = _quantized("mlp", "8-4-1")
    with pytest.warns(UserWarning, match="1 bit"):
        result = export.torchao_config(q)
    assert result.layers == {"fc1": "int8", "fc2": "int4", "fc3": "int2"}
    assert list(result.notes) == ["fc1", "fc2", "fc3"]  # DoReFa's levels have no zero: torchao re-quantizes them
    assert all("own grid" in note for note in result.notes.values()) and not result.exact
    served = result.apply(q)
    for name, bits in (("fc1", 8), ("fc2", 4), ("fc3", 2)):
        w = getattr(served, name).weight
        assert type(w).__name__ != "Parameter" and len(torch.unique(w.dequantize()[0])) <= 2**bits
    with torch.no_grad():
        a = export.agreement(q(x), served(x))
    assert np.isfinite(a.max_abs_diff) and 0 <= a.argmax_agreement <= 1
    assert type(config_from_dict(json.loads(result.to_json()))).__name__ == "FqnToConfig"
    with pytest.raises(export.ExportError, match="fc3"):
        export.torchao_config(q, strict=True)


@pytest.mark.parametrize("schedule", ["symmetric:8-4-2", "lsq:8-4-3"])
def test_torchao_holds_symmetric_and_lsq_grids_exactly(schedule):
    pytest.importorskip("torchao")
    q, x = _quantized("mlp", schedule)
    x = torch.rand(32, *x.shape[1:], generator=torch.Generator().manual_seed(1))
    result = export.torchao_config(q, strict=True)  # nothing torchao cannot express
    assert set(result.exact) == {"fc1", "fc2", "fc3"} and not result.notes
    served = result.apply(q)
    for name in ("fc1", "fc2", "fc3"):
        assert torch.equal(getattr(served, name).weight.dequantize(), getattr(q, name).weight.detach())
    with torch.no_grad():
        a = export.agreement(q(x), served(x))
    assert a.max_abs_diff <= TOL * max(1.0, float(q(x).abs().max())) and a.argmax_agreement == 1.0


def test_torchao_says_what_it_cannot_express():
    pytest.importorskip("torchao")
    q, _ = _quantized("lenet", "8-4-2-2-2/8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = export.torchao_config(q)
    assert set(result.layers) == {"fc1", "fc2", "fc3"}
    assert "Linear weights only" in result.notes["conv1"] and "stays float" in result.notes["fc1"]


# -- errors -----------------------------------------------------------------------------------------------------------
def test_a_float_model_is_not_exported(tmp_path):
    model = pdbviz.build_model("mlp", (1, 6, 6), 10)
    for fn in (export.to_qonnx, export.to_onnx):
        with pytest.raises(export.ExportError, match="not quantized"):
            fn(model, tmp_path / "m.onnx")
    with pytest.raises(export.ExportError, match="not quantized"):
        export.torchao_config(model)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        export.to_onnx("model", tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_an_embedding_exports_as_a_gather_of_its_integer_table(tmp_path):
    class Tagger(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(20, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc(self.emb(x).mean(1))

    x = torch.randint(0, 20, (2, 5), generator=torch.Generator().manual_seed(0))
    q = pdbviz.quantize(Tagger(), "4", example_input=x).eval()
    with torch.no_grad():
        ref = q(x).numpy()
    result = export.to_qonnx(q, tmp_path / "t.qonnx.onnx", example_input=x)
    assert np.abs(export.run_qonnx(result.path, x) - ref).max() <= TOL * max(1.0, np.abs(ref).max())
    assert [layer.name for layer in result.layers] == ["emb", "fc"]
    result = export.to_onnx(q, tmp_path / "t.onnx", example_input=x)
    assert np.abs(export.run_onnx(result.path, x) - ref).max() <= TOL * max(1.0, np.abs(ref).max())
    assert result.dynamic_axes == ("batch", "sequence")


def test_an_exporter_failure_is_one_clean_line_with_its_cause(tmp_path):
    class DataDependent(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            if self.fc(x).sum() > 0:  # control flow on data: torch.export cannot trace it
                return x
            return -x

    q = pdbviz.quantize(DataDependent(), "4", example_input=torch.ones(2, 4))
    with pytest.raises(export.ExportError) as info:
        export.to_onnx(q, tmp_path / "d.onnx", example_input=torch.ones(2, 4))
    message = str(info.value)
    assert "\n" not in message and "\x1b" not in message and "DataDependent" in message
    assert info.value.__cause__ is not None
    assert not list(tmp_path.iterdir())


def test_bad_arguments_name_the_parameter(tmp_path):
    q, _ = _quantized("mlp", "2")
    with pytest.raises(ValueError, match="to must be one of"):
        export.export_model(q, tmp_path / "m", to="tflite")
    with pytest.raises(TypeError, match="path"):
        export.to_onnx(q, 3)
    with pytest.raises(TypeError, match="clip"):
        export.to_onnx(q, tmp_path / "m.onnx", clip="yes")
    with pytest.raises(TypeError, match="example_input"):
        export.to_onnx(q, tmp_path / "m.onnx", example_input=[1, 2])


def test_a_missing_library_names_the_extra(tmp_path, monkeypatch):
    q, _ = _quantized("mlp", "2")
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r'pip install "pdbviz\[export\]"'):
        export.to_onnx(q, tmp_path / "m.onnx")


def test_import_stays_light():
    code = "import pdbviz.export, sys; print(sorted(m for m in ('onnx', 'onnxruntime', 'qonnx', 'torchao') " \
           "if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "[]\n"


# -- the command and the packed file ----------------------------------------------------------------------------------
def test_cli_exports_a_packed_zoo_model(tmp_path, capsys):
    from pdbviz.cli import main
    from pdbviz.quant.packing import read_packed_header

    q, x = _quantized("lenet", "8-4-2-1/8")
    packed = pdbviz.save_packed(q, tmp_path / "lenet.pdbq")
    assert read_packed_header(packed)[0]["config"] == dict(q.pdbviz_info.config)
    assert main(["export", str(packed), "--to", "onnx"]) == 0
    out = capsys.readouterr().out
    assert "packed file" in out and "memory table" in out and "fc2: weight bipolar" in out
    _assert_agrees(pdbviz.load_packed(packed, q), x, export.run_onnx(tmp_path / "lenet.onnx", x))
    assert main(["export", str(packed), "--to", "torchao", "-o", str(tmp_path / "cfg.json")]) == 0
    assert json.loads((tmp_path / "cfg.json").read_text())["_type"] == "FqnToConfig"
    assert main(["export", str(tmp_path / "missing.pdbq"), "--to", "onnx"]) == 2
    assert main(["export", str(packed), "--to", "onnx", "--model", "lenet"]) == 2
    assert "--input-shape" in capsys.readouterr().err
