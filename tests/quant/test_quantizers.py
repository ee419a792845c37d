import math

import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from pdbviz import dorefa_weight, quantize_activation, symmetric_weight
from pdbviz.quant.quantizers import symmetric_step

BITS = [1, 2, 3, 4, 5, 6, 7, 8]


def tensors(min_size=2):
    return st.lists(
        st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32), min_size=min_size, max_size=300
    ).map(lambda xs: torch.tensor(xs, dtype=torch.float32))


@settings(max_examples=60, deadline=None)
@given(w=tensors(), bits=st.sampled_from(BITS))
def test_dorefa_weight_levels_and_scale(w, bits):
    q = dorefa_weight(w, bits)
    values = torch.unique(q)
    assert len(values) <= 2**bits
    if bits >= 2 and w.abs().max() > 1e-3:
        d = dorefa_weight(w, bits, rescale=False)
        assert d.min() >= -1 and d.max() <= 1
        idx = (d + 1) * (2**bits - 1) / 2  # the paper's grid 2 i / (2^k - 1) - 1
        assert torch.allclose(idx, idx.round(), atol=1e-4)
        a = (w * d).sum() / (d * d).sum()  # rescaled by the least-squares scale
        assert torch.allclose(q, a * d, rtol=1e-5, atol=1e-6)
    elif bits == 1:
        scale = w.abs().mean()
        assert torch.allclose(q.abs(), scale.expand_as(q))
        assert torch.all((q >= 0) == (w >= 0))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_dorefa_weight_matches_formula(bits):
    w = torch.randn(500, generator=torch.Generator().manual_seed(bits))
    t = np.tanh(w.numpy().astype(np.float64))
    wn = t / (2 * np.abs(t).max()) + 0.5
    n = 2**bits - 1
    d = 2 * np.round(wn * n) / n - 1
    np.testing.assert_allclose(dorefa_weight(w, bits, rescale=False).numpy(), d, atol=1e-6)
    a = (w.numpy() * d).sum() / (d * d).sum()
    np.testing.assert_allclose(dorefa_weight(w, bits).numpy(), a * d, rtol=1e-5, atol=1e-6)
    # the weight of largest magnitude maps onto an end level
    assert dorefa_weight(w, bits, rescale=False)[w.abs().argmax()].abs() == 1


def test_dorefa_binary_uses_mean_abs_scale_and_sign_of_zero():
    w = torch.tensor([0.0, -2.0, 1.0, 3.0])
    assert dorefa_weight(w, 1).tolist() == [1.5, -1.5, 1.5, 1.5]


def test_rescaled_dorefa_keeps_the_layer_scale():
    w = 0.05 * torch.randn(4096, generator=torch.Generator().manual_seed(0))
    paper, scaled = dorefa_weight(w, 2, rescale=False), dorefa_weight(w, 2)
    assert float(paper.std() / w.std()) > 5  # the paper's levels are several times the weights
    assert 0.8 < float(scaled.std() / w.std()) < 1.2


@pytest.mark.parametrize("bits", BITS[1:])
def test_dorefa_weight_gradient_is_straight_through_round(bits):
    w = torch.randn(64, requires_grad=True, generator=torch.Generator().manual_seed(1))
    g = torch.randn(64)
    dorefa_weight(w, bits).backward(g)
    w2 = w.detach().clone().requires_grad_()
    t = torch.tanh(w2)
    d = dorefa_weight(w2.detach(), bits, rescale=False)
    a = float((w2.detach() * d).sum() / (d * d).sum())  # the scale carries no gradient
    (a * (2 * (t / (2 * t.abs().max()) + 0.5) - 1)).backward(g)  # the same map without round
    assert torch.allclose(w.grad, w2.grad, atol=1e-6)


def test_binary_weight_gradient_is_identity():
    w = torch.randn(32, requires_grad=True)
    g = torch.randn(32)
    dorefa_weight(w, 1).backward(g)
    assert torch.equal(w.grad, g)


