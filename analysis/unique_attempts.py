"""Unique attempts across training: how many distinct attempts does the policy explore per problem (paper Fig. 12
left)?

Input: a series of rollout dumps, one per training step, in step order (verl `{step}.jsonl` dumps or JSONL with the
same fields). Each trace is split into attempts with the `countdown` preset; an attempt's key is its sequence of
equations. Following the paper (App. F), only incorrect traces count, and only problems solved less than half the
time over all the dumps, so that the algorithm that finds answers early is not penalised for reinforcing them. The
result is, per step, the mean over those problems of the cumulative number of unique attempt keys, with n.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from e3eval.analysis.steps import count_steps
from e3eval.analysis.traces import TraceFields, read_traces
from e3eval.errors import UserError
from e3eval.jsonl import BadLines


@dataclass(frozen=True)
class StepPoint:
    step: str
    mean_unique: float
    n_problems: int
    n_traces: int


def unique_attempts(
    dumps: list[Path], fields: TraceFields, max_solve_rate: float = 0.5, bad: BadLines | None = None
) -> list[StepPoint]:
    if not dumps:
        raise UserError("give at least one rollout dump")
    solved: dict[str, list[int]] = {}  # problem -> [correct, total]
    per_step: list[tuple[str, dict[str, set[tuple[str, ...]]], int]] = []
    for dump in dumps:
        keys: dict[str, set[tuple[str, ...]]] = {}
        count = 0
        for trace in read_traces(dump, fields, bad):
            group = trace.group or trace.key
            tally = solved.setdefault(group, [0, 0])
            tally[0] += bool(trace.correct)
            tally[1] += 1
            count += 1
            if trace.correct is False:
                attempts = count_steps(trace.response, "countdown", target=trace.target).attempt_keys
                keys.setdefault(group, set()).update(k for k in attempts if k)
            else:
                keys.setdefault(group, set())
        per_step.append((dump.stem, keys, count))
    hard = {g for g, (ok, total) in solved.items() if total and ok / total < max_solve_rate}
    if not hard:
        raise UserError(f"no problem is solved less than {max_solve_rate:.0%} of the time: nothing to plot")
    cumulative: dict[str, set[tuple[str, ...]]] = {g: set() for g in hard}
    points = []
    for step, keys, count in per_step:
        for group in hard:
            cumulative[group] |= keys.get(group, set())
        mean = sum(len(v) for v in cumulative.values()) / len(hard)
        points.append(StepPoint(step, mean, len(hard), count))
    return points
