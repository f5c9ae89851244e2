"""What a probe table says, per model and budget: means over problems with bootstrap CIs, split by correctness.

Two aggregations (`AGGREGATES`):
- `sample` (default): each sample's token means (rows of `probes.parquet`) are averaged over the samples of a problem,
  then over problems, so a problem with many samples weighs as much as one with few, and a long response as much as a
  short one;
- `token`: one mean over every scored token of every sample (each row's mean weighted by its `n_tokens`), as verl's
  `agg_loss(..., "token-mean")` reduces a batch for `actor/entropy` and its KL metrics.
Either way the CI is a percentile bootstrap over problems (`metrics.bootstrap`; for `token`, of the ratio of the
resampled problems' token sums to their token counts). The split `correct` / `incorrect` uses the grade at that
budget and is shown only where the run is scored; samples without a grade are in `all` only. This module
summarizes; it neither computes probes nor prints.
"""

from __future__ import annotations

import math
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


AGGREGATES = ("sample", "token")


def summarize(
    table: pa.Table, resamples: int = 1000, seed: int = 0, aggregate: str = "sample"
) -> list[ProbeSummaryRow]:
    """Rows for every (model, ref, budget, split, metric) that has data, in table order of models and budgets."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    columns = {name: table[name].to_pylist() for name in ("model", "step", "ref", "budget", "problem_id", "correct")}
    values = {name: np.array(table[name].to_pylist(), dtype=np.float64) for name in METRICS}  # None -> nan
    weights = np.array(table["n_tokens"].to_pylist(), dtype=np.float64) if aggregate == "token" else None
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
                if weights is None:
                    row = _row(members, values[metric], columns["problem_id"], resamples, seed)
                else:
                    row = _token_row(members, values[metric], weights, columns["problem_id"], resamples, seed)
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


def _token_row(members: list[int], values: np.ndarray, tokens: np.ndarray, problems: list[str], resamples: int,
               seed: int) -> tuple[float, float, float, int, int] | None:  # fmt: skip
    """The token mean sum(mean_i * n_i) / sum(n_i) over `members`, with a bootstrap over problems of that ratio."""
    sums: dict[str, list[float]] = {}
    samples = 0
    for i in members:
        if not np.isnan(values[i]) and tokens[i] > 0:
            total = sums.setdefault(problems[i], [0.0, 0.0])
            total[0] += values[i] * tokens[i]
            total[1] += tokens[i]
            samples += 1
    if not sums:
        return None
    weighted, counts = np.array(list(sums.values())).T
    value = float(weighted.sum() / counts.sum())
    low = high = math.nan
    if resamples > 0 and len(sums) > 1:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, len(sums), size=(resamples, len(sums)))
        ratios = weighted[idx].sum(axis=1) / counts[idx].sum(axis=1)
        low, high = (float(x) for x in np.percentile(ratios, [2.5, 97.5]))
    return value, low, high, len(sums), samples
