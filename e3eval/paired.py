"""Paired comparisons over the same problems: a run's extrapolation gain, and the difference between two runs.

The paper's question as numbers (Sec. 3, extrapolation beyond the training budget). Definitions:
- A metric's value at a budget is the mean over problems of its per-problem value, computed from the grades as
  `grade_summary.py` computes the curves: pass@k is the unbiased estimator per problem (`metrics.pass_at_k`), the
  rates are per-problem means. Rows the summary leaves out (a forced answer whose request failed) are left out here.
- The *extrapolation gain* of a run with training budget B_train at a scored budget B > B_train is
  pass@1(B) - pass@1(B_train), over the problems scored at both budgets.
- The *difference* of runs A and B at a budget both scored is value_A - value_B over the problems both hold.
- Both are *paired*: each is the mean over problems of a per-problem difference, and its 95% CI is the percentile
  interval of that mean over bootstrap resamples of the problems (drawn with replacement; one resample of problem
  indices is applied to both sides, never two independent resamples). `metrics.bootstrap` draws them, with the
  scoring's resample count and seed, so a run's gain is resampled exactly like its curves.
This module computes from grades tables handed to it; it reads no files, prints nothing and does not choose which
runs to compare (`report.py` does).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.metrics import Interval, bootstrap, k_values, pass_at_k
from e3eval.notebook import metric_name, split_metric, unit

if TYPE_CHECKING:
    import pandas as pd

    from e3eval.report import RunSummary

# A grade row with this detail is a forced answer whose request failed: the summary leaves it out (`score.py`).
LEFT_OUT_DETAIL = "forced answer failed"
# Metrics a paired comparison can compute from grades (maj@k needs the vote subsets of `grade_summary`: not here).
PAIRED_METRICS = ("pass@k", "mean_tokens", "frac_finished", "frac_answered", "frac_timeout", "frac_ungraded")
LEVEL = 0.95


def method(resamples: int) -> str:
    """The method as the report's footnote states it."""
    return (
        f"paired bootstrap over problems, {resamples:,} resamples, {LEVEL:.0%} percentile CI (one resample of "
        "problems applied to both sides)"
    )


@dataclass(frozen=True)
class ProblemSamples:
    """One problem's graded samples at one budget."""

    correct: tuple[bool, ...]
    tokens: tuple[int, ...]
    finished: tuple[bool, ...]
    answered: tuple[bool, ...]
    status: tuple[str, ...]


# budget -> problem id -> its samples
Samples = dict[int, dict[str, ProblemSamples]]


@dataclass(frozen=True)
class PairedValue:
    """One paired difference: `value_a - value_b` over `n_problems` problems, with its bootstrap CI."""

    budget: int
    metric: str
    k: int | None
    value_a: float
    value_b: float
    diff: Interval
    n_problems: int


def samples_by_budget(grades: pa.Table) -> Samples:
    """The grades table as budget -> problem -> samples (rows the summary leaves out are left out)."""
    names = ("problem_id", "budget", "correct", "tokens_used", "finished", "answer", "status", "detail")
    columns = {name: grades.column(name).to_pylist() for name in names}
    rows: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for i, (problem, budget) in enumerate(zip(columns["problem_id"], columns["budget"], strict=True)):
        detail = columns["detail"][i]
        if columns["status"][i] == "error" and detail and detail.startswith(LEFT_OUT_DETAIL):
            continue
        rows[budget][problem].append(i)
    out: Samples = {}
    for budget, problems in rows.items():
        out[budget] = {
            problem: ProblemSamples(
                tuple(bool(columns["correct"][i]) for i in index),
                tuple(int(columns["tokens_used"][i] or 0) for i in index),
                tuple(bool(columns["finished"][i]) for i in index),
                tuple(columns["answer"][i] is not None for i in index),
                tuple(str(columns["status"][i]) for i in index),
            )
            for problem, index in problems.items()
        }
    return out


