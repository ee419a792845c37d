"""pdbviz.audit reads what the computation used: a weight whose quantization is removed behind pdbviz's back is a
LIE, a tied Parameter held by a custom head is quantized there too, caches follow .data writes, packed and ONNX
files are audited."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

import pdbviz
from pdbviz.auditing import audit, audit_onnx, audit_packed
from pdbviz.quant import weight_quant


def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))


class Head(nn.Module):
    def __init__(self, weight):
        super().__init__()
        self.weight = weight


class TiedCustomHead(nn.Module):
    """A head tied to the embedding by holding its Parameter, used as ``h @ head.weight.T``."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(100, 16)
        self.mid = nn.Linear(16, 16)
        self.head = Head(self.emb.weight)

    def forward(self, x):
        return F.relu(self.mid(self.emb(x))) @ self.head.weight.T


def test_audit_of_a_quantized_model_finds_no_lie():
    x = torch.randn(5, 8)
    report = audit(pdbviz.quantize(_mlp(), "2-1/4"), x)
    assert report.summary == "2 weights, 4 uses, 0 lies" and report.ok
    rows = report.table.set_index(["weight", "mode"])
    assert rows.loc[("0", "train"), "values"] == 4 and rows.loc[("2", "eval"), "values"] == 2
    assert rows.loc[("2", "eval"), "input_values"] <= 16  # its input at 4 bits
    assert set(report.table.op) == {"addmm"}
    text = str(report)
    assert "0 lies" in text and "<table" in report._repr_html_()


def test_quantization_removed_behind_pdbvizs_back_is_a_lie():
    x = torch.randn(5, 8)
    q = pdbviz.quantize(_mlp(), "2-1")
    weight_quant(q[2]).weight_quantizer = nn.Identity()  # the table still says 1 bit
    report = audit(q, x)
    lies = report.table[report.table.verdict == "LIE"]
    assert set(lies.weight) == {"2"} and set(lies["mode"]) == {"train", "eval"}
    assert (lies["values"] > 2).all() and report.lies == 2 and not report.ok


class FloatBehindTheBack(nn.Module):
    """Uses the float weight through ``.data`` in a functional call, bypassing the parametrization."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 16)
        self.out = nn.Linear(16, 3)

    def forward(self, x):
        raw = self.fc.parametrizations.weight.original.data if hasattr(self.fc, "parametrizations") \
            else self.fc.weight.data
        return self.out(F.relu(F.linear(x, raw)))


def test_float_weight_written_into_the_op_another_way_is_a_lie():
    torch.manual_seed(0)
    q = pdbviz.quantize(FloatBehindTheBack(), "1", example_input=torch.randn(2, 8))
    report = audit(q, torch.randn(4, 8))
    assert set(report.table[report.table.verdict == "LIE"].weight) == {"fc"}


def test_a_tied_parameter_is_one_weight_wherever_it_is_held(tmp_path):
    torch.manual_seed(0)
    model, x = TiedCustomHead(), torch.randint(0, 100, (2, 5))
    q = pdbviz.quantize(model, "1", example_input=x)
    report = audit(q, x)
    assert report.ok, report
    head_uses = report.table[(report.table.weight == "emb") & (report.table.op == "mm")]
    assert len(head_uses) == 2 and (head_uses["values"] == 2).all()
    packed = pdbviz.load_packed(pdbviz.save_packed(q, tmp_path / "m.pdbq"), model)
    q.eval()
    with torch.no_grad():
        assert torch.equal(packed(x), q(x))


def test_data_writes_invalidate_the_eval_cache_and_the_packed_file(tmp_path):
    torch.manual_seed(0)
    q = pdbviz.quantize(_mlp(), "2").eval()
    x = torch.randn(5, 8)
    with torch.no_grad():
        q(x)  # fills the eval cache
    new = torch.randn(16, 8)
    p = q[0].parametrizations.weight.original
    p.data.copy_(new)  # no version bump
    fresh = pdbviz.quantize(nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)), "2")
    fresh.load_state_dict(q.state_dict())
    fresh.eval()
    with torch.no_grad():
        assert torch.equal(q(x), fresh(x))
        assert torch.equal(q[0].weight, fresh[0].weight)
    loaded = pdbviz.load_packed(pdbviz.save_packed(q, tmp_path / "m.pdbq"), _mlp())
    with torch.no_grad():
        assert torch.equal(loaded(x), fresh(x))
        loaded[0].parametrizations.weight.original.data.mul_(-1)  # a loaded model's pin follows .data writes too
        fresh[0].parametrizations.weight.original.data.copy_(loaded[0].parametrizations.weight.original)
        assert torch.equal(loaded[0].weight, fresh[0].weight)


def test_audit_of_a_packed_file_and_an_untraced_operand(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    q = pdbviz.quantize(_mlp(), "4-2/4")
    path = pdbviz.save_packed(q, tmp_path / "m.pdbq")
    report = audit_packed(path, _mlp(), x)
    assert report.ok and report.uses == 4, report

    class Stale(nn.Module):  # multiplies a tensor computed before the pass, held outside the model's state
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 3)
            self.frozen = torch.randn(3, 8)

        def forward(self, x):
            return self.fc(x) + F.linear(x, self.frozen)

    stale = audit(Stale(), x)
    assert stale.untraced == 2 and "untraced operands" in stale.summary


def test_audit_restores_the_model_and_checks_its_arguments():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 3)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    audit(pdbviz.quantize(model, "2"), torch.randn(6, 8))
    audit(model, torch.randn(6, 8))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(TypeError, match="model must be"):
        audit("not a model", torch.randn(2, 8))
    with pytest.raises(ValueError, match="modes must be"):
        audit(model, torch.randn(2, 8), modes=("test",))


def test_audit_onnx_counts_stored_values_against_declared_bits(tmp_path):
    pytest.importorskip("onnx")
    from pdbviz.export import export_model

    torch.manual_seed(0)
    # LSQ's grids are QONNX Quant nodes at the schedule's bit-widths
    q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28), 10), "lsq:8-4-2-2")
    export_model(q, tmp_path / "m.qonnx.onnx", to="qonnx")
    report = audit_onnx(tmp_path / "m.qonnx.onnx")
    assert report.summary == "5 weights, 5 quantized, 0 lies"
    assert report.table.bits.tolist() == [8, 4, 2, 2, 2]
    assert (report.table["values"] <= report.table["allowed"]).all()
    # DoReFa's grids (no zero) are stored as binary planes, each a BipolarQuant of +-1 values
    q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28), 10), "8-4-2-1")
    export_model(q, tmp_path / "d.qonnx.onnx", to="qonnx")
    planes = audit_onnx(tmp_path / "d.qonnx.onnx")
    assert planes.lies == 0 and set(planes.table.declared_by) == {"BipolarQuant"}
    assert planes.table.bits.tolist() == [1] * 5 and planes.table["values"].max() == 2
    with pytest.raises(FileNotFoundError):
        audit_onnx(tmp_path / "missing.onnx")
