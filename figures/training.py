"""Family "training": training dynamics against the gradient step, several runs side by side (paper Fig. 2, 3, 11,
14, 17).

The inputs (`metrics`, `asymmetries`, `probes`, each a mapping from a run's label to its files) are read into one tidy
frame by `training_inputs.py`, one row per (series, step, panel, split). `draw` lays the panels out in a grid for a
7-inch page (`panel_grid.py`): the training reward, validation accuracy per data source (in %), response length,
verification steps, attempts, equations per attempt, chained asymmetries, entropy and KL, each with data; a colour per
run and, for count panels, a line style per correctness (correct solid, incorrect dashed; `responses: all` draws every
response instead). The footnote says what each point averages over (n) and what the bands are. This module reads no
file itself, computes no counts (`analysis/`) and runs no probe (`e3eval/probes/`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.family import Family, Input
from e3eval.figures.identity import display_name
from e3eval.figures.panel_grid import fit_title, panel_grid, place_legend
from e3eval.figures.readers import count_range
from e3eval.figures.style import apply_style, footnote, line_style, percent_axis, require_rows
from e3eval.figures.training_inputs import COLUMNS, load

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPLITS = ("all", "correct", "incorrect")
SPLIT_STYLE = {"correct": "-", "incorrect": "--", "all": "-"}
# panel -> (title, y label). Panels not listed here (from `metric_keys`) are titled by their metric.
PANELS = {
    "reward": ("training reward", "mean reward per response"),
    "accuracy": ("validation accuracy", "accuracy (mean over samples)"),
    "length": ("response length", "tokens per response"),
    "verify": ("verification steps", "verifications per response"),
    "attempts": ("attempts", "attempts per response"),
    "chained": ("chained asymmetries", "chained steps per response"),
    "equations": ("equations per attempt", "equations / attempt (mean)"),
    "entropy": ("entropy (training batch, verl)", "nats per token"),
    "probe_entropy": ("entropy (probe)", "nats per token"),
    "kl": ("KL loss to the reference (verl)", "nats per token"),
    "probe_kl": ("token KL to the base model (probe, exact)", "nats per token"),
}


def panel_order(frame: pd.DataFrame) -> list[str]:
    """Every panel with data: the known ones in the paper's reading order, then accuracy per source, then others."""
    present = list(dict.fromkeys(frame["panel"]))
    known = [p for p in ("reward", "length", "verify", "attempts", "equations", "chained", "entropy", "probe_entropy",
                         "kl", "probe_kl") if p in present]  # fmt: skip
    accuracy = sorted(p for p in present if p.startswith("accuracy:"))
    others = [p for p in present if p not in known and p not in accuracy]
    return [*known[:1], *accuracy, *known[1:], *others]


def panel_text(panel: str) -> tuple[str, str]:
    """(title, y label) of a panel."""
    if panel.startswith("accuracy:"):
        title, label = PANELS["accuracy"]
        return f"{title}: {panel.split(':', 1)[1]}", label
    return PANELS.get(panel, (panel, "value"))


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """One panel per quantity in a 7-inch grid (`panel_grid.py`: the legend in a spare slot, else under the panels); a
    colour per series, a line style per split; accuracy in %, on one y range across data sources."""
    require_rows(frame, "the training inputs (metrics, asymmetries, probes)")
    frame = _with_responses(_with_probe_budget(frame, options.get("probe_budget")), options.get("responses"))
    panels = list(options.get("panels") or panel_order(frame))
    unknown = [p for p in panels if p not in set(frame["panel"])]
    if unknown:
        hint = "; equations needs count-asymmetries --preset countdown tables" if "equations" in unknown else ""
        raise UserError(f"training: no data for panel(s) {', '.join(unknown)} (the inputs give "
                        f"{', '.join(panel_order(frame))}{hint})")  # fmt: skip
    smooth = int(options.get("smooth") or 1)
    if smooth < 1:
        raise UserError("training: smooth must be a window of at least 1 step")
    labels = {str(k): str(v) for k, v in (options.get("labels") or {}).items()}
    order = list(dict.fromkeys(frame["series"]))
    names = [display_name(s, labels) for s in order]
    shown = frame[frame["panel"].isin(panels)]
    splits_drawn = set(shown["split"]) - {"all"}
    # "all" is dotted only where it shares a panel and run with a correct/incorrect split (`_draw_series`).
    if (shown.groupby(["panel", "series"])["split"].agg(lambda s: "all" in set(s) and len(set(s)) > 1)).any():
        splits_drawn.add("all")
    shares = [p for p in panels if _is_share(p, shown[shown["panel"] == p])]
    # Accuracy panels compare one quantity: one y range, topped by the highest value or CI bound among them.
    top = 100 * float(shown.loc[shown["panel"].isin(shares), ["value", "ci_high"]].max().max()) if shares else 0.0
    with apply_style():
        grid = panel_grid(len(panels))
        for ax, panel in zip(grid.panels, panels, strict=True):
            rows = frame[frame["panel"] == panel]
            title, ylabel = panel_text(panel)
            if panel in shares:  # accuracy in %, as every other figure draws it
                rows = rows.assign(**{c: 100 * rows[c] for c in ("value", "ci_low", "ci_high") if c in rows})
            for index, series in enumerate(order):
                _draw_series(ax, rows[rows["series"] == series], line_style(index, len(order)), smooth)
            ax.set_title(fit_title(title, grid))
            ax.set_xlabel("gradient step")
            if panel in shares:
                percent_axis(ax, top, "accuracy")  # the mean over samples, in %: short enough for a narrow panel
            else:
                ax.set_ylabel(ylabel)
        handles, texts = _legend(order, names, splits_drawn)
        place_legend(grid, handles, texts)
        if options.get("title"):
            grid.figure.suptitle(options["title"])
        footnote(grid.figure, _note(frame[frame["panel"].isin(panels)], smooth, labels))
    return grid.figure


