import copy

import pytest
import torch
import torchvision
from torch import nn

from pdbviz import (BitSchedule, BitSpec, QuantConv2d, QuantLinear, dequantize, dorefa_weight, quantizable_layers,
                    quantize, quantize_activation, schedule_of)
from pdbviz.quant import is_quant_layer, weight_quant


@pytest.mark.parametrize("spec", [None, BitSpec(), BitSpec(32, 32)])
def test_full_precision_layers_are_bit_identical(spec):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    fc = nn.Linear(20, 5)
    x = torch.randn(4, 3, 9, 9)
    z = torch.randn(4, 20)
    assert torch.equal(QuantConv2d.from_float(conv, spec)(x), conv(x))
    assert torch.equal(QuantLinear.from_float(fc, spec)(z), fc(z))


def test_quantized_layer_uses_quantized_weight_and_input():
    torch.manual_seed(0)
    fc = nn.Linear(6, 3)
    q = QuantLinear.from_float(fc, BitSpec(2, 2))
    x = torch.randn(5, 6)
    expected = torch.nn.functional.linear(quantize_activation(x, 2), dorefa_weight(fc.weight, 2), fc.bias)
    assert torch.allclose(q(x), expected)
    assert len(torch.unique(q.quantized_weight())) <= 4
    assert "w_bits=2, a_bits=2" in repr(q) and q.spec == BitSpec(2, 2)


def test_from_float_to_float_round_trip_and_type_errors():
    conv = nn.Conv2d(2, 4, 3, bias=False, groups=2, dilation=2)
    q = QuantConv2d.from_float(conv, BitSpec(4))
    assert (q.groups, q.dilation, q.bias) == (2, (2, 2), None)
    assert isinstance(q, QuantConv2d) and is_quant_layer(q)
    q.register_forward_hook(lambda *args: None)
    assert q.parametrizations.weight.original is conv.weight and not conv._forward_hooks  # shared, hooks apart
    back = q.to_float()
    assert type(back) is nn.Conv2d and torch.equal(back.weight, conv.weight)
    baked = q.to_float(bake=True)
    assert type(baked) is nn.Conv2d and len(torch.unique(baked.weight)) <= 16
    assert torch.equal(baked.weight, dorefa_weight(conv.weight, 4))
    with pytest.raises(TypeError, match="needs an nn.Linear, got Conv2d"):
        QuantLinear.from_float(conv)
    with pytest.raises(TypeError, match="spec must be a BitSpec"):
        QuantConv2d(1, 1, 1, spec=4)


def test_eval_cache_follows_weight_updates():
    torch.manual_seed(0)
    q = QuantLinear(8, 4, spec=BitSpec(2)).eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        y1 = q(x)
        assert q.weight is q.weight  # cached in eval mode without autograd
        assert torch.equal(q(x), y1)
        q.parametrizations.weight.original.mul_(-1)  # in-place change invalidates the cached weight
        y2 = q(x)
    assert not torch.equal(y1, y2)
    q.set_spec(BitSpec(8))
    with torch.no_grad():
        assert not torch.equal(q(x), y2)
    q.train()
    assert q.weight is not q.weight  # recomputed in training


