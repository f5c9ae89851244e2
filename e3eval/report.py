"""Runs side by side: `compare` gathers scored runs' summaries as data (a `Comparison`); the renderers lay them out.

`compare(run_dirs)` (exported as `e3eval.compare`) reads each run's `summary.parquet` (it never recomputes metrics)
and returns a `Comparison`, whose documented surface is pandas: `summary` (one row per run, policy, budget, metric
and k, with the metric named as the CLI prints it, `pass@1`, values as fractions with a `unit` column, and the run's
label, directory name, model, dataset, policy, forcing, n_problems and n_per_problem), `gain()` (a run's
extrapolation gain beyond its training budget) and `diff(a, b)` (paired differences of two runs; both in
`paired.py`), and `warnings` (what the numbers may not describe, and where runs are not like for like:
`comparability.py`). Runs are labelled by `labels.run_label` (model · dataset · forcing · policy · subset), their
directory names breaking ties. A run scored under several policies (a `prefix` and a `forced` scoring keep their
summary rows side by side) is one entry per policy, so its policies are compared like runs. Layouts are elsewhere:
`report_layout.py` for the terminal, `report_formats.py` for markdown, LaTeX, CSV and JSON; plots are `figures`'.

A folder that is not a run but holds the runs of `e3eval sweep --forcing s1` (one run per thinking budget,
`s1_series`) is one entry named after the folder, its budgets' rows each from its own run.

A summary describes the samples the run held when it was scored: `compare` counts the samples a run holds now and,
when that differs from what run.json's scoring section says was graded (more rollouts generated after `score`),
says so in `Comparison.warnings` and as a `StaleSummaryWarning` (so a notebook shows it; `staleness.py`). This
module reads runs and writes nothing; `report_formats.write_report` writes a report file (`--out`).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from e3eval.comparability import (
    FAILURE_RATES,
    RunFacts,
    default_metrics,
    forcing_notes,
    setting_differences,
    subset_notes,
)
from e3eval.errors import UserError
from e3eval.labels import forcing_label, inserted_waits, run_label, unique_labels
from e3eval.manifest import GenerationRecord
from e3eval.notebook import metric_name, split_metric, summary_frame
from e3eval.run import Run
from e3eval.s1_runs import s1_series
from e3eval.staleness import StaleSummaryWarning, samples_held, stale_warning
from e3eval.store import MANIFEST

if TYPE_CHECKING:
    import pandas as pd

    from e3eval.notebook import RunView

__all__ = ["Comparison", "RunSummary", "StaleSummaryWarning", "compare", "comparison_of", "s1_series"]

# The columns of `Comparison.summary`, in this order (any other stored column follows them).
SUMMARY_COLUMNS = ("run", "name", "model", "dataset", "policy", "forcing", "budget", "metric", "k", "value", "ci_low",
                   "ci_high", "unit", "n_problems", "n_per_problem", "n_samples", "n_failed", "n_missing", "flag",
                   "run_id")  # fmt: skip


@dataclass(frozen=True)
class RunSummary:
    """One entry of a comparison: a scored run (under one policy), its label, n, budgets and policy. Its `table`
    (the stored rows, pyarrow) and `run` (the run's writer) are internal, for the renderers and figures: notebooks
    read `Comparison.summary`."""

    name: str  # the run's name in messages: `Run.name`, the path when names collide, `NAME (POLICY)` per policy
    run: Run = field(repr=False)
    table: pa.Table = field(repr=False)
    n_problems: int
    n_samples: int
    n_failed: int
    n_missing: int
    flags: tuple[str, ...]
    warnings: tuple[str, ...] = ()  # the summary is out of date (`stale_warning`)
    label: str = ""  # `labels.run_label`, unique within its comparison
    run_name: str = ""  # the directory name (`Run.name`; an s1 sweep's folder name)
    members: tuple[Run, ...] = ()  # the runs its rows come from (one per budget for an s1 sweep's folder)
    path: Path | None = None  # the directory given to `compare`

    def __repr__(self) -> str:
        n = f"{self.n_problems} problems × {self.n_per_problem}" if self.n_per_problem else f"{self.n_samples} samples"
        budgets = sorted(set(self.table["budget"].to_pylist())) if self.table.num_rows else []
        return f"RunSummary({self.label or self.name!r}, n={n}, budgets={budgets}, policy={self.policy!r})"

    @property
    def policy(self) -> str | None:
        return str(self.table["policy"][0].as_py()) if self.table.num_rows else None

    @property
    def generation(self) -> GenerationRecord | None:
        return self.run.record.generation

    @property
    def sources(self) -> tuple[Run, ...]:
        return self.members or (self.run,)

    @property
    def n_per_problem(self) -> int | None:
        """Samples per problem; None when problems hold different numbers of them (the summary's largest pass@k is
        the fewest samples of a problem)."""
        ks = [k for m, k, v in zip(*(self.table[c].to_pylist() for c in ("metric", "k", "value")), strict=True)
              if m == "pass@k" and k is not None and v is not None and not math.isnan(v)]  # fmt: skip
        fewest = max(ks, default=None)
        return fewest if fewest is not None and self.n_samples == fewest * self.n_problems else None

    def metric_ks(self) -> dict[str, tuple[int, ...]]:
        """pass@k / maj@k -> the ks with a value at some budget."""
        found: dict[str, set[int]] = {}
        for m, k, v in zip(*(self.table[c].to_pylist() for c in ("metric", "k", "value")), strict=True):
            if k is not None and v is not None and not math.isnan(v):
                found.setdefault(m, set()).add(k)
        return {m: tuple(sorted(ks)) for m, ks in found.items()}

    def metric_names(self) -> list[str]:
        """The metrics it has, named as printed (`pass@1`, `mean_tokens`), in stored order."""
        names = (metric_name(m, k) for m, k in zip(self.table["metric"].to_pylist(), self.table["k"].to_pylist(),
                                                    strict=True))  # fmt: skip
        return list(dict.fromkeys(names))


@dataclass(frozen=True)
class Comparison:
    """Scored runs side by side. Its public API: `summary` (pandas, fractions 0-1), `labels`, `keys`, `warnings`,
    `notes`, `gain()` and `diff(a, b)`. `runs` (the entries, whose pyarrow tables and run writers are internal)
    serves the renderers and figures."""

    runs: tuple[RunSummary, ...] = field(repr=False)
    facts: tuple[RunFacts, ...] = field(default=(), repr=False)

    def __repr__(self) -> str:
        lines = [f"{key}: {run!r}" for key, run in zip(self.keys, self.runs, strict=True)]
        return f"Comparison({len(self.runs)} run(s), budgets={self.budgets}, policies={self.policies},\n  " + (
            "\n  ".join(lines) + ")"
        )

    @property
    def keys(self) -> list[str]:
        """A short key per entry, as a report's narrow headers name them: A, B, ... (R1, R2, ... past 26)."""
        count = len(self.runs)
        return [chr(ord("A") + i) if count <= 26 else f"R{i + 1}" for i in range(count)]

    def names(self, keyed: bool) -> dict[str, str]:
        """label -> how warnings name the entry: its key where a legend gives the keys (`keyed`), else its label."""
        return dict(zip(self.labels, self.keys, strict=True)) if keyed else {}

    @property
    def warnings(self) -> list[str]:
        """What the numbers may not describe (runs that grew after they were scored), and where the runs are not
        like for like (dataset, problems, n per problem, sampling, forcing). A report of the default metrics adds
        a line where pass@k or maj@k is shown at a smaller k than some run has (`default_metric_warnings`)."""
        return self.warnings_naming(keyed=False)

    def warnings_naming(self, keyed: bool) -> list[str]:
        """`warnings`, the runs named by key (`keyed`, under a key legend) or by label."""
        stale = [w for run in self.runs for w in run.warnings]
        return stale + setting_differences(self.facts, self.names(keyed))

    @property
    def notes(self) -> list[str]:
        """Lines said beside the numbers that are not warnings: runs that hold a subset of their dataset, and runs
        forced with no wait inserted."""
        return self.notes_naming(keyed=False)

    def notes_naming(self, keyed: bool) -> list[str]:
        names = self.names(keyed)
        return subset_notes(self.facts, names) + forcing_notes(self.facts, names)

    @property
    def labels(self) -> list[str]:
        """Each entry's label: model · dataset · forcing · policy · subset (the directory name breaks ties)."""
        return [run.label for run in self.runs]

    @property
    def policies(self) -> list[str]:
        return sorted({r.policy for r in self.runs if r.policy is not None})

    @property
    def budgets(self) -> list[int]:
        return sorted({b for r in self.runs for b in r.table["budget"].to_pylist()})

    @property
    def default_metrics(self) -> list[str]:
        """What a report shows when no metrics are asked for (`comparability.default_metrics`)."""
        return default_metrics(self.facts)[0]

    def default_metric_warnings_naming(self, keyed: bool) -> list[str]:
        return default_metrics(self.facts, self.names(keyed))[1]

    @property
    def default_metric_warnings(self) -> list[str]:
        """One line per metric the default report shows at the largest k every run has, below some run's largest."""
        return default_metrics(self.facts)[1]

    @property
    def metrics(self) -> list[str]:
        """Every metric some run has, named as printed."""
        return list(dict.fromkeys(name for run in self.runs for name in run.metric_names()))

    def select(self, metrics: str | Sequence[str] | None) -> list[str]:
        """The metrics named (`pass@1,pass@8,mean_tokens` or a list), checked: a name no run has is a UserError
        listing those there are. None: the default ones."""
        if metrics is None:
            return self.default_metrics
        names = [m.strip() for m in (metrics.split(",") if isinstance(metrics, str) else metrics) if m.strip()]
        known = self.metrics
        unknown = [m for m in names if metric_name(*split_metric(m)) not in known]
        if unknown or not names:
            what = f"unknown metric(s) {', '.join(unknown)}" if unknown else "no metric named"
            raise UserError(f"--metrics: {what}; these runs have {', '.join(known)}")
        return list(dict.fromkeys(metric_name(*split_metric(m)) for m in names))

    @property
    def summary(self) -> pd.DataFrame:
        """One row per entry, budget, metric and k: the stored summary rows with the metric named as printed
        (`pass@1`), integer k, values as fractions (`unit` says `fraction` or `tokens`), and the entry's `run`
        (label), `name` (directory name), model, dataset, policy, forcing, n_problems and n_per_problem."""
        import pandas as pd

        frames = []
        for run in self.runs:
            frame = summary_frame(run.table)
            generation = run.generation
            extra = {"run": run.label, "name": run.run_name or run.run.name,
                     "model": generation.model if generation is not None else None,
                     "dataset": generation.dataset if generation is not None else None,
                     "forcing": forcing_label(generation and generation.forcing,
                                              inserted_waits(generation))}  # fmt: skip
            for column, value in extra.items():
                frame[column] = pd.Series([value] * len(frame), index=frame.index, dtype="object")
            frame["n_per_problem"] = pd.array([run.n_per_problem] * len(frame), dtype="Int64")
            frames.append(frame)
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(SUMMARY_COLUMNS))
        ordered = [c for c in SUMMARY_COLUMNS if c in frame.columns]
        return frame[ordered + [c for c in frame.columns if c not in ordered]]

    def frame(self) -> pd.DataFrame:
        """`summary` (kept for notebooks written before it)."""
        return self.summary

    def entry(self, key: int | str | Path) -> RunSummary:
        """An entry by position, key (`A`, as a report's headers print it), label, name or directory (a run scored
        under several policies: the entry of its last scoring, whose grades the run holds)."""
        if isinstance(key, int) and not isinstance(key, bool):
            if not -len(self.runs) <= key < len(self.runs):
                raise UserError(f"no run #{key}: the comparison holds {len(self.runs)}")
            return self.runs[key]
        text = str(key)
        if isinstance(key, str) and text in self.keys and not Path(text).exists():
            return self.runs[self.keys.index(text)]
        for attribute in ("label", "name"):
            found = [r for r in self.runs if getattr(r, attribute) == text]
            if len(found) == 1:
                return found[0]
        wanted = Path(text).resolve()
        found = [r for r in self.runs if (r.path or r.run.path).resolve() == wanted] or [
            r for r in self.runs if r.run_name == text
        ]  # fmt: skip
        if not found:
            raise UserError(f"{text}: not one of the compared runs ({'; '.join(self.labels)})")
        if len(found) > 1:
            scoring = found[0].run.record.scoring
            last = [r for r in found if scoring is not None and r.policy == scoring.policy]
            found = last or found
        return found[0]

    def gain(self, train_budget: int | None = None, resamples: int | None = None,
             seed: int | None = None) -> pd.DataFrame:  # fmt: skip
        """Each run's extrapolation gain pass@1(B) - pass@1(B_train) at every scored B > B_train, with a paired
        bootstrap CI over problems resampled as for its curves (`paired.py` has the method). B_train is the run's
        recorded training budget, or `train_budget` for every run; one that is not a scored budget is a UserError.
        Runs without a training budget have no rows."""
        from e3eval.paired import gain_frame

        return gain_frame(self.runs, train_budget, resamples, seed)

    def diff(self, a: int | str | Path = 0, b: int | str | Path = 1, metrics: str | Sequence[str] | None = None,
             resamples: int | None = None, seed: int | None = None) -> pd.DataFrame:  # fmt: skip
        """A - B at each budget both scored, over the problems both hold, with a paired bootstrap CI (one resample
        of problems applied to both runs; `paired.py`): columns budget, metric, k, value_a, value_b, diff, ci_low,
        ci_high, n_problems, unit, all fractions 0-1 except mean_tokens. `a`, `b`: position, key (`A`), label,
        name or directory (a run scored under several policies: the policy whose grades it holds, said in
        `attrs["warnings"]`; name `NAME (POLICY)` or compare with `policy=` to choose); `metrics`: pass@k and rate
        names (default: the pass@k the report shows, `default_metrics`). `attrs` holds both sides' labels and keys
        (`a`, `b`, `key_a`, `key_b`), the method and warnings."""
        from e3eval.paired import PAIRED_METRICS, diff_frame, policy_warnings

        if len(self.runs) < 2 and not (isinstance(a, str | Path) or isinstance(b, str | Path)) and a != b:
            raise UserError("diff needs two runs (or one named twice, which gives zeros)")
        left, right = self.entry(a), self.entry(b)
        if metrics is None:
            metrics = [m for m in self.default_metrics if split_metric(m)[0] in PAIRED_METRICS]
        key_a, key_b = (self.keys[next(i for i, r in enumerate(self.runs) if r is e)] for e in (left, right))
        frame = diff_frame(left, right, metrics, resamples, seed, (key_a, key_b))
        several = [r.policy for r in self.runs if r.path == left.path] if left.path else []
        others = [r.policy for r in self.runs if r.path == right.path] if right.path else []
        notes = policy_warnings((key_a, left, several), (key_b, right, others))
        frame.attrs.update({"key_a": key_a, "key_b": key_b, "warnings": notes + frame.attrs["warnings"]})
        return frame


