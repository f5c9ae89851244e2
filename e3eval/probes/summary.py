"""What a probe table says, per model and budget: means over problems with bootstrap CIs, split by correctness.

Each sample's token means (rows of `probes.parquet`) are first averaged over the samples of a problem, then over
problems, so a problem with many samples weighs as much as one with few; the CI is a percentile bootstrap over
problems (`metrics.bootstrap`). The split `correct` / `incorrect` uses the grade at that budget and is shown only
where the run is scored; samples without a grade are in `all` only. This module summarizes; it neither computes
probes nor prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from e3eval.metrics import bootstrap

METRICS = ("mean_entropy", "mean_logprob", "kl_exact", "kl_k1", "kl_k3")


@dataclass(frozen=True)
class ProbeSummaryRow:
    model: str
    step: int | None
    ref: str | None
    budget: int
    split: str  # all | correct | incorrect
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n_problems: int
    n_samples: int


def summarize(table: pa.Table, resamples: int = 1000, seed: int = 0) -> list[ProbeSummaryRow]:
    """Rows for every (model, ref, budget, split, metric) that has data, in table order of models and budgets."""
    columns = {name: table[name].to_pylist() for name in ("model", "step", "ref", "budget", "problem_id", "correct")}
    values = {name: np.array(table[name].to_pylist(), dtype=np.float64) for name in METRICS}  # None -> nan
    groups: dict[tuple, list[int]] = {}
    for index, key in enumerate(zip(columns["model"], columns["step"], columns["ref"], columns["budget"], strict=True)):
        groups.setdefault(key, []).append(index)
    rows: list[ProbeSummaryRow] = []
    for (model, step, ref, budget), indices in groups.items():
        correct = [columns["correct"][i] for i in indices]
        splits = {"all": indices}
        if any(c is not None for c in correct):
            splits["correct"] = [i for i, c in zip(indices, correct, strict=True) if c is True]
            splits["incorrect"] = [i for i, c in zip(indices, correct, strict=True) if c is False]
        for split, members in splits.items():
            for metric in METRICS:
                row = _row(members, values[metric], columns["problem_id"], resamples, seed)
                if row is not None:
                    rows.append(ProbeSummaryRow(model, step, ref, budget, split, metric, *row))
    return rows


def _row(members: list[int], values: np.ndarray, problems: list[str], resamples: int,
         seed: int) -> tuple[float, float, float, int, int] | None:  # fmt: skip
    by_problem: dict[str, list[float]] = {}
    for i in members:
        if not np.isnan(values[i]):
            by_problem.setdefault(problems[i], []).append(values[i])
    if not by_problem:
        return None
    per_problem = np.array([np.mean(v) for v in by_problem.values()])
    (interval,) = bootstrap(per_problem, resamples, seed)
    samples = sum(len(v) for v in by_problem.values())
    return interval.value, interval.low, interval.high, len(by_problem), samples
