"""Family "lengths": histograms of response length, one outline per model or training setting (paper Fig. 15).

Inputs map a label to its files: `runs`, run directories (the `num_tokens` of every sample; failed requests are not
samples and are left out, as `e3eval/samples.py` decides), and `traces`, `e3eval count-asymmetries --out` tables (their
`n_tokens`, whole traces only). A label with several files pools them. Each histogram is normalised to the share of
that series' responses per bin, so runs of different sizes compare; the legend gives the share that ran into the
generation limit (those pile up in the last bin) and n (said once, in the footnote, when every series has as many).
Option `panels` groups labels into panels on one y range, as the paper's (a)-(d), laid out for a 7-inch page
(`panel_grid.py`); `train_budget` shades the lengths past the training budget. This module counts no tokens itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.family import Family, Input
from e3eval.figures.panel_grid import fit_title, panel_grid, place_legend
from e3eval.figures.readers import read_trace_table, resolve_series
from e3eval.figures.style import (
    LINESTYLES,
    apply_style,
    footnote,
    line_style,
    require_rows,
    series_label,
    shade_extrapolation,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("series", "length", "truncated")


def frame_from_runs(series: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """One row per sample of each run: its length in tokens and whether it stopped at the generation limit."""
    from e3eval.run import Run

    parts = []
    for label, paths in series.items():
        for path in paths:
            run = Run.open(path)
            table = run.table("rollouts", ["num_tokens", "finish_reason"]).to_pandas()
            # Storage order is the ledger's order: its mask keeps samples and drops failed requests.
            samples = table[run.samples().keep]
            if samples.empty:
                raise UserError(f"runs: {label}: {path} has no samples (every stored request failed)")
            parts.append(pd.DataFrame({"series": label, "length": samples["num_tokens"].astype("int64"),
                                       "truncated": samples["finish_reason"] == "length"}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def frame_from_traces(series: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """One row per trace of count-asymmetries tables; `truncated` is unknown where the table has no finish reason."""
    parts = []
    for label, paths in series.items():
        for path in paths:
            table = read_trace_table(path, ("n_tokens", "finished"))
            lengths = pd.to_numeric(table["n_tokens"], errors="coerce")
            if lengths.isna().all():
                raise UserError(f"traces: {label}: {path} has no token counts (count with --token-ids-field or "
                                "--tokenizer, or from a run directory)")  # fmt: skip
            finished = table["finished"].map(lambda v: None if v is None or v != v else not bool(v))
            keep = lengths.notna()
            parts.append(pd.DataFrame({"series": label, "length": lengths[keep].astype("int64"),
                                       "truncated": finished[keep].astype("object")}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    """Lengths from `runs` and/or `traces`; a label given in both is one series (pooled)."""
    runs = resolve_series(inputs.get("runs"), base, "runs")
    traces = resolve_series(inputs.get("traces"), base, "traces")
    if not (runs or traces):
        raise UserError("lengths: give runs (run directories) or traces (count-asymmetries tables), as label: path")
    parts = ([frame_from_runs(runs)] if runs else []) + ([frame_from_traces(traces)] if traces else [])
    return pd.concat(parts, ignore_index=True)


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """A panel per group of `panels` (default: one panel with every series): outlined, normalised histograms."""
    require_rows(frame, "the lengths inputs (runs, traces)")
    labels = {str(k): str(v) for k, v in (options.get("labels") or {}).items()}
    order = list(dict.fromkeys(frame["series"]))
    groups = _groups(options.get("panels"), order)
    bins = int(options.get("bins") or 40)
    if bins < 2:
        raise UserError("lengths: bins must be at least 2")
    train_budget = options.get("train_budget")
    top = int(frame["length"].max())
    edges = np.linspace(0, max(top, 1), bins + 1)
    sizes = frame.groupby("series", sort=False).size()
    # n said once, in the footnote, when every series has as many responses; else in each legend entry.
    same_n = sizes.nunique() == 1
    names = {s: _legend_name(frame[frame["series"] == s], labels.get(s, s), not same_n) for s in order}
    with apply_style():
        grid = panel_grid(len(groups), panel_height=2.6, legend_slot=len(order) <= 4)
        handles: dict[str, Any] = {}
        for ax, (title, members) in zip(grid.panels, groups, strict=True):
            for series in members:
                index = order.index(series)
                values = frame.loc[frame["series"] == series, "length"].to_numpy()
                style = line_style(index, len(order))
                weights = np.full(len(values), 100.0 / len(values))
                # Histograms have no markers: a line style per series keeps them apart in greyscale print.
                ax.hist(values, bins=edges, weights=weights, color=style["color"], alpha=0.12)
                _, _, patches = ax.hist(values, bins=edges, weights=weights, histtype="step", color=style["color"],
                                        linewidth=1.5, linestyle=LINESTYLES[index % len(LINESTYLES)])  # fmt: skip
                handles.setdefault(series, patches[0])
            ax.set_xlim(0, edges[-1] * 1.02)
            ax.set_xlabel("response length (tokens)")
            ax.set_ylabel("share of responses (%)")
            if title:
                ax.set_title(fit_title(title, grid))
        top = max(ax.get_ylim()[1] for ax in grid.panels)
        for ax in grid.panels:  # every panel shows one quantity, the share of responses: one y range
            ax.set_ylim(0, top)
            shade_extrapolation(ax, train_budget)  # after the y range: its label goes where the bars leave room
        shown = [s for s in order if s in handles]
        place_legend(grid, [handles[s] for s in shown], [names[s] for s in shown])
        figure = grid.figure
        if options.get("title"):
            figure.suptitle(options["title"])
        width = edges[1] - edges[0]
        per = f"n={int(sizes.iloc[0]):,} responses per series; " if same_n else ""
        footnote(figure, f"{per}{bins} bins of {width:,.0f} tokens; each histogram sums to 100% of its series' "
                 "responses (failed requests are not responses).")  # fmt: skip
    return figure


def _groups(panels: Any, order: list[str]) -> list[tuple[str, list[str]]]:
    if not panels:
        return [("", order)]
    if not isinstance(panels, Mapping) or not all(isinstance(v, list) for v in panels.values()):
        raise UserError("lengths: panels must map a panel title to a list of series labels")
    groups = []
    for title, members in panels.items():
        unknown = [m for m in members if m not in order]
        if unknown or not members:
            raise UserError(f"lengths: panel {title!r}: unknown series {', '.join(map(str, unknown)) or '(none)'} "
                            f"(the inputs give {', '.join(order)})")  # fmt: skip
        groups.append((str(title), [str(m) for m in members]))
    return groups


def _legend_name(rows: pd.DataFrame, name: str, with_n: bool) -> str:
    label = series_label(name, f"{len(rows):,}" if with_n else None)
    known = rows["truncated"].dropna()
    if len(known):
        label += f"\n{100 * known.astype(bool).mean():.0f}% at the generation limit"
    return label


def describe_n(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no rows"
    counts = frame.groupby("series", sort=False).size()
    low, high = int(counts.min()), int(counts.max())
    return f"n={low:,} responses per series" if low == high else f"n={low:,}-{high:,} responses per series"


FAMILY = Family(
    name="lengths",
    paper_figures=("15",),
    summary="response-length histograms by model, budget or training setting",
    inputs={
        "runs": Input(
            "mapping", "label -> run directory (samples' num_tokens; failed requests left out)", required=False
        ),
        "traces": Input("mapping", "label -> `count-asymmetries --out` tables (n_tokens)", required=False),
    },
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={
        "panels": Input("mapping", "panel title -> list of labels (default: one panel with all)", required=False),
        "bins": Input("number", "histogram bins (default 40)", required=False),
        "train_budget": Input("number", "training budget in tokens: lengths past it are shaded", required=False),
        "labels": Input("mapping", "label -> legend label", required=False),
        "title": Input("text", "figure title", required=False),
    },
    describe_n=describe_n,
)
