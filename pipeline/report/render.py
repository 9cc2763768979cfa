"""Markdown and HTML of the report from one Jinja2 template of its structure and prose.

``templates/report.j2`` says what the report contains, in which order, in which words; it calls
the blocks (heading, paragraph, table, figure) of ``blocks_md.j2`` or ``blocks_html.j2``, and the
page shells ``index.md.j2`` / ``index.html.j2`` (with ``report.css``) add the title and the table
of contents. Figures are files under ``figures/``, linked from both pages, not embedded.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
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


def _reflow(text: str) -> str:
    """A template paragraph (wrapped and indented as the template reads) as one line; escaped
    text (:class:`~markupsafe.Markup`, as the HTML template's blocks give) stays escaped."""
    line = " ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return Markup(line) if isinstance(text, Markup) else line


def github_slug(text: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces as ``-``."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


class Toc:
    """The headings of one rendering, each with a unique anchor, and the contents built from them.

    Args:
        nested: anchor a level-3 heading under its section (``comparison-clean-test-split--synth_tags``,
            for the HTML page); else GitHub's scheme (its slug, ``-1``, ``-2``... on repeats), so the
            Markdown's links match what GitHub renders.
        reserved: anchors the page shell uses itself (``top``, ``contents``).
    """

    def __init__(self, nested: bool, reserved: tuple[str, ...] = ("top", "contents")) -> None:
        self.nested = nested
        self.seen: set[str] = set(reserved)
        self.entries: list[dict[str, Any]] = []

    def add(self, text: str, level: int) -> str:
        """Register a heading of ``level`` (2: a section in the contents, 3: one under it); its anchor."""
        base = github_slug(text) or "section"
        if self.nested and level > 2 and self.entries:
            base = f"{self.entries[-1]['id']}--{base}"
        anchor, n = base, 0
        while anchor in self.seen:
            n += 1
            anchor = f"{base}-{n}"
        self.seen.add(anchor)
        entry = {"text": text, "id": anchor, "children": []}
        if level <= 2 or not self.entries:
            self.entries.append(entry)
        else:
            self.entries[-1]["children"].append(entry)
        return anchor


def _md_table(table: dict[str, Any]) -> str:
    return md_table(table["header"], table["rows"])


@lru_cache(maxsize=2)
def _environment(html: bool) -> Any:
    """Jinja2 over ``templates/``: autoescaped for the HTML page, verbatim for the Markdown."""

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=html,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(inline=lambda text: _inline(_reflow(text)), reflow=_reflow, md_table=_md_table)
    return env


def render_report(context: dict[str, Any], title: str = "musicrep report") -> tuple[str, str]:
    """``(index.md, index.html)`` of the report: ``templates/report.j2`` (structure and prose) rendered
    with the Markdown and the HTML blocks, each wrapped in its page shell with a table of contents.

    Args:
        context: what ``report.j2`` reads (:func:`pipeline.report.build.report_context`): tables as
            ``{"header": [...], "rows": [[...]]}`` of formatted strings, figures as
            ``{"rel": "figures/x.png", "caption": ...}`` (linked, not embedded).
        title: the page title and top heading.
    """
    pages = []
    for html in (False, True):
        env, toc = _environment(html), Toc(nested=html)
        blocks = "blocks_html.j2" if html else "blocks_md.j2"
        summary, body = (
            re.sub(r"\n{3,}", "\n\n", env.get_template(name).render(**context, blocks=blocks, toc=toc, not_run=NOT_RUN))
            for name in ("summary.j2", "report.j2")
        )  # the summary first: the answer, then the contents, then the evidence
        shell = env.get_template("index.html.j2" if html else "index.md.j2")
        css = Markup((TEMPLATES / "report.css").read_text()) if html else ""
        wrap = Markup if html else str
        pages.append(shell.render(title=title, css=css, toc=toc.entries, summary=wrap(summary), body=wrap(body)))
    return pages[0], pages[1]
