"""Family "training": training dynamics against the gradient step, several runs side by side (paper Fig. 2, 3, 11,
14, 17).

Three inputs, each a mapping from a run's label to its files, so one label is one colour in every panel:
- `metrics`: verl's training metrics (`metrics_log.py`): a file-logger JSONL, a console log or a stage folder; a
  list is consecutive curriculum stages, whose steps continue one after the other. Panels: training reward
  (`critic/score/mean`), validation accuracy per data source (`val-core/SOURCE/{acc,reward}/mean@N`), response length
  (`response_length/mean`), entropy of the training batch (`actor/entropy`) and verl's KL loss to the reference
  (`actor/kl_loss`); `metric_keys` maps a panel to another metric name, or adds a panel.
- `asymmetries`: `e3eval count-asymmetries --out` tables (or their folder), one per training step, the step read from
  the file name (`40.parquet`, `step_40.csv`: the last number in it; verl dumps its rollouts as `{step}.jsonl`). Per
  step: mean verification steps, attempts, chained asymmetries and tokens per trace and, from `--preset countdown`
  tables, equations per attempt (each trace's `n_equations / n_attempts`, traces without an attempt left out: the
  second panel of Fig. 17, whose first is the reward), each with a 95% bootstrap CI over traces. Drawn per
  correctness (correct solid, incorrect dashed) or, with `responses: all`, over every response.
- `probes`: `e3eval probe` output (run directories or probes.parquet files): per checkpoint step, token entropy and
  exact token KL to the reference, averaged per problem and then over problems, with a 95% bootstrap CI over problems.
  Rows of different experiments (checkpoint folders) or dtypes under one label are separate series (`identity.py`),
  named apart and described in the footnote.
The tidy frame has one row per (series, step, panel, split) with value, ci_low, ci_high, n, source and budget (probes).
`draw` lays the panels out in a grid. The readers shared with the other training-side families are in `readers.py`.
This module computes no counts (`analysis/`) and runs no probe (`e3eval/probes/`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures import identity
from e3eval.figures.family import Family, Input
from e3eval.figures.identity import display_name
from e3eval.figures.readers import (
    bootstrap_means,
    count_range,
    read_probe_table,
    read_step_tables,
    resolve_series,
)
from e3eval.figures.style import (
    PAPER_WIDTH,
    apply_style,
    footnote,
    legend_width,
    line_style,
    new_figure,
    require_rows,
    series_label,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = ("series", "step", "panel", "split", "value", "ci_low", "ci_high", "n")
SPLITS = ("all", "correct", "incorrect")
SPLIT_STYLE = {"correct": "-", "incorrect": "--", "all": "-"}
# panel -> verl metric. Validation accuracy is matched by pattern (one panel per data source).
VERL_METRICS = {
    "reward": "critic/score/mean",
    "length": "response_length/mean",
    "entropy": "actor/entropy",
    "kl": "actor/kl_loss",
}
_VAL_CORE = re.compile(r"val-core/(.+)/(?:acc|reward)/mean@\d+")
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
# count-asymmetries column -> panel
TRACE_PANELS = {"n_verify": "verify", "n_attempts": "attempts", "n_chained": "chained", "n_tokens": "length"}


def frame_from_metrics(
    series: Mapping[str, Sequence[Path]], metric_keys: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """verl metrics rows per series; several files of one series are consecutive stages (steps continue)."""
    import difflib

    from e3eval.figures.metrics_log import read_metrics

    asked = {str(panel): str(metric) for panel, metric in (metric_keys or {}).items()}
    wanted = {**VERL_METRICS, **asked}
    parts, seen = [], set()
    for label, paths in series.items():
        offset = 0
        for path in paths:
            metrics = read_metrics(path)
            seen |= set(metrics["metric"])
            panels = dict(wanted)
            if "accuracy" not in asked:
                for metric in sorted(m for m in set(metrics["metric"]) if _VAL_CORE.fullmatch(m)):
                    panels[f"accuracy:{_VAL_CORE.fullmatch(metric).group(1)}"] = metric  # type: ignore[union-attr]
            for panel, metric in panels.items():
                rows = metrics[metrics["metric"] == metric]
                parts.append(pd.DataFrame({"series": label, "step": rows["step"] + offset, "panel": panel,
                                           "split": "all", "value": rows["value"], "ci_low": np.nan,
                                           "ci_high": np.nan, "n": np.nan, "source": "verl metrics",
                                           "budget": np.nan}))  # fmt: skip
            offset += int(metrics["step"].max())
    for panel, metric in asked.items():
        if metric not in seen:
            close = difflib.get_close_matches(metric, sorted(seen), n=3)
            hint = f"; close: {', '.join(close)}" if close else ""
            raise UserError(f"metric_keys: {panel}: no metric {metric!r} in {_names(series)}{hint}")
    parts = [p for p in parts if not p.empty]
    if not parts:
        known = ", ".join([*VERL_METRICS.values(), "val-core/SOURCE/acc/mean@N"])
        raise UserError(f"metrics: none of the metrics to plot ({known}) in {_names(series)}")
    return pd.concat(parts, ignore_index=True)


def frame_from_asymmetries(series: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """Mean per-trace values per (series, step, split) from per-step count-asymmetries tables, with bootstrap CIs
    over traces. Splits: every response ("all") and, where the tables know correctness, correct and incorrect."""
    rows = []
    for label, paths in series.items():
        table = read_step_tables(paths)
        if table.empty:
            continue
        known = table["correct"].notna().any()
        for step, at_step in table.groupby("step", sort=True):
            groups = [("all", at_step)]
            if known:
                groups += [("correct", at_step[at_step["correct"] == True]),  # noqa: E712 (object column of True/False/None)
                           ("incorrect", at_step[at_step["correct"] == False])]  # noqa: E712  # fmt: skip
            for split, traces in groups:
                for panel, values in per_trace_values(traces).items():
                    if not len(values):
                        continue  # n_tokens is null without token ids, n_equations outside the countdown preset
                    ((mean, low, high),) = bootstrap_means(values[None, :])
                    rows.append((label, int(step), panel, split, mean, low, high, len(values)))
    if not rows:
        raise UserError(f"asymmetries: no traces in {_names(series)}")
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.assign(source="count-asymmetries", budget=np.nan)


def per_trace_values(traces: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each count panel's values, one per trace: the counts, and equations per attempt (`n_equations / n_attempts`)
    of the traces with an attempt. Nulls are left out (`n_equations` is null outside the countdown preset)."""
    values = {panel: _numbers(traces[column]).dropna().to_numpy(dtype=float) for column, panel in TRACE_PANELS.items()}
    if "n_equations" in traces.columns:
        equations, attempts = _numbers(traces["n_equations"]), _numbers(traces["n_attempts"])
        kept = equations.notna() & (attempts > 0)
        values["equations"] = (equations[kept] / attempts[kept]).to_numpy(dtype=float)
    return values


