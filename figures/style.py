"""The look every figure shares: palette, rcParams, the budget axis, the extrapolation band, legends' n, saving.

Colours are Paul Tol's colour-blind-safe "bright" scheme; a figure with more than seven series takes Tol's ten-colour
"muted" scheme and gives every series its own marker and line style as well, so each stays identifiable in greyscale
print. Heat maps use YlOrBr without its near-white levels. The test-time budget axis is log2 with labels in k tokens
(4k 8k 16k ...), as in the paper's accuracy plots (Fig. 4a, 5-7, 9); the extrapolation band lies under everything
drawn, its label where the data leaves room. Multi-panel figures are laid out for a 7-inch text width. `save` keeps
the layout it finds (legends pinned above the footnote) and writes PDF and PNG atomically. Figures are
`matplotlib.figure.Figure` objects made without pyplot, so drawing keeps no global state and needs no display. This
module draws no data and reads no files; `require_rows` is here because every family must refuse an empty frame the
same way.
"""

from __future__ import annotations

import contextlib
import os
import sys
import textwrap
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e3eval.budgets import format_budget
from e3eval.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Paul Tol, "bright" (https://personal.sron.nl/~pault/): blue, red, green, yellow, cyan, purple, grey.
PALETTE = ("#4477AA", "#EE6677", "#228833", "#CCBB44", "#66CCEE", "#AA3377", "#BBBBBB")
# Grey is Tol's colour for "other": series use the six hues first, grey only when a figure has exactly seven.
_HUES = PALETTE[:6]
# Paul Tol, "muted" (nine hues) and a dark grey: for eight series or more, each with a marker and a line style too.
MANY = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499", "#555555")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h", "<", ">")
# Four dash patterns against ten markers: (marker, line style) pairs repeat only after 20 series.
LINESTYLES = ("-", "--", ":", "-.")
EXTRAPOLATION_COLOR = "#DDDDDD"
DPI = 200
PAPER_WIDTH = 7.0  # inches: a two-column paper's full text width, the width multi-panel figures are laid out for
HEATMAP_CMAP = "YlOrBr"  # Tol's sequential YlOrBr; readable in grey print and for colour-blind readers
# Its lightest quarter is near-white (#FFFFE5): a low cell would vanish into the page, so heat maps start above it.
HEATMAP_FLOOR = 0.25

RC = {
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "legend.fontsize": 7.5,
    "figure.titlesize": 11,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 4.5,
    "legend.frameon": False,
    "pdf.fonttype": 42,  # TrueType in PDFs: text stays editable and searchable
}


def apply_style() -> contextlib.AbstractContextManager[None]:
    """The shared rcParams as a context (also usable as a decorator): fonts and sizes are read when artists are
    made, so a family wraps its whole `draw` in it."""
    import matplotlib
    from cycler import cycler

    return matplotlib.rc_context({**RC, "axes.prop_cycle": cycler(color=_HUES)})


def new_figure(
    nrows: int = 1, ncols: int = 1, panel: tuple[float, float] = (4.4, 3.4), extra_width: float = 0.0, **kwargs: Any
) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure of `nrows` x `ncols` panels of `panel` inches each, plus `extra_width` inches
    (room for a legend outside the axes); axes always a 2-D array."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel[0] * ncols + extra_width, panel[1] * nrows), layout="constrained")
    axes = figure.subplots(nrows, ncols, squeeze=False, **kwargs)
    return figure, axes


def line_style(index: int, count: int) -> dict[str, Any]:
    """Colour, marker and line style of series `index` of `count`: up to seven are solid lines in seven colours; more
    get ten colours, ten markers and four line styles, no two series alike in colour or in greyscale."""
    if count <= len(PALETTE):
        hues = PALETTE if count == len(PALETTE) else _HUES
        return {"color": hues[index % len(hues)], "marker": MARKERS[index % len(MARKERS)], "linestyle": "-"}
    # Past ten series the colours come round again; the markers move on by one each round, so no two series share
    # both colour and marker (nor, within 20, marker and line style).
    return {
        "color": MANY[index % len(MANY)],
        "marker": MARKERS[(index + index // len(MANY)) % len(MARKERS)],
        "linestyle": LINESTYLES[index % len(LINESTYLES)],
    }


def heatmap_cmap() -> Any:
    """The heat maps' colour map: YlOrBr without its near-white lightest levels (`HEATMAP_FLOOR`)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    base = colormaps[HEATMAP_CMAP]
    return ListedColormap(base(np.linspace(HEATMAP_FLOOR, 1.0, 256)), name=f"{HEATMAP_CMAP}-floor")


def legend_width(labels: Iterable[str]) -> float:
    """Inches a legend of `labels` needs beside the axes (its longest line at the legend font size, plus handles)."""
    longest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    return 0.6 + 0.058 * longest


def series_label(name: str, n: int | str | None) -> str:
    """`name (n=...)`: every series in a legend says how many items its points average over."""
    return name if n is None or n == "" else f"{name} (n={n})"


def budget_ticks(ax: Axes, budgets: Iterable[int]) -> None:
    """A log2 budget axis with a tick at each budget, labelled 4k 8k 16k ..., and a margin either side."""
    ticks = sorted({int(b) for b in budgets})
    if not ticks:
        return
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [format_budget(b) for b in ticks])
    ax.minorticks_off()
    ax.set_xlim(ticks[0] / 1.25, ticks[-1] * 1.25)
    if len(ticks) > 7:  # a linear sweep (4k..40k:4k) crowds its top labels on a log axis
        ax.tick_params(axis="x", labelrotation=45)


def shade_extrapolation(ax: Axes, train_budget: float | None, data: Iterable[float] | None = None) -> None:
    """Grey band right of the training budget, under everything drawn (grid, CI bands, curves), a dashed line at it
    and the label "train budget 16k / extrapolation →", all inside the axes' current x range (set the limits first;
    they are not widened). Call it after the curves and the y limits: the label goes to the top or the bottom of the
    band, whichever the data drawn there leaves freer, so it does not cross a curve.

    Nothing is marked when the training budget lies right of the axes, or when `data` (the x values drawn) has no
    value past it: there is no extrapolation to show, only the dashed line, labelled "train budget 16k", where it falls
    inside the axes. When every x is past it the whole panel is shaded and the label, at the left edge, names the
    budget.
    """
    if not train_budget:
        return
    left, right = ax.get_xlim()
    trained = f"train budget {format_budget(int(train_budget))}"
    past = None if data is None else any(float(x) > train_budget for x in data)
    if train_budget >= right or past is False:
        if left <= train_budget < right:
            at = _axes_x(ax, train_budget)
            ax.axvline(train_budget, color="0.45", linestyle="--", linewidth=0.9, zorder=1)
            _band_label(ax, at, f"{trained} ", "right", _free_side(ax, 0.0, at))
        return
    start = max(left, float(train_budget))
    # zorder -1: under the grid lines and the CI bands (zorder 1), so the band tints what it spans, never covers it.
    ax.axvspan(start, right, color=EXTRAPOLATION_COLOR, alpha=0.6, zorder=-1, linewidth=0)
    ax.set_xlim(left, right)  # axvspan must not move the limits
    if train_budget <= left:
        _band_label(ax, 0.01, f"extrapolation ({trained}) \u2192", "left", _free_side(ax, 0.0, 1.0))
        return
    ax.axvline(train_budget, color="0.45", linestyle="--", linewidth=0.9, zorder=1)
    # Where the line falls, in axes coordinates: a narrow band takes its label on the left of the line.
    at = _axes_x(ax, train_budget)
    # The label takes two short lines, about a quarter of a panel wide: inside a band that wide, else left of it.
    inside = at <= 0.72
    side = _free_side(ax, at, 1.0) if inside else _free_side(ax, at - 0.3, at)
    if inside:
        _band_label(ax, at, f" {trained}\n extrapolation \u2192", "left", side)
    else:
        _band_label(ax, at, f"{trained} \nextrapolation \u2192 ", "right", side)


def _band_label(ax: Axes, x: float, text: str, ha: str, side: str) -> None:
    y, va = (0.985, "top") if side == "top" else (0.015, "bottom")
    ax.text(x, y, text, ha=ha, va=va, fontsize=7.5, color="0.3", zorder=5, transform=ax.transAxes,
            linespacing=1.15)  # fmt: skip


def _free_side(ax: Axes, start: float, stop: float) -> str:
    """ "top" or "bottom": the edge of the axes farther from what is drawn between `start` and `stop` (axes x)."""
    import numpy as np

    # Data-coordinate artists only: the training-budget line and scatter markers live in other coordinates.
    points = [line.get_xydata() for line in ax.get_lines() if line.get_transform() is ax.transData]
    points += [path.vertices for collection in ax.collections if collection.get_transform() is ax.transData
               for path in collection.get_paths()]  # fmt: skip
    found = [np.asarray(p, dtype=float).reshape(-1, 2) for p in points if len(p)]
    if not found:
        return "top"
    xy = ax.transAxes.inverted().transform(ax.transData.transform(np.concatenate(found)))
    ys = xy[(xy[:, 0] >= start - 0.02) & (xy[:, 0] <= stop + 0.02) & np.isfinite(xy).all(axis=1), 1]
    if not len(ys):
        return "top"
    return "top" if 1.0 - ys.max() >= ys.min() else "bottom"


def _axes_x(ax: Axes, x: float) -> float:
    """Where data x falls across the axes, from 0 (left edge) to 1 (right edge)."""
    return float(ax.transAxes.inverted().transform(ax.transData.transform((x, 0.0)))[0])


def percent_axis(ax: Axes, top: float, label: str) -> None:
    """A 0-100 % y axis (`label` gets the unit), topped a little above the data (panels that compare one quantity
    pass the same `top`: one y range); a sliver below 0 keeps a flat zero curve visible."""
    top = min(102.0, max(5.0, top * 1.08))
    ax.set_ylim(-0.025 * top, top)
    ax.set_ylabel(f"{label} (%)")


def wrap_title(text: str, width: float) -> str:
    """`text` (a title, lines split by newlines) wrapped to `width` inches at the figure title's font size, so a long
    run label or subtitle never widens the saved figure past the panels."""
    chars = max(30, int(width * 72 / (0.55 * RC["figure.titlesize"])))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def footnote(figure: Figure, text: str) -> None:
    """Small text under the figure (caveats a reader needs beside the picture), wrapped to the figure's width."""
    if not text:
        return
    width = max(40, int(figure.get_figwidth() * 18))  # characters per inch at 7 pt: the footnote spans the figure
    wrapped = "\n".join(textwrap.fill(part, width) for part in text.split("\n"))
    figure.text(0.01, 0.0, wrapped, ha="left", va="top", fontsize=7, color="0.3", transform=figure.transFigure)


def require_rows(frame: pd.DataFrame, source: str) -> None:
    """Refuse to draw from an empty frame: a blank figure would pass for a result. `source` names the input."""
    if frame is None or frame.empty:
        raise UserError(f"no rows to draw from {source}")


def save(figure: Figure, stem: Path) -> list[Path]:
    """Write `stem`.pdf and `stem`.png (200 dpi), each through a temporary file renamed into place; closes the
    figure. Returns [png, pdf]."""
    stem = Path(stem)
    paths = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    pin_legends(figure)
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
        for path in paths:
            with _temporary(path) as temp:
                # bbox "tight" keeps footnotes placed below the axes area inside the image.
                figure.savefig(temp, format=path.suffix[1:], dpi=DPI, bbox_inches="tight", pad_inches=0.02)
                os.replace(temp, path)
    except OSError as exc:
        raise UserError(f"cannot write {stem}.png/.pdf: {exc.strerror or exc}") from None
    finally:
        if "matplotlib.pyplot" in sys.modules:  # a figure made through pyplot stays registered until closed
            sys.modules["matplotlib.pyplot"].close(figure)
    return paths


def pin_legends(figure: Figure) -> None:
    """Run the layout once and keep it, each (sub)figure legend fixed where it put it. A legend outside the axes is
    anchored to the figure's box, and saving with bbox_inches="tight" stretches that box down over the footnote:
    unpinned, a legend under the panels would be drawn on top of the footnote."""
    figure.draw_without_rendering()
    to_figure = figure.transFigure.inverted()
    for holder in [figure, *figure.subfigs]:
        for legend in holder.legends:
            legend.set_bbox_to_anchor(legend.get_window_extent().transformed(to_figure), transform=figure.transFigure)
            legend.borderaxespad = 0.0  # the box is the legend's own: no padding inside it
    # A pinned legend no longer reserves its margin: the layout found above is kept as it is.
    figure.set_layout_engine("none")


@contextlib.contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield temp
    finally:
        temp.unlink(missing_ok=True)
