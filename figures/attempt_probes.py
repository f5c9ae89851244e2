"""Family "attempts": how a new attempt depends on the attempts before it, per checkpoint (paper Fig. 13, App. F.1).

Input: `probes`, a mapping from a label to `e3eval probe --attempts` output (run directories or attempt_probes.parquet
files). For each attempt index k >= 2 the probe stores three log-probability differences
(`e3eval/probes/attempt_logprobs.py`): (a) log p(a_k | a_1..k-1) - log p(a_k | a_1..k-2), about 0 when attempts are
independent; (b) log p(a_k | a_1..k-1) - log p(a_k-1 | a_1..k-2), the model more certain of what to try next;
(c) log p(a_k-1 | a_1..k-1), the chance of repeating the latest attempt. Each is a sum over the attempt's tokens
(nats), or with `unit: per-token` divided by its token count. Per checkpoint and k: the mean over samples of each
problem, then over problems, with a 95% bootstrap CI over problems; points resting on fewer than `min_n` problems are
left out (the tail of large k is thin). One line per checkpoint step, light to dark as training goes on (orange to dark
brown: no level pale enough to vanish on white); each panel is titled with its formula. For one label the panels sit
2 x 2 with the legend in the fourth cell; for several, a row of three per label, or per experiment, preset, attempt cap
and dtype where a label's tables hold several (`identity.py`: those are never averaged together; the footnote says
what each row is). Samples with fewer than two attempts have no k and do not count. This module runs no model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.family import Family, Input
from e3eval.figures.identity import display_name, short_paths, split
from e3eval.figures.panel_grid import fit_title, panel_grid, place_legend
from e3eval.figures.readers import bootstrap_means, count_range, read_probe_table, resolve_series
from e3eval.figures.style import HEATMAP_CMAP, apply_style, footnote, require_rows, series_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("series", "checkpoint", "step", "k", "quantity", "unit", "value", "ci_low", "ci_high", "n")
# a_{<k} = a_1 .. a_{k-1}: the short form keeps each formula on one line over a panel a third of a page wide.
QUANTITIES = {
    "fig13a": ("(a) dependence on the previous attempt", r"$\log p(a_k|a_{<k}) - \log p(a_k|a_{<k-1})$"),
    "fig13b": ("(b) certainty about the next attempt", r"$\log p(a_k|a_{<k}) - \log p(a_{k-1}|a_{<k-1})$"),
    "fig13c": ("(c) repeating the latest attempt", r"$\log p(a_{k-1}|a_{<k})$"),
}
UNITS = {"sum": "", "per-token": "_per_token"}
# What separates rows beyond the model: a preset segments attempts differently, a cap stops at another k.
SPLIT_BY = ("dtype", "temperature", "preset", "max_attempts")


def frame_from_probes(series: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """Mean and CI per (series, checkpoint, k, quantity, unit) over problems. A label whose rows hold several
    experiments, presets, attempt caps or dtypes is one series (row of panels) each (`identity.split`)."""
    rows = []
    for label, paths in series.items():
        table = pd.concat([read_probe_table(p, "attempt_probes") for p in paths], ignore_index=True)
        table = table[table["k"].notna()]
        if table.empty:
            raise UserError(f"probes: {label}: no response has two attempts or more (nothing to draw per k)")
        for group in split(table, label, by=SPLIT_BY):
            at_group = group.rows.assign(checkpoint=_checkpoints(group.rows))
            columns = [f"{q}{suffix}" for q in QUANTITIES for suffix in UNITS.values() if f"{q}{suffix}" in at_group]
            for (checkpoint, k), at in at_group.groupby(["checkpoint", "k"], sort=False):
                per_problem = at.groupby("problem_id")[columns].mean()
                step = at["step"].iloc[0]
                for column in columns:
                    values = per_problem[column].dropna().to_numpy(dtype=float)
                    if len(values):
                        ((mean, low, high),) = bootstrap_means(values[None, :])
                        quantity, unit = (column[:6], "per-token") if column.endswith("_per_token") else (column, "sum")
                        rows.append((group.name, checkpoint, step, int(k), quantity, unit, mean, low, high,
                                     len(values), group.about))  # fmt: skip
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "about"])
    return frame.astype({"k": "int64", "n": "int64", "step": "float64"})


def _checkpoints(rows: pd.DataFrame) -> list[str]:
    """Each row's line: `step 40`, or for a model without a step (a base model) its folder's name, with as many
    parent folders as tell two such models apart. `split` leaves one experiment per group, so steps are unique."""
    loose = sorted({str(m) for m, s in zip(rows["model"], rows["step"], strict=True) if _no_step(s)})
    shown = dict(zip(loose, short_paths(loose), strict=True))
    return [shown[str(m)] or "model" if _no_step(s) else f"step {int(s)}"
            for m, s in zip(rows["model"], rows["step"], strict=True)]  # fmt: skip


def _no_step(step: Any) -> bool:
    return step is None or (isinstance(step, float) and math.isnan(step))


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    probes = resolve_series(inputs.get("probes"), base, "probes")
    if not probes:
        raise UserError("attempts: give probes: label -> run directory or attempt_probes.parquet")
    return frame_from_probes(probes)


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """Panels (a)-(c) per series (2 x 2 with the legend for one, else a row each); a line per checkpoint over k with
    its CI band."""
    require_rows(frame, "the attempt probes (probes)")
    unit = str(options.get("unit") or "sum")
    if unit not in UNITS:
        raise UserError(f"attempts: unit {unit!r} is not 'sum' or 'per-token'")
    min_n = int(options.get("min_n", 5))
    max_k = options.get("max_k")
    rows = frame[(frame["unit"] == unit) & (frame["n"] >= min_n)]
    if max_k is not None:
        rows = rows[rows["k"] <= int(max_k)]
    if rows.empty:
        raise UserError(f"attempts: no point rests on {min_n} problems or more (lower min_n; the largest n is "
                        f"{int(frame['n'].max())})")  # fmt: skip
    labels = {str(k): str(v) for k, v in (options.get("labels") or {}).items()}
    order = list(dict.fromkeys(rows["series"]))
    checkpoints = _checkpoint_order(rows)
    colors = _colors(len(checkpoints))
    counts = [count_range(rows.loc[rows["checkpoint"] == c, "n"]) for c in checkpoints]
    # n said once, in the footnote, when every checkpoint rests on as many problems; else in each legend entry.
    same_n = len(set(counts)) == 1
    texts = list(checkpoints) if same_n else [series_label(c, n) for c, n in zip(checkpoints, counts, strict=True)]
    import matplotlib

    with apply_style():
        # One label: (a) and (b) above, (c) and the legend below, each panel wide enough for its formula. Several:
        # a row of (a)-(c) per label, the legend under them.
        grid = panel_grid(3 * len(order), ncols=2 if len(order) == 1 else 3, panel_height=2.7)
        handles: dict[str, Any] = {}
        for index, series in enumerate(order):
            of_series = rows[rows["series"] == series]
            row_axes = grid.panels[3 * index : 3 * index + 3]
            for ax, (quantity, (title, formula)) in zip(row_axes, QUANTITIES.items(), strict=True):
                points = of_series[of_series["quantity"] == quantity]
                for checkpoint, color in zip(checkpoints, colors, strict=True):
                    line = points[points["checkpoint"] == checkpoint].sort_values("k")
                    if line.empty:
                        continue
                    xs = line["k"].to_numpy()
                    (handle,) = ax.plot(xs, line["value"].to_numpy(dtype=float), color=color, marker="o",
                                        markersize=3)  # fmt: skip
                    if line["ci_low"].notna().any():
                        ax.fill_between(xs, line["ci_low"].to_numpy(dtype=float), line["ci_high"].to_numpy(dtype=float),
                                        color=color, alpha=0.15, linewidth=0)  # fmt: skip
                    handles.setdefault(checkpoint, handle)
                if quantity != "fig13c":
                    ax.axhline(0, color="0.5", linewidth=0.8, zorder=0)
                name = title if len(order) == 1 else f"{display_name(series, labels)}: {title}"
                # The formula is the title's second line: as a y label it ran into the next panel's tick labels.
                # Three across (several labels), the title takes the tick labels' size so its formula fits.
                size = None if grid.ncols == 2 else float(matplotlib.rcParams["xtick.labelsize"])
                ax.set_title(f"{fit_title(name, grid, size)}\n{formula}", **({"fontsize": size} if size else {}))
                ax.set_xlabel("attempt index k")
                ax.set_ylabel("nats per token" if unit == "per-token" else "nats")
                ax.xaxis.get_major_locator().set_params(integer=True)
        shown = [c for c in checkpoints if c in handles]
        place_legend(grid, [handles[c] for c in shown], [texts[checkpoints.index(c)] for c in shown], "checkpoint")
        figure = grid.figure
        title = options.get("title") or (display_name(order[0], labels) if len(order) == 1 else "")
        if title:
            figure.suptitle(title)
        per_point = f" n={counts[0]} problems per point;" if same_n else ""
        footnote(figure, f"Per checkpoint and k: mean over problems of each problem's mean over samples;{per_point} "
                 f"bands: 95% bootstrap CI over problems; points with fewer than {min_n} problems left out. "
                 f"Log-probabilities are {'per token' if unit == 'per-token' else 'sums over the attempt tokens'}. "
                 f"{_about(rows, labels)}")  # fmt: skip
    return figure


def _about(rows: pd.DataFrame, labels: Mapping[str, str]) -> str:
    """What each row of panels is (experiment, dtype, preset, attempt cap), for the footnote."""
    if "about" not in rows.columns:
        return ""
    first = rows.drop_duplicates("series")
    return "Probed: " + "; ".join(f"{display_name(s, labels)} = {a}" for s, a in
                                  zip(first["series"], first["about"], strict=True)) + "."  # fmt: skip


def _checkpoint_order(rows: pd.DataFrame) -> list[str]:
    """Checkpoints without a step (the base model) first, then by step."""
    first = rows.drop_duplicates("checkpoint")
    return list(first.sort_values("step", na_position="first", kind="stable")["checkpoint"])


def _colors(count: int) -> list[Any]:
    """Light to dark along Tol's sequential YlOrBr from its orange middle: its yellow half is too pale for a line on
    white (step 0 would all but vanish), and the dark half still orders the checkpoints in greyscale."""
    from matplotlib import colormaps

    cmap = colormaps[HEATMAP_CMAP]
    return [cmap(x) for x in (np.linspace(0.5, 1.0, count) if count > 1 else [0.8])]


def describe_n(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no rows"
    return (f"{frame['checkpoint'].nunique()} checkpoint(s), k={int(frame['k'].min())}-{int(frame['k'].max())}, "
            f"n={count_range(frame['n'])} problems per point")  # fmt: skip


FAMILY = Family(
    name="attempts",
    paper_figures=("13",),
    summary="attempt-conditional log-probabilities vs attempt index k, one line per checkpoint",
    inputs={
        "probes": Input("mapping", "label -> `e3eval probe --attempts` run directories or attempt_probes.parquet"),
    },
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={
        "unit": Input("text", "'sum' (nats per attempt, default) or 'per-token'", required=False),
        "min_n": Input("number", "leave out points with fewer problems than this (default 5)", required=False),
        "max_k": Input("number", "largest attempt index drawn", required=False),
        "labels": Input("mapping", "label -> title", required=False),
        "title": Input("text", "figure title", required=False),
    },
    describe_n=describe_n,
)