@settings(max_examples=60, deadline=None)
@given(w=tensors(), bits=st.sampled_from(BITS[1:]))
def test_symmetric_levels_zero_and_step(w, bits):
    q = symmetric_weight(w, bits)
    m = 2 ** (bits - 1) - 1
    assert len(torch.unique(q)) <= 2**bits - 1
    step = symmetric_step(w, bits)
    codes = q / step
    assert torch.allclose(codes, codes.round(), atol=1e-3) and codes.abs().max() <= m + 1e-3
    if bits == 2:  # TWN: zero exactly where |w| <= 0.7 mean|w|
        delta = 0.7 * np.abs(w.numpy().astype(np.float64)).mean()
        assert torch.equal(q == 0, torch.from_numpy(np.abs(w.numpy()) <= delta))
    else:
        assert torch.all(q[w.abs() < step / 2] == 0)  # an exact zero level


def test_symmetric_two_bits_is_a_ternary_weight_network():
    w = torch.tensor([-1.0, -0.4, -0.1, 0.0, 0.2, 0.6, 0.9])
    delta = 0.7 * w.abs().mean()  # TWN: threshold 0.7 mean|w|, scale the mean of |w| above it
    alpha = w.abs()[w.abs() > delta].mean()
    expected = torch.where(w.abs() > delta, alpha * torch.sign(w), torch.zeros_like(w))
    assert torch.allclose(symmetric_weight(w, 2), expected)
    assert symmetric_weight(w, 1).tolist() == dorefa_weight(w, 1).tolist()  # binary at 1 bit


def test_symmetric_error_beats_dorefa_at_low_bits():
    w = 0.05 * torch.randn(8192, generator=torch.Generator().manual_seed(0))
    err = {f.__name__: float(((w - f(w, 2)) ** 2).mean()) for f in (dorefa_weight, symmetric_weight)}
    assert err["symmetric_weight"] < 0.7 * err["dorefa_weight"]


def test_lsq_learns_its_step_with_the_scaled_gradient():
    from pdbviz.quant import weight_quantizer

    q = weight_quantizer("lsq")(3)
    w = torch.randn(100, generator=torch.Generator().manual_seed(0))
    q.init_from(w)
    assert float(q.step) == pytest.approx(2 * float(w.abs().mean()) / 3**0.5, rel=1e-6)
    wq = q(w)
    codes = wq / q.step.detach()
    assert torch.allclose(codes, codes.round(), atol=1e-5)
    assert codes.round().min() >= -4 and codes.round().max() <= 3
    for step in torch.linspace(0.01, 3.0, 400).tolist():  # the values are codes times the step itself, exactly
        with torch.no_grad():
            q.step.fill_(step)
        expected = (w / q.step.detach()).clamp(-4, 3).round() * q.step.detach()
        assert torch.equal(q(w), expected), step
    q.init_from(w)
    wq = q(w)
    wq.sum().backward()
    s = float(q.step.detach())
    x = w / s
    inside = (x >= -4) & (x <= 3)
    expected = torch.where(inside, x.round() - x, x.clamp(-4, 3)).sum() / (100 * 3) ** 0.5
    assert float(q.step.grad) == pytest.approx(float(expected), rel=1e-4)


def test_pact_clips_at_its_learned_alpha():
    from pdbviz.quant import activation_quantizer

    q = activation_quantizer("pact")(2)
    x = torch.tensor([-1.0, 0.5, 2.0, 5.9, 7.0, 9.0], requires_grad=True)
    y = q(x)
    assert torch.allclose(y, torch.tensor([0.0, 0.0, 2.0, 6.0, 6.0, 6.0]))
    y.sum().backward()
    assert float(q.alpha.grad) == pytest.approx(2.0)  # 1 for each input at or above alpha (7 and 9)
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


@settings(max_examples=60, deadline=None)
@given(x=tensors(), bits=st.sampled_from(BITS))
def test_activation_levels_range_idempotence(x, bits):
    q = quantize_activation(x, bits)
    assert len(torch.unique(q)) <= 2**bits
    assert q.min() >= 0 and q.max() <= 1
    assert torch.equal(quantize_activation(q, bits), q)
    n = 2**bits - 1
    expected = np.round(np.clip(x.numpy(), 0, 1) * n) / n
    np.testing.assert_allclose(q.numpy(), expected, atol=1e-6)


