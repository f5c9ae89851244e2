"""Family "accuracy": pass@k against the test-time budget, one curve per run or model (Fig. 1, 2c, 4a, 4b, 5-7, 9, 16).

Two loaders build the same tidy frame (series, budget, metric, k, value, ci_low, ci_high, n problems, n_samples per
budget, flag): `frame_from_runs` from scored run directories (their summaries, through `e3eval.compare`; never
recomputed) and `frame_from_paper_table` (`published_table`) from a table shaped like the authors'
`aime_budget_table.csv`. `draw` makes one panel per metric (pass@1, pass@8, maj@4 ...) on one shared y range, with
each series' CI band (dodged error bars past four series), the budget on a log2 axis and the region past the training
budget shaded under the bands. n is said once (legend title or footnote) when every series shares it, else in each
legend entry; several panels whose series end in different orders get a legend each, in that panel's order. Runs
missing samples are marked in the legend, runs are labelled as everywhere else (`captions.run_labels`: model ·
dataset · forcing · policy · subset; a `labels` option overrides them), and a run that holds part of its dataset is
flagged under the figure. `draw_sweep` is the per-run plot `e3eval sweep` and `e3eval demo` write: titled with the
run's label, its budget forcing (wait text, delimiter, insertions) under the title. This module does not score or
aggregate anything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.captions import forcing_line, notes_of, run_labels, wrap_label
from e3eval.figures.family import Family, Input
from e3eval.figures.panel_grid import panel_grid
from e3eval.figures.published_table import COLUMNS, frame_from_paper_table
from e3eval.figures.style import (
    PAPER_WIDTH,
    RC,
    apply_style,
    budget_ticks,
    footnote,
    legend_width,
    line_style,
    new_figure,
    percent_axis,
    require_rows,
    save,
    series_label,
    shade_extrapolation,
    wrap_title,
)

if TYPE_CHECKING:
    import pyarrow as pa
    from matplotlib.figure import Figure

    from e3eval.report import Comparison

CURVE_METRICS = ("pass@k", "maj@k")
RUN_BANDS = "bands: 95% bootstrap CI over problems"
_POLICY_SUFFIX = re.compile(r"(.+) \((\w+)\)")
_METRIC = re.compile(r"(pass|maj)@(\d+)")


def frame_from_runs(paths: Sequence[Path | str]) -> pd.DataFrame:
    """The pass@k / maj@k rows of scored runs' summaries, one series per run (named by run id)."""
    from e3eval.report import compare

    if not paths:
        raise UserError("accuracy: give at least one run directory")
    return frame_from_comparison(compare(list(paths)))


def frame_from_comparison(comparison: Comparison) -> pd.DataFrame:
    """The tidy frame of summaries already gathered by `e3eval.compare` (flags include lines skipped at import)."""
    parts = [_summary_frame(run.name, run.table, run.flags) for run in comparison.runs]
    frame = _concat(parts)
    labels = run_labels(comparison)
    frame.attrs["labels"] = labels  # the legend's defaults; a `labels` option overrides them
    frame.attrs["run_notes"] = notes_of(comparison, labels)
    return frame


def frame_from_summaries(summaries: Iterable[tuple[str, pa.Table]]) -> pd.DataFrame:
    """The tidy frame of (series name, summary table) pairs."""
    return _concat([_summary_frame(name, table, ()) for name, table in summaries])


def _summary_frame(name: str, table: pa.Table, run_flags: Iterable[str]) -> pd.DataFrame:
    summary = table.to_pandas()
    if summary.empty:
        return pd.DataFrame(columns=[*COLUMNS, "n_failed", "n_missing"])
    rows = summary[summary["metric"].isin(CURVE_METRICS) & summary["value"].notna()]
    flags = sorted({*run_flags, *(f for f in summary.get("flag", pd.Series(dtype=str)).dropna() if f)})
    # Summaries written before failures were counted lack these columns.
    left_out = {c: rows[c].fillna(0).astype("int64") if c in rows else 0 for c in ("n_failed", "n_missing")}
    frame = pd.DataFrame(
        {
            "series": name,
            "budget": rows["budget"].astype("int64"),
            "metric": rows["metric"],
            "k": rows["k"].astype("int64"),
            "value": rows["value"],
            "ci_low": rows["ci_low"],
            "ci_high": rows["ci_high"],
            "n": rows["n_problems"].astype("int64"),
            "n_samples": rows["n_samples"].astype("int64"),
            "flag": "; ".join(flags),
            **left_out,
        }
    )
    return frame


