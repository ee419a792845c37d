"""What the dashboards share: error display, background work, small formatting."""

from __future__ import annotations

import html
import logging
import threading
import traceback
from collections.abc import Callable

log = logging.getLogger(__name__)


def _widgets():
    try:
        import ipywidgets
    except ImportError as err:  # pragma: no cover - ipywidgets is a dependency
        raise ImportError("pdbviz.widgets needs ipywidgets 8: pip install ipywidgets") from err
    return ipywidgets


class ErrorArea:
    """An HTML box that shows the last error of a callback, so nothing is lost in a log."""

    def __init__(self):
        w = _widgets()
        self.widget = w.HTML(value="", layout=w.Layout(width="100%"))
        self.last_error: BaseException | None = None

    def show(self, err: BaseException, context: str = "") -> None:
        self.last_error = err
        log.debug("widget error", exc_info=err)
        tb = "".join(traceback.format_exception_only(type(err), err)).strip()
        where = f"{html.escape(context)}: " if context else ""
        self.widget.value = (f"<div style='color:#B00020;border-left:3px solid #B00020;padding:4px 8px;"
                             f"background:#FFF3F3'><b>{where}error</b> {html.escape(tb)}</div>")

    def clear(self) -> None:
        self.last_error = None
        self.widget.value = ""

    def guard(self, fn: Callable, context: str = "") -> Callable:
        """Wrap a callback: its exceptions are shown here instead of vanishing."""

        def wrapped(*args, **kwargs):
            try:
                result = fn(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a UI callback must report, not raise into the void
                self.show(err, context)
                return None
            return result

        return wrapped


class Worker:
    """Runs one job at a time in a daemon thread; errors go to an ``ErrorArea``."""

    def __init__(self, errors: ErrorArea, name: str):
        self.errors = errors
        self.name = name
        self.thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, job: Callable[[], None], context: str, on_done: Callable[[], None] | None = None) -> bool:
        if self.busy:
            return False

        def run():
            try:
                job()
            except Exception as err:  # noqa: BLE001 - shown in the widget
                self.errors.show(err, context)
            finally:
                if on_done is not None:
                    try:
                        on_done()
                    except Exception as err:  # noqa: BLE001
                        self.errors.show(err, context)

        self.thread = threading.Thread(target=run, name=f"pdbviz-{self.name}", daemon=True)
        self.thread.start()
        return True

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current job ends; True if it did within ``timeout``."""
        if self.thread is None:
            return True
        self.thread.join(timeout)
        return not self.thread.is_alive()


def kib(v: float) -> str:
    return f"{v:,.2f} KiB"


#: set to "1" to draw the dashboards' figures as static figures even where a FigureWidget would render
STATIC_ENV = "PDBVIZ_STATIC_FIGURES"


def widget_figures_supported() -> bool:
    """Whether plotly's ``FigureWidget`` can render here: not on Google Colab (no custom widget front end for
    it), not without ``anywidget`` (which plotly's widget needs), not when ``PDBVIZ_STATIC_FIGURES=1``."""
    import importlib.util
    import os
    import sys

    if os.environ.get(STATIC_ENV, "") not in ("", "0"):
        return False
    if "google.colab" in sys.modules:
        return False
    return importlib.util.find_spec("anywidget") is not None


class StaticFigure:
    """A plotly figure drawn as a static figure in an ``ipywidgets.Output``, with the part of the
    ``FigureWidget`` API the dashboards use (``data``, ``layout``, ``batch_update``, ``add_trace``,
    ``add_hline``): it is drawn again at the end of every batch update. Clicks on points do nothing."""

    def __init__(self, fig=None):
        import plotly.graph_objects as go

        w = _widgets()
        self.figure = go.Figure(fig)
        self.output = w.Output(layout=w.Layout(width="100%"))
        self.renders = 0
        self._depth = 0
        self.render()

    @property
    def data(self):
        return self.figure.data

    @property
    def layout(self):
        return self.figure.layout

    def render(self) -> None:
        """Draw the figure again (the last drawing is replaced)."""
        from IPython.display import display

        self.renders += 1
        with self.output:
            self.output.clear_output(wait=True)
            display(self.figure)

    def batch_update(self):
        """A context manager: change ``data`` and ``layout`` inside it; the figure is drawn once at the end."""
        import contextlib

        @contextlib.contextmanager
        def batch():
            self._depth += 1
            try:
                yield self
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self.render()

        return batch()

    def __getattr__(self, name):
        """Everything else of the figure (``add_trace``, ``add_hline``, ``update_xaxes``...): a method that adds
        or updates draws the figure again afterwards (outside a batch update)."""
        if name in ("figure", "output", "renders", "_depth"):
            raise AttributeError(name)
        attr = getattr(self.figure, name)
        if not (callable(attr) and name.startswith(("add_", "update_"))):
            return attr

        def changed(*args, **kwargs):
            attr(*args, **kwargs)
            if self._depth == 0:
                self.render()
            return self

        return changed


def figure_widget(fig=None, **kwargs):
    """A plotly ``FigureWidget`` of ``fig`` (a figure or a layout dict), or a ``StaticFigure`` where a
    FigureWidget cannot render (``widget_figures_supported``). Use ``view(f)`` to place it in a layout."""
    import plotly.graph_objects as go

    if widget_figures_supported():
        return go.FigureWidget(fig, **kwargs)
    return StaticFigure(go.Figure(fig, **kwargs))


def view(fig):
    """The ipywidget to put in a layout for ``figure_widget``'s result."""
    return fig.output if isinstance(fig, StaticFigure) else fig
