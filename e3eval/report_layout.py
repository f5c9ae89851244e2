"""The report in a terminal: tables that fit the console's width, with no number ever cut.

Budgets run down; each metric of each run is a column holding the value with its 95% CI dimmed below it. Columns
are packed into as many stacked tables as the width needs, each repeating the budget column: a metric's runs stay
side by side where they fit together (so one run's cell sits beside the other's), and are split by run where they do
not. Every column is exactly as wide as its widest value, CI or header, so rich never shortens a cell to "…". With
several runs the headers name them by key (A, B, ...) and a legend below gives each key's label, n and path; the
extrapolation gain and a paired difference follow as small tables of their own, then the definitions. Everything
is built as rich renderables, user text as `Text` (never parsed as markup); printing is the caller's business, and
the formats for papers and programs are `report_formats.py`'s.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.cells import cell_len
from rich.console import RenderableType
from rich.table import Table
from rich.text import Text

from e3eval.budgets import format_budget
from e3eval.report_formats import (
    DIFF_TEXT,
    GAIN_TEXT,
    Report,
    diff_keys,
    diff_rows,
    diff_title,
    format_ci,
    format_value,
    gain_rows,
    header_line,
    metric_unit,
    run_line,
)

# Each column of a rich Table with the default box costs its padding (one space each side) and one border.
_CHROME = 3


@dataclass(frozen=True)
class _Column:
    header: str
    cells: tuple[tuple[str, str], ...]  # per budget: (value, CI)
    width: int


def _columns(report: Report, budgets: Sequence[int]) -> list[list[_Column]]:
    """One group per metric, one column per run in it."""
    values = report.values()
    several = len(report.comparison.runs) > 1
    groups = []
    for name in report.metrics:
        kind = metric_unit(name)
        group = []
        for i, key in enumerate(report.keys):
            cells = []
            for budget in budgets:
                value, low, high = values.get((i, budget, name), (math.nan, math.nan, math.nan))
                cells.append((format_value(value, kind), format_ci(low, high, kind)))
            header = f"{name}\n{key}" if several else name
            width = max(cell_len(text) for text in [*header.split("\n"), *(c for pair in cells for c in pair)])
            group.append(_Column(header, tuple(cells), width))
        groups.append(group)
    return groups


def _pack(groups: list[list[_Column]], room: int) -> list[list[_Column]]:
    """Columns into tables no wider than `room` (the width left beside the budget column): whole groups where they
    fit, a group wider than `room` split by column."""
    chunks: list[list[_Column]] = []
    current: list[_Column] = []
    used = 0
    for group in groups:
        need = sum(c.width + _CHROME for c in group)
        if current and used + need > room:
            chunks.append(current)
            current, used = [], 0
        for column in group:
            if current and used + column.width + _CHROME > room:
                chunks.append(current)
                current, used = [], 0
            current.append(column)
            used += column.width + _CHROME
    if current:
        chunks.append(current)
    return chunks


def _table(budgets: Sequence[int], columns: Sequence[_Column], budget_width: int) -> Table:
    table = Table()
    table.add_column("budget", justify="right", style="bold", no_wrap=True, min_width=budget_width)
    for column in columns:
        table.add_column(Text(column.header, justify="right"), justify="right", no_wrap=True, min_width=column.width)
    for row, budget in enumerate(budgets):
        cells: list[RenderableType] = [format_budget(budget)]
        for column in columns:
            value, ci = column.cells[row]
            cells.append(Text.assemble(value, *(("\n", (ci, "dim")) if ci else ())))
        table.add_row(*cells)
    return table


def summary_tables(report: Report, width: int) -> list[Table]:
    """The budgets x metrics x runs table, stacked into tables that each fit `width` columns."""
    budgets = report.comparison.budgets
    budget_width = max([cell_len("budget"), *(cell_len(format_budget(b)) for b in budgets)])
    room = width - 1 - (budget_width + _CHROME)
    return [_table(budgets, chunk, budget_width) for chunk in _pack(_columns(report, budgets), room)]


def _plain_table(header: Sequence[str], rows: Sequence[Sequence[str]], text: Sequence[int]) -> Table:
    """A small table of cells, none wrapped (gain, difference): the `text` columns aligned left, numbers right."""
    table = Table()
    for i, name in enumerate(header):
        table.add_column(Text(name), justify="left" if i in text else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return table


def _fitted(header: Sequence[str], rows: Sequence[Sequence[str]], text: Sequence[int], lead: int,
            width: int) -> list[Table]:  # fmt: skip
    """A small table, or when it is wider than `width`, its columns split into tables that each repeat the first
    `lead` columns (those that name a row: run, budget, metric), so that no number is cut."""
    widths = [max([cell_len(header[i]), *(cell_len(row[i]) for row in rows)]) + _CHROME for i in range(len(header))]
    if sum(widths) + 1 <= width or len(header) <= lead + 1:
        return [_plain_table(header, rows, text)]
    base = sum(widths[:lead]) + 1
    chunks: list[list[int]] = [[]]
    used = base
    for i in range(lead, len(header)):
        if chunks[-1] and used + widths[i] > width:
            chunks.append([])
            used = base
        chunks[-1].append(i)
        used += widths[i]
    tables = []
    for chunk in chunks:
        columns = [*range(lead), *chunk]
        tables.append(_plain_table([header[i] for i in columns], [[row[i] for i in columns] for row in rows],
                                   [j for j, i in enumerate(columns) if i in text]))  # fmt: skip
    return tables


def legend(report: Report) -> list[Text]:
    """One line per run: its key and label (several runs), n, what its numbers leave out, its path and flags."""
    lines = []
    several = len(report.comparison.runs) > 1
    for key, run in zip(report.keys, report.comparison.runs, strict=True):
        line = Text.assemble(*((f"{key} = ", "bold"),) if several else (), (run.label, "bold"), ": ")
        n = run_line(run)
        plain, _, left_out = n.partition(" (+")
        line.append(plain)
        if left_out:
            line.append(f" (+{left_out}", style="bold red")
        if run.flags:
            line.append(f"  warning: {'; '.join(run.flags)}", style="yellow")
        lines.append(line)
        lines.append(Text(f"    {run.path or run.run.path}", style="dim"))  # its own line: a long path wraps alone
    lines += [Text(f"note: {note}") for note in report.comparison.notes_naming(report.keyed)]
    return lines


def report_renderables(report: Report, width: int) -> list[RenderableType]:
    """The whole terminal report, top to bottom: header, tables, legend, gain, difference, definitions."""
    items: list[RenderableType] = [Text(header_line(report), style="bold")]
    items += summary_tables(report, width)
    items += legend(report)
    keys = dict(zip((run.label for run in report.comparison.runs), report.keys, strict=True))
    if report.gain is not None and not report.gain.empty:
        header, rows = gain_rows(report.gain)
        text: Sequence[int] = GAIN_TEXT
        if len(report.comparison.runs) > 1:
            rows = [[keys.get(row[0], row[0]), *row[1:]] for row in rows]
        else:
            header, rows, text = header[1:], [row[1:] for row in rows], ()
        train = "train budget"
        trains = {row[len(header) - 5] for row in rows}
        if len(trains) == 1:  # one training budget: said in the title, its column left out (narrow terminals)
            train, drop = trains.pop(), len(header) - 5
            header, rows = [h for i, h in enumerate(header) if i != drop], [[c for i, c in enumerate(row) if i != drop]
                                                                            for row in rows]  # fmt: skip
        items += [Text(f"extrapolation gain: pass@1(budget) − pass@1({train})", style="bold"),
                  *_fitted(header, rows, text, len(header) - 3, width)]  # fmt: skip
    if report.diff is not None:
        a, b = diff_keys(report.diff)
        if len(report.comparison.runs) > 1 and a != b:  # the legend above gives the keys' labels
            said = ""
        else:
            said = f"  ({a} = {report.diff.attrs.get('a')}; {b} = {report.diff.attrs.get('b')})"
        items += [Text.assemble((diff_title(report.diff), "bold"), said),
                  *_fitted(*diff_rows(report.diff), DIFF_TEXT, 2, width)]  # fmt: skip
    items += [Text(line, style="dim") for line in report.footnotes()]
    return items
