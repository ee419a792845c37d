"""A catalogue of bad input over the public API: each case gives the documented exception with a
message that names the parameter (or token), the bad value and what is allowed."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, IterableDataset, TensorDataset

import pdbviz
from pdbviz import BitSchedule, BitSpec
from pdbviz.analysis import fisher_score

DATA = pdbviz.load_dataset("digits")
LENET = pdbviz.build_model("lenet", DATA.input_shape, DATA.num_classes)
MLP = pdbviz.build_model("mlp", DATA.input_shape, DATA.num_classes)
LAYERS = pdbviz.quantizable_layers(LENET)
PROFILE = pdbviz.separability_profile(LENET, DATA, metrics=["fisher"], n_samples=100)
NAN_X = DATA.X_train[:20].clone()
NAN_X[0, 0, 0, 0] = float("nan")
INF_X = DATA.X_train[:20].clone()
INF_X[1, 0, 2, 2] = float("inf")


def _write(tmp, name, data: bytes):
    p = tmp / name
    p.write_bytes(data)
    return p


CASES = [
    # bit-widths
    ("bits 0", lambda t: BitSpec(0), ValueError, r"w_bits must be an integer in 1..8 or 32 .*got 0"),
    ("bits -1", lambda t: BitSpec(-1), ValueError, r"w_bits .*in 1..8 or 32.*got -1"),
    ("bits 3.5", lambda t: BitSpec(3.5), ValueError, r"w_bits .*got 3.5 of type float"),
    ("bits '4'", lambda t: BitSpec("4"), ValueError, r"w_bits .*got '4' of type str"),
    ("bits 33", lambda t: BitSpec(4, 33), ValueError, r"a_bits .*in 1..8 or 32.*got 33"),
    ("bits True", lambda t: BitSpec(True), ValueError, r"w_bits .*got True of type bool"),
    ("bits None as start", lambda t: BitSchedule.decreasing(LAYERS, start=None), ValueError,
     r"start must be an integer in 1..8, got None"),
    ("bits 32 as end", lambda t: BitSchedule.increasing(LAYERS, end=32), ValueError, r"end must be an integer in 1..8, got 32"),
    ("quantizer bits 9", lambda t: pdbviz.dorefa_weight(torch.randn(4), 9), ValueError, r"bits .*1..8 or 32.*got 9"),
    ("activation bits '2'", lambda t: pdbviz.quantize_activation(torch.rand(4), "2"), ValueError, r"bits .*got '2'"),
    ("sensitivity bits None", lambda t: pdbviz.layer_sensitivity(LENET, DATA, bits=None), ValueError,
     r"bits must be below 32"),
    ("weight mode", lambda t: BitSpec(2, weight_mode="binary"), ValueError,
     r"weight_mode must be one of \('dorefa', 'symmetric', 'lsq'\), got 'binary'"),
    # schedules
    ("schedule token", lambda t: BitSchedule.from_string("8-four", LAYERS), ValueError, r"token 'four' in '8-four'"),
    ("schedule count", lambda t: BitSchedule.from_string("8,4", LAYERS), ValueError,
     r"2 comma-separated weight values for 5 layers; give exactly 5"),
    ("schedule too long", lambda t: BitSchedule.from_string("8-4-2-1-1-1", LAYERS), ValueError,
     r"6 weight values for only 5 layers"),
    ("schedule for another model", lambda t: pdbviz.quantize(MLP, BitSchedule.decreasing(LAYERS)), ValueError,
     r"layer 'conv1', which MLP does not have \(was the schedule built for another model\?\).*\['fc1', 'fc2', 'fc3'\]"),
    ("schedule names a BatchNorm", lambda t: pdbviz.quantize(LENET, BitSchedule({"bn1": 2})), ValueError,
     r"'bn1', a BatchNorm2d with no quantizable weight; its quantizable weights are \['conv1'"),
    ("model without layers", lambda t: pdbviz.quantize(nn.ReLU(), "4"), ValueError, r"ReLU has no quantizable weight \(Conv, Linear, Embedding, attention or recurrent layers\)"),
    ("schedule dict version", lambda t: BitSchedule.from_dict({"format_version": 0, "layers": []}), ValueError,
     r"unsupported schedule format_version 0; this pdbviz reads versions 1 and 2"),
    ("memory table with foreign schedule",
     lambda t: pdbviz.memory_table(MLP, BitSchedule.uniform(["conv9"], 2)), ValueError, r"'conv9'.*does not have"),
    # data
    ("unknown dataset", lambda t: pdbviz.load_dataset("fashion"), ValueError,
     r"unknown dataset name 'fashion'; available: .*Did you mean 'fashion-mnist'"),
    ("dataset offline", lambda t: pdbviz.load_dataset("mnist", root=t), FileNotFoundError,
     r"'mnist' was not found in .*MNIST.*load_dataset\('mnist', root=.*download=True\)"),
    ("train_subset 0", lambda t: pdbviz.load_dataset("digits", train_subset=0), ValueError,
     r"train_subset must be a positive integer or None, got 0"),
    ("test_size", lambda t: pdbviz.load_dataset("digits", test_size=1.5), ValueError,
     r"test_size must be a float between 0 and 1, got 1.5"),
    # models
    ("unknown model", lambda t: pdbviz.build_model("vgg"), ValueError,
     r"unknown model name 'vgg'; available: mlp, lenet, vgg-small, resnet20, vit. Did you mean 'vgg-small'"),
    ("num_classes 1", lambda t: pdbviz.build_model("lenet", num_classes=1), ValueError, r"num_classes must be an integer >= 2, got 1"),
    ("input shape", lambda t: pdbviz.build_model("lenet", input_shape=(8, 8)), ValueError,
     r"input_shape must be \(channels, height, width\).*got \(8, 8\)"),
    # training
    ("mismatched input shape", lambda t: pdbviz.fit(LENET, (torch.randn(8, 3, 32, 32), torch.zeros(8, dtype=torch.long)),
                                                    progress=False), ValueError,
     r"LeNet cannot take the training inputs of shape \(3, 32, 32\) per sample \(torch.float32\); it expects \(1, 8, 8\)"),
    ("labels out of range", lambda t: pdbviz.fit(MLP, (DATA.X_train[:10], torch.full((10,), 12)), progress=False),
     ValueError, r"labels in 12..12, but the model has 10 outputs: labels must be in 0..9"),
    ("fractional labels", lambda t: pdbviz.fit(MLP, (DATA.X_train[:10], torch.full((10,), 0.5)), progress=False),
     ValueError, r"labels must be integer class labels, got non-integer values of dtype torch.float32"),
    ("NaN inputs", lambda t: pdbviz.fit(MLP, (NAN_X, DATA.y_train[:20]), progress=False), ValueError,
     r"the training split contains NaN or infinite values"),
    ("infinite inputs to evaluate", lambda t: pdbviz.evaluate(MLP, (INF_X, DATA.y_train[:20])), ValueError,
     r"NaN or infinite"),
    ("batch_size 0", lambda t: pdbviz.fit(MLP, DATA, batch_size=0), ValueError, r"batch_size must be a positive integer, got 0"),
    ("epochs 2.5", lambda t: pdbviz.fit(MLP, DATA, epochs=2.5), ValueError, r"epochs must be a positive integer, got 2.5"),
    ("lr string", lambda t: pdbviz.fit(MLP, DATA, lr="0.1"), ValueError, r"lr must be a positive number, got '0.1'"),
    ("optimizer", lambda t: pdbviz.fit(MLP, DATA, optimizer="adamax", progress=False), ValueError,
     r"optimizer must be one of \('adam', 'adamw', 'sgd'\), got 'adamax'"),
    ("evaluate split", lambda t: pdbviz.evaluate(MLP, DATA, split="val"), ValueError, r"split must be 'train' or 'test', got 'val'"),
    # analysis
    ("fisher single class", lambda t: fisher_score(np.random.rand(10, 3), np.zeros(10)), ValueError,
     r"y has 1 class\(es\); separability needs at least 2"),
    ("fisher empty", lambda t: fisher_score(np.zeros((0, 3)), np.zeros(0)), ValueError, r"X is empty"),
    ("fisher NaN", lambda t: fisher_score(np.array([[np.nan], [1.0]]), [0, 1]), ValueError, r"X contains NaN"),
    ("fisher shapes", lambda t: fisher_score(np.zeros((4, 2)), [0, 1, 0]), ValueError,
     r"one label per sample: X has 4 samples, y has shape \(3,\)"),
    ("profile single-class data", lambda t: pdbviz.separability_profile(LENET, (DATA.X_test[:30], torch.zeros(30, dtype=torch.long))),
     ValueError, r"1 class\(es\)"),
    ("unknown measure", lambda t: pdbviz.separability_profile(LENET, DATA, metrics=["silhouete"]), ValueError,
     r"unknown measure 'silhouete'; available: fisher, probe, knn, silhouette. Did you mean 'silhouette'"),
    ("profile NaN data", lambda t: pdbviz.separability_profile(MLP, (NAN_X, DATA.y_train[:20])), ValueError,
     r"the training split contains NaN or infinite values"),
    ("pool", lambda t: pdbviz.collect_features(LENET, DATA.X_test[:4], pool="max"), ValueError,
     r"pool must be one of \('auto', 'avg', 'flatten', 'project'\), got 'max'"),
    ("impossible budget", lambda t: pdbviz.allocate_bits(PROFILE, LENET, 0.5), ValueError,
     r"budget 0.5 is impossible with choices \[1, 2, 4, 8\]: the smallest feasible budget is 1 average bits"),
    ("budget text", lambda t: pdbviz.allocate_bits(PROFILE, LENET, "cheap"), ValueError,
     r"budget must be a positive number of average bits or a string like '64 KiB'.*got 'cheap'"),
    ("allocation metric", lambda t: pdbviz.allocate_bits(PROFILE, LENET, 2, metric="probe"), ValueError,
     r"metric 'probe' is not a column of the profile"),
    # files
    ("packed file corrupted", lambda t: pdbviz.load_packed(_write(t, "c.pdbq", _packed()[:-5] + b"\x00" * 5), LENET),
     pdbviz.PackedFormatError, r"corrupted: checksum mismatch"),
    ("packed file truncated", lambda t: pdbviz.load_packed(_write(t, "t.pdbq", _packed()[:100]), LENET),
     pdbviz.PackedFormatError, r"truncated"),
    ("packed file version", lambda t: pdbviz.load_packed(_write(t, "v.pdbq", _packed()[:8] + b"\x03\x00" + _packed()[10:]), LENET),
     pdbviz.PackedFormatError, r"packed format version 3; this pdbviz reads version 2"),
    ("packed file of another model", lambda t: pdbviz.load_packed(_write(t, "o.pdbq", _packed()), MLP), ValueError,
     r"written for another model"),
    ("checkpoint truncated", lambda t: pdbviz.load_model(_write(t, "m.pt", _checkpoint()[:300])), ValueError,
     r"not a readable pdbviz checkpoint \(truncated, corrupted or another format\)"),
    ("checkpoint garbage", lambda t: pdbviz.load_model(_write(t, "g.pt", b"\x00" * 64)), ValueError,
     r"not a readable pdbviz checkpoint"),
    ("checkpoint missing", lambda t: pdbviz.load_model(t / "none.pt"), FileNotFoundError, r"checkpoint not found: .*none.pt"),
    ("results missing", lambda t: pdbviz.Results.load(t), FileNotFoundError, r"no results.json in"),
    # every accepted data form has its own bad cases
    ("X without a sample axis", lambda t: pdbviz.as_data((torch.randn(10), torch.zeros(10, dtype=torch.long))),
     ValueError, r"X must have one row per sample, shape \(n, features...\)"),
    ("complex inputs", lambda t: pdbviz.fit(MLP, (torch.randn(4, 64, dtype=torch.complex64), torch.zeros(4, dtype=torch.long)),
                                            progress=False), TypeError, r"have dtype torch.complex64, which models cannot take"),
    ("object array inputs", lambda t: pdbviz.as_data((np.array([["a"] * 3] * 4, dtype=object), np.zeros(4, int))),
     TypeError, r"numpy dtype object, which is not numeric"),
    ("mismatched lengths", lambda t: pdbviz.as_data((np.zeros((5, 3)), np.zeros(4, int))), ValueError,
     r"one label per sample: X has 5 samples, y has shape \(4,\)"),
    ("empty arrays", lambda t: pdbviz.as_data((np.zeros((0, 3)), np.zeros(0, int))), ValueError,
     r"the training split is empty"),
    ("negative labels", lambda t: pdbviz.as_data((np.zeros((3, 2)), np.array([-1, 0, 1]))), ValueError,
     r"labels range over -1..1, but they must be in non-negative|labels range over -1..1"),
    ("labels beyond the classes", lambda t: pdbviz.as_data((np.zeros((3, 2)), np.array([0, 1, 5])), classes=3),
     ValueError, r"labels range over 0..5, but they must be in 0..2 for the 3 classes given"),
    ("one class", lambda t: pdbviz.as_data((np.zeros((3, 2)), np.zeros(3, int)), classes=1), ValueError,
     r"classes must be at least 2 class names or a count >= 2, got 1"),
    ("string labels outside the classes", lambda t: pdbviz.as_data((np.zeros((2, 2)), np.array(["a", "z"])),
                                                                  classes=["a", "b"]), ValueError,
     r"labels \['z'\] are not among classes \['a', 'b'\]"),
    ("test_size", lambda t: pdbviz.as_data((np.zeros((8, 2)), np.arange(8) % 2), test_size=2), ValueError,
     r"test_size must be a float between 0 and 1, or None, got 2"),
    ("tuple of three", lambda t: pdbviz.as_data((np.zeros((2, 2)), np.zeros(2), np.zeros(2))), ValueError,
     r"a tuple must have 2 or 4 items, got 3"),
    ("mixed tuple", lambda t: pdbviz.as_data((np.zeros((2, 2)), TensorDataset(torch.zeros(2, 2), torch.zeros(2)))),
     TypeError, r"a tuple must hold tensors or arrays .* got \(ndarray, TensorDataset\)"),
    ("frame without a label column", lambda t: pdbviz.as_data(pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1]})),
     ValueError, r"label: say which column of the DataFrame holds the labels .* \['a', 'b'\]"),
    ("frame label not a column", lambda t: pdbviz.as_data(pd.DataFrame({"a": [1.0, 2.0], "b": [0, 1]}), label="c"),
     ValueError, r"label 'c' is not a column of the training DataFrame"),
    ("frame with text features", lambda t: pdbviz.as_data(pd.DataFrame({"a": ["x", "y"], "label": [0, 1]})),
     TypeError, r"non-numeric feature columns: a \((object|str)\)"),
    ("dataset items not pairs", lambda t: pdbviz.as_data(_Items([torch.zeros(3)] * 4)), TypeError,
     r"dataset items must be \(input, label\) pairs, got a Tensor"),
    ("empty dataset", lambda t: pdbviz.as_data(_Items([])), ValueError, r"the training split is empty"),
    ("iterable dataset", lambda t: pdbviz.as_data(_Stream()), TypeError, r"an IterableDataset has no length"),
    ("loader of non-pairs", lambda t: pdbviz.as_data(DataLoader(_Items([torch.zeros(3)] * 4), batch_size=2,
                                                                collate_fn=lambda b: torch.stack(b))), TypeError,
     r"the training split must yield \(input, label\) batches, got Tensor"),
    ("NaN in a streamed batch", lambda t: pdbviz.fit(MLP, _Items([(NAN_X[0], 1), (NAN_X[1], 2)] * 2), progress=False),
     ValueError, r"NaN or infinite"),
    ("device", lambda t: pdbviz.evaluate(MLP, DATA, device="tpu"), ValueError,
     r"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device, got 'tpu'"),
    ("mlp shape for a conv model", lambda t: pdbviz.build_model("lenet", (30,), 2), ValueError,
     r"input_shape must be \(channels, height, width\) of positive sizes for 'lenet', got \(30,\); for tabular"),
    # experiment and figures
    ("compare without seeds", lambda t: pdbviz.compare(DATA, seeds=(), progress=False), ValueError, r"seeds is empty"),
    ("compare data type", lambda t: pdbviz.compare(42, progress=False), TypeError,
     r"data must be a pdbviz Data, a dataset name, \(X, y\) .* or a \(train, test\) pair of those; got int"),
    ("figure formats", lambda t: pdbviz.plot.save(__import__("plotly.graph_objects").graph_objects.Figure(), t / "f",
                                                  formats=("gif",)), ValueError,
     r"formats must be a non-empty selection of \('html', 'svg', 'pdf', 'png'\), got \('gif',\)"),
]

_CACHE = {}


class _Items(Dataset):
    """A map-style Dataset over a list of items."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


class _Stream(IterableDataset):
    def __iter__(self):
        yield torch.zeros(2), 0


def _packed() -> bytes:
    if "packed" not in _CACHE:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            _CACHE["packed"] = pdbviz.save_packed(pdbviz.quantize(LENET, "4"), Path(d) / "x.pdbq").read_bytes()
    return _CACHE["packed"]


def _checkpoint() -> bytes:
    if "ckpt" not in _CACHE:
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            _CACHE["ckpt"] = pdbviz.save_model(LENET, Path(d) / "x.pt").read_bytes()
    return _CACHE["ckpt"]


def test_catalogue_is_large():
    assert len(CASES) >= 40


@pytest.mark.parametrize("name, call, exc, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input(name, call, exc, pattern, tmp_path):
    with pytest.raises(exc, match=pattern) as info:
        call(tmp_path)
    # the error comes from pdbviz's own validation, not from deep inside torch, numpy or scikit-learn
    tb = info.tb
    while tb.tb_next is not None:
        tb = tb.tb_next
    origin = tb.tb_frame.f_code.co_filename
    assert "/pdbviz/" in origin.replace("\\", "/"), f"raised from {origin}"
