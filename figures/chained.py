"""Family "chained": pass@k after C chained asymmetries, a heatmap over (C, k) per training step (paper Fig. 10).

The loader reads a CSV or Parquet table with one row per (training step, C, k): the authors' published
`chained_asymmetry_grids.csv` (train_step, chained_asymmetries, k, pass_at_k) or the same table under the tidy names
(step, chained, k, value), with an optional `n` column (problems per cell). `draw` makes one panel per step, C rising
from bottom to top and k from left to right, so each top-left to bottom-right diagonal holds a constant attempt
budget C x k (16 chained x 1 pass, 8 x 2, ...), the comparison the paper's App. E.2 reads off the figure. All panels
share one colour scale (YlOrBr without its near-white levels, `style.heatmap_cmap`) and sit three across a 7-inch
page. This module does not count asymmetries in traces (`analysis/asymmetries.py` does).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.family import Family, Input
from e3eval.figures.panel_grid import panel_grid
from e3eval.figures.style import apply_style, footnote, heatmap_cmap, require_rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("step", "chained", "k", "value")
# The published table's names -> the tidy ones.
PUBLISHED_NAMES = {"train_step": "step", "chained_asymmetries": "chained", "pass_at_k": "value"}


def frame_from_table(paths: Path | str | Sequence[Path | str]) -> pd.DataFrame:
    """The (step, chained, k, value[, n]) rows of one or more CSV/Parquet grids, stacked."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if not paths:
        raise UserError("chained: give a table (chained_asymmetry_grids.csv or one like it)")
    frame = pd.concat([_read_grid(Path(p)) for p in paths], ignore_index=True)
    duplicated = frame.duplicated(["step", "chained", "k"])
    if duplicated.any():
        row = frame[duplicated].iloc[0]
        where = ", ".join(str(p) for p in paths)
        raise UserError(f"{where}: more than one row for step {row['step']}, C={row['chained']}, k={row['k']}")
    return frame


def _read_grid(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: cannot read as a {'Parquet' if path.suffix == '.parquet' else 'CSV'} table "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None  # fmt: skip
    table = table.rename(columns=PUBLISHED_NAMES)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UserError(f"{path}: no column(s) {', '.join(missing)} (a chained-asymmetry grid has train_step, "
                        "chained_asymmetries, k, pass_at_k, or step, chained, k, value)")  # fmt: skip
    if table.empty:
        raise UserError(f"{path}: no rows")
    keep = [*COLUMNS, *(["n"] if "n" in table.columns else [])]
    frame = table[keep].copy()
    try:
        frame = frame.astype({"step": "int64", "chained": "int64", "k": "int64", "value": "float64"})
    except (ValueError, TypeError) as exc:
        raise UserError(f"{path}: step, chained and k must be integers and value a number ({exc})") from None
    if not frame["value"].between(0, 1).all():
        raise UserError(f"{path}: pass@k values must lie in [0, 1]")
    return frame


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """One heatmap per training step: rows C (largest on top), columns k, cells pass@k in %."""
    require_rows(frame, "the chained-asymmetry table")
    steps = sorted(frame["step"].unique())
    chained = sorted(frame["chained"].unique(), reverse=True)
    ks = sorted(frame["k"].unique())
    vmax = 100 * float(frame["value"].max())
    with apply_style():
        # Three steps across a 7-inch page (a fourth starts a second row): cells stay wide enough for "99.0".
        grid = panel_grid(len(steps), panel_height=2.5, legend_slot=False, sharey=True)
        for index, (ax, step) in enumerate(zip(grid.panels, steps, strict=True)):
            cells = frame[frame["step"] == step].pivot(index="chained", columns="k", values="value")
            values = 100 * cells.reindex(index=chained, columns=ks).to_numpy(dtype=float)
            image = ax.imshow(np.ma.masked_invalid(values), cmap=heatmap_cmap(), vmin=0, vmax=vmax, aspect="auto")
            for (row, col), value in np.ndenumerate(values):
                text = "–" if np.isnan(value) else f"{value:.1f}"
                # Dark cells get white text: the colour scale's upper half is too dark for black.
                colour = "white" if not np.isnan(value) and value > 0.5 * vmax else "black"
                ax.text(col, row, text, ha="center", va="center", fontsize=7.5, color=colour)
            ax.set_xticks(range(len(ks)), [str(k) for k in ks])
            ax.set_yticks(range(len(chained)), [str(c) for c in chained])
            ax.tick_params(length=0)
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_title(f"step {step}" + _n_text(frame[frame["step"] == step]))
            ax.set_xlabel("k (independent attempts)")
            if index % grid.ncols == 0:  # the rows share C: it is named once per row
                ax.set_ylabel("C (chained asymmetries)")
            else:
                ax.tick_params(labelleft=False)
        figure = grid.figure
        figure.colorbar(image, ax=list(grid.panels), label="pass@k (%)", shrink=0.9)
        figure.suptitle(options.get("title") or "pass@k after C chained asymmetries, per training step")
        notes = ["Each top-left to bottom-right diagonal holds a constant budget C \u00d7 k."]
        if "n" not in frame.columns:
            notes.append("n (problems per cell) is not given in the table.")
        footnote(figure, " ".join(notes))
    return figure


def _n_text(rows: pd.DataFrame) -> str:
    if "n" not in rows.columns or rows["n"].isna().all():
        return ""
    low, high = int(rows["n"].min()), int(rows["n"].max())
    return f" (n={low})" if low == high else f" (n={low}-{high})"


def describe_n(frame: pd.DataFrame) -> str:
    if "n" in frame.columns and frame["n"].notna().any():
        return f"n={int(frame['n'].min())}-{int(frame['n'].max())} problems per cell"
    return "n not given in the table"


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    return frame_from_table(inputs["table"])


FAMILY = Family(
    name="chained",
    paper_figures=("10",),
    summary="pass@k after C chained asymmetries: heatmap over (C, k), one panel per training step",
    inputs={
        "table": Input("paths", "CSV/Parquet grids: train_step, chained_asymmetries, k, pass_at_k (or tidy names)"),
    },
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={"title": Input("text", "figure title", required=False)},
    describe_n=describe_n,
)
