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

A folder that is not a run but holds the runs of `e3eval sweep --forcing s1` (one run per thinking budget,
`s1_series`) is one entry named after the folder, its budgets' rows each from its own run.

Runs are named by `Run.name` (the folder's name, or `import --name`), never by their uuid. A summary describes the
samples the run held when it was scored: `compare` counts the samples a run holds now and, when that differs from
what run.json's scoring section says was graded (more rollouts generated after `score`), says so in
`Comparison.warnings` and as a `StaleSummaryWarning` (so a notebook shows it). `write_combined_csv` writes the
combined table (a `run` label column first) only where no file is, or over a CSV e3eval wrote and nobody changed since
(`outputs.py`: a sidecar holds its sha256), never over anything else unless forced, and never into a run directory,
whose files belong to the stages that write them.
"""

from __future__ import annotations

import math
import shlex
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.manifest import FIXED_SETTINGS, GenerationRecord
from e3eval.run import Run
from e3eval.samples import successful_keys
from e3eval.store import MANIFEST

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

PERCENT_METRICS = {"pass@k", "maj@k", "frac_finished", "frac_answered", "frac_timeout", "frac_ungraded"}


class StaleSummaryWarning(UserWarning):
    """A run's summary was computed from fewer (or other) samples than the run holds now: rescore it."""


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
    warnings: tuple[str, ...] = ()  # the summary is out of date (`stale_warning`)


@dataclass(frozen=True)
class Comparison:
    runs: tuple[RunSummary, ...]
    combined: pa.Table

    @property
    def warnings(self) -> list[str]:
        """What the numbers may not describe: runs that grew (or shrank) after they were scored."""
        return [w for run in self.runs for w in run.warnings]

    @property
    def policies(self) -> list[str]:
        return sorted({r.table["policy"][0].as_py() for r in self.runs if r.table.num_rows})

    @property
    def budgets(self) -> list[int]:
        return sorted({b for r in self.runs for b in r.table["budget"].to_pylist()})

    def frame(self) -> pd.DataFrame:
        """The summaries stacked (one row per run, policy, budget, metric, k) as a pandas DataFrame, with a `run`
        column naming each row's run as the report does (`Run.name`, path when names collide, `RUN (policy)` when a
        run was scored under several policies)."""
        return labelled(self).to_pandas()


def summarize_run(run: Run, name: str | None = None, table: pa.Table | None = None) -> RunSummary:
    """A scored run's summary (`table`, or read from the run) with its n and flags; a run that was never scored is
    a UserError saying so."""
    table = run.table("summary") if table is None else table
    name = name or run.name
    if not table.num_rows:
        return RunSummary(name, run, table, 0, 0, 0, 0, ())
    # n of the budget that counts the most samples: a budget whose forced answers all failed counts none.
    counts = table["n_samples"].to_pylist()
    row = table.slice(max(range(len(counts)), key=lambda i: (counts[i] or 0, -i)), 1).to_pylist()[0]
    # Forced answers that failed are left out at their budget only: the most left out at any budget is shown.
    failed = max((n or 0 for n in table["n_failed"].to_pylist()), default=0) if "n_failed" in table.column_names else 0
    flags = {f for f in table["flag"].to_pylist() if f}
    skipped = run.record.source.skipped_lines if run.record.source is not None else 0
    if skipped:
        flags.add(f"{skipped} bad input line(s) were skipped at import (see run.json)")
    # Summaries written before failures were counted lack n_failed / n_missing.
    return RunSummary(name, run, table, row["n_problems"], row["n_samples"], failed, row.get("n_missing") or 0,
                      tuple(sorted(flags)))  # fmt: skip


def compare(run_dirs: list[Path] | list[str]) -> Comparison:
    """The summaries of one or more scored runs, side by side (names are `Run.name`s, or paths when those collide; a
    run with several policies gives one entry per policy, `NAME (POLICY)`).

    A run that holds other samples than its summary was computed from (generated further after `score`) gets a line
    in `Comparison.warnings`, also issued as a `StaleSummaryWarning`."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    series = {i: s1_series(Path(d)) for i, d in enumerate(run_dirs) if not (Path(d) / MANIFEST).is_file()}
    runs = [series[i][0] if i in series else Run.open(d) for i, d in enumerate(run_dirs)]
    names = [Path(d).name if i in series else r.name for i, (d, r) in enumerate(zip(run_dirs, runs, strict=True))]
    if len(set(names)) != len(names):
        names = [str(d) for d in run_dirs]
    summaries: list[RunSummary] = []
    for i, (run, name) in enumerate(zip(runs, names, strict=True)):
        if i in series:
            summaries.append(_stitched(series[i], name))
            continue
        table = run.table("summary")
        policies = list(dict.fromkeys(table["policy"].to_pylist()))  # in the order they were kept and scored
        held = samples_held(run)
        entries = [(name, table)] if len(policies) <= 1 else [
            (f"{name} ({policy})", table.filter(pc.equal(table["policy"], policy))) for policy in policies
        ]  # fmt: skip
        for label, rows in entries:
            summary = summarize_run(run, label, rows)
            stale = stale_warning(run, label, rows, held)
            if stale is not None:
                summary = replace(summary, warnings=(stale,))
                warnings.warn(stale, StaleSummaryWarning, stacklevel=2)
            summaries.append(summary)
    combined = pa.concat_tables([s.table for s in summaries], promote_options="default")
    return Comparison(tuple(summaries), combined)


def s1_series(folder: Path) -> list[Run]:
    """The runs `e3eval sweep --forcing s1` made in `folder`, one per thinking budget and in budget order; a folder
    that holds none, or runs of other settings beside them, is a UserError (it is not one curve)."""
    from e3eval.score import s1_budget

    if not folder.is_dir():
        raise UserError(f"{folder}: not a run directory (no such folder)")
    runs = [Run.open(p.parent) for p in sorted(folder.glob(f"*/{MANIFEST}"))]
    budgets = [s1_budget(r) for r in runs]
    if not runs or None in budgets:
        held = "; it holds runs, but not only those of one `sweep --forcing s1`: name the runs" if runs else ""
        raise UserError(f"{folder}: not a run directory (no {MANIFEST}){held}")
    first, problems = runs[0].record.generation, _problem_ids(runs[0])
    for run, budget in zip(runs[1:], budgets[1:], strict=True):
        other = s1_difference(first, run.record.generation)
        if other is None and _problem_ids(run) != problems:
            other = "problems"
        if other is None and budget in budgets[: runs.index(run)]:
            other = f"nothing: both are budget {budget:,}"
        if other is not None:
            raise UserError(f"{folder}: {runs[0].path.name} and {run.path.name} differ in {other}; they are not "
                            "budgets of one s1 sweep")  # fmt: skip
    return [run for _, run in sorted(zip(budgets, runs, strict=True), key=lambda pair: pair[0] or 0)]


def s1_difference(one: GenerationRecord | None, other: GenerationRecord | None) -> str | None:
    """The first setting (fixed settings, sampling but its budget, n, shard) in which two s1 runs' generations differ,
    or None: runs that differ in none are budgets of one curve."""
    if one is None or other is None:
        return "generation"
    for key in FIXED_SETTINGS:
        if key == "sampling":
            mine, theirs = (replace(g.sampling, max_tokens=None) for g in (one, other))
            if mine != theirs:
                changed = [k for k in ("temperature", "top_p", "logprobs") if getattr(mine, k) != getattr(theirs, k)]
                return f"sampling ({', '.join(changed)})"
        elif one.differences(other, (key,)):
            return key
    if one.n != other.n:
        return "n"
    return "shard" if one.shard != other.shard else None


def _problem_ids(run: Run) -> list[str]:
    return sorted(p.problem_id for p in run.problem_records())


def _stitched(runs: list[Run], name: str) -> RunSummary:
    """One entry from the runs of an s1 sweep: each budget's summary rows from the run generated at that budget."""
    from e3eval.score import s1_budget

    tables = []
    for run in runs:
        table = run.table("summary")
        tables.append(table.filter(pc.equal(table["budget"], s1_budget(run))))
    summary = summarize_run(runs[0], name, pa.concat_tables(tables, promote_options="default"))
    stale = [w for run in runs if (w := stale_warning(run, run.name, run.table("summary"), samples_held(run)))]
    for warning in stale:
        warnings.warn(warning, StaleSummaryWarning, stacklevel=3)
    return replace(summary, warnings=tuple(stale))


def samples_held(run: Run) -> int | None:
    """How many samples the run holds now (failed requests are not samples); None when it keeps no rollouts (a
    summary kept without them) or they cannot be read (then every other reader says why)."""
    if not run.has("rollouts"):
        return None
    try:
        return len(successful_keys(run.path))
    except UserError:
        return None


def scored_samples(run: Run, policy: str, table: pa.Table | None = None) -> int | None:
    """How many samples `policy`'s summary was computed from, as run.json's scoring section records it (summaries
    older than that record: the most samples counted at any budget of `table`); None when nothing says."""
    scoring = run.record.scoring
    graded = scoring.policy_record(policy).samples_graded if scoring is not None else None
    if graded is None and table is not None and table.num_rows and "n_samples" in table.column_names:
        graded = max((n for n in table["n_samples"].to_pylist() if n is not None), default=None)
    return graded if isinstance(graded, int) and not isinstance(graded, bool) else None


def stale_warning(run: Run, name: str, table: pa.Table, held: int | None) -> str | None:
    """`NAME: N samples were added after it was scored; rescore with e3eval score RUN ...`, or None when the summary
    rests on the samples the run holds (`held`, from `samples_held`) or nothing says what it rests on."""
    if held is None or not table.num_rows:
        return None
    policy = str(table["policy"][0].as_py())
    scored = scored_samples(run, policy, table)
    if scored is None or scored == held:
        return None
    budgets = ",".join(str(b) for b in sorted(set(table["budget"].to_pylist())))
    command = f"e3eval score {shlex.quote(str(run.path))} --budgets {budgets}"
    if policy != "prefix":
        command += f" --policy {policy}"
    scoring = run.record.scoring
    forced = scoring.policy_record(policy).forced if scoring is not None else None
    if forced is not None and forced.model:  # the flags that set the forced answers: others would be other answers
        command += f" --model {shlex.quote(forced.model_path or forced.model)}"
        flags = {"--backend": forced.backend, "--answer-tokens": forced.answer_tokens, "--answer-cue": forced.cue,
                 "--think-end": forced.think_end, "--base-url": forced.base_url}  # fmt: skip
        for flag, value in flags.items():
            if value is not None:
                command += f" {flag} {shlex.quote(str(value))}"
    if held > scored:
        what = f"{held - scored} samples were added after it was scored ({scored} scored, {held} now)"
    else:
        what = f"it was scored on {scored} samples and holds {held} now"
    return f"{name}: {what}; rescore with {command}"


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


def check_csv_target(path: Path, force: bool = False) -> None:
    """Refuse a CSV path before any work: a directory, a file under a file, a file in a run directory (its files
    belong to the stages that write them), or an existing file that e3eval did not write or that was changed since
    (unless `force`; see `outputs.py`)."""
    from e3eval.outputs import check_replaceable

    path = Path(path)
    if path.is_dir():
        example = path.with_name(f"{path.name}-report.csv") if (path / MANIFEST).is_file() else path / "report.csv"
        raise UserError(f"--out {path}: a directory; give a file name such as {example}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {path}: {parent} is a file, not a folder")
            break
    check_replaceable(path, force)


def labelled(comparison: Comparison) -> pa.Table:
    """The combined summaries with a first `run` column naming each row's run as the report does."""
    names = [r.name for r in comparison.runs for _ in range(r.table.num_rows)]
    return comparison.combined.add_column(0, "run", pa.array(names, pa.string()))


def write_combined_csv(path: Path, comparison: Comparison, force: bool = False) -> None:
    """Write the combined summary (`labelled`) to `path` atomically, creating its folder; an existing file only when
    e3eval wrote it and nobody changed it since, or with `force` (`check_csv_target`)."""
    import pyarrow.csv as pacsv

    from e3eval.outputs import write_output

    path = Path(path)
    check_csv_target(path, force)
    table = labelled(comparison)
    try:
        write_output(path, lambda temp: pacsv.write_csv(table, temp), force)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
