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