def _is_share(panel: str, rows: pd.DataFrame) -> bool:
    """An accuracy panel whose values are shares (0-1): a validation reward on another scale stays as logged."""
    values = rows["value"].dropna()
    return panel.split(":", 1)[0] == "accuracy" and bool(values.between(0.0, 1.0).all())


def _with_probe_budget(frame: pd.DataFrame, budget: Any) -> pd.DataFrame:
    """Probe rows at one budget: `probe_budget`, else the largest probed (the whole response up to that limit)."""
    probes = frame["source"] == "probes" if "source" in frame.columns else pd.Series(False, index=frame.index)
    if not probes.any():
        return frame
    have = sorted({int(b) for b in frame.loc[probes, "budget"]})
    chosen = int(budget) if budget is not None else have[-1]
    if chosen not in have:
        raise UserError(f"training: probe_budget {chosen} was not probed (budgets: {', '.join(map(str, have))})")
    return frame[~probes | (frame["budget"] == chosen)]


def _with_responses(frame: pd.DataFrame, responses: Any) -> pd.DataFrame:
    """Count rows of one kind: per correctness (default; "all" stays only where correctness is not known) or, with
    `responses: all`, over every response."""
    chosen = str(responses or "split")
    if chosen not in ("split", "all"):
        raise UserError(f"training: responses must be 'split' (correct / incorrect) or 'all', not {chosen!r}")
    counts = (frame.get("source", pd.Series("", index=frame.index)) == "count-asymmetries").to_numpy()
    whole = (frame["split"] == "all").to_numpy()
    if chosen == "all":
        return frame[~counts | whole]
    keys = list(zip(frame["series"], frame["step"], frame["panel"], strict=True))
    split = {key for key, count, all_ in zip(keys, counts, whole, strict=True) if count and not all_}
    return frame[[not (count and all_ and key in split) for key, count, all_ in zip(keys, counts, whole, strict=True)]]


