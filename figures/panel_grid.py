"""The panel grid of a multi-panel figure laid out for a paper: panels in rows at a 7-inch text width, no empty slot.

A family asks for `count` panels; `panel_grid` puts them in rows of at most three (2 x 2 for four), so that the shared
rcParams' 7-11 pt text is printed at that size on a two-column paper's full width, never shrunk. A last row that is
not full is centred, or, where the legend asks for it, ends in a slot that holds the legend: a grid never shows an
empty frame. `place_legend` puts a figure's one legend in that slot, else under the panels (or, for a single panel,
right of it), in as many columns as fit the width. This module owns the geometry only: it draws no data, and the look
of what is drawn (fonts, colours) is `style.py`'s.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from e3eval.figures.captions import wrap_label
from e3eval.figures.style import PAPER_WIDTH, legend_width

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.legend import Legend

PANEL_HEIGHT = 2.3  # inches: a 7-inch row of three panels is then about 3:1 with its labels
SINGLE = (4.4, 3.0)  # inches: a lone panel, its legend beside it, stays under 7 inches and about 2:1
_LEGEND_ROW = 0.2  # inches per line of a legend under the panels (7.5 pt text and its spacing)


@dataclass(frozen=True)
class PanelGrid:
    """A figure and its panels in reading order; `legend_slot` is the grid cell kept for the legend (axis off), or
    None when every cell holds a panel and the legend goes under them."""

    figure: Figure
    panels: tuple[Axes, ...]
    legend_slot: Axes | None
    ncols: int


def columns(count: int) -> int:
    """Panels across: one row up to three, 2 x 2 for four, else three across (7 inches hold three readable panels)."""
    return count if count <= 3 else 2 if count == 4 else 3


def panel_grid(
    count: int,
    ncols: int | None = None,
    panel_height: float = PANEL_HEIGHT,
    width: float = PAPER_WIDTH,
    legend_slot: bool = True,
    sharey: bool = False,
) -> PanelGrid:
    """`count` panels in rows of `ncols` (default `columns(count)`) on a constrained-layout figure `width` inches wide
    and `panel_height` inches per row. With `legend_slot`, a grid whose last row has room keeps the cell after the last
    panel for the legend; any other gap centres the last row. `sharey`: one y range for every panel."""
    from matplotlib.figure import Figure

    if count < 1:
        raise ValueError("a panel grid needs at least one panel")
    ncols = max(1, min(ncols or columns(count), count))
    if count == 1:  # a lone panel 7 inches wide would be a strip: it keeps a panel's shape and width
        width, panel_height = min(width, SINGLE[0]), max(panel_height, SINGLE[1])
    nrows = math.ceil(count / ncols)
    slot = legend_slot and nrows * ncols > count
    figure = Figure(figsize=(width, panel_height * nrows), layout="constrained")
    # Half-cell columns: a panel spans two, so a short last row can start half a cell in and sit centred.
    spec = figure.add_gridspec(nrows, 2 * ncols)
    cells = []
    for index in range(count + int(slot)):
        row, col = divmod(index, ncols)
        in_row = min(ncols, count + int(slot) - row * ncols)
        start = 2 * col + (ncols - in_row)
        cells.append(spec[row, start : start + 2])
    panels: list[Axes] = []
    for cell in cells[:count]:
        share = panels[0] if sharey and panels else None
        panels.append(figure.add_subplot(cell, sharey=share))
    spare = figure.add_subplot(cells[count]) if slot else None
    if spare is not None:
        spare.axis("off")
    return PanelGrid(figure, tuple(panels), spare, ncols)


def place_legend(
    grid: PanelGrid, handles: Sequence[Any], labels: Sequence[str], title: str | None = None
) -> Legend | None:
    """The figure's one legend: in the grid's legend slot, else right of a lone panel (where 7 inches hold both), else
    under the panels in as many columns as the figure's width holds (the figure grows by the legend's height, so the
    panels keep theirs)."""
    if not handles:
        return None
    labels = [wrap_label(label) for label in labels]  # a long label breaks into lines, never widens the figure
    if grid.legend_slot is not None:
        return grid.legend_slot.legend(handles, labels, loc="center", title=title)
    figure = grid.figure
    if len(grid.panels) == 1 and figure.get_figwidth() + legend_width(labels) <= PAPER_WIDTH:
        figure.set_figwidth(figure.get_figwidth() + legend_width(labels))
        return figure.legend(handles, labels, loc="outside right center", title=title)
    across = max(1, min(len(labels), int(figure.get_figwidth() // legend_width(labels))))
    lines = max(label.count("\n") + 1 for label in labels)
    rows = math.ceil(len(labels) / across) * lines + (1 if title else 0)
    figure.set_figheight(figure.get_figheight() + rows * _LEGEND_ROW + 0.1)
    return figure.legend(handles, labels, loc="outside lower center", ncols=across, title=title)


def fit_title(text: str, grid: PanelGrid, fontsize: float | None = None) -> str:
    """`text` wrapped to the width of one of `grid`'s panels at the title font size, so that titles of neighbouring
    panels never run into each other."""
    import matplotlib

    size = float(fontsize or matplotlib.rcParams["axes.titlesize"])
    # A title may reach a little past its axes, over the y labels of the panel to its right, never into its title.
    panel = grid.figure.get_figwidth() / grid.ncols - 0.35
    # DejaVu Sans averages about half an em per character of lower-case text.
    chars = max(12, int(panel * 72 / (0.5 * size)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))
