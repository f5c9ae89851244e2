"""Summaries side by side: `compare` gathers scored runs' summaries as data, `report_table` lays them out for people.

`compare(run_dirs)` (exported as `e3eval.compare`) reads each run's `summary.parquet` (it never recomputes metrics)
and returns a `Comparison`: the combined table (pyarrow, or pandas with `.frame()`) and, per run, n and what the
numbers leave out (failed and missing samples, lines skipped at import, refused pass@k). A run scored under several
policies (a `prefix` and a `forced` scoring keep their summary rows side by side) is one entry per policy, named
`RUN (POLICY)`, so its policies are compared like runs. `report_table` turns a
comparison into a rich table of budgets x metrics with every value's confidence interval (a budget a run was not
scored at is `-`; grader timeouts and errors get columns when any run has them), and `notes` into one line per run
with n beside it; both are rich markup in which every piece of user data (run names, flags, policies) is escaped.
Printing them is the caller's business. Plots are `plot.py`'s.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.run import Run
from e3eval.store import write_csv

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

PERCENT_METRICS = {"pass@k", "maj@k", "frac_finished", "frac_answered", "frac_timeout", "frac_ungraded"}


@dataclass(frozen=True)
class RunSummary:
    """One scored run's summary table and the counts shown beside its numbers."""

    name: str
    run: Run
    table: pa.Table
    n_problems: int
    n_samples: int
    n_failed: int
    n_missing: int
    flags: tuple[str, ...]


@dataclass(frozen=True)
class Comparison:
    runs: tuple[RunSummary, ...]
    combined: pa.Table

    @property
    def policies(self) -> list[str]:
        return sorted({r.table["policy"][0].as_py() for r in self.runs if r.table.num_rows})

    @property
    def budgets(self) -> list[int]:
        return sorted({b for r in self.runs for b in r.table["budget"].to_pylist()})

    def frame(self) -> pd.DataFrame:
        """The summaries stacked (one row per run, policy, budget, metric, k) as a pandas DataFrame, with a `run`
        column naming each row's run as the report does (run id, path when ids collide, `RUN (policy)` when a run
        was scored under several policies)."""
        names = [r.name for r in self.runs for _ in range(r.table.num_rows)]
        frame = pa.concat_tables([r.table for r in self.runs], promote_options="default").to_pandas()
        frame.insert(0, "run", names)
        return frame


def summarize_run(run: Run, name: str | None = None, table: pa.Table | None = None) -> RunSummary:
    """A scored run's summary (`table`, or read from the run) with its n and flags; a run that was never scored is
    a UserError saying so."""
    table = run.table("summary") if table is None else table
    name = name or run.run_id
    if not table.num_rows:
        return RunSummary(name, run, table, 0, 0, 0, 0, ())
    first = table.filter(pc.equal(table["budget"], min(table["budget"].to_pylist())))
    row = first.slice(0, 1).to_pylist()[0]
    # Forced answers that failed are left out at their budget only: the most left out at any budget is shown.
    failed = max((n or 0 for n in table["n_failed"].to_pylist()), default=0) if "n_failed" in table.column_names else 0
    flags = {f for f in table["flag"].to_pylist() if f}
    skipped = (run.section("source") or {}).get("skipped_lines", 0)
    if skipped:
        flags.add(f"{skipped} bad input line(s) were skipped at import (see run.json)")
    # Summaries written before failures were counted lack n_failed / n_missing.
    return RunSummary(name, run, table, row["n_problems"], row["n_samples"], failed, row.get("n_missing") or 0,
                      tuple(sorted(flags)))  # fmt: skip


def compare(run_dirs: list[Path] | list[str]) -> Comparison:
    """The summaries of one or more scored runs, side by side (names are run ids, or paths when those collide; a run
    with several policies gives one entry per policy, `NAME (POLICY)`)."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    runs = [Run.open(d) for d in run_dirs]
    names = [r.run_id for r in runs]
    if len(set(names)) != len(names):
        names = [str(d) for d in run_dirs]
    summaries: list[RunSummary] = []
    for run, name in zip(runs, names, strict=True):
        table = run.table("summary")
        policies = list(dict.fromkeys(table["policy"].to_pylist()))  # in the order they were kept and scored
        if len(policies) <= 1:
            summaries.append(summarize_run(run, name, table))
            continue
        for policy in policies:
            summaries.append(summarize_run(run, f"{name} ({policy})", table.filter(pc.equal(table["policy"], policy))))
    combined = pa.concat_tables([s.table for s in summaries], promote_options="default")
    return Comparison(tuple(summaries), combined)


def comparison_of(run_dir: Path, summary: pa.Table) -> Comparison:
    """One run's comparison from a summary already in memory (just scored), without reading it back."""
    run = summarize_run(Run.open(run_dir), table=summary)
    return Comparison((run,), summary)


