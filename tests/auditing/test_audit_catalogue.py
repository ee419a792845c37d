"""The audit is the oracle of the any-model catalogue: for timm, transformers and torch built-in models, in train
and eval mode, at "1", "8-4-2-1" and with input bits, no weight computes with more values than the memory report
says, every use is reported and traced, "32" is the float model bit for bit, and the packed round trip is exact."""

import warnings

import pytest
import torch

import pdbviz
from pdbviz.auditing import audit
from pdbviz.quant import discover

from catalogue_models import CATALOGUE

SCHEDULES = ("1", "8-4-2-1", "8-4-2-1/4")


def _call(model, x):
    out = model(**x) if isinstance(x, dict) else model(x)
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    return logits if logits is not None else out[0]


def _params(name, heavy):
    return pytest.param(name, marks=pytest.mark.slow) if heavy else name


@pytest.mark.parametrize("name", [_params(n, h) for n, (_, h) in CATALOGUE.items()])
def test_catalogue_model_computes_what_its_report_says(name, tmp_path):
    if name.startswith("timm"):
        pytest.importorskip("timm")
    if name.startswith("hf"):
        pytest.importorskip("transformers")
    model, x = CATALOGUE[name][0]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        discover(model, x)  # the float model's layout, by its example forward (load_packed reuses it)
        with torch.no_grad():
            y = _call(model, x)
            assert torch.equal(_call(pdbviz.quantize(model, "32", example_input=x), x), y)
        for schedule in SCHEDULES:
            q = pdbviz.quantize(model, schedule, example_input=x)
            report = audit(q, x)
            assert report.ok, f"{name} at {schedule}: {report.summary}\n{report}"
            assert report.uses >= 2 * (len(report.table.weight.unique()) - 1)
            quantized = report.table[report.table.w_bits < 32]
            assert len(quantized), f"{name} at {schedule}: nothing quantized"
            loaded = pdbviz.load_packed(pdbviz.save_packed(q, tmp_path / "m.pdbq"), model)
            q.eval()
            with torch.no_grad():
                assert torch.equal(_call(loaded, x), _call(q, x)), f"{name} at {schedule}: packed round trip"