def problem_value(samples: ProblemSamples, metric: str, k: int | None = None) -> float | None:
    """A metric's value for one problem; None for pass@k when the problem has fewer than k samples."""
    n = len(samples.correct)
    if metric == "pass@k":
        k = 1 if k is None else k
        return pass_at_k(n, sum(samples.correct), k) if 1 <= k <= n else None
    values: Sequence[float | bool]
    if metric == "mean_tokens":
        values = samples.tokens
    elif metric == "frac_finished":
        values = samples.finished
    elif metric == "frac_answered":
        values = samples.answered
    elif metric == "frac_timeout":
        values = [s == "timeout" for s in samples.status]
    elif metric == "frac_ungraded":
        values = [s == "error" for s in samples.status]
    else:
        raise ValueError(f"{metric}: not a metric a paired comparison computes ({', '.join(PAIRED_METRICS)})")
    return float(np.mean(values)) if n else None


def paired_interval(a: np.ndarray, b: np.ndarray, resamples: int, seed: int, level: float = LEVEL) -> Interval:
    """Mean of `a - b` (per-problem values, same problem order) with its paired percentile bootstrap CI: each
    resample draws problem indices once and applies them to both sides (`metrics.bootstrap` of the differences)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired values need one value per problem on both sides, got {a.shape} and {b.shape}")
    return bootstrap(np.atleast_2d(a - b), resamples, seed, level)[0]


def _paired(
    left: Mapping[str, ProblemSamples], right: Mapping[str, ProblemSamples], metric: str, k: int | None,
    budget: int, resamples: int, seed: int,
) -> PairedValue | None:  # fmt: skip
    """The paired difference over the problems both sides hold (sorted ids, the curves' order); None when some
    problem lacks the k samples pass@k needs or no problem is shared."""
    problems = sorted(set(left) & set(right))
    a = [problem_value(left[p], metric, k) for p in problems]
    b = [problem_value(right[p], metric, k) for p in problems]
    if not problems or any(v is None for v in (*a, *b)):
        return None
    av, bv = np.array(a, dtype=np.float64), np.array(b, dtype=np.float64)
    interval = paired_interval(av, bv, resamples, seed)
    return PairedValue(budget, metric, k, float(av.mean()), float(bv.mean()), interval, len(problems))


def gain(samples: Samples, train_budget: int, resamples: int, seed: int) -> list[PairedValue]:
    """pass@1(B) - pass@1(`train_budget`) at every scored B above it (`value_a` is pass@1(B), `value_b` pass@1 at
    the training budget), each over the problems scored at both; `train_budget` must be a scored budget."""
    if train_budget not in samples:
        raise ValueError(f"training budget {train_budget} is not a scored budget ({sorted(samples)})")
    base = samples[train_budget]
    rows = [_paired(samples[b], base, "pass@k", 1, b, resamples, seed) for b in sorted(samples) if b > train_budget]
    return [row for row in rows if row is not None]


def common_ks(a: Samples, b: Samples) -> list[int]:
    """The ks of pass@k both runs can give at every budget they share (k up to the fewest samples of a problem)."""
    counts = [len(s.correct) for side in (a, b) for budget in set(a) & set(b) for s in side[budget].values()]
    return k_values(min(counts)) if counts else []


def differences(
    a: Samples, b: Samples, metrics: Sequence[tuple[str, int | None]], resamples: int, seed: int
) -> list[PairedValue]:
    """A - B for each metric at every budget both scored, over the problems both hold there."""
    rows = []
    for budget in sorted(set(a) & set(b)):
        for metric, k in metrics:
            row = _paired(a[budget], b[budget], metric, k, budget, resamples, seed)
            if row is not None:
                rows.append(row)
    return rows


def shared_problems(a: Samples, b: Samples) -> tuple[set[str], set[str], set[str]]:
    """Problems (at any budget) of A only, of B only, and of both."""
    left = {p for problems in a.values() for p in problems}
    right = {p for problems in b.values() for p in problems}
    return left - right, right - left, left & right


# pandas frames for `Comparison.gain` and `Comparison.diff` ----------------------------------------------------------

DEFAULT_RESAMPLES = 1000  # `score --bootstrap`'s default, for runs whose scoring recorded none (or 0: no CIs)
GAIN_COLUMNS = ("run", "train_budget", "budget", "metric", "k", "value_train", "value_budget", "gain", "ci_low",
                "ci_high", "n_problems", "unit")  # fmt: skip
DIFF_COLUMNS = ("budget", "metric", "k", "value_a", "value_b", "diff", "ci_low", "ci_high", "n_problems", "unit")


def resampling(entry: RunSummary, resamples: int | None = None, seed: int | None = None) -> tuple[int, int]:
    """The bootstrap resample count and seed of the entry's scoring (those of its curves), unless given."""
    scoring = entry.sources[0].record.scoring
    fields = scoring.policy_record(entry.policy or "").fields if scoring is not None else {}
    recorded, recorded_seed = fields.get("resamples"), fields.get("seed")
    if resamples is None:
        resamples = recorded if isinstance(recorded, int) and recorded > 0 else DEFAULT_RESAMPLES
    if seed is None:
        seed = recorded_seed if isinstance(recorded_seed, int) and recorded_seed >= 0 else 0
    return resamples, seed


def entry_samples(entry: RunSummary) -> Samples:
    """The entry's graded samples by budget and problem, from its runs' grades; a UserError when the grades hold
    another policy's scoring (grades.parquet keeps the last scoring only)."""
    import pyarrow.compute as pc

    samples: Samples = {}
    for run in entry.sources:
        grades = run.table("grades")
        held = set(grades["policy"].to_pylist())
        if entry.policy is not None and entry.policy not in held:
            shown = ", ".join(sorted(str(p) for p in held)) or "none"
            raise UserError(f"{entry.label}: per-problem values come from grades.parquet, which holds the last "
                            f"scoring ({shown}), not {entry.policy}'s; rescore {run.path} with --policy "
                            f"{entry.policy}")  # fmt: skip
        if entry.policy is not None:
            grades = grades.filter(pc.equal(grades["policy"], entry.policy))
        for budget, problems in samples_by_budget(grades).items():
            if entry.members and entry.table.num_rows and budget not in set(entry.table["budget"].to_pylist()):
                continue  # an s1 run's rows count at its own budget only
            samples[budget] = problems
    return samples


def gain_frame(entries: Sequence[RunSummary], train_budget: int | None, resamples: int | None,
               seed: int | None) -> pd.DataFrame:  # fmt: skip
    """`Comparison.gain`: one row per entry with a training budget and scored budget above it; `attrs` hold the
    method and a warning for each entry whose grades hold another policy's scoring."""
    import pandas as pd

    rows, used, notes = [], set(), []
    for entry in entries:
        generation = entry.generation
        base = train_budget if train_budget is not None else generation.train_budget if generation else None
        if base is None or not entry.table.num_rows:
            continue
        try:
            samples = entry_samples(entry)
        except UserError as exc:  # another policy's entry of a run: its grades are not kept
            notes.append(f"no gain: {exc}")
            continue
        if samples and base >= max(samples):
            notes.append(f"{entry.label}: no scored budget above the training budget {format_budget(base)} (largest "
                         f"scored: {format_budget(max(samples))}): no extrapolation gain")  # fmt: skip
            continue
        if base not in samples:
            scored = ", ".join(format_budget(b) for b in sorted(samples))
            raise UserError(f"{entry.label}: training budget {base} was not scored (scored: {scored}); rescore with a "
                            f"--budgets that includes {base}, or give --train-budget one of those")  # fmt: skip
        count, draw_seed = resampling(entry, resamples, seed)
        used.add(count)
        for value in gain(samples, base, count, draw_seed):
            rows.append({"run": entry.label, "train_budget": base, "budget": value.budget, "metric": "pass@1", "k": 1,
                         "value_train": value.value_b, "value_budget": value.value_a, "gain": value.diff.value,
                         "ci_low": value.diff.low, "ci_high": value.diff.high, "n_problems": value.n_problems,
                         "unit": "fraction"})  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(GAIN_COLUMNS))
    frame["k"] = frame["k"].astype("Int64")
    frame.attrs.update({"method": "; ".join(method(count) for count in sorted(used)), "warnings": notes})
    return frame


