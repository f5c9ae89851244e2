"""Family "bigram": the p^k bigram model's dynamics under GRPO and GRPOMask (paper Fig. 8, App. C / F.3).

Input: `histories`, the per-iteration CSVs of `e3train bigram` (`train/bigram_sim.py` `write_history`), each named in
the legend by the algorithm its provenance file (`CSV.json`) records, GRPO or GRPOMask (with the seed when two runs
share an algorithm), else by its file name. Five panels against the training iteration, as the paper's (a)-(d) plus the
reward: mean rollout length and mean reward with 95% normal CIs over the iteration's rollouts (n from the provenance
file; the length CI needs the CSV's `length_std`), the marginal p(stop), p(a*) on a log scale, and the mean conditional
entropy. `frame_from_histories` builds the same frame from in-memory statistics, for `e3train bigram --plot`
(`plot_histories`). This module trains nothing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.family import Family, Input
from e3eval.figures.panel_grid import fit_title, panel_grid, place_legend
from e3eval.figures.style import apply_style, footnote, line_style, require_rows, save, series_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from e3eval.records import IterationStats

COLUMNS = ("series", "iteration", "panel", "value", "ci_low", "ci_high", "n")
# panel -> (title, y label, log scale)
PANELS = {
    "mean_length": ("rollout length", "mean length (actions)", False),
    "reward": ("reward", "mean reward", False),
    "p_stop": ("p(stop)", "marginal p(stop)", False),
    "p_a_star": ("p(a*)", "marginal p(a*)", True),
    "entropy": ("next-action entropy", "conditional entropy (nats)", False),
}
ALGO_NAMES = {"grpo": "GRPO", "grpo_mask": "GRPOMask"}
Z95 = 1.959964


def frame_from_csv(paths: Sequence[Path]) -> pd.DataFrame:
    """The tidy frame of `e3train bigram` CSVs (their provenance `CSV.json` gives the name and n per iteration)."""
    from e3eval.records import BIGRAM_CSV_COLUMNS as CSV_COLUMNS

    runs = []
    for path in paths:
        try:
            table = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            raise UserError(f"{path}: cannot read as a bigram CSV ({str(exc).splitlines()[0]})") from None
        missing = [c for c in CSV_COLUMNS[:6] if c not in table.columns]
        if missing:
            raise UserError(f"{path}: no column(s) {', '.join(missing)}; expected an `e3train bigram --out` CSV")
        config, rollouts = _provenance(path)
        runs.append((path, config, rollouts, table))
    algos = [config.get("algo") for _, config, _, _ in runs]
    parts = []
    for path, config, rollouts, table in runs:
        name = ALGO_NAMES.get(config.get("algo"), Path(path).stem)
        if config.get("algo") and algos.count(config.get("algo")) > 1:
            name += f" (seed {config.get('seed')})"
        std = table["length_std"] if "length_std" in table.columns else None
        parts.append(_frame(name, table, std, rollouts))
    return pd.concat(parts, ignore_index=True)


def frame_from_histories(runs: Sequence[tuple[str, Sequence[IterationStats]]]) -> pd.DataFrame:
    """The same frame from `train.bigram_sim.iterate` statistics, named as `e3train bigram` names its algorithms."""
    parts = []
    for algo, history in runs:
        table = pd.DataFrame([asdict(s) for s in history])
        parts.append(_frame(ALGO_NAMES.get(algo, algo), table, table["length_std"], int(history[0].rollouts)))
    return pd.concat(parts, ignore_index=True)


def _frame(name: str, table: pd.DataFrame, length_std: pd.Series | None, rollouts: int | None) -> pd.DataFrame:
    parts = []
    n = float(rollouts) if rollouts else np.nan
    for panel in PANELS:
        value = table[panel].astype(float)
        half = pd.Series(np.nan, index=table.index)
        if panel == "mean_length" and length_std is not None and rollouts:
            half = Z95 * length_std.astype(float) / math.sqrt(rollouts)
        elif panel == "reward" and rollouts:
            half = Z95 * np.sqrt(value * (1 - value) / rollouts)
        iteration = table["iteration"].astype("int64")
        parts.append(pd.DataFrame({"series": name, "iteration": iteration, "panel": panel, "value": value,
                                   "ci_low": value - half, "ci_high": value + half, "n": n}))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def _provenance(path: Path) -> tuple[dict[str, Any], int | None]:
    """(config, rollouts per iteration) from `CSV.json`; ({}, None) when the CSV has none beside it."""
    sidecar = Path(path).with_name(Path(path).name + ".json")
    if not sidecar.is_file():
        return {}, None
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{sidecar}: not the JSON `e3train bigram` writes ({exc})") from None
    config = record.get("config") if isinstance(record, dict) else None
    rollouts = record.get("rollouts_per_iteration") if isinstance(record, dict) else None
    return (config if isinstance(config, dict) else {}), (rollouts if isinstance(rollouts, int) else None)


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    histories = inputs.get("histories") or []
    if not histories:
        raise UserError("bigram: give histories: the CSVs of `e3train bigram --out`")
    return frame_from_csv([Path(p) for p in histories])


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """Five panels, three across on a 7-inch page with the legend in the sixth cell (`panel_grid.py`); a line (and CI
    band where known) per run."""
    require_rows(frame, "the bigram histories")
    labels = {str(k): str(v) for k, v in (options.get("labels") or {}).items()}
    order = list(dict.fromkeys(frame["series"]))
    counts = {s: _rollouts(frame[frame["series"] == s]) for s in order}
    # n said once, in the footnote, when every run has as many rollouts per iteration; else in each legend entry.
    same_n = len(set(counts.values())) == 1
    names = {s: labels.get(s, s) if same_n else series_label(labels.get(s, s), counts[s]) for s in order}
    with apply_style():
        grid = panel_grid(len(PANELS))
        handles: dict[str, Any] = {}
        for ax, (panel, (title, ylabel, log)) in zip(grid.panels, PANELS.items(), strict=True):
            rows = frame[frame["panel"] == panel]
            for index, series in enumerate(order):
                points = rows[rows["series"] == series].sort_values("iteration")
                style = line_style(index, len(order))
                xs, ys = points["iteration"].to_numpy(), points["value"].to_numpy(dtype=float)
                # Each run's marker every eighth of the way keeps the runs apart in greyscale print.
                (line,) = ax.plot(xs, ys, color=style["color"], linestyle=style["linestyle"], linewidth=1.3,
                                  marker=style["marker"], markevery=max(1, len(xs) // 8), markersize=4)  # fmt: skip
                if points["ci_low"].notna().any():
                    ax.fill_between(xs, points["ci_low"].to_numpy(dtype=float), points["ci_high"].to_numpy(dtype=float),
                                    color=style["color"], alpha=0.2, linewidth=0)  # fmt: skip
                handles.setdefault(series, line)
            if log:
                ax.set_yscale("log")
            else:
                ax.ticklabel_format(axis="y", useOffset=False)  # "+3.66" above the axis reads as a misprint
            ax.set_title(fit_title(title, grid))
            ax.set_ylabel(ylabel)
            ax.set_xlabel("training iteration")
        place_legend(grid, [handles[s] for s in order], [names[s] for s in order])
        if options.get("title"):
            grid.figure.suptitle(options["title"])
        per = f"n={counts[order[0]]} per iteration. " if same_n and counts[order[0]] else ""
        footnote(grid.figure, f"{per}Bands: 95% normal CIs over the iteration's rollouts (length: from its spread; "
                 "reward: binomial). p(stop), p(a*) and entropy are exact properties of the policy, averaged over the "
                 "100 states.")  # fmt: skip
    return grid.figure


def _rollouts(rows: pd.DataFrame) -> str | None:
    n = rows["n"].dropna()
    return f"{int(n.iloc[0]):,} rollouts" if len(n) else None


def plot_histories(runs: Sequence[tuple[str, Sequence[IterationStats]]], stem: Path, title: str = "") -> list[Path]:
    """Draw the Fig. 8 panels of in-memory runs to `stem`.png and `stem`.pdf (what `e3train bigram --plot` does)."""
    return save(draw(frame_from_histories(runs), {"title": title}), stem)


def describe_n(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no rows"
    n = frame["n"].dropna()
    per = f", n={int(n.iloc[0]):,} rollouts per iteration" if len(n) and n.nunique() == 1 else ""
    return f"{frame['series'].nunique()} run(s), {int(frame['iteration'].max())} iterations{per}"


FAMILY = Family(
    name="bigram",
    paper_figures=("8",),
    summary="the p\u1d4f bigram model: rollout length, reward, p(stop), p(a*), entropy over GRPO / GRPOMask training",
    inputs={"histories": Input("paths", "`e3train bigram --out` CSVs (with their CSV.json beside them)")},
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={
        "labels": Input("mapping", "run name (GRPO, GRPOMask, or the file name) -> legend label", required=False),
        "title": Input("text", "figure title", required=False),
    },
    describe_n=describe_n,
)