def test_activation_gradient_identity_inside_zero_outside():
    x = torch.tensor([-0.5, 0.0, 0.3, 0.99, 1.0, 1.5], requires_grad=True)
    quantize_activation(x, 2).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("fn", [dorefa_weight, symmetric_weight, quantize_activation])
@pytest.mark.parametrize("bits", [32, None])
def test_full_precision_is_identity(fn, bits):
    x = torch.randn(10)
    assert fn(x, bits) is x


@pytest.mark.parametrize("fn", [dorefa_weight, symmetric_weight, quantize_activation])
@pytest.mark.parametrize("bad", [0, -1, 9, 16, 33, 3.5, "4", True])
def test_bad_bits_are_rejected(fn, bad):
    with pytest.raises(ValueError, match="bits must be an integer in"):
        fn(torch.randn(3), bad)


def test_all_zero_weights_do_not_produce_nan():
    z = torch.zeros(5)
    for bits in (1, 2, 4):
        assert torch.isfinite(dorefa_weight(z, bits)).all()
        assert torch.equal(symmetric_weight(z, bits).abs(), z)


# -- TWN as published (Li & Liu 2016, arXiv 1605.04711) -----------------------------------------------------------
def _twn_reference(w: torch.Tensor) -> tuple[float, float]:
    """Δ = 0.7 E|w| and α = the mean of |w| over {|w| > Δ}, in float64 from the paper's formulas."""
    a = np.abs(w.numpy().astype(np.float64))
    delta = 0.7 * a.mean()
    return delta, a[a > delta].mean()


def _weights(name: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    if name == "gaussian":
        return 0.05 * torch.randn(64, 32, 3, 3, generator=g)
    if name == "laplace":
        return torch.distributions.Laplace(0.0, 0.03).sample((5000,))
    if name == "outliers":  # many small weights and a few large ones: alpha/2 lies far above the threshold
        small = torch.linspace(-0.1, 0.1, 997)
        return torch.cat([small, torch.tensor([3.0, -4.0, 5.0])])
    if name == "one-signed":  # a structured kernel: all positive, a ramp
        return torch.arange(1, 401, dtype=torch.float32).reshape(20, 20) / 400
    raise KeyError(name)


@pytest.mark.parametrize("name", ["gaussian", "laplace", "outliers", "one-signed"])
def test_twn_threshold_scale_and_zero_fraction_are_the_published_ones(name):
    w = _weights(name)
    delta, alpha = _twn_reference(w)
    a = np.abs(w.numpy().astype(np.float64))
    assert np.abs(a - delta).min() > 1e-9 * delta  # no weight on the threshold: the comparison is unambiguous
    q = symmetric_weight(w, 2).numpy()
    zero = q == 0
    assert zero.mean() == np.mean(a <= delta)  # exactly the weights at or below Δ are zero
    assert np.array_equal(zero, a <= delta)
    np.testing.assert_allclose(np.abs(q[~zero]), alpha, rtol=1e-6)  # every other weight is ±α
    assert np.array_equal(np.sign(q[~zero]), np.sign(w.numpy()[~zero]))
    assert len(np.unique(q)) == (2 if name == "one-signed" else 3)  # {-α, 0, α}; no negative weight in one-signed
    assert float(symmetric_step(w, 2)) == pytest.approx(alpha, rel=1e-6)


def test_twn_zero_fraction_of_gaussian_weights_is_the_normal_law_at_the_threshold():
    # |w| <= 0.7 E|w| for w ~ N(0, s²): E|w| = s sqrt(2/pi), so P = erf(0.7 sqrt(2/pi) / sqrt(2)) = erf(0.7 / sqrt(pi))
    w = torch.randn(200_000, generator=torch.Generator().manual_seed(0))
    expected = math.erf(0.7 / math.sqrt(math.pi))
    assert float((symmetric_weight(w, 2) == 0).float().mean()) == pytest.approx(expected, abs=0.004)


def test_twn_gradient_is_straight_through_inside_alpha():
    w = torch.tensor([-2.0, -1.0, -0.2, 0.1, 0.75, 1.2, 2.0], requires_grad=True)
    q = symmetric_weight(w, 2)
    _, alpha = _twn_reference(w.detach())
    g = torch.arange(1.0, 8.0)
    q.backward(g)
    assert w.grad.tolist() == torch.where(w.detach().abs() <= alpha, g, torch.zeros_like(g)).tolist()


# -- levels and grids against the published formulas --------------------------------------------------------------
def _uniform(n=100_000, lo=-1.0, hi=1.0, seed=0):
    return lo + (hi - lo) * torch.rand(n, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6, 7, 8])
