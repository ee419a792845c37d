"""Any model: every weight a model computes with is quantized as the schedule, the memory report and
the packed file say, wherever it is used, or it is reported as float. Never a mismatch."""

import copy
import math
import warnings

import pytest
import torch
import torchvision
from torch import nn
from torch.nn import functional as F

import pdbviz
from pdbviz.quant import discover, float_weight, weight_quantizer


class MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Linear(8, 16)
        self.att = nn.MultiheadAttention(16, 2, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.emb(x)
        a, _ = self.att(h, h, h)
        return self.head(a.mean(1))


class CrossAttention(nn.Module):
    """Separate q/k/v weights (key and value have their own sizes), sequence-first."""

    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(8, 2, kdim=6, vdim=5)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        q, k, v = x[..., :8], x[..., 8:14], x[..., 14:19]
        return self.head(self.att(q, k, v)[0].mean(0))


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.out = nn.Linear(8, 3)

    def forward(self, x):
        return self.out(F.relu(F.linear(x, self.fc.weight, self.fc.bias)))


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.mid = nn.Linear(16, 16)
        self.head = nn.Linear(16, 50, bias=False)
        self.head.weight = self.emb.weight

    def forward(self, x):
        return self.head(F.relu(self.mid(self.emb(x))).mean(1))


class Alias(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(8, 8)
        self.b = self.a  # one module under two names
        self.c = nn.Linear(8, 3)

    def forward(self, x):
        return self.c(self.b(F.relu(self.a(x))))


class WSConv(nn.Conv2d):
    """Weight standardisation: a Conv2d subclass with its own forward."""

    def forward(self, x):
        w = self.weight
        w = (w - w.mean((1, 2, 3), keepdim=True)) / (w.std((1, 2, 3), keepdim=True) + 1e-5)
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class Standardised(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.c2, self.fc = WSConv(3, 8, 3, padding=1), WSConv(8, 8, 3), nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.c2(F.relu(self.c1(x))).mean((2, 3)))


class WeightNorm(nn.Module):
    def __init__(self, old_style: bool):
        super().__init__()
        norm = torch.nn.utils.weight_norm if old_style else torch.nn.utils.parametrizations.weight_norm
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.a = norm(nn.Linear(8, 16))
        self.b = nn.Linear(16, 3)

    def forward(self, x):
        return self.b(F.relu(self.a(x)))


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(3, 8, 3)
        self.t2 = nn.ConvTranspose2d(8, 4, 3)
        self.c3 = nn.Conv3d(4, 4, 1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        h = self.t2(self.c1(x).unsqueeze(-1))
        return self.fc(self.c3(h.unsqueeze(-1)).mean((2, 3, 4)))


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.lstm = nn.LSTM(8, 16, num_layers=2, batch_first=True)
        self.gru = nn.GRU(16, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h, _ = self.lstm(self.emb(x))
        h, _ = self.gru(h)
        return self.fc(h[:, -1])


def _vit():
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32,
                                                mlp_dim=64, num_classes=10)


def _swin():
    return torchvision.models.SwinTransformer(patch_size=[4, 4], embed_dim=16, depths=[2, 2], num_heads=[2, 2],
                                              window_size=[4, 4], num_classes=10)


IMG = (1, 3, 32, 32)
# name: (builder, example input, number of quantizable weights)
CATALOGUE = {
    "resnet18": (lambda: torchvision.models.resnet18(num_classes=10), IMG, 21),
    "mobilenet_v3_small": (lambda: torchvision.models.mobilenet_v3_small(num_classes=10), (2, 3, 32, 32), 54),
    "vit": (_vit, IMG, 10),
    "swin": (_swin, IMG, 19),
    "attention": (MHA, (2, 5, 8), 4),
    "cross attention": (CrossAttention, (4, 2, 19), 5),
    "functional": (Functional, (4, 8), 2),
    "tied": (Tied, "tokens50", 2),
    "alias": (Alias, (4, 8), 2),
    "subclass forward": (Standardised, (2, 3, 8, 8), 3),
    "weight_norm": (lambda: WeightNorm(False), (4, 8), 2),
    "old weight_norm": (lambda: WeightNorm(True), (4, 8), 1),
    "conv1d/transposed/3d": (Convs, (2, 3, 10), 4),
    "embedding and recurrent": (Recurrent, "tokens20", 8),
}


def _example(spec):
    if spec == "tokens50":
        return torch.randint(0, 50, (2, 6), generator=torch.Generator().manual_seed(0))
    if spec == "tokens20":
        return torch.randint(0, 20, (2, 7), generator=torch.Generator().manual_seed(0))
    return torch.randn(*spec, generator=torch.Generator().manual_seed(0))


def _model(name):
    build, spec, n = CATALOGUE[name]
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return build().eval(), _example(spec), n


def _plain(model):
    """A copy whose own parametrizations (weight_norm) are folded into plain weights."""
    from torch.nn.utils import parametrize

    plain = copy.deepcopy(model)
    for m in plain.modules():
        if parametrize.is_parametrized(m):  # a deep copy shares the parametrized class: give it its own
            m.__class__ = type(m.__class__.__name__, m.__class__.__bases__, dict(m.__class__.__dict__))
        for pname in list(getattr(m, "parametrizations", {}).keys()):
            parametrize.remove_parametrizations(m, pname, leave_parametrized=True)
    return plain


def _stored(model):
    """Every parameter and buffer, once."""
    return {id(t): t for t in list(model.parameters()) + list(model.buffers())}


@pytest.mark.parametrize("name", CATALOGUE)
def test_the_invariant_holds_on_every_model(name, tmp_path):
    model, x, n_weights = _model(name)
    layout = pdbviz.quant.discover(model, x)
    assert len(layout) == n_weights
    schedule = pdbviz.BitSchedule.from_list(layout.names, [(8, 4, 2, 1)[i % 4] for i in range(len(layout))])
    q = pdbviz.quantize(model, schedule, example_input=x).eval()
    # every weight the model computes with carries its quantized value, wherever it is used
    with torch.no_grad():
        out = q(x)
        replaced = {}
        for entry in layout.entries:
            bits = schedule[entry.name].w_bits
            expected = weight_quantizer("dorefa")(bits)(float_weight(model, entry.name))
            for path, pname in entry.owners:  # every owner of a shared weight sees the same quantized tensor
                assert torch.equal(getattr(q.get_submodule(path), pname), expected), (entry.name, path)
                replaced[f"{path}.{pname}" if path else pname] = expected
        # the float model with its weights replaced by their quantized values computes the same outputs
        assert torch.equal(torch.func.functional_call(_plain(model), replaced, (x,)), out)
    # what the report says is what is stored and computed
    report = pdbviz.memory_report(q)
    assert report.table.layer.tolist() == layout.names
    assert report.table.w_bits.tolist() == schedule.w_bits
    assert pdbviz.schedule_of(q) == schedule
    quantized = sum(e.stored for e in layout.entries)
    params = sum(p.numel() for p in model.parameters())
    assert report.summary.coverage == pytest.approx(quantized / params)
    stored_bits = sum(t.numel() * t.element_size() * 8 for t in _stored(model).values())
    assert report.summary.float32_total_kib == pytest.approx(stored_bits / 8192)
    # the packed file stores each weight once and reloads to identical outputs
    path = pdbviz.save_packed(q, tmp_path / "m.pdbq")
    size = path.stat().st_size
    assert report.summary.total_kib * 1024 <= size <= report.summary.total_kib * 1024 * 1.02 + 8192
    loaded = pdbviz.load_packed(path, model)
    with torch.no_grad():
        assert torch.equal(loaded(x), out)


@pytest.mark.parametrize("name", CATALOGUE)
def test_at_32_bits_every_model_is_bit_identical(name):
    model, x, _ = _model(name)
    with torch.no_grad():
        expected = model(x)
        assert torch.equal(pdbviz.quantize(model, "32", example_input=x).eval()(x), expected)
        # a quantizer attached at 32 bits (an identity parametrization) changes nothing either
        q = pdbviz.quantize(model, "32/8", example_input=x).eval()
        inputs = {n for n, s in pdbviz.schedule_of(q).items() if s.a_bits == 8} if pdbviz.schedule_of(q) else set()
        if not inputs:
            assert torch.equal(q(x), expected)


def test_functional_uses_are_found_and_their_inputs_stay_float():
    model, x, _ = _model("vit")
    layout = discover(model, x)
    uses = {e.name: e.use for e in layout.entries}
    assert uses["encoder.layers.encoder_layer_0.self_attention.out_proj"] == "functional"
    assert uses["encoder.layers.encoder_layer_0.self_attention"] == "module"
    assert layout["encoder.layers.encoder_layer_0.self_attention"].kind == "MultiheadAttention"
    with pytest.warns(UserWarning, match="inputs stay at 32 bits.*out_proj \\(its weight is used outside"):
        pdbviz.quantize(model, pdbviz.BitSchedule.uniform(layout.names, 4, 4), example_input=x)
    q = pdbviz.quantize(model, "4/4", example_input=x)  # the string form follows what can be computed
    s = pdbviz.schedule_of(q)
    assert s["encoder.layers.encoder_layer_0.self_attention.out_proj"].a_bits == 32
    assert s["encoder.layers.encoder_layer_0.mlp.0"].a_bits == 4 and s["conv_proj"].a_bits == 32
    table = pdbviz.memory_table(q)
    row = table.set_index("layer").loc["encoder.layers.encoder_layer_0.self_attention.out_proj"]
    assert row.input == "float: its weight is used outside its module's forward"
    # MACs of the attention projections come from the example forward
    att = table.set_index("layer").loc["encoder.layers.encoder_layer_0.self_attention"]
    assert att.macs == 17 * 32 * 96 and row.macs == 17 * 32 * 32 and att.bops == att.macs * 4 * 4


def test_input_quantization_reaches_every_observable_input():
    model, x, _ = _model("attention")
    q = pdbviz.quantize(model, "8/2", example_input=x).eval()
    seen = {}

    def keep(name):
        def hook(module, args, kwargs):
            seen.setdefault(name, args[0].detach().clone())
        return hook

    for name in ("att", "head"):
        q.get_submodule(name).register_forward_pre_hook(keep(name), with_kwargs=True)
    with torch.no_grad():
        q(x)
    levels = set(torch.tensor([0.0, 1 / 3, 2 / 3, 1.0]).tolist())
    for name in ("att", "head"):  # 2-bit inputs: four levels in [0, 1]
        assert set(torch.unique(seen[name]).tolist()) <= levels


def test_coverage_line_names_what_stays_float():
    model, x, _ = _model("vit")
    s = pdbviz.memory_summary(pdbviz.quantize(model, "8-4-2-1", example_input=x))
    line = s.coverage_line()
    assert line.startswith(f"{100 * s.coverage:.1f}% of parameters quantized; left float:")
    assert "15 biases" in line and "5 normalisation parameters" in line
    assert "class_token (a VisionTransformer parameter, not a weight kind" in line
    model, x, _ = _model("old weight_norm")
    line = pdbviz.memory_summary(pdbviz.quantize(model, "8", example_input=x)).coverage_line()
    assert "a.weight_g, a.weight_v (recomputed by an old-style weight_norm/spectral_norm hook" in line


def test_end_to_end_compression_counts_everything():
    model, x, _ = _model("resnet18")
    s = pdbviz.memory_summary(model, "1", example_input=x)
    stored_bits = sum(t.numel() * t.element_size() * 8 for t in list(model.parameters()) + list(model.buffers()))
    assert s.float32_total_kib == pytest.approx(stored_bits / 8192)
    assert s.compression_total == pytest.approx(s.float32_total_kib / s.total_kib)
    assert s.compression_total < s.compression and math.isclose(s.avg_bits, 1.0)


def test_stages_of_the_zoo_and_of_torchvision():
    r20 = pdbviz.build_model("resnet20", (3, 32, 32), 10)
    s = pdbviz.BitSchedule.from_string("8-4-2-1", r20)
    stage = {n: n.split(".")[0] for n in s}
    assert {stage[n]: spec.w_bits for n, spec in s.items()} == {"conv1": 8, "stage1": 4, "stage2": 2, "stage3": 1,
                                                                 "fc": 1}
    lenet = pdbviz.build_model("lenet")
    assert pdbviz.BitSchedule.from_string("8-4-2-1", lenet).w_bits == [8, 4, 2, 1, 1]


class _Residual(nn.Module):
    """A small ResNet: a stem and two residual blocks with BatchNorm, average-pooled (no max-pooling, whose ties
    either implementation may break its own way); small enough to compile in seconds."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(4))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(4))
        self.fc = nn.Linear(width, 10)

    def forward(self, x):
        h = torch.relu(self.bn(self.stem(x)))
        for i in (0, 2):
            r = torch.relu(self.bns[i](self.convs[i](h)))
            h = torch.relu(h + self.bns[i + 1](self.convs[i + 1](r)))
        return self.fc(h.mean((2, 3)))


def _compiled_step(schedule: str, dtype=torch.float32):
    """Gradients of one training step, eager and compiled, of a small residual network."""
    torch.manual_seed(0)
    q = pdbviz.quantize(_Residual(), schedule).to(dtype)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, 16, 16, generator=g).to(dtype), torch.randint(0, 10, (8,), generator=g)
    eager, compiled = q, copy.deepcopy(q)

    def step(model):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.detach()

    torch._dynamo.reset()
    loss_e, loss_c = step(eager), torch.compile(step, dynamic=False)(compiled)
    grads = [(pe.grad, pc.grad) for pe, pc in zip(eager.parameters(), compiled.parameters())]
    return float(loss_e), float(loss_c), grads


def test_a_compiled_residual_network_with_mixed_bits_computes_as_eager_in_float64():
    # In float32 every weight and input mode compiles to eager's loss and gradients (test_compile.py). With mixed
    # low-bit weights and quantized inputs after BatchNorms, float32 compiled and eager may differ: inductor's
    # BatchNorm sums in another order than eager's CPU kernel (the float model's compiled gradients are about 1e-4
    # from eager's here), and an input within a rounding error of a quantization boundary rounds the other way.
    # In float64 no input comes that close: the compiled step is eager's to float64's rounding.
    loss_e, loss_c, grads = _compiled_step("8-4-2-1/4", torch.float64)
    assert loss_c == pytest.approx(loss_e, rel=1e-12)
    assert len(grads) == 17 and all(torch.allclose(a, b, rtol=1e-10, atol=1e-14) for a, b in grads)


def test_quantized_models_export_and_trace():
    q = pdbviz.quantize(pdbviz.build_model("lenet", (1, 8, 8), 10), "8-4-2-1/4").eval()
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = q(x)
    exported = torch.export.export(q, (x,))
    assert torch.equal(exported.module()(x), expected)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(q, x)  # checks that tracing twice gives the same graph
    assert torch.equal(traced(x), expected)


def test_post_training_calibration_recovers_what_quantization_breaks():
    data = pdbviz.load_dataset("digits")
    model = pdbviz.build_model("lenet", data.input_shape, 10)
    pdbviz.fit(model, data, epochs=4, lr=3e-3, progress=False)
    float_acc = pdbviz.evaluate(model, data)["accuracy"]
    ptq = pdbviz.evaluate(pdbviz.quantize(model, "2"), data)["accuracy"]  # 2 bits break the BatchNorm statistics
    calibrated = pdbviz.quantize(model, "2", calibrate=data.X_train)
    assert pdbviz.evaluate(calibrated, data)["accuracy"] > ptq + 0.2
    again = pdbviz.calibrate(pdbviz.quantize(model, "2"), data, n_samples=None)
    assert pdbviz.evaluate(again, data)["accuracy"] >= float_acc - 0.1
