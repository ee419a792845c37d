"""The main job: the headline comparison with its claims, on embedded data, with a full report.

Two settings, both where the paper's question applies (a VGG-like network whose
late layers hold most of the weights, as in the thesis):

``quick`` (``pdbviz demo``)
    VGG-Small at 1/8 width on scikit-learn's 8x8 digits, 3 seeds.
``full`` (``pdbviz demo --full``)
    VGG-Small at 1/4 width on the embedded MNIST (5,000 images) padded to
    32x32, 5 seeds and longer training: the numbers for a paper table.

Both fine-tune every schedule from the float model of each seed, evaluate the
paper's claims (``Results.claims``) and write ``report.html``, the tables and
the figures.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: the schedules of the demo: float; the homogeneous baselines (binary, DoReFa 2 and 4 bits, ternary, LSQ 2
#: bits); 8-4-2-1; its increasing mirror; separability-allocated at the memory of 8-4-2-1
DEMO_SCHEDULES = ("float", "float:long", "1", "2", "4", "symmetric:2", "lsq:2", "halving", "increasing", "alloc:halving")


@dataclass(frozen=True)
class Setting:
    """One demo setting: the data, the model and how long it trains."""

    dataset: str
    model: str
    width: float
    seeds: tuple[int, ...]
    epochs: int
    finetune_epochs: int
    pad_to: int | None = None


#: The demo's settings by name: ``quick`` (the default, about a minute on a laptop CPU) and ``full`` (``--full``).
SETTINGS = {
    "quick": Setting("digits", "vgg-small", 0.125, (0, 1, 2), 12, 3),
    "full": Setting("mnist5k", "vgg-small", 0.25, (0, 1, 2, 3, 4), 30, 10, pad_to=32),
}


def _padded(data, size: int):
    """The images padded with the background value to ``size x size`` (MNIST is 28x28, VGG-Small wants 32x32)."""
    from torch.nn import functional as F

    from .data import Data

    h, w = data.input_shape[1:]
    top, left = (size - h) // 2, (size - w) // 2
    pad = (left, size - w - left, top, size - h - top)
    background = -data.mean[0] / data.std[0] if data.mean else 0.0
    return Data(f"{data.name}-{size}px", F.pad(data.X_train, pad, value=background), data.y_train,
                F.pad(data.X_test, pad, value=background), data.y_test, data.classes, data.mean, data.std,
                data.augment, {**data.info, "padded_to": size})


def run_demo(out: str | Path = "pdbviz-demo", setting: str = "quick", seeds=None, epochs: int | None = None,
             static: bool = True, umap: bool = True, progress: bool = True) -> dict:
    """Run the demo comparison of ``setting`` and write ``out/report.html`` and friends.

    Returns ``{"results": Results, "claims": DataFrame, "report": Path, "figures": {...}, "seconds": float,
    "static_error": ...}``.
    """
    from .analysis import embed_layers, quantization_error, warm_up_umap
    from .data import load_dataset
    from .experiment import compare
    from .quant import BitSchedule, dorefa_weight, float_weight, memory_table
    from .report import standard_figures, write_report

    if setting not in SETTINGS:
        raise ValueError(f"setting must be one of {tuple(SETTINGS)}, got {setting!r}")
    s = SETTINGS[setting]
    t0 = time.perf_counter()
    warm = warm_up_umap(background=True) if umap else None  # compile numba while the models train
    data = load_dataset(s.dataset)
    if s.pad_to:
        data = _padded(data, s.pad_to)
    results = compare(data, model=s.model, width=s.width, schedules=DEMO_SCHEDULES,
                      seeds=tuple(seeds) if seeds else s.seeds, epochs=epochs or s.epochs,
                      finetune_epochs=s.finetune_epochs, progress=progress)
    float_model = results.models[(results.label_of("float"), results.config["seeds"][0])]
    embedding = None
    if umap:
        if warm is not None:
            warm.join()
        embedding = embed_layers(float_model, data, n_samples=1000)
    ref = BitSchedule.decreasing(float_model)
    errors = quantization_error(float_model, ref)
    layer = ref.layers[len(ref.layers) // 2]
    w = float_weight(float_model, layer)
    memory = {}
    for entry in ("2", "symmetric:2", "halving", "increasing"):
        label = results.label_of(entry)
        if label is not None:
            memory[label] = memory_table(float_model, results.schedule(label))
    figures = standard_figures(results, embedding=embedding, errors=errors,
                               staircase=(w, dorefa_weight(w, 2), 2, layer), memory=memory)
    formats = ("html", "svg", "pdf", "png") if static else ("html",)
    title = f"pdbviz demo: {s.model} (width {s.width:g}) on {data.name}"
    info = write_report(results, out, figures, formats=formats, title=title)
    info.update(results=results, claims=results.claims(), seconds=time.perf_counter() - t0)
    return info