# Shown only when some run has a non-zero value: both count as incorrect, so they must be seen beside the numbers.
_FAILURE_RATES = ("frac_timeout", "frac_ungraded")


def _columns_for(comparison: Comparison) -> list[tuple[str, int | None]]:
    """The metrics shown: pass@1, the largest pass@k, the largest maj@k (of the first run), tokens, finished,
    answered, and the grader timeout / error rates when any run has one."""
    table = comparison.runs[0].table
    columns: list[tuple[str, int | None]] = [("pass@k", 1)]
    for metric in ("pass@k", "maj@k"):
        ks = [k for m, k in zip(table["metric"].to_pylist(), table["k"].to_pylist(), strict=True) if m == metric]
        if ks and max(ks) > 1:
            columns.append((metric, max(ks)))
    columns += [("mean_tokens", None), ("frac_finished", None), ("frac_answered", None)]
    for metric in _FAILURE_RATES:
        if any(_has_nonzero(run.table, metric) for run in comparison.runs):
            columns.append((metric, None))
    return columns


def _has_nonzero(table: pa.Table, metric: str) -> bool:
    if not table.num_rows:
        return False
    values = table.filter(pc.equal(table["metric"], metric))["value"].to_pylist()
    return any(v is not None and not math.isnan(v) and v > 0 for v in values)


def format_cell(metric: str, value: float, low: float, high: float) -> str:
    """Value on the first line, its CI dimmed on the second (tables stay readable in 80 columns)."""
    if math.isnan(value):
        return "-"
    scale, fmt = (100.0, "{:.1f}") if metric in PERCENT_METRICS else (1.0, "{:,.0f}")
    text = fmt.format(scale * value)
    if not math.isnan(low):
        text += f"\n[dim]{fmt.format(scale * low)}–{fmt.format(scale * high)}[/]"
    return text


def label(metric: str, k: int | None) -> str:
    if metric in ("pass@k", "maj@k"):
        return metric.replace("k", str(k))
    names = {"mean_tokens": "tokens", "frac_finished": "finished %", "frac_answered": "answered %",
             "frac_timeout": "timeout %", "frac_ungraded": "grader error %"}  # fmt: skip
    return names.get(metric, metric)


def report_table(comparison: Comparison) -> Table:
    """Budgets down, metric x run across, each value with its CI (a rich Table, not printed)."""
    from rich.markup import escape
    from rich.table import Table

    columns = _columns_for(comparison)
    policies = escape(", ".join(comparison.policies))
    table = Table(title=f"e3eval report (policy: {policies}; % with 95% bootstrap CI)")
    table.add_column("budget", justify="right", style="bold")
    several = len(comparison.runs) > 1
    for metric, k in columns:
        for run in comparison.runs:
            table.add_column(f"{label(metric, k)}\n{escape(run.name)}" if several else label(metric, k),
                             justify="right")  # fmt: skip
    index = [
        {
            (r["budget"], r["metric"], r["k"]): r
            for r in s.table.select(["budget", "metric", "k", "value", "ci_low", "ci_high"]).to_pylist()
        }
        for s in comparison.runs
    ]
    for budget in comparison.budgets:
        cells = [format_budget(budget)]
        for metric, k in columns:
            for rows in index:
                row = rows.get((budget, metric, k))
                cells.append(format_cell(metric, row["value"], row["ci_low"], row["ci_high"]) if row else "-")
        table.add_row(*cells)
    return table


def notes(comparison: Comparison) -> list[str]:
    """One line per run (rich markup, user data escaped): n, the samples the numbers leave out, the run's flags."""
    from rich.markup import escape

    lines = []
    for run in comparison.runs:
        if not run.table.num_rows:
            continue
        line = f"{escape(run.name)}: n = {run.n_problems} problems, {run.n_samples} samples per budget"
        if run.n_failed or run.n_missing:
            line += f" [bold red](+{run.n_failed} failed, {run.n_missing} missing: not in these numbers)[/]"
        if run.flags:
            line += f"  [yellow]warning: {escape('; '.join(run.flags))}[/]"
        lines.append(line)
    return lines


def check_csv_target(path: Path) -> None:
    """Refuse a CSV path that cannot be written, before any work: a directory, or a file under a file."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"--out {path}: a directory; give a file name such as {path / 'summary.csv'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {path}: {parent} is a file, not a folder")
            break


def write_combined_csv(path: Path, comparison: Comparison) -> None:
    """Write the combined summary to `path` atomically, creating its folder; no temporary file is left behind."""
    path = Path(path)
    check_csv_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(path, comparison.combined)
    except OSError as exc:
        # store.write_csv's temp file (`.NAME.tmp-PID`) stays behind when the write or the rename fails.
        path.with_name(f".{path.name}.tmp-{os.getpid()}").unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