def summarize_run(run: Run, name: str | None = None, table: pa.Table | None = None) -> RunSummary:
    """A scored run's summary (`table`, or read from the run) with its n and flags; a run that was never scored is
    a UserError saying so."""
    table = run.table("summary") if table is None else table
    name = name or run.name
    if not table.num_rows:
        return RunSummary(name, run, table, 0, 0, 0, 0, (), run_name=run.name)
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
                      tuple(sorted(flags)), run_name=run.name)  # fmt: skip


def _directories(runs: object) -> list[Path]:
    """`compare`'s argument as directories: one path (str or PathLike), a notebook `RunView` (its `.path`), or a
    list of those; anything else is a UserError (a str is one path, never a sequence of characters)."""
    from e3eval.notebook import RunView

    def one(item: object) -> Path:
        if isinstance(item, RunView):
            return item.path
        if isinstance(item, str | os.PathLike):
            return Path(item)
        raise UserError(f"compare: {type(item).__name__} is not a run (give paths, or load_run(...) objects)")

    if isinstance(runs, str | os.PathLike | RunView):
        return [one(runs)]
    if isinstance(runs, Sequence | set | frozenset) and not isinstance(runs, bytes):
        return [one(item) for item in runs]
    raise UserError(f"compare: {type(runs).__name__} is not a run or a list of runs")