def test_quantizable_layers_follow_forward_order(small_cnn):
    registered = [n for n, m in small_cnn.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert registered == ["head", "conv2", "conv1"]
    assert quantizable_layers(small_cnn) == ["conv1", "conv2", "head"]
    assert quantizable_layers(small_cnn, torch.zeros(1, 1, 16, 16)) == ["conv1", "conv2", "head"]


def test_quantize_returns_new_model_and_keeps_input(small_cnn):
    before = copy.deepcopy(small_cnn.state_dict())
    q = quantize(small_cnn, "8-4-2/4")
    assert isinstance(q.conv1, nn.Conv2d) and is_quant_layer(q.conv1) and is_quant_layer(q.head)
    assert type(small_cnn.conv1) is nn.Conv2d and not is_quant_layer(small_cnn.conv1)
    for k, v in small_cnn.state_dict().items():
        assert torch.equal(v, before[k])
    # the network input is never quantized; the others get their a_bits
    s = schedule_of(q)
    assert s["conv1"] == BitSpec(8, 32) and s["conv2"] == BitSpec(4, 4) and s["head"] == BitSpec(2, 4)
    assert s.w_bits == [8, 4, 2]
    x = torch.randn(2, 1, 16, 16)
    assert q.eval()(x).shape == (2, 10)
    # requantizing a quantized model changes specs; dequantize restores float layers
    q2 = quantize(q, "1")
    assert schedule_of(q2).w_bits == [1, 1, 1] and schedule_of(q).w_bits == [8, 4, 2]
    f = dequantize(q)
    small_cnn.eval(), f.eval()
    assert type(f.conv1) is nn.Conv2d and schedule_of(f) is None and torch.equal(f(x), small_cnn(x))
    # a deep copy of a quantized model is independent of it
    c = copy.deepcopy(q)
    dequantize(c)
    assert torch.equal(q(x), copy.deepcopy(q)(x)) and is_quant_layer(q.conv1)


def test_quantize_subset_leaves_other_layers_float(small_cnn):
    q = quantize(small_cnn, BitSchedule({"conv2": BitSpec(2)}))
    assert not is_quant_layer(q.conv1) and weight_quant(q.conv2).spec == BitSpec(2)


def test_quantize_errors(small_cnn):
    with pytest.raises(ValueError, match="does not have.*another model.*\\['conv1', 'conv2', 'head'\\]"):
        quantize(small_cnn, BitSchedule.uniform(["conv1", "fc9"], 4))
    with pytest.raises(ValueError, match="'bn1', a BatchNorm2d with no quantizable weight"):
        quantize(small_cnn, BitSchedule.uniform(["bn1"], 4))
    with pytest.raises(TypeError, match="schedule must be a BitSchedule or its one-line string"):
        quantize(small_cnn, 4)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        quantize("resnet", "4")
    with pytest.raises(ValueError, match="4 weight values for only 3 layers"):
        quantize(small_cnn, "8-4-2-1")


def test_resnet18_halves_per_stage_as_the_thesis_does():
    model = torchvision.models.resnet18(num_classes=10)
    names = quantizable_layers(model)
    assert names[0] == "conv1" and names[-1] == "fc" and len(names) == 21
    # downsample convs are called after the block's second conv
    assert names.index("layer2.0.downsample.0") == names.index("layer2.0.conv2") + 1
    sched = BitSchedule.from_string("8-4-2-1", model)
    stage = {n: (n.split(".")[0]) for n in names}
    expected = {"conv1": 8, "layer1": 4, "layer2": 2, "layer3": 1, "layer4": 1, "fc": 1}
    assert sched.w_bits == [expected[stage[n]] for n in names]
    assert BitSchedule.decreasing(model) == sched and sched.to_string(model) == "8-4-2-1"
    per_layer = BitSchedule.from_string("8-4-2-1", model, per="layer")
    assert per_layer.w_bits[:5] == [8, 4, 2, 1, 1]
    with pytest.raises(ValueError, match="7 weight values for only 6 stages \\(21 layers; a comma-separated"):
        BitSchedule.from_string("8-8-8-8-8-8-8", model)
    q = quantize(model, sched)
    assert schedule_of(q) == sched
    q.eval()
    with torch.no_grad():
        out = q(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_quantized_model_trains():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 3))
    q = quantize(net, "4/4")
    x, y = torch.randn(64, 10), torch.randint(0, 3, (64,))
    opt = torch.optim.Adam(q.parameters(), 1e-2)
    losses = []
    for _ in range(30):
        loss = nn.functional.cross_entropy(q(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] * 0.8
    assert all(p.grad is not None for p in q.parameters())


def test_transformer_encoder_keeps_its_fast_path_without_input_bits():
    from torch.utils._python_dispatch import TorchDispatchMode

    class Ops(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.names = set()

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.names.add(func._overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
    enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).eval()
    x = torch.randn(2, 5, 16)
    fused = []
    for schedule in ("8-4-2-1", "8-4-2-1/8"):
        q = quantize(enc, schedule, example_input=x).eval()
        ops = Ops()
        with torch.no_grad(), ops:
            q(x)
        fused.append("_transformer_encoder_layer_fwd" in ops.names)
    assert fused == [True, False]  # input bits need the pre-hook, which torch's fast path refuses


def test_old_style_weight_norm_copies_and_errors_say_what_to_do():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        net = nn.Sequential(torch.nn.utils.weight_norm(nn.Linear(8, 16)), nn.ReLU(), nn.Linear(16, 3))
    x = torch.randn(4, 8)
    q = quantize(net, "4", example_input=x)
    with torch.no_grad():
        assert q(x).shape == (4, 3)
    assert quantize(net, "32", example_input=x)(x).equal(net(x))
    with pytest.raises(ValueError, match=r"0\.weight_g, 0\.weight_v \(old-style torch\.nn\.utils\.weight_norm.*"
                                         r"parametrizations' versions, or remove_weight_norm first"):
        quantize(net, "8-4", example_input=x)


def test_transformers_conv1d_is_a_weight_kind_and_unknown_kinds_are_named():
    transformers = pytest.importorskip("transformers")
    from pdbviz.quant import discover

    conv = transformers.pytorch_utils.Conv1D(6, 4)  # nf=6 outputs, nx=4 inputs: weight (4, 6)
    net = nn.Sequential(conv, nn.ReLU(), nn.Linear(6, 2))
    x = torch.randn(3, 4)
    assert discover(net, x).names == ["0", "2"] and discover(net, x)["0"].kind == "Conv1D"
    q = quantize(net, "2-1", example_input=x)
    assert len(torch.unique(q[0].weight)) <= 4

    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4))
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x @ self.w)

    with pytest.raises(ValueError, match=r"for only 1 layers; not counted as layers: w \(Odd, a kind unknown"):
        quantize(Odd(), "8-4", example_input=torch.randn(2, 4))
