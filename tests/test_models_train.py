import threading

import pytest
import torch
from torch import nn

import pdbviz
from pdbviz import (BitSchedule, Callback, DivergenceError, LambdaCallback, StopEvent, build_model, evaluate, finetune,
                    fit, load_dataset, load_model, quantizable_layers, quantize, save_model)
from pdbviz.models import MODELS

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_shapes(name, shape):
    if name == "vgg-small" and shape != (3, 32, 32):
        width = 0.125
    else:
        width = 0.25 if name == "vgg-small" else 1
    m = build_model(name, shape, 7, width=width)
    assert m(torch.zeros(3, *shape)).shape == (3, 7)
    layers = quantizable_layers(m)
    stages = pdbviz.quant.protocol.stage_indices(m, layers)
    assert len(stages) == len(layers) and stages[0] == 0
    assert m.pdbviz_info.input_shape == shape and m.pdbviz_info.config["name"] == name
    # ResNet-20: stem, three stages, head; the ViT: patch embedding, four blocks, head
    expected = {"resnet20": 5, "vit": 6}.get(name, len(layers))
    assert len(set(stages)) == expected


def test_documented_layer_orders():
    assert quantizable_layers(build_model("lenet")) == ["conv1", "conv2", "fc1", "fc2", "fc3"]
    assert quantizable_layers(build_model("mlp")) == ["fc1", "fc2", "fc3"]
    assert quantizable_layers(build_model("vgg-small", (3, 32, 32), width=0.125)) == [
        "conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "fc1", "fc2"]
    r = quantizable_layers(build_model("resnet20", (3, 32, 32)))
    assert len(r) == 22 and r[0] == "conv1" and r[-1] == "fc"
    assert r.index("stage2.0.shortcut.0") == r.index("stage2.0.conv2") + 1
    v = quantizable_layers(build_model("vit"))
    assert len(v) == 18 and v[0] == "patch" and v[-1] == "head"
    assert v[1:5] == ["blocks.0.attn.qkv", "blocks.0.attn.proj", "blocks.0.mlp.fc1", "blocks.0.mlp.fc2"]


def test_vit_schedules_give_one_value_per_block():
    m = build_model("vit", (1, 8, 8), 10)
    w = BitSchedule.from_string("8-4-2-1", m).w_bits
    assert w[0] == 8 and w[1:5] == [4] * 4 and w[5:9] == [2] * 4 and w[9:] == [1] * 9
    with pytest.raises(ValueError, match="for only 6 stages"):  # patch, four blocks, head
        BitSchedule.from_string("8-8-8-8-8-8-8", m)
    q = quantize(m, "8-4-2-1")
    x = torch.randn(4, 1, 8, 8)
    assert q(x).shape == (4, 10) and not torch.equal(q(x), m(x))
    assert torch.equal(quantize(m, "32")(x), m(x))  # 32 bits: the float layers, bit for bit


def test_vgg_small_parameter_counts_and_8421_average_bits():
    m = build_model("vgg-small", (3, 32, 32), 10)
    report = pdbviz.memory_report(m, BitSchedule.decreasing(m))
    assert report.table.params.tolist()[:3] == [3456, 147456, 294912]
    assert int(report.table.params[3:].sum()) == 12527616
    assert round(report.summary.avg_bits, 2) == 1.06


def test_build_model_errors():
    with pytest.raises(ValueError, match="unknown model name 'resnet18'.*Did you mean 'resnet20'"):
        build_model("resnet18")
    with pytest.raises(ValueError, match="input_shape must be"):
        build_model("lenet", (8, 8))
    with pytest.raises(ValueError, match="num_classes must be an integer >= 2"):
        build_model("lenet", num_classes=1)
    with pytest.raises(ValueError, match="width must be a number"):
        build_model("lenet", width=0)


@pytest.mark.parametrize("name", MODELS)
def test_quantize_and_fit_each_model(name, digits):
    small = digits.subset(96, 48)
    m = build_model(name, small.input_shape, 10, width=0.125 if name == "vgg-small" else 0.5)
    q = quantize(m, BitSchedule.decreasing(m, a_bits=4))
    before = [p.detach().clone() for p in q.parameters()]
    h = fit(q, small, epochs=1, batch_size=32, progress=False)
    assert len(h) == 1 and 0 <= h.final_test_acc <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, q.parameters()))


def test_fit_learns_and_is_deterministic(digits):
    runs = []
    for _ in range(2):
        m = build_model("lenet", digits.input_shape, 10)
        h = fit(m, digits, epochs=3, lr=3e-3, seed=5, progress=False)
        runs.append((h.to_frame().drop(columns="seconds"), [p.detach().clone() for p in m.parameters()]))
    assert runs[0][0].equals(runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))
    assert runs[0][0].test_acc.iloc[-1] > 0.9
    m = build_model("lenet", digits.input_shape, 10)
    h = fit(m, digits, epochs=3, lr=3e-3, seed=6, progress=False)
    assert not h.to_frame().loss.equals(runs[0][0].loss)


