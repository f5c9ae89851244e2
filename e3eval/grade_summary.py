"""From a grades table to the summary table: one row per (budget, metric, k) with value, CI, n.

Metrics per budget (each computed per problem, then averaged over problems, with a bootstrap CI over problems):
`pass@k` (unbiased, k = 1, 2, 4, ... <= the smallest per-problem sample count), `maj@k` (k >= 2), `mean_tokens`
(tokens used within the budget), `frac_finished` (EOS within the budget), `frac_answered` (an extracted answer that
counts under the policy), `frac_timeout` and `frac_ungraded` (grader timeouts and errors, both counted as incorrect).
When problems have different sample counts, pass@k / maj@k for k above the smallest count are refused (not computed)
and every row carries a flag saying so. Failed and missing samples are never in the grades table given here (see
`samples.py`): the caller passes their counts, which every row carries as `n_failed` / `n_missing` beside
`n_samples`, with a flag. A (sample, budget) pair that failed at one budget only (a forced answer whose request
failed, `forced_answer.py`) is left out of that budget alike: its count is added to that budget's `n_failed` and
flagged. `problem_pass1` gives the per-problem pass@1 these means are taken over, from a stored grades table (the
viewer's numbers, so that they cannot disagree with the summary). This module does not read files or grade anything.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from e3eval.metrics import bootstrap, k_values, maj_at_k, normalize_for_vote, pass_at_k
from e3eval.store import SUMMARY_SCHEMA

RATE_METRICS = ("mean_tokens", "frac_finished", "frac_answered", "frac_timeout", "frac_ungraded")
# How `score.py` details a forced answer whose request failed: grades.parquet keeps the row (status `error`), the
# summary leaves it out of its budget's numbers, and so does `problem_pass1`.
FORCED_FAILED = "forced answer failed (left out of the metrics)"


@dataclass(frozen=True)
class SummaryConfig:
    resamples: int = 1000
    seed: int = 0
    level: float = 0.95


@dataclass(frozen=True)
class Exclusions:
    """Samples that are not in the grades table, and the one-line reason to show beside the numbers."""

    failed: int = 0
    missing: int = 0
    note: str | None = None
    failed_at: dict[int, int] = field(default_factory=dict)  # budget -> (sample, budget) pairs failed there only


def summarize_grades(
    grades: pa.Table, run_id: str, policy: str, config: SummaryConfig, excluded: Exclusions | None = None
) -> tuple[pa.Table, list[str]]:
    """Aggregate a grades table; returns the summary table and human-readable warnings."""
    excluded = excluded or Exclusions()
    cols = {
        name: grades.column(name).to_pylist()
        for name in ("problem_id", "budget", "answer", "correct", "status", "tokens_used", "finished")
    }
    groups: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row, (budget, problem) in enumerate(zip(cols["budget"], cols["problem_id"], strict=True)):
        groups[budget][problem].append(row)
    rows: list[dict] = []
    warnings: list[str] = []
    for budget in sorted(groups):
        by_problem = groups[budget]
        problems = sorted(by_problem)
        counts = [len(by_problem[p]) for p in problems]
        n_min, n_max = min(counts), max(counts)
        flags = [excluded.note] if excluded.note else []
        failed_here = excluded.failed_at.get(budget, 0)
        if failed_here:
            flags.append(f"{failed_here} forced answer(s) failed at budget {budget}: left out of its numbers")
        if n_min != n_max:
            flags.append(f"samples per problem vary ({n_min}..{n_max}); pass@k/maj@k for k > {n_min} refused")
            if budget == min(groups):
                warnings.append(flags[-1])
        flag = "; ".join(flags) or None
        names: list[tuple[str, int | None]] = []
        matrix: list[list[float]] = []
        ks = k_values(n_min)
        correct_sets = {p: _correct(cols["correct"], by_problem[p]) for p in problems}
        for k in ks:
            names.append(("pass@k", k))
            matrix.append([pass_at_k(len(c), sum(c), k) for c in (correct_sets[p] for p in problems)])
        votes = {p: [normalize_for_vote(cols["answer"][r]) for r in by_problem[p]] for p in problems}
        for k in ks[1:]:
            names.append(("maj@k", k))
            matrix.append(
                [maj_at_k(votes[p], correct_sets[p], k, random.Random(f"{config.seed}/{k}/{p}")) for p in problems]
            )
        for metric in RATE_METRICS:
            names.append((metric, None))
            matrix.append([_rate(metric, cols, by_problem[p]) for p in problems])
        intervals = bootstrap(np.array(matrix), config.resamples, config.seed, config.level)
        for (metric, k), interval in zip(names, intervals, strict=True):
            rows.append(
                {
                    "run_id": run_id,
                    "policy": policy,
                    "budget": budget,
                    "metric": metric,
                    "k": k,
                    "value": interval.value,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "n_problems": len(problems),
                    "n_samples": sum(counts),
                    "n_failed": excluded.failed + failed_here,
                    "n_missing": excluded.missing,
                    "flag": flag,
                }
            )
    for budget in sorted(set(excluded.failed_at) - set(groups)):
        rows += _all_failed(budget, excluded, run_id, policy)
    rows.sort(key=lambda row: row["budget"])
    return pa.Table.from_pylist(rows, schema=SUMMARY_SCHEMA), warnings


def _correct(correct: list[bool | None], rows: list[int]) -> list[bool]:
    """Each row's grade as the metrics count it: an ungraded (null) answer counts as incorrect."""
    return [bool(correct[r]) for r in rows]


