"""The report page from its template, on a made-up context (no training): a table of contents whose
links all land, unique heading ids, figures linked as files (no inline images), the prose in both pages."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from pipeline.report.render import Toc, github_slug, render_report

TASKS = ["synth_tags", "synth_keywords"]


def _table(*rows: list[str]) -> dict:
    return {"header": ["model", "status", "eval clips/s"], "rows": [list(r) for r in rows]}


def _context() -> dict:
    per_task = [
        {"title": f"{t} (synthetic)", "table": _table(["fcn", "evaluated", "12.5"], ["crnn", "not run", "not run"])}
        for t in TASKS
    ]
    fig = {"rel": "figures/synth_tags__fcn__training.png", "caption": "synth_tags / fcn: training curve"}
    return {
        "profile": "smoke",
        "seed": 0,
        "n_tasks": 2,
        "n_models": 2,
        "n_trained": 2,
        "n_cells": 4,
        "generated": "2026-01-01 00:00:00 UTC",
        "synthetic": TASKS,
        "rendered": [],
        "seeds": [0],
        "comparison": per_task,
        "convergence_legend": None,
        "still_improving": [],
        "uncertainty": per_task,
        "cross": None,
        "degradation": [{"title": "synth_tags: degradation under noise (synthetic)", "table": _table(), "statement": "x < y"}],
        "robustness": [
            {
                "title": "synth_tags (synthetic)",
                "figure": {**fig, "rel": "figures/synth_tags__robustness.png"},
                "table": _table(),
                "metric": "roc_auc",
            }
        ],
        "cells": [{"title": "synth_tags / fcn (synthetic)", "figures": [fig], "notes": ["a <figure> failed"]}],
        "coverage": _table(),
        "deviations": _table(["synth_tags/fcn seed 0", "torch", "2.4"]),
        "environment": _table(["torch", "2.5"]),
    }


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.hrefs: list[str] = []
        self.srcs: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "img":
            self.srcs.append(a["src"])


def test_html_has_a_contents_with_unique_ids_and_linked_figures() -> None:
    _, html = render_report(_context())
    page = _Page()
    page.feed(html)
    assert len(page.ids) == len(set(page.ids)), f"repeated ids: {sorted(i for i in page.ids if page.ids.count(i) > 1)}"
    anchors = [h[1:] for h in page.hrefs if h.startswith("#")]
    assert len(anchors) >= 10 and set(anchors) <= set(page.ids)  # every contents link lands
    assert "comparison-clean-test-split--synth_tags-synthetic" in anchors  # a task under each section
    assert "uncertainty-seeds-test-clips-paired-differences--synth_tags-synthetic" in anchors
    assert page.srcs == ["figures/synth_tags__robustness.png", "figures/synth_tags__fcn__training.png"]
    assert "data:image" not in html and "base64" not in html
    assert "a &lt;figure&gt; failed" in html and "x &lt; y" in html  # autoescaped
    assert '<td class="nr">not run</td>' in html and "<strong>Not real recordings.</strong>" in html


def test_markdown_has_the_same_prose_and_github_anchors() -> None:
    md, html = render_report(_context())
    assert md.startswith("# musicrep report\n")
    assert "[Comparison (clean test split)](#comparison-clean-test-split)" in md
    assert "![synth_tags / fcn: training curve](figures/synth_tags__fcn__training.png)" in md
    assert "Note: a <figure> failed" in md and "x < y" in md  # not escaped
    assert "\n    " not in md  # the template's indentation does not turn prose into code blocks
    for words in ("paired bootstrap intervals over the test clips", "Mean +- std over the training seeds [0]"):
        assert words in md and words in html
    assert "| fcn | evaluated | 12.5 |" in md


def test_toc_anchors_are_unique_and_follow_github() -> None:
    toc = Toc(nested=False)
    assert [toc.add("Robustness", 2), toc.add("synth_tags (synthetic)", 3), toc.add("synth_tags (synthetic)", 3)] == [
        "robustness",
        "synth_tags-synthetic",
        "synth_tags-synthetic-1",
    ]
    assert toc.add("Contents", 2) == "contents-1"  # the page shell's own anchor is taken
    assert [e["id"] for e in toc.entries] == ["robustness", "contents-1"] and len(toc.entries[0]["children"]) == 2
    assert github_slug("Uncertainty: seeds, test clips") == "uncertainty-seeds-test-clips"
    assert re.fullmatch(r"[\w-]+", github_slug("a/b (c) d.e"))


def test_the_banner_names_generated_and_rendered_tasks_in_sentences() -> None:
    """Both kinds of not-recorded audio, each in its own sentence, with the spaces between them."""
    md, _ = render_report({**_context(), "synthetic": ["synth_keywords", "synth_events"], "rendered": ["corpus_tags"]})
    banner = md[md.index("**Not real recordings.**") :].split("\n\n")[0]
    assert (
        "**Not real recordings.** synth_keywords, synth_events are generated (embedded synthetic datasets). corpus_tags is"
        in banner
    )
    assert "soundfont (embedded).\nTheir numbers" in banner or "soundfont (embedded). Their numbers" in banner
