"""The training family's inputs read into one tidy frame: verl metrics, per-step asymmetry counts and probes.

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
  second panel of Fig. 17, whose first is the reward), each with a 95% bootstrap CI over traces, over every response
  ("all") and, where the tables know correctness, per correct and incorrect response.
- `probes`: `e3eval probe` output (run directories or probes.parquet files): per checkpoint step, token entropy and
  exact token KL to the reference, averaged per problem and then over problems, with a 95% bootstrap CI over problems.
  Rows of different experiments (checkpoint folders) or dtypes under one label are separate series (`identity.py`),
  named apart (`about` says what each is).
The frame has one row per (series, step, panel, split) with value, ci_low, ci_high, n, source and budget (probes).
This module draws nothing and chooses no panel to show (`training.py` does); it computes no counts (`analysis/`) and
runs no probe (`e3eval/probes/`). The readers shared with the other training-side families are in `readers.py`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures import identity
from e3eval.figures.readers import bootstrap_means, read_probe_table, read_step_tables, resolve_series

COLUMNS = ("series", "step", "panel", "split", "value", "ci_low", "ci_high", "n")
# panel -> verl metric. Validation accuracy is matched by pattern (one panel per data source).
VERL_METRICS = {
    "reward": "critic/score/mean",
    "length": "response_length/mean",
    "entropy": "actor/entropy",
    "kl": "actor/kl_loss",
}
_VAL_CORE = re.compile(r"val-core/(.+)/(?:acc|reward)/mean@\d+")
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