def _concat(parts: list[pd.DataFrame]) -> pd.DataFrame:
    parts = [p for p in parts if not p.empty]
    if not parts:
        return pd.DataFrame(columns=[*COLUMNS, "n_failed", "n_missing"])
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs["bands"] = RUN_BANDS
    return frame


def parse_metric(text: str) -> tuple[str, int]:
    """Parse "pass@8" into ("pass@k", 8), as the summary tables name them."""
    match = _METRIC.fullmatch(str(text).strip())
    if not match or int(match.group(2)) < 1:
        raise UserError(f"accuracy: metric {text!r} is not pass@K or maj@K (for example pass@1, pass@8, maj@4)")
    return f"{match.group(1)}@k", int(match.group(2))


def metric_name(metric: str, k: int) -> str:
    return metric.replace("@k", f"@{k}")


def draw(frame: pd.DataFrame, options: Mapping[str, Any]) -> Figure:
    """One panel per metric in `options["metrics"]` (default pass@1): a curve and CI band per series, one y range for
    all panels; n in the legend title when every series shares it, else in each entry; with several panels whose
    series end in different orders, a legend under each panel, in that panel's order."""
    require_rows(frame, "the accuracy inputs (no pass@k or maj@k rows)")
    metrics = [parse_metric(m) for m in options.get("metrics") or ["pass@1"]]
    labels = {**{f"={k}": v for k, v in frame.attrs.get("labels", {}).items()},
              **{str(k): str(v) for k, v in (options.get("labels") or {}).items()}}  # fmt: skip
    _check_labels(frame, options.get("labels") or {})
    train_budget = options.get("train_budget")
    panels = []
    for metric, k in metrics:
        rows = frame[(frame["metric"] == metric) & (frame["k"] == k)]
        if rows.empty:
            have = sorted({metric_name(m, kk) for m, kk in zip(frame["metric"], frame["k"], strict=True)})
            raise UserError(f"accuracy: no {metric_name(metric, k)} rows to draw (the data has {', '.join(have)})")
        panels.append((metric, k, rows))
    orders = [_series_order(frame, rows, options.get("order", "final")) for _, _, rows in panels]
    order = orders[0]  # styles follow the first panel's order, so a series looks the same in every panel
    # Past a few series, overlapping bands turn to mud; dodged error bars keep each interval readable.
    ci = options.get("ci") or ("band" if len(order) <= 4 else "bars")
    if ci not in ("band", "bars"):
        raise UserError(f"accuracy: ci {ci!r} is not 'band' or 'bars'")
    # One series states its n in its own entry; several sharing one n state it once, not in every entry.
    shared = _shared_count(frame) if len(order) > 1 else None
    names = {s: _legend_name(frame, s, labels, with_n=shared is None) for s in order}
    # Every panel compares the same quantity (accuracy, %): one y range, so heights compare across panels.
    top = 100 * max(float(rows[["value", "ci_high"]].max().max()) for _, _, rows in panels)
    title = "\n".join(filter(None, [options.get("title"), options.get("subtitle")]))
    title = wrap_title(title, PAPER_WIDTH if len(panels) > 1 else 4.4 + legend_width(names.values()))
    # One legend per panel only for two panels side by side (3.5 inches each hold a legend); more share one legend,
    # in the first panel's order.
    per_panel = len(panels) == 2 and any(o != order for o in orders)
    # n once: the legend's title, or the footnote's first words when each panel has its own legend.
    legend_title = f"n={shared} per point" if shared and not per_panel else None
    with apply_style():
        figure, axes, holders, columns = _layout(len(panels), list(names.values()), per_panel, title.count("\n") + 1)
        handles: dict[str, Any] = {}
        for ax, (metric, k, rows) in zip(axes, panels, strict=True):
            for index, series in enumerate(order):
                points = rows[rows["series"] == series].sort_values("budget")
                if not points.empty:
                    handles.setdefault(series, _curve(ax, points, line_style(index, len(order)), ci,
                                                      _dodge(index, len(order))))  # fmt: skip
            budget_ticks(ax, frame["budget"])
            percent_axis(ax, top, metric_name(metric, k))
            shade_extrapolation(ax, train_budget, frame["budget"])
            ax.set_xlabel("test-time budget (tokens)")
            name = metric_name(metric, k)
            if len(panels) > 1 or name.lower() not in title.lower():  # a figure titled "pass@1 ..." needs no more
                unbiased = metric == "pass@k" and k > 1 and len(panels) <= 3  # a grid says it in the footnote
                ax.set_title(name + (" (unbiased estimator)" if unbiased else ""))
        for holder, panel_order in zip(holders, orders if per_panel else [order], strict=False):
            shown = [s for s in panel_order if s in handles]
            _legend(holder, [handles[s] for s in shown], [names[s] for s in shown], legend_title,
                    columns)  # fmt: skip
        if title:
            figure.suptitle(title)
        bands = frame.attrs.get("bands", RUN_BANDS)
        if not frame["ci_low"].notna().any():
            bands = "no CI (the runs were scored without bootstrap resamples)"
        bands = bands if ci == "band" else bands.replace("bands:", "error bars:")
        note = options.get("note") or frame.attrs.get("note", "")
        ordered = " Each legend in its panel's order, by the value at the largest budget." if per_panel else ""
        counted = f"n={shared} per point; " if shared and per_panel else ""
        if len(panels) > 3 and any(m == "pass@k" and k > 1 for m, k, _ in panels):
            counted += "pass@k for k > 1: the unbiased estimator; "
        lines = [f"{counted}{bands}.{ordered} {note}".strip(), *frame.attrs.get("run_notes", []),
                 *_flag_notes(frame, order, labels)]  # fmt: skip
        footnote(figure, "\n".join(filter(None, lines)))
    return figure


