"""Write figures: self-contained HTML always; SVG, PDF and PNG through kaleido and Chromium.

The pdbviz version and whatever describes the experiment (dataset, seeds,
schedule strings...) travel with each file: HTML ``<meta>`` tags and a JSON
block, an SVG ``<metadata>`` element, the PDF document information
dictionary, PNG text chunks. Every file is written atomically.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from .._io import atomic_write
from .._version import __version__

#: every format ``save`` writes; all but HTML need Chromium (kaleido).
FORMATS = ("html", "svg", "pdf", "png")
STATIC = ("svg", "pdf", "png")
CHROMIUM_HINT = ("static export (svg, pdf, png) needs Chrome or Chromium for kaleido: install it with "
                 "'apt-get install chromium' (Debian/Ubuntu), 'brew install --cask chromium' (macOS) or "
                 "'plotly_get_chrome' (any system); HTML export works without it")


class StaticExportError(RuntimeError):
    """Chromium (or kaleido) is missing, so SVG/PDF/PNG cannot be written."""


def _metadata(metadata: Mapping | None) -> dict:
    meta = {"generator": f"pdbviz {__version__}"}
    if metadata:
        meta.update({str(k): v for k, v in metadata.items()})
    return meta


def _check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = (formats,)
    formats = tuple(f.lower().lstrip(".") for f in formats)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ValueError(f"formats must be a non-empty selection of {FORMATS}, got {formats!r}")
    return formats


PAGE_STYLE = """body { font-family: Helvetica, Arial, sans-serif; max-width: 1100px; margin: 2em auto; color: #222;
padding: 0 1em; }
table { border-collapse: collapse; font-size: 0.9em; } th, td { padding: 4px 10px; border-bottom: 1px solid #ddd; }
th { text-align: left; background: #f4f4f4; } td { font-variant-numeric: tabular-nums; }
table.pdbviz-results td { white-space: nowrap; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; white-space: pre-wrap; }"""


def figure_html(fig) -> str:
    """The ``<div>`` of one figure, without plotly.js (a page includes it once)."""
    return fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def html_page(title: str, body: str, metadata: Mapping | None = None, include_plotlyjs: bool | str = True,
              style: str = "") -> str:
    """A full HTML page that works offline: the metadata as ``<meta>`` tags and a JSON block, plotly.js
    inlined (``True``), loaded from ``plotly.min.js`` beside the page (``"directory"``) or left out (``False``).

    The single figure pages of ``save`` and the report of a comparison are both made here.
    """
    meta = _metadata(metadata)
    tags = "\n".join(f'<meta name="pdbviz:{html.escape(k)}" content="{html.escape(_flat(v))}">'
                     for k, v in meta.items())
    if include_plotlyjs is True:
        from plotly.offline import get_plotlyjs

        script = f"<script>{get_plotlyjs()}</script>"
    elif include_plotlyjs == "directory":
        script = '<script src="plotly.min.js"></script>'
    else:
        script = ""
    css = f"<style>\n{style}\n</style>\n" if style else ""
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n"
            f"<meta name=\"generator\" content=\"{html.escape(meta['generator'])}\">\n{tags}\n"
            f"<script type=\"application/json\" id=\"pdbviz-metadata\">{_json(meta)}</script>\n{css}{script}\n"
            f"</head>\n<body>\n{body}\n</body>\n</html>\n")


def html_document(fig, metadata: Mapping | None = None, include_plotlyjs: bool | str = True) -> str:
    """A full HTML page for ``fig`` that works offline (plotly.js inlined by default)."""
    return html_page(str(fig.layout.title.text or "pdbviz figure"), figure_html(fig), metadata, include_plotlyjs)


def _flat(v) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)


def _json(meta) -> str:
    return json.dumps(meta, ensure_ascii=False, default=str).replace("</", "<\\/")


def add_svg_metadata(svg: bytes, meta: Mapping) -> bytes:
    text = svg.decode("utf-8")
    block = f"<metadata id=\"pdbviz-metadata\"><![CDATA[{_json(meta)}]]></metadata>"
    m = re.search(r"<svg\b[^>]*>", text)
    if not m:
        raise ValueError("not an SVG document")
    return (text[: m.end()] + block + text[m.end():]).encode("utf-8")


def add_pdf_metadata(pdf: bytes, meta: Mapping) -> bytes:
    """The PDF with ``meta`` in its document information dictionary (rewritten with pypdf).

    Title, Subject (the dataset), Creator and Producer (the pdbviz version),
    and Keywords (every other entry, as JSON).
    """
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_metadata({"/Producer": str(meta.get("generator", "pdbviz")),
                         "/Creator": str(meta.get("generator", "pdbviz")),
                         "/Title": str(meta.get("title", "pdbviz figure")), "/Subject": str(meta.get("dataset", "")),
                         "/Keywords": _flat({k: v for k, v in meta.items() if k not in ("generator", "title")})})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def add_png_metadata(png: bytes, meta: Mapping, dpi: float | None = None) -> bytes:
    """The PNG with text chunks ``Software`` (the pdbviz version) and ``Description`` (``meta`` as JSON),
    and its resolution (``dpi``, pixels per inch at print size) when given, written by Pillow
    (``PngInfo``); the pixels are unchanged."""
    import io

    from PIL import Image, PngImagePlugin, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(png))
        image.load()
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"not a PNG image ({err})") from None
    if image.format != "PNG":
        raise ValueError(f"not a PNG image (Pillow reads it as {image.format})")
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", str(meta.get("generator", "pdbviz")))
    info.add_text("Description", _json(meta))
    out = io.BytesIO()
    extra = {"dpi": (round(dpi), round(dpi))} if dpi else {}
    image.save(out, format="PNG", pnginfo=info, **extra)
    return out.getvalue()


_ADD = {"svg": add_svg_metadata, "pdf": add_pdf_metadata, "png": add_png_metadata}


def _render_static(figs: Sequence, formats: Sequence[str], scale: float) -> list[bytes]:
    figs = list(figs)
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError as err:
        raise StaticExportError(f"kaleido is not installed (pip install kaleido); {CHROMIUM_HINT}") from err
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="pdbviz-export-") as tmp:
            paths = [Path(tmp) / f"{i}.{fmt}" for i, fmt in enumerate(formats)]
            # one browser session renders them all (starting Chromium costs seconds)
            todo = list(range(len(paths)))
            for _attempt in range(3):  # kaleido returns a render that timed out (a busy machine) as a missing file
                # plotly's write_images takes its default size (700 x 500) unless told: pass each figure's own
                # the scale is the PNG's pixels per figure pixel; a vector format keeps the figure's size (kaleido
                # would otherwise scale the page of a PDF or SVG too)
                pio.write_images([figs[i] for i in todo], [paths[i] for i in todo],
                                 scale=[scale if formats[i] == "png" else 1 for i in todo],
                                 width=[int(figs[i].layout.width or 700) for i in todo],
                                 height=[int(figs[i].layout.height or 500) for i in todo])
                todo = [i for i in todo if not paths[i].is_file()]
                if not todo:
                    break
            if todo:
                names = ", ".join(f"{figs[i].layout.title.text or 'untitled'} ({formats[i]})" for i in todo)
                raise RuntimeError(f"kaleido rendered no image of {names} after three tries")
            return [p.read_bytes() for p in paths]
    except Exception as err:  # noqa: BLE001 - kaleido raises several types when no browser is found
        text = f"{type(err).__name__}: {err}"
        if "chrom" in text.lower() or "browser" in text.lower():
            raise StaticExportError(CHROMIUM_HINT) from err
        raise


def save(fig, stem: str | Path, formats: Sequence[str] | str = FORMATS, metadata: Mapping | None = None,
         scale: float | None = None, size="page", theme: str | dict = "paper", dpi: int = 300) -> dict[str, Path]:
    """Save ``fig`` as ``stem.html`` and, via kaleido/Chromium, ``.svg``, ``.pdf``, ``.png``.

    HTML is written first and always (self-contained, works offline, the
    figure as it is: interactive, in its own theme). The static files are
    print-ready by default: laid out at page width (7 in) with the paper
    theme's fonts, the PNG at 300 dpi. If Chromium is missing,
    ``StaticExportError`` says what to install. Returns ``{format: path}``.

    Args:
        fig: a plotly figure.
        stem: the path without its suffix.
        formats: any of ``"html"``, ``"svg"``, ``"pdf"``, ``"png"``.
        metadata: what the files carry besides the pdbviz version (dataset, seeds...).
        scale: PNG pixels per figure pixel (default: ``dpi`` at print size, else 3).
        size: the print size of the static files (``"column"``, ``"page"``,
            ``"slide"`` or ``(width, height)`` in inches): the figure is laid
            out at that size with ``theme``'s fonts (see ``for_print``), so the
            PDF and SVG measure that much and the smallest text is 7 pt or
            more; ``None`` writes the figure's own (screen) layout.
        theme: the print theme, ``"paper"`` or ``"slides"`` (used with ``size``).
        dpi: the PNG's resolution at print size (written into the PNG).

    Example:
        >>> import plotly.graph_objects as go
        >>> paths = save(go.Figure(), "fig", size="column", metadata={"dataset": "digits"})  # doctest: +SKIP
    """
    name = Path(stem).name
    return save_many({name: fig}, Path(stem).parent, formats, metadata, scale, size=size, theme=theme,
                     dpi=dpi)[name]


def save_many(figures: Mapping[str, object], directory: str | Path, formats: Sequence[str] | str = FORMATS,
              metadata: Mapping | None = None, scale: float | None = None, include_plotlyjs: bool | str = True,
              size="page", theme: str | dict = "paper", dpi: int = 300) -> dict[str, dict[str, Path]]:
    """Save several figures ``{stem: fig}`` into ``directory`` (one Chromium session for all); ``size``,
    ``theme`` and ``dpi`` as in ``save`` (HTML keeps each figure's own interactive layout).

    Example:
        >>> import plotly.graph_objects as go
        >>> paths = save_many({"a": go.Figure()}, "figs", ("html", "pdf"))  # doctest: +SKIP
    """
    from .theme import PX_PER_INCH, for_print

    formats = _check_formats(formats)
    printed = figures
    if size is not None and any(f in STATIC for f in formats):
        printed = {stem: for_print(fig, size, theme) for stem, fig in figures.items()}
        scale = scale or dpi / PX_PER_INCH
    scale = scale or 3.0
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, Path]] = {stem: {} for stem in figures}
    if "html" in formats and include_plotlyjs == "directory":
        write_plotlyjs(directory)
    for stem, fig in figures.items():
        meta = _metadata({"title": fig.layout.title.text or stem, **(metadata or {})})
        if "html" in formats:
            path = directory / f"{stem}.html"
            with atomic_write(path, "w", encoding="utf-8") as fh:
                fh.write(html_document(fig, meta, include_plotlyjs))
            out[stem]["html"] = path
    jobs = [(stem, fig, fmt) for stem, fig in printed.items() for fmt in formats if fmt in STATIC]
    if jobs:
        images = _render_static([j[1] for j in jobs], [j[2] for j in jobs], scale)
        for (stem, fig, fmt), data in zip(jobs, images):
            meta = _metadata({"title": fig.layout.title.text or stem, **(metadata or {})})
            path = directory / f"{stem}.{fmt}"
            with atomic_write(path, "wb") as fh:
                fh.write(add_png_metadata(data, meta, dpi=scale * PX_PER_INCH) if fmt == "png"
                         else _ADD[fmt](data, meta))
            out[stem][fmt] = path
    return out


def write_plotlyjs(directory: str | Path) -> Path:
    """Write ``plotly.min.js`` into ``directory`` (for pages made with ``include_plotlyjs="directory"``)."""
    from plotly.offline import get_plotlyjs

    path = Path(directory) / "plotly.min.js"
    with atomic_write(path, "w", encoding="utf-8") as fh:
        fh.write(get_plotlyjs())
    return path


def static_export_available() -> bool:
    """True when kaleido can find a Chrome/Chromium to render static formats."""
    import shutil

    try:
        import kaleido  # noqa: F401
    except ImportError:
        return False
    return any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome"))
