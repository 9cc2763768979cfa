"""How the table commands print (``models``, ``pretrained list``, ``predict``): a rich table on a
terminal, untruncated plain text otherwise (a pipe, a file, a CI log), where rich would cut every
row to 80 columns with ellipses.
"""

from __future__ import annotations

import sys
from collections.abc import Collection, Sequence

import typer

from pipeline.cli.lazy import lazy

rich_console = lazy("rich.console")
rich_table = lazy("rich.table")


def plain_table(columns: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[str] = ()) -> str:
    """Fixed-width text: each column as wide as its widest value, nothing cut; a cell's line breaks become ``; ``."""
    cells = [[str(v).replace("\n", "; ") for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if c in right else v.ljust(w) for v, w, c in zip(values, widths, columns)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def show_table(
    title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[str] = (), *, expand: bool = False
) -> None:
    """Print ``rows`` under ``columns``: rich on a terminal (``right``: right-aligned columns), else :func:`plain_table`."""
    if not sys.stdout.isatty():
        typer.echo(f"{title}\n{plain_table(columns, rows, right)}")
        return
    table = rich_table.Table(title=title, expand=expand)
    for col in columns:
        table.add_column(col, justify="right" if col in right else "left", overflow="fold")
    for r in rows:
        table.add_row(*(str(v) for v in r))
    rich_console.Console().print(table)
