import hypothesis.strategies as st
import numpy as np
import pytest
import torch
from hypothesis import given, settings

from pdbviz import dorefa_weight, quantize_activation, symmetric_weight

BITS = [1, 2, 3, 4, 5, 6, 7, 8]


def tensors(min_size=2):
    return st.lists(
        st.floats(-10, 10, allow_nan=False, allow_infinity=False, width=32), min_size=min_size, max_size=300
    ).map(lambda xs: torch.tensor(xs, dtype=torch.float32))


@settings(max_examples=60, deadline=None)
@given(w=tensors(), bits=st.sampled_from(BITS))
def test_dorefa_weight_levels_and_range(w, bits):
    q = dorefa_weight(w, bits)
    values = torch.unique(q)
    assert len(values) <= 2**bits
    if bits >= 2:
        assert q.min() >= -1 and q.max() <= 1
        # every value is on the grid 2 i / (2^k - 1) - 1
        idx = (q + 1) * (2**bits - 1) / 2
        assert torch.allclose(idx, idx.round(), atol=1e-4)
    else:
        scale = w.abs().mean()
        assert torch.allclose(q.abs(), scale.expand_as(q))
        assert torch.all((q >= 0) == (w >= 0))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_dorefa_weight_matches_formula(bits):
    w = torch.randn(500, generator=torch.Generator().manual_seed(bits))
    t = np.tanh(w.numpy().astype(np.float64))
    wn = t / (2 * np.abs(t).max()) + 0.5
    n = 2**bits - 1
    expected = 2 * np.round(wn * n) / n - 1
    np.testing.assert_allclose(dorefa_weight(w, bits).numpy(), expected, atol=1e-6)
    # the weight of largest magnitude maps onto an end level
    q = dorefa_weight(w, bits)
    assert q[w.abs().argmax()].abs() == 1


def test_dorefa_binary_uses_mean_abs_scale_and_sign_of_zero():
    w = torch.tensor([0.0, -2.0, 1.0, 3.0])
    assert dorefa_weight(w, 1).tolist() == [1.5, -1.5, 1.5, 1.5]


@pytest.mark.parametrize("bits", BITS[1:])
def test_dorefa_weight_gradient_is_straight_through_round(bits):
    w = torch.randn(64, requires_grad=True, generator=torch.Generator().manual_seed(1))
    g = torch.randn(64)
    dorefa_weight(w, bits).backward(g)
    w2 = w.detach().clone().requires_grad_()
    t = torch.tanh(w2)
    (2 * (t / (2 * t.abs().max()) + 0.5) - 1).backward(g)  # the same map without round
    assert torch.allclose(w.grad, w2.grad, atol=1e-6)


def test_binary_weight_gradient_is_identity():
    w = torch.randn(32, requires_grad=True)
    g = torch.randn(32)
    dorefa_weight(w, 1).backward(g)
    assert torch.equal(w.grad, g)


@settings(max_examples=60, deadline=None)
@given(w=tensors(), bits=st.sampled_from(BITS[1:]))
def test_symmetric_levels_zero_and_idempotence(w, bits):
    q = symmetric_weight(w, bits)
    m = 2 ** (bits - 1) - 1
    assert len(torch.unique(q)) <= 2**bits - 1
    assert q.abs().max() <= 1
    assert torch.allclose(q * m, (q * m).round(), atol=1e-4)
    assert torch.equal(symmetric_weight(q, bits), q)
    # exact zero is a level: weights much smaller than the largest round to 0
    if w.abs().max() > 0:
        tiny = w.abs() < w.abs().max() / (4 * m)
        assert torch.all(q[tiny] == 0)


def test_symmetric_two_bits_is_ternary():
    w = torch.tensor([-1.0, -0.4, -0.1, 0.0, 0.2, 0.6, 0.9])
    assert symmetric_weight(w, 2).tolist() == [-1.0, -0.0, -0.0, 0.0, 0.0, 1.0, 1.0]


def test_symmetric_rejects_one_bit():
    with pytest.raises(ValueError, match="bits must be an integer in 2..8 or 32"):
        symmetric_weight(torch.randn(3), 1)


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
        if bits > 1:
            assert torch.equal(symmetric_weight(z, bits), z)
