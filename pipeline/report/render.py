"""Markdown and HTML of the report from one list of blocks (headings, paragraphs, tables,
figures). The HTML page is a Jinja2 template (``templates/index.html.j2`` with
``templates/report.css``), autoescaped; the Markdown is joined here.
"""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from markupsafe import Markup, escape

from pipeline.report.collect import NOT_RUN

TEMPLATES = Path(__file__).with_name("templates")


def fmt(v: Any, digits: int = 4) -> str:
    """A number as the report's tables show it (``not run`` for None, ``n/a`` for NaN)."""
    if v is None:
        return NOT_RUN
    if isinstance(v, str):
        return v
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "n/a"
    if abs(f) >= 1000:
        return f"{f:,.0f}"
    return f"{f:.{digits}f}"


def md_table(header: list[str], rows: list[list[str]]) -> str:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _inline(text: str) -> Markup:
    """``**bold**`` and ```code``` of a paragraph as HTML, everything else escaped."""
    body = str(escape(text))
    body = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", body)
    return Markup(re.sub(r"`(.+?)`", r"<code>\1</code>", body))


@lru_cache(maxsize=1)
def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@dataclass
class Document:
    """The report as blocks, rendered to Markdown (:meth:`markdown`) and HTML (:meth:`html`)."""

    out_dir: Path
    blocks: list[dict[str, Any]] = field(default_factory=list)
    md: list[str] = field(default_factory=list)
    images: list[Path] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.md.append(f"{'#' * level} {text}\n")
        anchor = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
        self.blocks.append({"kind": "heading", "text": text, "level": level, "anchor": anchor})

    def para(self, text: str, css: str | None = None) -> None:
        self.md.append(f"{text}\n")
        self.blocks.append({"kind": "para", "html": _inline(text), "css": css})

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.md.append(md_table(header, rows) + "\n")
        self.blocks.append(
            {"kind": "table", "header": [str(h) for h in header], "rows": [[str(c) for c in r] for r in rows], "not_run": NOT_RUN}
        )

    def figure(self, png: Path, caption: str) -> None:
        rel = png.relative_to(self.out_dir).as_posix()
        self.images.append(png)
        self.md.append(f"![{caption}]({rel})\n\n*{caption}*\n")
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        self.blocks.append({"kind": "figure", "caption": caption, "rel": rel, "data": data})

    def markdown(self) -> str:
        return "\n".join(self.md)

    def html(self, title: str) -> str:
        css = (TEMPLATES / "report.css").read_text()
        return _environment().get_template("index.html.j2").render(title=title, css=Markup(css), blocks=self.blocks)