def _numbers(column: pd.Series) -> pd.Series:
    return pd.to_numeric(column, errors="coerce")


def frame_from_probes(series: Mapping[str, Sequence[Path]]) -> pd.DataFrame:
    """Mean token entropy and exact KL per (series, checkpoint step, budget): per-problem means, then a bootstrap
    over problems. A label whose rows hold several experiments or dtypes is drawn as one series each
    (`identity.split`); `about` says what each series is."""
    rows = []
    for label, paths in series.items():
        table = pd.concat([read_probe_table(p, "probes") for p in paths], ignore_index=True)
        table = table[table["step"].notna()]
        if table.empty:
            raise UserError(f"probes: {label}: no row has a checkpoint step (probe checkpoints saved as "
                            "global_step_N, or give the step)")  # fmt: skip
        for group in identity.split(table, label, by=("dtype", "temperature")):
            for (step, budget), at_step in group.rows.groupby(["step", "budget"], sort=True):
                per_problem = at_step.groupby("problem_id")[["mean_entropy", "kl_exact"]].mean()
                for column, panel in (("mean_entropy", "probe_entropy"), ("kl_exact", "probe_kl")):
                    values = per_problem[column].dropna().to_numpy(dtype=float)
                    if len(values):
                        ((mean, low, high),) = bootstrap_means(values[None, :])
                        rows.append((group.name, int(step), panel, "all", mean, low, high, len(values), int(budget),
                                     group.about))  # fmt: skip
    if not rows:
        raise UserError(f"probes: no probe values in {_names(series)}")
    frame = pd.DataFrame(rows, columns=[*COLUMNS, "budget", "about"])
    return frame.assign(source="probes")


