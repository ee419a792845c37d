"""Open every page of the built documentation in headless Chromium and check it as a reader would see it.

    python docs/check_site.py docs/_build/html [--screenshots DIR]

The site is served from 127.0.0.1; any request to another host is blocked and
reported (everything a page needs must come from the site itself). A page fails
when it logs a console error, throws, gets an HTTP error for one of its files,
or has a plotly figure or a widget that did not render. Exit status 0 when
every page passes, 1 otherwise; each failure is printed on one line.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-dev-shm-usage"]

#: pages to photograph with --screenshots: file name -> (page, full page?)
SCREENSHOTS = {
    "landing.png": ("index.html", False),
    "guide-quantizers.png": ("guide/quantizers.html", False),
    "api-quantize.png": ("api/generated/pdbviz.quant.quantize.html", False),
    "notebook-01.png": ("gallery/01_quantization_basics.html", True),
    "notebook-03.png": ("gallery/03_bit_allocation_explorer.html", True),
}

# What "rendered" means, evaluated in the page: every static plotly figure has drawn its SVG; every
# widget view has been replaced by its widget, and every plotly FigureWidget inside has drawn too.
RENDER_STATE = """() => {
  const figs = [...document.querySelectorAll('.plotly-graph-div')];
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const shown = views.filter(s => s.previousElementSibling && s.previousElementSibling.querySelector('.jupyter-widgets, .widget-box, .widget-inline-hbox, .lm-Widget'));
  const widgetPlots = [...document.querySelectorAll('.cell_output .lm-Widget .js-plotly-plot, .cell_output .widget-subarea .js-plotly-plot')];
  return {
    figures: figs.length, figuresDrawn: figs.filter(f => f.querySelector('.main-svg')).length,
    views: views.length, viewsShown: shown.length,
    widgetPlots: widgetPlots.length, widgetPlotsDrawn: widgetPlots.filter(f => f.querySelector('.main-svg')).length,
    anyModels: (() => { const s = document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]');
                        if (!s) return 0;
                        return Object.values(JSON.parse(s.textContent).state).filter(m => m.model_module === 'anywidget').length; })(),
  };
}"""


def _done(state: dict) -> bool:
    return (state["figuresDrawn"] == state["figures"] and state["viewsShown"] == state["views"]
            and state["widgetPlots"] >= min(state["anyModels"], 1) and state["widgetPlotsDrawn"] == state["widgetPlots"])


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``root`` on 127.0.0.1 (a free port) in a background thread; returns the server and its URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def pages_of(root: Path) -> list[str]:
    """Every HTML page of the site, relative to ``root``, with the theme's and Sphinx's own files left out."""
    skip = ("_static/", "_sources/", "_images/", "_vendor/")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not p.relative_to(root).as_posix().startswith(skip))


def check(root: Path, screenshots: Path | None = None, chromium: str | None = None,
          render_timeout: float = 60.0) -> list[str]:
    """Check every page of the site in ``root``; returns one line per problem (empty when all pass)."""
    from playwright.sync_api import sync_playwright

    chromium = chromium or shutil.which("chromium") or "/usr/bin/chromium"
    server, base = serve(root)
    local = urlsplit(base).netloc
    problems: list[str] = []
    rendered = {"figures": 0, "widgets": 0, "widget plots": 0}
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            current: dict[str, list[str]] = {"errors": []}

            def block_outside(route):
                if urlsplit(route.request.url).netloc != local and not route.request.url.startswith(("data:",
                                                                                                     "blob:")):
                    current["errors"].append(f"request outside the site: {route.request.url}")
                    return route.abort()
                return route.continue_()

            context.route("**/*", block_outside)
            page.on("console", lambda m: m.type == "error" and current["errors"].append(f"console error: {m.text}"))
            page.on("pageerror", lambda e: current["errors"].append(f"uncaught error: {e}"))
            page.on("response", lambda r: r.status >= 400 and current["errors"].append(f"HTTP {r.status}: {r.url}"))

            for rel in pages_of(root):
                current["errors"] = []
                page.goto(f"{base}/{rel}", wait_until="load")
                state = page.evaluate(RENDER_STATE)
                deadline = time.monotonic() + render_timeout
                while not _done(state) and time.monotonic() < deadline:
                    page.wait_for_timeout(250)
                    state = page.evaluate(RENDER_STATE)
                if not _done(state):
                    current["errors"].append(
                        f"not rendered after {render_timeout:.0f} s: {state['figuresDrawn']}/{state['figures']} "
                        f"figures, {state['viewsShown']}/{state['views']} widgets, "
                        f"{state['widgetPlotsDrawn']}/{state['widgetPlots']} widget plots")
                page.wait_for_timeout(100)  # late console errors from scripts that ran after rendering
                rendered["figures"] += state["figuresDrawn"]
                rendered["widgets"] += state["viewsShown"]
                rendered["widget plots"] += state["widgetPlotsDrawn"]
                problems += [f"{rel}: {e}" for e in dict.fromkeys(current["errors"])]
            if screenshots is not None:
                screenshots.mkdir(parents=True, exist_ok=True)
                for name, (rel, full) in SCREENSHOTS.items():
                    if not (root / rel).is_file():
                        problems.append(f"{rel}: missing, so no screenshot {name}")
                        continue
                    page.goto(f"{base}/{rel}", wait_until="load")
                    deadline = time.monotonic() + render_timeout
                    while not _done(page.evaluate(RENDER_STATE)) and time.monotonic() < deadline:
                        page.wait_for_timeout(250)
                    page.wait_for_timeout(500)
                    page.screenshot(path=str(screenshots / name), full_page=full)
            browser.close()
    finally:
        server.shutdown()
    pages = pages_of(root)
    failed = {line.split(": ", 1)[0] for line in problems}
    print(f"{len(pages)} pages checked: {rendered['figures']} plotly figures, {rendered['widgets']} widgets and "
          f"{rendered['widget plots']} plotly widgets rendered", flush=True)
    print(f"pages: {len(pages) - len(failed & set(pages))} passed, {len(failed & set(pages))} failed", flush=True)
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the built documentation in headless Chromium.")
    parser.add_argument("site", type=Path, help="the built site, e.g. docs/_build/html")
    parser.add_argument("--screenshots", type=Path, default=None, help="also save PNG screenshots of key pages here")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM"), help="Chromium executable")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.exit(2, f"check_site.py: error: {args.site} has no index.html; build the docs first\n")
    t0 = time.perf_counter()
    problems = check(args.site, args.screenshots, args.chromium)
    for line in problems:
        print(line)
    print(f"browser check took {time.perf_counter() - t0:.0f} s")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
