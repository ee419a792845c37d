"""One registered class per quantizer: its grid is what packing stores and what every export format writes."""


import numpy as np
import pytest
import torch
from torch import nn

import pdbviz
from pdbviz import export
from pdbviz.quant import (ACTIVATION_QUANTIZERS, WEIGHT_QUANTIZERS, ActivationQuantizer, BitSchedule, IntegerGrid,
                          WeightQuantizer, float_weight, load_packed, register_activation_quantizer, register_weight_quantizer,
                          save_packed, schedule_of, weight_quantizer)
from pdbviz.quant.ste import clip_round_ste
from pdbviz.quant.weight_quantizers import dorefa_weight, symmetric_step

CASES = [(mode, k) for mode, cls in WEIGHT_QUANTIZERS.items() for k in range(cls.min_bits, 9)]


def _quantized(mode, bits, seed=0):
    quantizer = weight_quantizer(mode)(bits)
    w = torch.randn(48, 20, generator=torch.Generator().manual_seed(seed + bits))
    quantizer.init_from(w)
    with torch.no_grad():
        return quantizer, w, quantizer(w)


@pytest.mark.parametrize("mode, bits", CASES)
def test_codes_are_the_grid_and_decode_exactly(mode, bits):
    quantizer, w, wq = _quantized(mode, bits)
    codes, scale = quantizer.encode(wq, w)
    grid = quantizer.integer_grid(wq, w)
    assert scale == quantizer.tensor_scale(wq, w) and grid == quantizer.grid(scale)
    assert codes.dtype == np.uint8 and codes.max() < 2**bits
    assert np.array_equal(codes, grid.unsigned_codes(wq))
    assert np.allclose(grid.values(grid.signed_codes(codes)), wq.numpy(), rtol=0, atol=1e-6 * float(wq.abs().max()))
    assert torch.equal(quantizer.decode(codes, wq.shape, scale), wq)
    assert export.weight_grid(quantizer, wq, w) == grid  # the export formats read the same grid
    lo, hi = grid.int_range
    assert len(np.unique(codes)) <= quantizer.levels(bits) <= hi - lo + 1 + int(grid.bipolar)


@pytest.mark.parametrize("mode, bits", CASES)
def test_codes_follow_the_published_formula(mode, bits):
    quantizer, w, wq = _quantized(mode, bits)
    codes, scale = quantizer.encode(wq, w)
    if bits == 1:  # binary: the sign bit, scale mean|w|
        assert np.array_equal(codes, (w >= 0).numpy()) and scale == pytest.approx(float(w.abs().mean()), rel=1e-6)
    elif mode == "dorefa":  # Q_k's integers c of d = 2 c / n - 1, scale a = max|w_q|
        d = dorefa_weight(w, bits, rescale=False)
        assert np.array_equal(codes, torch.round((d + 1) * (2**bits - 1) / 2).numpy())
        assert scale == float(wq.abs().max())
    elif mode == "symmetric":  # q + m with q = round(w_q / s) in [-m, m]
        m, s = 2 ** (bits - 1) - 1, symmetric_step(w, bits)
        assert scale == float(s) and np.array_equal(codes, (torch.round(wq / s) + m).numpy())
    else:  # lsq: q + Q_N with the learned step
        s = quantizer.step.detach()
        assert scale == float(s) and np.array_equal(codes, (torch.round(wq / s) + 2 ** (bits - 1)).numpy())


@pytest.mark.parametrize("mode", sorted(ACTIVATION_QUANTIZERS))
def test_every_input_mode_exports_its_own_grid(mode):
    quantizer = ACTIVATION_QUANTIZERS[mode](3)
    assert export.activation_grid(quantizer) == quantizer.integer_grid()


@pytest.mark.parametrize("text", ["symmetric:2", "symmetric:1-2-3", "lsq:2-4/pact:4", "dorefa:8-1"])
def test_every_mode_packs_exactly(tmp_path, small_cnn, text):
    q = quantize_and_train_a_step(small_cnn, text)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = q(x)
        loaded = load_packed(save_packed(q, tmp_path / "m.pdbq"), small_cnn)
        assert torch.equal(loaded(x), expected)
    assert schedule_of(loaded) == schedule_of(q)


def quantize_and_train_a_step(model, text):
    q = pdbviz.quantize(model, text)
    opt = torch.optim.SGD(q.parameters(), lr=0.05)  # move learned steps and clips off their initial values
    q(torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0))).square().mean().backward()
    opt.step()
    return q.eval()