def _names(series: Mapping[str, Sequence[Path]]) -> str:
    paths = [str(p) for ps in series.values() for p in ps]
    return ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    """The training frame from whichever of `metrics`, `asymmetries` and `probes` the spec gives."""
    metrics = resolve_series(inputs.get("metrics"), base, "metrics")
    asymmetries = resolve_series(inputs.get("asymmetries"), base, "asymmetries")
    probes = resolve_series(inputs.get("probes"), base, "probes")
    if not (metrics or asymmetries or probes):
        raise UserError("training: give at least one of metrics, asymmetries, probes")
    keys = inputs.get("metric_keys")
    if keys is not None and (not isinstance(keys, Mapping) or not all(isinstance(v, str) for v in keys.values())):
        raise UserError("metric_keys: give a mapping from a panel name to a verl metric name")
    parts = []
    if metrics:
        parts.append(frame_from_metrics(metrics, keys))
    if asymmetries:
        parts.append(frame_from_asymmetries(asymmetries))
    if probes:
        parts.append(frame_from_probes(probes))
    frame = pd.concat(parts, ignore_index=True)
    return frame.astype({"series": "str", "step": "int64", "panel": "str", "split": "str"})


# Drawing ---------------------------------------------------------------------------------------------------------


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
    """One panel per quantity in a grid (`_columns` across, 7 inches wide, the legend in a spare slot or on the
    right); a colour per series, a line style per split; accuracy in %."""
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
    ncols = _columns(len(panels))
    nrows = math.ceil(len(panels) / ncols)
    spare = nrows * ncols > len(panels)  # the legend takes the first empty slot instead of a column of its own
    names = [display_name(s, labels) for s in order]
    shown = frame[frame["panel"].isin(panels)]
    splits_drawn = set(shown["split"]) - {"all"}
    # "all" is dotted only where it shares a panel and run with a correct/incorrect split (`_draw_series`).
    if (shown.groupby(["panel", "series"])["split"].agg(lambda s: "all" in set(s) and len(set(s)) > 1)).any():
        splits_drawn.add("all")
    with apply_style():
        aside = 0.0 if spare else legend_width([*names, "incorrect (dashed)"])
        # Laid out for a paper's text width, so that the rcParams' 8-9 pt text stays >= 7 pt when printed.
        width = max(2.3, (PAPER_WIDTH - aside) / ncols)
        figure, axes = new_figure(nrows, ncols, panel=(width, 2.3), extra_width=aside)
        for ax, panel in zip(axes.flat, panels, strict=False):
            rows = frame[frame["panel"] == panel]
            title, ylabel = panel_text(panel)
            if _is_share(panel, rows):  # accuracy in %, as every other figure draws it
                rows = rows.assign(**{c: 100 * rows[c] for c in ("value", "ci_low", "ci_high") if c in rows})
                ylabel = "accuracy (%)"  # the mean over samples, in %: short enough for a 2.3-inch panel
            for index, series in enumerate(order):
                _draw_series(ax, rows[rows["series"] == series], line_style(index, len(order))["color"], smooth)
            ax.set_title(title)
            ax.set_ylabel(ylabel)
            ax.set_xlabel("gradient step")
        empty = list(axes.flat)[len(panels) :]
        for ax in empty:
            ax.set_visible(False)
        handles, texts = _legend(order, names, splits_drawn)
        if empty:  # a figure legend still (one per figure), placed in the slot the layout keeps for that panel
            figure.legend(handles, texts, loc="center", bbox_to_anchor=(0, 0, 1, 1), bbox_transform=empty[0].transAxes)
        else:
            figure.legend(handles, texts, loc="outside right center")
        if options.get("title"):
            figure.suptitle(options["title"])
        footnote(figure, _note(frame[frame["panel"].isin(panels)], smooth, labels))
    return figure


