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
import struct
import zlib
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


def html_document(fig, metadata: Mapping | None = None, include_plotlyjs: bool | str = True) -> str:
    """A full HTML page for ``fig`` that works offline (plotly.js inlined by default)."""
    meta = _metadata(metadata)
    body = fig.to_html(full_html=False, include_plotlyjs=include_plotlyjs, config={"displaylogo": False})
    title = html.escape(str(fig.layout.title.text or "pdbviz figure"))
    tags = "\n".join(f'<meta name="pdbviz:{html.escape(k)}" content="{html.escape(_flat(v))}">'
                     for k, v in meta.items())
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n"
            f"<meta name=\"generator\" content=\"{html.escape(meta['generator'])}\">\n{tags}\n"
            f"<script type=\"application/json\" id=\"pdbviz-metadata\">{_json(meta)}</script>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")


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


def _pdf_string(s: str) -> str:
    data = s.encode("utf-16-be")
    return "<FEFF" + data.hex().upper() + ">"


def add_pdf_metadata(pdf: bytes, meta: Mapping) -> bytes:
    """Append an incremental update whose document information dictionary holds ``meta``."""
    tail = pdf[-2048:].decode("latin-1")
    start = re.findall(r"startxref\s+(\d+)", tail)
    size = re.findall(r"/Size\s+(\d+)", tail)
    root = re.findall(r"/Root\s+(\d+\s+\d+\s+R)", tail)
    if not (start and size and root):
        return pdf  # a cross-reference stream or an unusual layout: leave the file as kaleido wrote it
    n = int(size[-1])
    info = {"Producer": meta.get("generator", "pdbviz"), "Creator": meta.get("generator", "pdbviz"),
            "Title": str(meta.get("title", "pdbviz figure")), "Subject": str(meta.get("dataset", "")),
            "Keywords": _flat({k: v for k, v in meta.items() if k not in ("generator", "title")})}
    body = pdf if pdf.endswith(b"\n") else pdf + b"\n"
    offset = len(body)
    obj = (f"{n} 0 obj\n<<" + "".join(f" /{k} {_pdf_string(v)}" for k, v in info.items()) + " >>\nendobj\n")
    xref_at = offset + len(obj.encode("latin-1"))
    update = (obj + f"xref\n{n} 1\n{offset:010d} 00000 n \ntrailer\n<< /Size {n + 1} /Root {root[-1]} "
              f"/Info {n} 0 R /Prev {start[-1]} >>\nstartxref\n{xref_at}\n%%EOF\n")
    return body + update.encode("latin-1")


def add_png_metadata(png: bytes, meta: Mapping) -> bytes:
    """Insert ``tEXt`` chunks (Software, Description) after the PNG header chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG image")
    ihdr_end = 8 + 8 + struct.unpack(">I", png[8:12])[0] + 4

    def chunk(key: str, value: str) -> bytes:
        data = key.encode("latin-1") + b"\x00" + value.encode("latin-1", "replace")
        return struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))

    extra = chunk("Software", str(meta.get("generator", "pdbviz"))) + chunk("Description", _json(meta))
    return png[:ihdr_end] + extra + png[ihdr_end:]


_ADD = {"svg": add_svg_metadata, "pdf": add_pdf_metadata, "png": add_png_metadata}


def _render_static(figs: Sequence, formats: Sequence[str], scale: float) -> list[bytes]:
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
            pio.write_images(list(figs), paths, scale=scale)
            return [p.read_bytes() for p in paths]
    except Exception as err:  # noqa: BLE001 - kaleido raises several types when no browser is found
        text = f"{type(err).__name__}: {err}"
        if "chrom" in text.lower() or "browser" in text.lower():
            raise StaticExportError(CHROMIUM_HINT) from err
        raise


def save(fig, stem: str | Path, formats: Sequence[str] | str = FORMATS, metadata: Mapping | None = None,
         scale: float = 3.0) -> dict[str, Path]:
    """Save ``fig`` as ``stem.html`` and, via kaleido/Chromium, ``.svg``, ``.pdf``, ``.png``.

    HTML is written first and always (self-contained, works offline). If
    Chromium is missing, ``StaticExportError`` says what to install.
    Returns ``{format: path}``.

    Example:
        >>> import plotly.graph_objects as go
        >>> paths = save(go.Figure(), "fig", formats=("html",), metadata={"dataset": "digits"})  # doctest: +SKIP
    """
    return save_many({Path(stem).name: fig}, Path(stem).parent, formats, metadata, scale)[Path(stem).name]


def save_many(figures: Mapping[str, object], directory: str | Path, formats: Sequence[str] | str = FORMATS,
              metadata: Mapping | None = None, scale: float = 3.0, include_plotlyjs: bool | str = True
              ) -> dict[str, dict[str, Path]]:
    """Save several figures ``{stem: fig}`` into ``directory`` (one Chromium session for all)."""
    formats = _check_formats(formats)
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
    jobs = [(stem, fig, fmt) for stem, fig in figures.items() for fmt in formats if fmt in STATIC]
    if jobs:
        images = _render_static([j[1] for j in jobs], [j[2] for j in jobs], scale)
        for (stem, fig, fmt), data in zip(jobs, images):
            meta = _metadata({"title": fig.layout.title.text or stem, **(metadata or {})})
            path = directory / f"{stem}.{fmt}"
            with atomic_write(path, "wb") as fh:
                fh.write(_ADD[fmt](data, meta))
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
