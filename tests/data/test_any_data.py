"""One data argument everywhere: every entry point takes every accepted form, with the same meaning."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import pdbviz
from pdbviz import Data, as_data

D = pdbviz.load_dataset("digits").subset(n_train=120, n_test=60)
XTR, YTR, XTE, YTE = D.X_train, D.y_train, D.X_test, D.y_test


def _frame(X, y):
    df = pd.DataFrame(X.flatten(1).numpy(), columns=[f"p{i}" for i in range(64)])
    df["label"] = y.numpy()
    return df


FORMS = {
    "Data": lambda: D,
    "tensors (X, y, X, y)": lambda: (XTR, YTR, XTE, YTE),
    "numpy (X, y, X, y)": lambda: (XTR.numpy(), YTR.numpy(), XTE.numpy(), YTE.numpy()),
    "numpy float64 + int32": lambda: (XTR.double().numpy(), YTR.int().numpy(), XTE.double().numpy(),
                                      YTE.int().numpy()),
    "Dataset pair": lambda: (TensorDataset(XTR, YTR), TensorDataset(XTE, YTE)),
    "DataLoader pair": lambda: (DataLoader(TensorDataset(XTR, YTR), batch_size=32, shuffle=True,
                                           generator=torch.Generator().manual_seed(0)),
                                DataLoader(TensorDataset(XTE, YTE), batch_size=64)),
}
TABULAR = {"DataFrame pair": lambda: (_frame(XTR, YTR), _frame(XTE, YTE))}


@pytest.fixture(scope="module")
def float_lenet():
    m = pdbviz.build_model("lenet", (1, 8, 8), 10)
    pdbviz.fit(m, D, epochs=2, progress=False)
    return m


@pytest.mark.parametrize("form", FORMS)
def test_fit_evaluate_finetune_calibrate_take_every_form(form, float_lenet):
    data = FORMS[form]()
    m = pdbviz.build_model("lenet", (1, 8, 8), 10)
    h = pdbviz.fit(m, data, epochs=1, progress=False)
    assert len(h) == 1 and 0 <= h.final_test_acc <= 1
    ev = pdbviz.evaluate(m, data)
    assert ev["n"] == 60 and ev["split"] == "test"
    assert ev["accuracy"] == pytest.approx(h.final_test_acc)
    q, hq = pdbviz.finetune(float_lenet, "4", data, epochs=1, progress=False)
    assert pdbviz.schedule_of(q).w_bits == [4] * 5 and len(hq) == 1
    before = q.bn1.running_mean.clone()
    pdbviz.calibrate(q, data, n_samples=64)
    assert not torch.equal(q.bn1.running_mean, before) and not q.training


@pytest.mark.parametrize("form", FORMS)
def test_measures_take_every_form(form, float_lenet):
    data = FORMS[form]()
    prof = pdbviz.separability_profile(float_lenet, data, metrics=("fisher",), n_samples=40)
    assert prof.layer.tolist() == ["conv1", "conv2", "fc1", "fc2", "fc3", "logits"]
    feats = pdbviz.collect_features(float_lenet, data, n_samples=40)
    assert all(v.shape[0] == 40 for v in feats.values())
    sens = pdbviz.layer_sensitivity(float_lenet, data, bits=1, layers=["fc3"], n_calibration=32)
    assert sens.layer.tolist() == ["fc3"] and 0 <= sens.accuracy.iloc[0] <= 1


def test_forms_in_memory_give_the_same_numbers(float_lenet):
    """The same samples as tensors, arrays, float64 arrays or Datasets train and measure identically."""
    runs = {}
    for form in ("Data", "tensors (X, y, X, y)", "numpy (X, y, X, y)", "numpy float64 + int32", "Dataset pair"):
        m = pdbviz.build_model("lenet", (1, 8, 8), 10)
        runs[form] = pdbviz.fit(m, FORMS[form](), epochs=2, progress=False).to_frame().drop(columns="seconds")
    first = runs["Data"]
    for form, frame in runs.items():
        pd.testing.assert_frame_equal(frame, first, check_exact=True, obj=form)
    profiles = [pdbviz.separability_profile(float_lenet, FORMS[f](), metrics=("fisher",), n_samples=40)
                for f in ("Data", "numpy (X, y, X, y)", "Dataset pair")]
    for p in profiles[1:]:
        np.testing.assert_allclose(p.fisher, profiles[0].fisher, rtol=1e-5)


def test_tabular_data_through_the_pipeline():
    data = as_data(TABULAR["DataFrame pair"]())
    assert data.input_shape == (64,) and data.num_classes == 10
    m = pdbviz.build_model("mlp", data.input_shape, data.num_classes)
    h = pdbviz.fit(m, data, epochs=2, progress=False)
    assert h.final_test_acc > 0.3
    prof = pdbviz.separability_profile(m, data, metrics=("fisher", "probe"), n_samples=40)
    assert prof.layer.tolist() == ["fc1", "fc2", "fc3", "logits"]
    r = pdbviz.compare(data, model="mlp", schedules=["float", "2"], epochs=1, finetune_epochs=1, progress=False,
                       n_samples=40)
    assert r.table.n_seeds.tolist() == [1, 1] and r.config["dataset"] == "dataframe"
    # string labels become classes in sorted order; one frame with test_size gets a stratified test split
    df = _frame(XTR, YTR)
    df["label"] = np.where(YTR.numpy() % 2 == 0, "even", "odd")
    d2 = as_data(df, test_size=0.25)
    assert d2.classes == ("even", "odd") and len(d2.test) == 30 and len(d2.train) == 90


def test_compare_and_widgets_take_a_dataset_pair(float_lenet):
    data = FORMS["Dataset pair"]()
    r = pdbviz.compare(data, model="lenet", schedules=["2"], epochs=1, finetune_epochs=1, progress=False,
                       n_samples=40)
    assert r.table.schedule.tolist() == ["uniform 2-bit"] and r.table.n_seeds.iloc[0] == 1
    from pdbviz.widgets import BitAllocator

    ba = BitAllocator(float_lenet, data, epochs=1)
    assert ba.train() and ba.wait(60) and len(ba.runs) == 1


class _Generated(Dataset):
    """Images made on the fly: nothing is held in memory."""

    def __init__(self, n, shape=(1, 8, 8)):
        self.n, self.shape = n, shape

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.rand(self.shape, generator=g), i % 3


def test_a_streamed_dataset_is_never_materialised():
    data = as_data(_Generated(96), classes=3)
    assert not data.train.in_memory and data.classes == ("0", "1", "2")
    with pytest.raises(AttributeError, match="streams its train split from a _Generated"):
        data.X_train
    m = pdbviz.build_model("lenet", (1, 8, 8), 3)
    h = pdbviz.fit(m, data, epochs=1, batch_size=32, progress=False)
    assert len(h) == 1 and np.isnan(h.final_test_acc)
    assert pdbviz.evaluate(m, data)["split"] == "train"


def test_torchvision_fake_data_with_pil_images():
    import torchvision

    train = torchvision.datasets.FakeData(size=24, image_size=(3, 8, 8), num_classes=4, random_offset=0)
    test = torchvision.datasets.FakeData(size=12, image_size=(3, 8, 8), num_classes=4, random_offset=100)
    data = Data.from_dataset(train, test, classes=4)  # items are (PIL image, int)
    x, y = data.train.first()
    assert x.dtype == torch.float32 and 0 <= float(x.min()) and float(x.max()) <= 1 and data.input_shape == (3, 8, 8)
    m = pdbviz.build_model("lenet", data.input_shape, 4)
    assert len(pdbviz.fit(m, data, epochs=1, batch_size=8, progress=False)) == 1


def test_classes_are_inferred_and_checked():
    assert as_data((XTR, YTR)).classes == tuple(str(i) for i in range(10))
    assert as_data((XTR, YTR), classes=[f"c{i}" for i in range(10)]).classes[3] == "c3"
    with pytest.raises(ValueError, match="labels range over 0..9, but they must be in 0..2 for the 3 classes given"):
        as_data((XTR, YTR), classes=["a", "b", "c"])
    with pytest.raises(ValueError, match="labels range over -1..1"):
        as_data((XTR[:3], torch.tensor([-1, 0, 1])))
    with pytest.raises(ValueError, match="classes .* do not match the data's own"):
        as_data(D, classes=[f"c{i}" for i in range(10)])
    assert as_data(D, classes=list(D.classes)).classes == D.classes


def test_models_with_dict_or_tuple_outputs_take_an_output_selector():
    class DictNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = pdbviz.build_model("lenet", (1, 8, 8), 10)
            self.aux = torch.nn.Linear(64, 2)

        def forward(self, x):
            return {"logits": self.body(x), "aux": self.aux(x.flatten(1))}

    m = DictNet()
    with pytest.raises(ValueError, match="returns a dict with keys \\['logits', 'aux'\\].*pass output="):
        pdbviz.fit(m, D, epochs=1, progress=False)
    h = pdbviz.fit(m, D, epochs=1, progress=False, output="logits")
    assert 0 <= h.final_test_acc <= 1
    assert pdbviz.evaluate(m, D, output=lambda out: out["logits"])["n"] == 60
    seen = []
    h = pdbviz.fit(m, D, epochs=1, progress=False, output="logits",
                   loss=lambda logits, y: seen.append(1) or torch.nn.functional.cross_entropy(logits, y))
    assert len(seen) == D.train.n_batches(64) + 1  # the training batches, then the test split
    prof = pdbviz.separability_profile(m, D, metrics=("fisher",), n_samples=40, output="logits")
    assert prof.layer.iloc[-1] == "logits" and "aux" in prof.layer.tolist()