def _layout(
    count: int, names: Sequence[str], per_panel: bool, title_lines: int
) -> tuple[Figure, list[Any], list[Any], int | None]:
    """The figure, its panels, what holds the legends and the legends' columns: one panel with its legend on the
    right (columns None); several laid out for a paper's width with one legend under them, or (`per_panel`) one
    under each, in a subfigure per panel. The height grows with the legend, so the panels keep theirs."""
    from matplotlib.figure import Figure

    if count == 1:
        beside = legend_width(names)  # the legend right of the panel; together they stay within 7 inches
        figure, axes = new_figure(1, 1, panel=(min(4.4, PAPER_WIDTH - beside), 3.4), extra_width=beside)
        return figure, [axes[0][0]], [figure], None
    if count > 3:  # rows of at most three panels at 7 inches, one legend: in the grid's spare cell, else under
        grid = panel_grid(count, panel_height=2.5)
        if grid.legend_slot is not None:
            grid.figure.set_figheight(grid.figure.get_figheight() + 0.25 * title_lines)
            return grid.figure, list(grid.panels), [grid.legend_slot], 1
        across = max(1, min(len(names), int(PAPER_WIDTH // legend_width(names))))
        lines = -(-sum(name.count("\n") + 1 for name in names) // across)
        grid.figure.set_figheight(grid.figure.get_figheight() + 0.3 + 0.18 * lines + 0.25 * title_lines)
        return grid.figure, list(grid.panels), [grid.figure], across
    width = PAPER_WIDTH / count
    room = width if per_panel else PAPER_WIDTH
    columns = max(1, min(len(names), int(room // legend_width(names))))
    rows = -(-sum(name.count("\n") + 1 for name in names) // columns)
    height = 2.5 + 0.3 + 0.18 * rows + 0.25 * title_lines  # panel, legend title, legend lines, figure title
    figure = Figure(figsize=(width * count, height), layout="constrained")
    if not per_panel:
        return figure, list(figure.subplots(1, count, squeeze=False)[0]), [figure], columns
    subfigures = list(figure.subfigures(1, count))
    return figure, [sub.subplots() for sub in subfigures], subfigures, columns


def _legend(holder: Any, handles: list[Any], names: list[str], title: str | None, columns: int | None) -> None:
    """A (sub)figure legend outside its panels: on the right (`columns` None), or under them."""
    from matplotlib.axes import Axes

    common = {"title": title, "title_fontsize": RC["legend.fontsize"], "alignment": "left"}
    if isinstance(holder, Axes):  # a grid's spare cell
        holder.legend(handles, names, loc="center", **common)
    elif columns is None:
        holder.legend(handles, names, loc="outside right center", **common)
    else:
        holder.legend(handles, names, loc="outside lower center", ncols=columns, **common)


def _shared_count(frame: pd.DataFrame) -> str | None:
    """`30 problems × 16 samples` when every series and budget averages over the same items, else None."""
    pairs = {(int(n), int(s)) for n, s in zip(frame["n"], frame["n_samples"], strict=True)}
    if len(pairs) != 1:
        return None
    return _count(*pairs.pop(), words=True)


def _count(n: int, total: int, words: bool = False) -> str:
    """`30×16` (`words`: `30 problems × 16 samples`), or `30 problems, 470 samples` when samples vary by problem."""
    if not n or total % n:
        return f"{n} problems, {total} samples"
    return f"{n} problems \u00d7 {total // n} samples" if words else f"{n}\u00d7{total // n}"


def _curve(ax: Any, points: pd.DataFrame, style: dict[str, Any], ci: str, dodge: float) -> Any:
    """One series' line and its CI (band, or error bars shifted by `dodge` octaves); returns the line."""
    xs, ys = points["budget"].to_numpy(), 100 * points["value"].to_numpy()
    low = 100 * points["ci_low"].fillna(points["value"]).to_numpy()
    high = 100 * points["ci_high"].fillna(points["value"]).to_numpy()
    has_ci = bool(points["ci_low"].notna().any())
    if ci == "band" or not has_ci:
        (line,) = ax.plot(xs, ys, **style)
        if has_ci:
            ax.fill_between(xs, low, high, color=style["color"], alpha=0.15, linewidth=0)
        return line
    shifted = xs * 2.0**dodge
    container = ax.errorbar(shifted, ys, yerr=[ys - low, high - ys], capsize=1.5, elinewidth=0.8, capthick=0.8,
                            **style)  # fmt: skip
    return container.lines[0]


def _dodge(index: int, count: int) -> float:
    """Horizontal offset (in octaves) of series `index`, so that error bars at one budget do not overlap."""
    return 0.0 if count <= 1 else 0.28 * (index / (count - 1) - 0.5)


def _series_order(frame: pd.DataFrame, rows: pd.DataFrame, order: str) -> list[str]:
    """Series in input order, or ("final") by their value at their largest budget in the first panel, best first:
    the legend then reads top to bottom as the curves end on the right."""
    first_seen = list(dict.fromkeys(frame["series"]))
    if order == "input":
        return first_seen
    if order != "final":
        raise UserError(f"accuracy: order {order!r} is not 'final' or 'input'")
    last = rows.sort_values("budget").groupby("series", sort=False)["value"].last()
    return sorted(first_seen, key=lambda s: (-last.get(s, -1.0), first_seen.index(s)))


def _legend_name(frame: pd.DataFrame, series: str, labels: Mapping[str, str], with_n: bool = True) -> str:
    rows = frame[frame["series"] == series]
    count = _count(int(rows["n"].min()), int(rows["n_samples"].min())) if with_n else None
    label = series_label(wrap_label(_label(series, labels)), count)
    failed = int(rows["n_failed"].fillna(0).max()) if "n_failed" in rows else 0
    missing = int(rows["n_missing"].fillna(0).max()) if "n_missing" in rows else 0
    if failed or missing:
        parts = [f"{failed} failed" if failed else "", f"{missing} missing" if missing else ""]
        label += f"\n\u26a0 {' + '.join(p for p in parts if p)} left out"
    elif (rows["flag"].fillna("") != "").any():
        label += " \u26a0 see note"
    return label


def _check_labels(frame: pd.DataFrame, given: Mapping[str, Any]) -> None:
    """Refuse `labels` keys that name no series: a typo (or a copied run keeping its old name) would otherwise leave
    its curve labelled by its path without a word."""
    series = [str(s) for s in frame["series"].unique()]
    names = {found.group(1) if (found := _POLICY_SUFFIX.fullmatch(s)) else s for s in series} | set(series)
    unknown = [str(key) for key in given if str(key) not in names]
    if unknown:
        raise UserError(f"labels: {', '.join(map(repr, unknown))} name(s) no run drawn; the runs are "
                        f"{', '.join(map(repr, sorted(names)))}")  # fmt: skip


def _label(series: str, labels: Mapping[str, str]) -> str:
    """The legend label of a series: `labels` by series name, or by run name for a run scored under several
    policies (series `RUN (policy)` keeps its policy: `label (policy)`); else the run's own label (keys `=SERIES`,
    from `frame_from_comparison`), else the series name."""
    if series in labels:
        return labels[series]
    found = _POLICY_SUFFIX.fullmatch(series)
    if found and found.group(1) in labels:
        return f"{labels[found.group(1)]} ({found.group(2)})"
    return labels.get(f"={series}", series)


def _flag_notes(frame: pd.DataFrame, order: list[str], labels: Mapping[str, str]) -> list[str]:
    notes = []
    for series in order:
        flags = {f for f in frame.loc[frame["series"] == series, "flag"].fillna("") if f}
        if flags:
            notes.append(f"\u26a0 {_label(series, labels)}: {'; '.join(sorted(flags))}")
    return notes


def describe_n(frame: pd.DataFrame) -> str:
    """n for the gallery: one phrase when every series shares it."""
    if frame.empty:
        return "no rows"
    pairs = {(int(n), int(s)) for n, s in zip(frame["n"], frame["n_samples"], strict=True)}
    if len(pairs) == 1:
        n, total = pairs.pop()
        per = f"{total // n} samples each" if n and total % n == 0 else f"{total} samples"
        return f"n={n} problems x {per}, per series and budget"
    return "n per series in the legend"


def load(inputs: Mapping[str, Any], base: Path) -> pd.DataFrame:
    """`runs` (scored run directories) or `table` (a published accuracy table, with optional `years`)."""
    runs, table = inputs.get("runs"), inputs.get("table")
    if bool(runs) == bool(table):
        raise UserError("accuracy: give either runs (scored run directories) or table (a published table), not "
                        + ("both" if runs else "neither"))  # fmt: skip
    if runs:
        if inputs.get("years"):
            raise UserError("accuracy: years filters a published table's rows; it does not apply to runs")
        return frame_from_runs(runs)
    return frame_from_paper_table(table, inputs.get("years"))


def draw_sweep(
    summaries: Comparison | Sequence[tuple[str, pa.Table]],
    stem: Path,
    train_budget: int | None = None,
    title: str = "",
) -> list[Path]:
    """The sweep plot of `e3eval sweep` / `e3eval demo` (`sweep_figure`), written to `stem`.png and .pdf; returns
    both paths."""
    return save(sweep_figure(summaries, train_budget, title, str(stem)), stem)


def sweep_figure(
    summaries: Comparison | Sequence[tuple[str, pa.Table]],
    train_budget: int | None = None,
    title: str = "",
    source: str = "the sweep",
) -> Figure:
    """pass@1 and the largest pass@k beside it, titled `title` (default: the run's label), with the budget forcing
    of a one-run comparison under the title."""
    from e3eval.report import Comparison

    is_comparison = isinstance(summaries, Comparison)
    frame = frame_from_comparison(summaries) if is_comparison else frame_from_summaries(summaries)
    require_rows(frame, f"the summaries for {source} (no pass@k rows)")
    pass_ks = frame.loc[frame["metric"] == "pass@k", "k"]
    metrics = ["pass@1"] + ([f"pass@{int(pass_ks.max())}"] if pass_ks.max() > 1 else [])
    subtitle = None
    if isinstance(summaries, Comparison) and len(summaries.runs) == 1:
        title = title or frame.attrs["labels"][summaries.runs[0].name]
        subtitle = forcing_line(summaries.runs[0].run.record.generation)
    options = {"metrics": metrics, "train_budget": train_budget, "title": title, "subtitle": subtitle, "order": "input"}
    if not train_budget:  # say so: a reader would otherwise look for the extrapolation region
        options["note"] = "No training budget given (--train-budget): no extrapolation region is marked."
    return draw(frame, options)


FAMILY = Family(
    name="accuracy",
    # Fig. 17 is the curricula's reward (the `training` family), not an accuracy-vs-budget figure.
    paper_figures=("1", "2c", "4a", "4b", "5", "6", "7", "9", "16"),
    summary="pass@k vs test-time budget, one curve per run or model, CI bands, extrapolation region shaded",
    inputs={
        "runs": Input("paths", "scored run directories, one curve each (globs allowed)", required=False),
        "table": Input("path", "a published accuracy table such as aime_budget_table.csv", required=False),
        "years": Input("texts", "rows of the published table to keep, quoted: ['2025']", required=False),
    },
    columns=COLUMNS,
    load=load,
    draw=draw,
    options={
        "metrics": Input("texts", "one panel per metric: pass@1 (default), pass@8, maj@4 ...", required=False),
        "train_budget": Input("number", "training budget in tokens: the region right of it is shaded", required=False),
        "title": Input("text", "figure title", required=False),
        "labels": Input("mapping", "series name -> legend label", required=False),
        "order": Input("text", "legend order: 'final' (by the last value, best first) or 'input'", required=False),
        "ci": Input("text", "'band' (default up to 4 series) or 'bars' (dodged error bars)", required=False),
    },
    describe_n=describe_n,
)