def test_dorefa_has_2k_levels_on_the_papers_grid(bits):
    from pdbviz.quant import weight_quantizer

    w = _uniform(seed=bits)
    q = dorefa_weight(w, bits)
    values = torch.unique(q).double()
    n = 2**bits - 1
    assert len(values) == 2**bits == weight_quantizer("dorefa").levels(bits)
    a = float(q.abs().max())
    expected = a * (2 * torch.arange(n + 1, dtype=torch.float64) / n - 1)  # a (2 i / (2^k - 1) - 1), i = 0..n
    assert torch.allclose(values, expected, rtol=0, atol=1e-6 * a)


@pytest.mark.parametrize("mode", ["dorefa", "symmetric"])
def test_binary_has_two_levels_at_mean_abs(mode):
    from pdbviz.quant import weight_quantizer

    w = _uniform(1000, seed=1)
    q = weight_quantizer(mode)(1)(w)
    s = float(w.abs().mean())
    assert weight_quantizer(mode).levels(1) == 2
    assert torch.unique(q).tolist() == pytest.approx([-s, s], rel=1e-6)
    assert torch.equal(q > 0, w >= 0)


@pytest.mark.parametrize("bits", [3, 4, 5, 8])
def test_symmetric_has_2k_minus_1_levels_with_a_zero(bits):
    from pdbviz.quant import weight_quantizer

    w = _uniform(seed=bits)
    q = symmetric_weight(w, bits)
    m, s = 2 ** (bits - 1) - 1, float(symmetric_step(w, bits))
    assert len(torch.unique(q)) == 2**bits - 1 == weight_quantizer("symmetric").levels(bits)
    assert torch.equal(torch.unique(q), torch.arange(-m, m + 1, dtype=torch.float32) * s)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_lsq_has_the_signed_k_bit_grid_of_its_step(bits):
    from pdbviz.quant import weight_quantizer

    quantizer = weight_quantizer("lsq")(bits)
    qn, qp = 2 ** (bits - 1), 2 ** (bits - 1) - 1
    with torch.no_grad():
        quantizer.step.fill_(0.25)
        q = quantizer(_uniform(lo=-0.25 * (qn + 2), hi=0.25 * (qp + 2), seed=bits))
    assert len(torch.unique(q)) == 2**bits == quantizer.levels(bits)
    assert torch.equal(torch.unique(q), torch.arange(-qn, qp + 1, dtype=torch.float32) * 0.25)


@pytest.mark.parametrize("mode", ["dorefa", "pact"])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_activation_quantizers_have_2k_levels_on_their_grid(mode, bits):
    from pdbviz.quant import activation_quantizer

    quantizer = activation_quantizer(mode)(bits)
    top = 1.0 if mode == "dorefa" else 6.0  # PACT's clip starts at 6
    with torch.no_grad():
        q = quantizer(_uniform(lo=-0.2 * top, hi=1.2 * top, seed=bits))
    n = 2**bits - 1
    assert len(torch.unique(q)) == 2**bits == quantizer.levels(bits)
    assert torch.allclose(torch.unique(q), torch.arange(n + 1) * (top / n), atol=1e-6 * top)
    grid = quantizer.integer_grid()
    assert (grid.scale, grid.zero_point, grid.signed, grid.int_range) == (pytest.approx(top / n), 0, False, (0, n))
