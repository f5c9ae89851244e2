"""Family "exploration": how much a policy explores over training (paper Fig. 12).

Left, cumulative unique attempts per problem against the training step, from rollout dumps (verl's `{step}.jsonl`,
ordered by the step in their names, not by the text of the names): `analysis.unique_attempts.unique_attempts` splits
each incorrect trace into Countdown attempts and counts the distinct ones a problem has seen so far, over problems
solved less than `max_solve_rate` of the time (App. F.1); the same numbers `e3eval unique-attempts` prints, with n
problems. Right, the share of responses that end in a repeating stream, per step, from per-step `count-asymmetries
--out` tables (the e3 rule `repeats_e3`, among incorrect responses as the authors count it, or among all when
correctness is not known), with a 95% bootstrap CI over traces. Each input maps a run's label to its files; either
panel can be drawn alone. This module counts nothing itself.
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
from e3eval.figures.readers import bootstrap_means, count_range, read_step_tables, resolve_series, step_of
from e3eval.figures.style import apply_style, footnote, line_style, percent_axis, require_rows

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("series", "step", "panel", "split", "value", "ci_low", "ci_high", "n")
PANELS = {
    "unique_attempts": ("cumulative unique attempts", "unique attempts per problem"),
    "repeating": ("responses ending in a repeating stream", "share of responses"),
}


def frame_from_dumps(series: Mapping[str, Sequence[Path]], max_solve_rate: float = 0.5) -> pd.DataFrame:
    """Cumulative unique attempts per step and series (no CI: the count is a running total per problem)."""
    from e3eval.analysis.traces import TraceFields
    from e3eval.analysis.unique_attempts import unique_attempts

    rows = []
    for label, paths in series.items():
        ordered = sorted(paths, key=lambda p: (step_of(p), str(p)))
        steps = [step_of(p) for p in ordered]
        if len(set(steps)) < len(steps):
            raise UserError(f"dumps: {label}: two dumps of one step ({_repeated(ordered)}); give one dump per step")
        for step, point in zip(steps, unique_attempts(ordered, TraceFields(), max_solve_rate), strict=True):
            rows.append((label, step, "unique_attempts", "incorrect", point.mean_unique, np.nan, np.nan,
                         point.n_problems))  # fmt: skip
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _repeated(paths: Sequence[Path]) -> str:
    seen: dict[int, Path] = {}
    for path in paths:
        if step_of(path) in seen:
            return f"{seen[step_of(path)].name} and {path.name}"
        seen[step_of(path)] = path
    return ""


def frame_from_repetition(series: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """The share of repeating responses per step (among incorrect ones when correctness is known)."""
    rows = []
    for label, paths in series.items():
        table = read_step_tables(paths, ("correct", "repeats_e3"))
        known = table["correct"].notna().any()
        for step, at_step in table.groupby("step", sort=True):
            traces = at_step[at_step["correct"] == False] if known else at_step  # noqa: E712 (True/False/None)
            values = traces["repeats_e3"].dropna().astype(float).to_numpy()
            if len(values):
                ((mean, low, high),) = bootstrap_means(values[None, :])
                rows.append((label, int(step), "repeating", "incorrect" if known else "all", mean, low, high,
                             len(values)))  # fmt: skip
    if not rows:
        raise UserError(f"repetition: no incorrect traces to check in {', '.join(map(str, series))}")
    return pd.DataFrame(rows, columns=list(COLUMNS))


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    """`dumps` (rollout dumps per step) and/or `repetition` (per-step count-asymmetries tables), label -> files."""
    dumps = resolve_series(inputs.get("dumps"), base, "dumps")
    repetition = resolve_series(inputs.get("repetition"), base, "repetition")
    if not (dumps or repetition):
        raise UserError("exploration: give dumps (rollout dumps per step) and/or repetition (count-asymmetries "
                        "tables per step), as label: glob")  # fmt: skip
    rate = inputs.get("max_solve_rate", 0.5)
    if not 0 < float(rate) <= 1:
        raise UserError(f"max_solve_rate must be in (0, 1], not {rate}")
    parts = ([frame_from_dumps(dumps, float(rate))] if dumps else []) + (
        [frame_from_repetition(repetition)] if repetition else []
    )
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["max_solve_rate"] = float(rate)
    return frame


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """Unique attempts (left) and repeating responses (right), whichever the frame has; a line per series."""
    require_rows(frame, "the exploration inputs (dumps, repetition)")
    labels = {str(k): str(v) for k, v in (options.get("labels") or {}).items()}
    order = list(dict.fromkeys(frame["series"]))
    panels = [p for p in PANELS if p in set(frame["panel"])]
    with apply_style():
        grid = panel_grid(len(panels), panel_height=2.8)
        handles: dict[str, Any] = {}
        for ax, panel in zip(grid.panels, panels, strict=True):
            rows = frame[frame["panel"] == panel]
            scale = 100.0 if panel == "repeating" else 1.0
            for index, series in enumerate(order):
                points = rows[rows["series"] == series].sort_values("step")
                if points.empty:
                    continue
                style = line_style(index, len(order))
                if len(points) > 25:
                    style["marker"] = None
                xs = points["step"].to_numpy()
                (line,) = ax.plot(xs, scale * points["value"].to_numpy(dtype=float), **style)
                if points["ci_low"].notna().any():
                    ax.fill_between(xs, scale * points["ci_low"].to_numpy(dtype=float),
                                    scale * points["ci_high"].to_numpy(dtype=float), color=style["color"],
                                    alpha=0.15, linewidth=0)  # fmt: skip
                handles.setdefault(series, line)
            title, ylabel = PANELS[panel]
            if panel == "repeating":
                percent_axis(ax, scale * float(rows[["value", "ci_high"]].max().max()), ylabel)
                among = "incorrect" if (rows["split"] == "incorrect").all() else "all"
                title += f"\n(among {among} responses)"
            else:
                ax.set_ylabel(ylabel)
                ax.set_ylim(bottom=0)
                title += "\n(incorrect traces, hard problems)"
            ax.set_title(fit_title(title, grid))
            ax.set_xlabel("gradient step")
        shown = [s for s in order if s in handles]
        place_legend(grid, [handles[s] for s in shown], [labels.get(s, s) for s in shown])
        if options.get("title"):
            grid.figure.suptitle(options["title"])
        footnote(grid.figure, _note(frame, labels))
    return grid.figure


def _note(frame: pd.DataFrame, labels: Mapping[str, str]) -> str:
    parts = []
    unique = frame[frame["panel"] == "unique_attempts"]
    if not unique.empty:
        by_series = unique.groupby("series", sort=False)["n"].first()
        counts = ", ".join(f"{labels.get(s, s)} n={int(n)}" for s, n in by_series.items())
        rate = frame.attrs.get("max_solve_rate")
        threshold = f"{rate:.0%} of the time" if rate is not None else "the threshold rate"
        parts.append(f"Unique attempts: mean over the problems solved less than {threshold} over all steps "
                     f"({counts} problems); no CI (a running total per problem).")  # fmt: skip
    repeating = frame[frame["panel"] == "repeating"]
    if not repeating.empty:
        n = count_range(repeating["n"])
        parts.append(f"Repeating: the e3 rule (the last 100 characters occur more than 5 times); n={n} responses per "
                     "step; bands: 95% bootstrap CI over responses.")  # fmt: skip
    return " ".join(parts)


def describe_n(frame: pd.DataFrame) -> str:
    if frame.empty:
        return "no rows"
    parts = []
    unique = frame[frame["panel"] == "unique_attempts"]
    if not unique.empty:
        parts.append(f"unique attempts: n={count_range(unique['n'])} problems per series")
    repeating = frame[frame["panel"] == "repeating"]
    if not repeating.empty:
        parts.append(f"repeating: n={count_range(repeating['n'])} responses per step")
    return "; ".join(parts)


FAMILY = Family(
    name="exploration",
    paper_figures=("12",),
    summary="cumulative unique attempts and the share of repeating responses over training steps",
    inputs={
        "dumps": Input("mapping", "run label -> rollout dumps, one per step (verl STEP.jsonl; glob)", required=False),
        "repetition": Input("mapping", "run label -> per-step `count-asymmetries --out` tables (glob)", required=False),
        "max_solve_rate": Input(
            "number", "unique attempts: keep problems solved less often than this (0.5)", required=False
        ),
    },
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={
        "labels": Input("mapping", "run label -> legend label", required=False),
        "title": Input("text", "figure title", required=False),
    },
    describe_n=describe_n,
)