def _columns(count: int) -> int:
    """Panels across: one row up to three, 2 x 2 for four, else three across (7 inches hold three readable panels)."""
    return count if count <= 3 else 2 if count == 4 else 3


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


def _draw_series(ax: Any, rows: pd.DataFrame, color: str, smooth: int) -> None:
    splits = set(rows["split"])
    for split in SPLITS:
        points = rows[rows["split"] == split].sort_values("step")
        if points.empty:
            continue
        # "all" beside a correct/incorrect split of the same run is a third line: dotted keeps it apart.
        style = ":" if split == "all" and len(splits) > 1 else SPLIT_STYLE[split]
        xs, ys = points["step"].to_numpy(), points["value"].to_numpy(dtype=float)
        many = len(xs) > 25
        marker = None if many else ("o" if split != "incorrect" else "s")
        # The window is in steps: a metric logged every few steps (validation) gets fewer points in it, or none.
        window = round(smooth / float(np.median(np.diff(xs)))) if len(xs) > 1 else 1
        if window > 1 and points["ci_low"].isna().all():
            # Per-step batch statistics are noisy: the raw curve stays, faint, under its centred moving average.
            ax.plot(xs, ys, color=color, linestyle=style, linewidth=0.8, alpha=0.3)
            ys = pd.Series(ys).rolling(window, min_periods=1, center=True).mean().to_numpy()
        ax.plot(xs, ys, color=color, linestyle=style, marker=marker, markersize=3.5)
        if points["ci_low"].notna().any():
            ax.fill_between(xs, points["ci_low"].to_numpy(dtype=float), points["ci_high"].to_numpy(dtype=float),
                            color=color, alpha=0.15, linewidth=0)  # fmt: skip


def _legend(order: list[str], names: list[str], splits: set[str]) -> tuple[list[Any], list[str]]:
    from matplotlib.lines import Line2D

    handles: list[Any] = [
        Line2D([], [], color=line_style(i, len(order))["color"], linewidth=2) for i in range(len(order))
    ]
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
        per = [
            series_label(display_name(s, labels), count_range(at["n"])) for s, at in rows.groupby("series", sort=False)
        ]
        budget = ""
        if source == "probes":
            budget = f", first {int(rows['budget'].iloc[0]):,} response tokens"
        panel_names = sorted({panel_text(p)[0] for p in rows["panel"]})
        parts.append(f"{'; '.join(panel_names)}: n {unit} per point ({', '.join(per)}){budget}; {what}.")
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


def describe_n(frame: pd.DataFrame) -> str:
    """Runs, steps, and n per step by source, for the gallery."""
    if frame.empty:
        return "no rows"
    runs = frame["series"].nunique()
    text = f"{runs} run(s), steps {int(frame['step'].min())}-{int(frame['step'].max())}"
    for source, unit in (("count-asymmetries", "traces"), ("probes", "problems")):
        rows = frame[frame.get("source", pd.Series(dtype=str)) == source]
        if not rows.empty:
            text += f"; {source}: n={count_range(rows['n'])} {unit} per point"
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
