"""The main job: the default comparison on the embedded digits, with a full report."""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def run_demo(out: str | Path = "pdbviz-demo", dataset: str = "digits", model: str = "lenet", seeds=(0,),
             epochs: int = 20, finetune_epochs: int = 3, static: bool = True, umap: bool = True,
             progress: bool = True) -> dict:
    """Run ``compare`` with the default schedules and write ``out/report.html`` and friends.

    Returns ``{"results": Results, "report": Path, "figures": {...}, "seconds": float, "static_error": ...}``.
    """
    import pdbviz
    from pdbviz.analysis import embed_layers, quantization_error, warm_up_umap
    from pdbviz.report import standard_figures, write_report

    t0 = time.perf_counter()
    warm = warm_up_umap(background=True) if umap else None  # compile numba while the models train
    data = pdbviz.load_dataset(dataset)
    results = pdbviz.compare(data, model=model, seeds=seeds, epochs=epochs, finetune_epochs=finetune_epochs,
                             progress=progress)
    float_model = results.models[(results.label_of("float"), results.config["seeds"][0])]
    embedding = None
    if umap:
        if warm is not None:
            warm.join()
        embedding = embed_layers(float_model, data, n_samples=1000)
    ref = pdbviz.BitSchedule.decreasing(float_model)
    errors = quantization_error(float_model, ref)
    layer = ref.layers[2] if len(ref.layers) > 2 else ref.layers[-1]
    w = pdbviz.quant.float_weight(float_model, layer)
    wq = pdbviz.dorefa_weight(w, 2)
    memory = {}
    for entry in ("float", "2", "halving", "increasing"):
        label = results.label_of(entry)
        if label is not None:
            memory[label] = pdbviz.memory_table(float_model, results.schedule(label))
    figures = standard_figures(results, embedding=embedding, errors=errors, staircase=(w, wq, 2, layer),
                               memory=memory)
    formats = ("html", "svg", "pdf", "png") if static else ("html",)
    info = write_report(results, out, figures, formats=formats, title=f"pdbviz demo: {model} on {dataset}")
    info.update(results=results, seconds=time.perf_counter() - t0)
    return info