def _paired_metrics(names: str | Sequence[str] | None, a: Samples, b: Samples) -> list[tuple[str, int | None]]:
    if names is None:
        return [("pass@k", k) for k in common_ks(a, b)]
    wanted = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    parsed = [split_metric(n) for n in wanted]
    wrong = [n for n, (metric, _) in zip(wanted, parsed, strict=True) if metric not in PAIRED_METRICS]
    if wrong:
        raise UserError(f"{', '.join(wrong)}: not a metric of a paired difference (pass@k with its k, "
                        f"{', '.join(PAIRED_METRICS[1:])})")  # fmt: skip
    return parsed


def policy_warnings(*sides: tuple[str, RunSummary, Sequence[str | None]]) -> list[str]:
    """Lines for a difference whose sides were scored under several policies (each side: its key, its entry, and
    the policies its run was scored under): which policy's grades it uses, and that the two sides' policies differ."""
    lines = []
    for key, entry, policies in sides:
        held = sorted({str(p) for p in policies if p is not None})
        if len(held) > 1:
            lines.append(f"{key}: {entry.run_name or entry.name} was scored under {', '.join(held)}; the difference "
                         f"uses {entry.policy} (its grades are the run's current ones; --policy chooses another, "
                         "after rescoring under it)")  # fmt: skip
    (key_a, a, _), (key_b, b, _) = sides
    if a.policy != b.policy:
        lines.append(f"{key_a} and {key_b} were scored under different policies ({key_a}: {a.policy}; {key_b}: "
                     f"{b.policy}): the difference mixes two grading rules")  # fmt: skip
    return lines