def compare(run_dirs: Sequence[Path | str] | Path | str | RunView, policy: str | None = None) -> Comparison:
    """The summaries of one or more scored runs (a path, a `load_run` view, or a list of them), side by side: one
    entry per run and policy, labelled by `labels.run_label`; `policy` keeps only that policy's entry of a run scored
    under several. Where the runs are not like for like, or a summary no longer describes its run's samples
    (generated further after `score`, also issued as a `StaleSummaryWarning`), `Comparison.warnings` says so."""
    run_dirs = _directories(run_dirs)
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
            summaries.append(replace(_stitched(series[i], name), path=Path(run_dirs[i])))
            continue
        table = run.table("summary")
        policies = list(dict.fromkeys(table["policy"].to_pylist()))  # in the order they were kept and scored
        if policy is not None and len(policies) > 1:
            if policy not in policies:
                raise UserError(f"--policy {policy}: {name} was scored under {', '.join(map(str, policies))}")
            table, policies = table.filter(pc.equal(table["policy"], policy)), [policy]
        held = samples_held(run)
        entries = [(name, table)] if len(policies) <= 1 else [
            (f"{name} ({policy})", table.filter(pc.equal(table["policy"], policy))) for policy in policies
        ]  # fmt: skip
        for label, rows in entries:
            summary = replace(summarize_run(run, label, rows), path=Path(run_dirs[i]))
            stale = stale_warning(run, label, rows, held)
            if stale is not None:
                summary = replace(summary, warnings=(stale,))
                warnings.warn(stale, StaleSummaryWarning, stacklevel=2)
            summaries.append(summary)
    return _compared(summaries)