def counted_grades(grades: pa.Table) -> pa.Table:
    """The rows of a stored grades table that its summary counted: all but forced answers whose request failed."""
    details = grades.column("detail").to_pylist()
    statuses = grades.column("status").to_pylist()
    keep = [
        not (s == "error" and d is not None and d.startswith(FORCED_FAILED))
        for s, d in zip(statuses, details, strict=True)
    ]
    return grades if all(keep) else grades.filter(pa.array(keep, pa.bool_()))


def problem_pass1(grades: pa.Table) -> dict[int, dict[str, float]]:
    """budget -> problem_id -> pass@1 over a stored grades table, counted as its summary counts it (`counted_grades`;
    null `correct` is incorrect): the summary's pass@1 at a budget is the mean of these over its problems."""
    grades = counted_grades(grades)
    cols = {name: grades.column(name).to_pylist() for name in ("problem_id", "budget", "correct")}
    groups: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row, (budget, problem) in enumerate(zip(cols["budget"], cols["problem_id"], strict=True)):
        groups[budget][problem].append(row)
    rates: dict[int, dict[str, float]] = {}
    for budget in sorted(groups):
        rates[budget] = {}
        for problem, rows in sorted(groups[budget].items()):
            correct = _correct(cols["correct"], rows)
            rates[budget][problem] = pass_at_k(len(correct), sum(correct), 1)
    return rates


def _all_failed(budget: int, excluded: Exclusions, run_id: str, policy: str) -> list[dict]:
    """A budget at which every (sample, budget) pair failed (forced answers whose requests all failed): rows with no
    value, n = 0 and the failures counted, so the budget is shown as failed rather than dropped."""
    failed = excluded.failed_at[budget]
    flag = "; ".join([*([excluded.note] if excluded.note else []),
                      f"all {failed} forced answer(s) at budget {budget} failed: no numbers"])  # fmt: skip
    nan = float("nan")
    common = {"run_id": run_id, "policy": policy, "budget": budget, "value": nan, "ci_low": nan, "ci_high": nan,
              "n_problems": 0, "n_samples": 0, "n_failed": excluded.failed + failed, "n_missing": excluded.missing,
              "flag": flag}  # fmt: skip
    return [{**common, "metric": metric, "k": k} for metric, k in (("pass@k", 1), *((m, None) for m in RATE_METRICS))]


def _rate(metric: str, cols: dict[str, list], rows: list[int]) -> float:
    if metric == "mean_tokens":
        values = [cols["tokens_used"][r] for r in rows]
    elif metric == "frac_finished":
        values = [cols["finished"][r] for r in rows]
    elif metric == "frac_answered":
        values = [cols["answer"][r] is not None for r in rows]
    elif metric == "frac_timeout":
        values = [cols["status"][r] == "timeout" for r in rows]
    else:
        values = [cols["status"][r] == "error" for r in rows]
    return float(np.mean(values))