def test_callbacks_see_events_and_can_stop(digits):
    events = []

    class Recorder(Callback):
        def on_train_begin(self, s): events.append("begin")
        def on_epoch_begin(self, s): events.append(f"epoch{s.epoch}")
        def on_batch_end(self, s):
            events.append("batch")
            if s.epoch == 2 and s.batch == 3:
                s.stop("enough")
        def on_train_end(self, s): events.append("end")

    m = build_model("mlp", digits.input_shape, 10)
    h = fit(m, digits, epochs=5, batch_size=100, progress=False, callbacks=[Recorder()])
    assert events[0] == "begin" and events[-1] == "end"
    assert events.count("epoch1") == 1 and events.count("epoch3") == 0
    assert events.count("batch") == 14 + 3
    assert h.stop_reason == "enough" and len(h) == 2
    assert h.records[0]["complete"] and not h.records[1]["complete"]
    assert not m.training
    assert 0 <= evaluate(m, digits)["accuracy"] <= 1


def test_stop_event_and_keyboard_interrupt_leave_model_usable(digits):
    ev = threading.Event()
    ev.set()
    m = build_model("mlp", digits.input_shape, 10)
    h = fit(m, digits, epochs=3, progress=False, callbacks=[StopEvent(ev)])
    assert h.stop_reason == "stopped by the user" and len(h) == 1

    def interrupt(s):
        if s.batch == 2:
            raise KeyboardInterrupt

    m = build_model("mlp", digits.input_shape, 10)
    h = fit(m, digits, epochs=3, progress=False, callbacks=[LambdaCallback(on_batch_end=interrupt)])
    assert h.stop_reason == "interrupted" and len(h) == 1 and not h.records[0]["complete"]
    assert not m.training and torch.isfinite(m(digits.X_test[:4])).all()


def test_divergence_names_epoch_and_lr(digits):
    m = build_model("mlp", digits.input_shape, 10)
    with torch.no_grad():
        m.fc3.bias.fill_(float("nan"))
    with pytest.raises(DivergenceError, match="epoch 1, batch 1, with lr=0.5"):
        fit(m, digits, epochs=2, lr=0.5, lr_schedule="constant", progress=False)


def test_fit_errors(digits):
    m = build_model("mlp", digits.input_shape, 10)
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        fit(m, digits, epochs=0)
    with pytest.raises(ValueError, match="lr must be a positive number, got -1"):
        fit(m, digits, lr=-1)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        fit(m, digits, optimizer="lion", progress=False)
    with pytest.raises(ValueError, match="a tuple must have 2 or 4 items, got 3"):
        fit(m, [1, 2, 3])
    with pytest.raises(TypeError, match="data must be a pdbviz Data, a dataset name"):
        fit(m, 42)
    with pytest.raises(ValueError, match=r"X has 10 samples, y has shape \(9,\)"):
        fit(m, (digits.X_train[:10], digits.y_train[:9]))
    bad = digits.X_train[:10].clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        fit(m, (bad, digits.y_train[:10]))
    with pytest.raises(ValueError, match="device must be"):
        fit(m, digits, device="tpu9")


def test_finetune_is_fast_path_and_leaves_float_model(digits):
    m = build_model("lenet", digits.input_shape, 10)
    fit(m, digits, epochs=2, progress=False)
    state = {k: v.clone() for k, v in m.state_dict().items()}
    q, h = finetune(m, "8-4-2-1", digits, epochs=1, progress=False)
    assert pdbviz.schedule_of(q).to_string() == "8-4-2-1"
    assert all(torch.equal(v, m.state_dict()[k]) for k, v in state.items())


def test_checkpoint_round_trip(tmp_path, digits):
    m = build_model("lenet", digits.input_shape, 10)
    q, _ = finetune(m, "8-4-2-1/8", digits, epochs=1, progress=False)
    path = save_model(q, tmp_path / "q.pt")
    loaded = load_model(path)
    assert pdbviz.schedule_of(loaded) == pdbviz.schedule_of(q)
    with torch.no_grad():
        assert torch.equal(loaded(digits.X_test), q.eval()(digits.X_test))
    # a model not from the zoo needs its architecture
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    p2 = save_model(quantize(net, "2"), tmp_path / "n.pt")
    with pytest.raises(ValueError, match="pass its architecture"):
        load_model(p2)
    assert pdbviz.schedule_of(load_model(p2, model=net)).w_bits == [2]


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_model(tmp_path / "none.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ValueError, match="not a readable pdbviz checkpoint"):
        load_model(bad)
    good = save_model(build_model("mlp"), tmp_path / "g.pt")
    trunc = tmp_path / "t.pt"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ValueError, match="not a readable pdbviz checkpoint"):
        load_model(trunc)
    torch.save({"format": "pdbviz-checkpoint", "version": 9}, tmp_path / "v.pt")
    with pytest.raises(ValueError, match="checkpoint version 9"):
        load_model(tmp_path / "v.pt")
    with pytest.raises(ValueError, match="does not fit this model"):
        load_model(good, model=build_model("lenet"))
