"""The fused input quantizers against the step-by-step formulas they replace: identical values and gradients."""

import pytest
import torch

from pdbviz.quant import activation_quantizer, quantize_activation


def _inputs(dtype, n, scale=1.0, seed=0):
    """Random values around [0, scale] plus exact ties (half steps), the ends, their neighbours and zeros."""
    g = torch.Generator().manual_seed(seed)
    rand = (torch.rand(4000, generator=g, dtype=torch.float64) * 1.6 - 0.3) * scale
    ties = (torch.arange(2 * n + 1, dtype=torch.float64) / (2 * n)) * scale
    ends = torch.tensor([0.0, -0.0, scale, 2 * scale, -scale], dtype=torch.float64)
    x = torch.cat([rand, ties, ends]).to(dtype)
    up, down = torch.nextafter(x, x + 1), torch.nextafter(x, x - 1)
    return torch.cat([x, up, down])


def _dorefa_reference(x, n, grad):
    """DoReFa's value, step by step, and its gradient: the identity on [0, 1], ends included, zero outside."""
    c = x.clamp(0, 1)
    return torch.round(c * n) / n, torch.where((x >= 0) & (x <= 1), grad, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_dorefa_inputs_match_the_formula_bit_for_bit(dtype, bits):
    n = 2**bits - 1
    x = _inputs(dtype, n)
    assert (x * n == torch.round(x * n) + 0.5).any()  # exact ties are among the inputs
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    a = x.clone().requires_grad_()
    q = quantize_activation(a, bits)
    q.backward(grad)
    ref, ref_grad = _dorefa_reference(x, n, grad)
    assert q.dtype == ref.dtype and torch.equal(q, ref)
    assert torch.equal(a.grad, ref_grad)
    assert a.grad[x == 0].ne(0).any() and a.grad[x == 1].ne(0).any()  # the ends pass the gradient
    with torch.no_grad():
        assert torch.equal(quantize_activation(x, bits), ref)


def _pact_reference(x, a, n):
    """PACT step by step, straight-through: at or above the clip the gradient goes to the clip, below 0 nowhere."""
    y = torch.where(x >= a, a, torch.where(x >= 0, x, 0 * x))
    return y + (torch.round(y * (n / a)) * (a / n) - y).detach()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bits", [1, 2, 4, 8])
def test_pact_inputs_match_the_formula_bit_for_bit(dtype, bits):
    n = 2**bits - 1
    q = activation_quantizer("pact")(bits).to(dtype)
    with torch.no_grad():
        q.alpha.fill_(2.5)
    x = _inputs(dtype, n, scale=2.5, seed=bits)
    assert (x == 2.5).any() and (x == 0).any()
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=dtype)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = q(a)
    out.backward(grad)
    alpha = q.alpha.detach().clone().requires_grad_()
    ref = _pact_reference(b, alpha.abs().clamp_min(1e-12), n)
    ref.backward(grad)
    assert torch.equal(out, ref)
    assert torch.equal(a.grad, b.grad)
    assert torch.equal(q.alpha.grad, alpha.grad)
    assert torch.equal(a.grad, torch.where((x >= 0) & (x < 2.5), grad, 0))
    with torch.no_grad():
        assert torch.equal(q(x), ref)


def test_pact_gives_the_whole_gradient_to_the_clip_at_the_clip():
    q = activation_quantizer("pact")(2)
    x = torch.tensor([-1.0, 0.0, 3.0, 6.0, 8.0], requires_grad=True)
    q(x).sum().backward()
    assert x.grad.tolist() == [0.0, 1.0, 1.0, 0.0, 0.0]
    assert float(q.alpha.grad) == 2.0  # 6 (the clip itself) and 8


def test_fused_quantizers_keep_the_memory_format_and_train_in_a_layer():
    import pdbviz

    model = pdbviz.quantize(pdbviz.build_model("lenet", (1, 28, 28), 10, seed=0), "4/4")
    x = torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    model(x).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    y = torch.randn(2, 3, 5, 5).contiguous(memory_format=torch.channels_last).requires_grad_()
    assert quantize_activation(y, 4).is_contiguous(memory_format=torch.channels_last)