def _compared(summaries: list[RunSummary]) -> Comparison:
    """The comparison of these entries: each labelled, and what makes them not like for like said."""
    names = [s.run_name or s.run.name for s in summaries]
    labels = [run_label(s.run.record, name, s.policy) for s, name in zip(summaries, names, strict=True)]
    paths = [str(s.path or s.run.path) for s in summaries]
    ties = paths if len(set(paths)) > len(set(names)) else names  # two folders of one name: their paths differ
    unique = unique_labels(labels, ties)
    summaries = [replace(s, label=label) for s, label in zip(summaries, unique, strict=True)]
    facts = tuple(_facts(s) for s in summaries)
    return Comparison(tuple(summaries), facts)


def _facts(summary: RunSummary) -> RunFacts:
    try:
        problems = frozenset(summary.run.table("problems", ["problem_id"])["problem_id"].to_pylist())
    except UserError:  # a run without its problems table: every other reader says so
        problems = frozenset()
    failures = frozenset(m for m in FAILURE_RATES if _has_nonzero(summary.table, m))
    return RunFacts(summary.label, summary.generation, problems, summary.n_per_problem, summary.metric_ks(), failures,
                    str((summary.path or summary.run.path).resolve()))  # fmt: skip


def _has_nonzero(table: pa.Table, metric: str) -> bool:
    if not table.num_rows:
        return False
    values = table.filter(pc.equal(table["metric"], metric))["value"].to_pylist()
    return any(v is not None and not math.isnan(v) and v > 0 for v in values)


def _stitched(runs: list[Run], name: str) -> RunSummary:
    """One entry from the runs of an s1 sweep: each budget's summary rows from the run generated at that budget."""
    from e3eval.score import s1_budget

    tables = []
    for run in runs:
        table = run.table("summary")
        tables.append(table.filter(pc.equal(table["budget"], s1_budget(run))))
    summary = summarize_run(runs[0], name, pa.concat_tables(tables, promote_options="default"))
    summary = replace(summary, run_name=name, members=tuple(runs))
    stale = [w for run in runs if (w := stale_warning(run, run.name, run.table("summary"), samples_held(run)))]
    for warning in stale:
        warnings.warn(warning, StaleSummaryWarning, stacklevel=3)
    return replace(summary, warnings=tuple(stale))


def comparison_of(run_dir: Path, summary: pa.Table) -> Comparison:
    """One run's comparison from a summary already in memory (just scored), without reading it back."""
    run = Run.open(run_dir)
    return _compared([replace(summarize_run(run, table=summary), path=Path(run_dir))])