def _draw_series(ax: Any, rows: pd.DataFrame, series_style: dict[str, Any], smooth: int) -> None:
    """One run's lines: its colour and marker (so runs stay apart in greyscale print), one line style per split."""
    color, series_marker = series_style["color"], series_style["marker"]
    splits = set(rows["split"])
    for split in SPLITS:
        points = rows[rows["split"] == split].sort_values("step")
        if points.empty:
            continue
        # "all" beside a correct/incorrect split of the same run is a third line: dotted keeps it apart.
        style = ":" if split == "all" and len(splits) > 1 else SPLIT_STYLE[split]
        xs, ys = points["step"].to_numpy(), points["value"].to_numpy(dtype=float)
        # A dense per-step curve carries its run's marker every eighth of the way, a sparse one at every point.
        markevery = max(1, len(xs) // 8) if len(xs) > 25 else 1
        # The window is in steps: a metric logged every few steps (validation) gets fewer points in it, or none.
        window = round(smooth / float(np.median(np.diff(xs)))) if len(xs) > 1 else 1
        if window > 1 and points["ci_low"].isna().all():
            # Per-step batch statistics are noisy: the raw curve stays, faint, under its centred moving average.
            ax.plot(xs, ys, color=color, linestyle=style, linewidth=0.8, alpha=0.3)
            ys = pd.Series(ys).rolling(window, min_periods=1, center=True).mean().to_numpy()
        ax.plot(xs, ys, color=color, linestyle=style, marker=series_marker, markevery=markevery, markersize=3.5)
        if points["ci_low"].notna().any():
            ax.fill_between(xs, points["ci_low"].to_numpy(dtype=float), points["ci_high"].to_numpy(dtype=float),
                            color=color, alpha=0.15, linewidth=0)  # fmt: skip


def _legend(order: list[str], names: list[str], splits: set[str]) -> tuple[list[Any], list[str]]:
    from matplotlib.lines import Line2D

    styles = [line_style(i, len(order)) for i in range(len(order))]
    handles: list[Any] = [Line2D([], [], color=st["color"], marker=st["marker"], linewidth=2) for st in styles]
    texts = list(names)
    for split, style in (("correct", "-"), ("incorrect", "--"), ("all", ":")):
        if split in splits:
            handles.append(Line2D([], [], color="0.3", linestyle=style))
            texts.append(f"{split} responses")
    return handles, texts


def _note(frame: pd.DataFrame, smooth: int, labels: Mapping[str, str]) -> str:
    """What the bands are and what each point averages over, per source."""
    parts = []
    for source, unit, what in (("count-asymmetries", "traces", "bands: 95% bootstrap CI over traces"),
                               ("probes", "problems", "bands: 95% bootstrap CI over problems")):  # fmt: skip
        rows = frame[frame.get("source", pd.Series(dtype=str)) == source]
        if rows.empty:
            continue
        budget = ""
        if source == "probes":
            budget = f", first {int(rows['budget'].iloc[0]):,} response tokens"
        panel_names = sorted({panel_text(p)[0] for p in rows["panel"]})
        parts.append(f"{'; '.join(panel_names)}: {_n_per_point(rows, unit, labels)}{budget}; {what}.")
        if "equations" in set(rows["panel"]):
            parts.append("Equations per attempt: each response's equations / attempts, averaged over the responses "
                         "with an attempt (n counts those).")  # fmt: skip
        if source == "probes":
            abouts = rows.drop_duplicates("series")
            parts.append("Probed: " + "; ".join(f"{display_name(s, labels)} = {a}" for s, a in
                                                zip(abouts["series"], abouts["about"], strict=True)) + ".")  # fmt: skip
    if (frame.get("source", pd.Series(dtype=str)) == "verl metrics").any():
        smoothing = f", drawn as a centred {smooth}-step moving average over the faint raw curve" if smooth > 1 else ""
        parts.append(f"verl metrics: one training-batch mean per step, no CI{smoothing}.")
    return " ".join(parts)


def _n_per_point(rows: pd.DataFrame, unit: str, labels: Mapping[str, str]) -> str:
    """`n=96 traces per point`, said once when every series has that n, else `n=18-78 (A), 13-83 (B) traces ...`."""
    ranges = {display_name(s, labels): count_range(at["n"]) for s, at in rows.groupby("series", sort=False)}
    if len(set(ranges.values())) == 1:
        every = " in every run" if len(ranges) > 1 else ""
        return f"n={next(iter(ranges.values()))} {unit} per point{every}"
    return "n=" + ", ".join(f"{n} ({name})" for name, n in ranges.items()) + f" {unit} per point"


def describe_n(frame: pd.DataFrame) -> str:
    """Runs, steps, and n per step by source, for the gallery."""
    if frame.empty:
        return "no rows"
    runs = frame["series"].nunique()
    text = f"{runs} run(s), steps {int(frame['step'].min())}-{int(frame['step'].max())}"
    for source, unit in (("count-asymmetries", "traces"), ("probes", "problems")):
        rows = frame[frame.get("source", pd.Series(dtype=str)) == source]
        if not rows.empty:
            # Over every split loaded (correct, incorrect, all); the footnote gives the drawn lines' own n.
            text += f"; {source}: n={count_range(rows['n'])} {unit} per point, any split"
    return text


FAMILY = Family(
    name="training",
    paper_figures=("2", "3", "11", "14", "17"),
    summary="training dynamics vs gradient step: reward, length, verification/attempt/chained counts, equations "
    "per attempt (Fig. 17's second panel), entropy, KL",
    inputs={
        "metrics": Input(
            "mapping",
            "run label -> verl metrics (file-logger JSONL, console log or stage folder; a list = consecutive stages)",
            required=False,
        ),
        "asymmetries": Input(
            "mapping",
            "run label -> per-step `count-asymmetries --out` tables (glob; step = the number in the file name)",
            required=False,
        ),
        "probes": Input("mapping", "run label -> `e3eval probe` run directories or probes.parquet", required=False),
        "metric_keys": Input(
            "mapping", "panel -> verl metric name (replaces a default, or adds a panel)", required=False
        ),
    },
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={
        "panels": Input(
            "texts",
            "panels in order (default: all with data): reward, accuracy:SOURCE, length, "
            "verify, attempts, equations, chained, entropy, probe_entropy, kl, probe_kl",
            required=False,
        ),
        "responses": Input(
            "text",
            "count panels per correctness: 'split' (default: correct solid, incorrect dashed) or 'all'",
            required=False,
        ),
        "smooth": Input("number", "moving-average window in steps for verl metrics (default 1: none)", required=False),
        "probe_budget": Input("number", "probe rows of this budget (default: the largest probed)", required=False),
        "labels": Input("mapping", "run label -> legend label (split probe series keep their detail)", required=False),
        "title": Input("text", "figure title", required=False),
    },
    describe_n=describe_n,
)