def diff_frame(a: RunSummary, b: RunSummary, metrics: str | Sequence[str] | None, resamples: int | None,
               seed: int | None, keys: tuple[str, str] = ("A", "B")) -> pd.DataFrame:  # fmt: skip
    """`Comparison.diff`: A - B with paired bootstrap CIs; `attrs` hold the runs' labels, the method and warnings
    (problems or budgets only one run holds, the runs named by their `keys`)."""
    key_a, key_b = keys
    import pandas as pd

    left, right = entry_samples(a), entry_samples(b)
    only_a, only_b, both = shared_problems(left, right)
    if not both:
        raise UserError(f"{a.label} and {b.label} share no problem: a paired difference needs the same problems")
    if not set(left) & set(right):
        raise UserError(f"{a.label} and {b.label} share no scored budget ({key_a}: {sorted(left)}, {key_b}: "
                        f"{sorted(right)})")  # fmt: skip
    notes = []
    one_side = sorted(set(left) ^ set(right))
    if one_side:
        shown = ", ".join(f"{format_budget(x)} ({key_a if x in left else key_b} only)" for x in one_side)
        notes.append(f"{a.label} − {b.label}: budgets only one run scored are left out: {shown}")
    if only_a or only_b:
        notes.append(f"{a.label} and {b.label} share {len(both)} problems ({len(only_a)} only in {key_a}, "
                     f"{len(only_b)} only in {key_b}): the differences are over the {len(both)} shared")  # fmt: skip
    count, draw_seed = resampling(a, resamples, seed)
    rows = [{"budget": v.budget, "metric": metric_name(v.metric, v.k), "k": v.k, "value_a": v.value_a,
             "value_b": v.value_b, "diff": v.diff.value, "ci_low": v.diff.low, "ci_high": v.diff.high,
             "n_problems": v.n_problems, "unit": unit(v.metric)}
            for v in differences(left, right, _paired_metrics(metrics, left, right), count, draw_seed)]  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(DIFF_COLUMNS))
    frame["k"] = frame["k"].astype("Int64")
    frame.attrs.update({"a": a.label, "b": b.label, "method": method(count), "warnings": notes})
    return frame
