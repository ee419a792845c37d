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
