"""SeparabilityExplorer: per-layer UMAP and the separability profile, side by side."""

from __future__ import annotations

from ..analysis import METRICS, embed_layers, is_umap_warm, separability_profile, warm_up_umap
from ..analysis.separability import sample_split
from ..data import as_data
from ._common import ErrorArea, Worker, _widgets, figure_widget, view


class SeparabilityExplorer:
    """Slide through the layers: the UMAP of what each layer receives, and where it sits on the profile.

    Embeddings are computed in a background thread (numba's first compile
    included) with a visible progress state; the kernel stays free.

    Args:
        model: a trained model.
        data: any form ``as_data`` accepts (its test split is used, else its training split).
        n_samples: samples shown and measured.
        metrics: measures offered in the profile.
        seed: seed of the sample and of UMAP.
        start: begin computing embeddings at once (default True).
    """

    def __init__(self, model, data, n_samples: int = 1000, metrics=METRICS, seed: int = 0, start: bool = True):
        w = _widgets()
        import plotly.graph_objects as go

        from .. import plot

        data = as_data(data)
        self.model, self.data, self.n_samples, self.seed = model, data, n_samples, seed
        self.errors = ErrorArea()
        self.worker = Worker(self.errors, "embed")
        self.profile = separability_profile(model, data, metrics=metrics, n_samples=n_samples, seed=seed)
        self.layers = list(self.profile.layer)
        self.embedding = None
        self.layer = w.SelectionSlider(options=self.layers, value=self.layers[0], description="layer",
                                       continuous_update=True, layout=w.Layout(width="420px"))
        self.metric = w.Dropdown(options=list(metrics), value=list(metrics)[0], description="measure")
        self.progress = w.IntProgress(value=0, min=0, max=len(self.layers), description="UMAP",
                                      layout=w.Layout(width="300px"))
        self.status = w.HTML("waiting")
        self.profile_fig = figure_widget(plot.profile_figure(self.profile, metric=self.metric.value))
        self.profile_fig.add_trace(go.Scatter(x=[self.layers[0]], y=[self.profile[self.metric.value].iloc[0]],
                                              mode="markers", name="this layer", showlegend=False,
                                              marker={"size": 16, "color": "rgba(0,0,0,0)",
                                                      "line": {"width": 3, "color": "#D55E00"}}))
        palette = plot.TOL_MUTED
        labels = self._labels = sorted(int(v) for v in set(self.embedding_labels()))
        self.scatter = figure_widget(layout={"title": "UMAP", "width": 460, "height": 420,
                                               "template": "simple_white", "legend_title_text": "class"})
        for j, lab in enumerate(labels):
            name = data.classes[lab] if data.classes is not None and lab < len(data.classes) else str(lab)
            self.scatter.add_trace(go.Scatter(x=[], y=[], mode="markers", name=name,
                                              marker={"size": 4, "color": palette[j % len(palette)]}))
        self.scatter.update_xaxes(showticklabels=False)
        self.scatter.update_yaxes(showticklabels=False)
        self.layer.observe(self.errors.guard(lambda _c: self.show_layer(), "layer"), names="value")
        self.metric.observe(self.errors.guard(lambda _c: self.show_metric(), "measure"), names="value")
        self.widget = w.VBox([w.HBox([self.layer, self.metric]), w.HBox([self.progress, self.status]),
                              w.HBox([view(self.scatter), view(self.profile_fig)]), self.errors.widget])
        if start:
            self.start()

    def embedding_labels(self):
        """The labels of the samples shown (the same stratified sample the profile measures)."""
        return sample_split(self.data, self.n_samples, self.seed, "test")[1].tolist()

    def start(self) -> bool:
        """Compute all embeddings in the background (no-op while already running)."""

        def job():
            if not is_umap_warm():
                self.status.value = "compiling UMAP (first use in this kernel)…"
                warm_up_umap(background=False)
            self.status.value = "embedding layers…"

            def step(done, total, layer):
                self.progress.value = done
                self.status.value = f"embedded {layer} ({done}/{total})"

            self.embedding = embed_layers(self.model, self.data, n_samples=self.n_samples, seed=self.seed,
                                          progress=step)
            self.status.value = "ready"

        return self.worker.start(job, "UMAP", on_done=self.errors.guard(self.show_layer, "layer"))

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the embeddings are computed (or ``timeout`` seconds pass); True if done."""
        return self.worker.wait(timeout)

    def show_layer(self) -> None:
        """Show the selected layer: its point on the profile and its UMAP, once computed."""
        name = self.layer.value
        metric = self.metric.value
        row = self.profile[self.profile.layer == name].iloc[0]
        with self.profile_fig.batch_update():
            self.profile_fig.data[-1].x = [name]
            self.profile_fig.data[-1].y = [row[metric]]
        if self.embedding is None:
            return
        df = self.embedding[self.embedding.layer == name]
        with self.scatter.batch_update():
            for j, trace in enumerate(self.scatter.data):
                part = df[df.label == self._labels[j]]
                trace.x, trace.y = part.x.to_numpy(), part.y.to_numpy()
            self.scatter.layout.title.text = f"UMAP of the input of {name} ({metric} {row[metric]:.3g})"

    def show_metric(self) -> None:
        """Redraw the profile for the selected measure."""
        from .. import plot

        metric = self.metric.value
        fresh = plot.profile_figure(self.profile, metric=metric)
        with self.profile_fig.batch_update():
            self.profile_fig.data[0].y = fresh.data[0].y
            self.profile_fig.layout.yaxis.type = fresh.layout.yaxis.type
            self.profile_fig.layout.yaxis.title.text = fresh.layout.yaxis.title.text
        self.show_layer()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