# -- a new quantizer is one class ------------------------------------------------------------------------------------
class ToyWeight(WeightQuantizer):
    """Toy max-scaled weights: ``w_q = s round(clip(w / s, -m, m))``, ``s = max|w| / m``, ``m = 2^(k-1) - 1``;
    ``round`` straight-through."""

    name, label, min_bits = "toy", "toy", 2

    @classmethod
    def levels(cls, bits):
        return 2**bits - 1

    def _step(self, w):
        return (w.detach().abs().max() / (2 ** (self.bits - 1) - 1)).clamp_min(1e-12)

    def forward(self, w):
        m = float(2 ** (self.bits - 1) - 1)
        step = self._step(w)
        return clip_round_ste(w / step, -m, m) * step

    def tensor_scale(self, wq, w):
        return float(self._step(w))

    def grid(self, scale):
        return IntegerGrid(scale, 0.0, self.bits, signed=True, narrow=True)


@pytest.fixture
def toy():
    register_weight_quantizer(ToyWeight)
    yield ToyWeight
    del WEIGHT_QUANTIZERS["toy"]


def test_a_registered_class_reaches_schedules_packing_and_export(toy, tmp_path, small_cnn):
    s = BitSchedule.from_string("toy:4-2/8", small_cnn)
    assert [spec.weight_mode for spec in s.values()] == ["toy"] * 3 and s.w_bits == [4, 2, 2]
    assert s.to_string(small_cnn) == "toy:4-2/8" and BitSchedule.from_dict(s.to_dict()) == s
    q = pdbviz.quantize(small_cnn, "toy:4").eval()
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = q(x)
        loaded = load_packed(save_packed(q, tmp_path / "toy.pdbq"), small_cnn)
        assert torch.equal(loaded(x), expected)
    wq = q.conv2.weight.detach()
    w = float_weight(q, "conv2")
    grid = export.weight_grid(q.conv2.parametrizations.weight[0].weight_quantizer, wq, w)
    assert grid == IntegerGrid(float(w.abs().max()) / 7, 0.0, 4, signed=True, narrow=True)
    assert set(np.unique(grid.codes(wq))) <= set(range(-7, 8))


def test_a_registered_class_exports_to_qonnx_and_onnx(toy, tmp_path):
    pytest.importorskip("qonnx")
    pytest.importorskip("onnxruntime")
    model = pdbviz.build_model("mlp", (1, 6, 6), 10, width=0.25, seed=0)
    q = pdbviz.quantize(model, "toy:4-3").eval()
    x = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = q(x).numpy()
    tol = 1e-5 * max(1.0, float(np.abs(ref).max()))
    qonnx_file = export.to_qonnx(q, tmp_path / "toy.qonnx.onnx")
    assert np.abs(export.run_qonnx(qonnx_file.path, x) - ref).max() <= tol
    assert np.abs(export.run_onnx(export.to_onnx(q, tmp_path / "toy.onnx").path, x) - ref).max() <= tol


def test_registration_checks_the_class(tmp_path):
    class NoLevels(WeightQuantizer):
        name = "nolevels"

        def forward(self, w):
            return w

    with pytest.raises(TypeError, match="NoLevels must define levels"):
        register_weight_quantizer(NoLevels)
    with pytest.raises(TypeError, match="WeightQuantizer subclass with a name"):
        register_weight_quantizer(nn.Identity)

    class Other(ToyWeight):
        name = "dorefa"

    with pytest.raises(ValueError, match="'dorefa' is already registered"):
        register_weight_quantizer(Other)

    class NoInput(ActivationQuantizer):
        name = "noinput"

    with pytest.raises(TypeError, match="NoInput must define forward"):
        register_activation_quantizer(NoInput)
    assert "nolevels" not in WEIGHT_QUANTIZERS and "noinput" not in ACTIVATION_QUANTIZERS


class SignOnly(WeightQuantizer):
    """``sign(w)``, straight-through: a mode for training that states no integer grid."""

    name, label = "signonly", "sign"

    @classmethod
    def levels(cls, bits):
        return 2

    def forward(self, w):
        return w + (torch.where(w >= 0, 1.0, -1.0) - w).detach()


def test_a_mode_without_a_grid_trains_but_cannot_be_packed_or_exported(tmp_path, small_cnn):
    register_weight_quantizer(SignOnly)
    try:
        q = pdbviz.quantize(small_cnn, "signonly:2")
        q(torch.randn(2, 1, 16, 16)).sum().backward()
        assert small_cnn.conv1.weight.grad is None and q.conv1.parametrizations.weight.original.grad is not None
        with pytest.raises(NotImplementedError, match="SignOnly states no integer grid: define tensor_scale and grid"):
            save_packed(q, tmp_path / "m.pdbq")
        quantizer = q.conv1.parametrizations.weight[0].weight_quantizer
        with pytest.raises(export.ExportError, match="'signonly' has no integer grid for export: define tensor_scale"):
            export.weight_grid(quantizer, q.conv1.weight.detach())
    finally:
        del WEIGHT_QUANTIZERS["signonly"]
