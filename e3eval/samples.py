"""Which stored rollout rows are samples of a run: successes count; failures are recorded, retried and reported.

A rollout row with `finish_reason == "error"` is a failed request kept for the record. It is never a sample: it does
not satisfy "already generated" (a rerun generates it again), and no metric averages it in as incorrect. A later
successful row for the same (problem_id, sample_idx) supersedes it. Two successful rows for one key are duplicates
that no metric may count twice, so they are refused with the shards that hold them. Samples a generated run asked for
(`n` per problem) that are neither stored nor failed are missing. This module reads only the key columns of the
rollout shards; it neither generates nor grades.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e3eval.errors import UserError
from e3eval.manifest import GenerationRecord
from e3eval.store import iter_shard_batches, rollout_shards

_KEY_COLUMNS = ("problem_id", "sample_idx", "finish_reason", "error")
# How many distinct failure messages a one-line report quotes.
EXAMPLES = 3


@dataclass(frozen=True)
class Failures:
    """Failed samples (never superseded by a success): how many, and the most frequent distinct error messages."""

    count: int
    examples: tuple[str, ...]

    def describe(self) -> str:
        """One line: how many failed and why (the first distinct error messages)."""
        if not self.count:
            return "no failed samples"
        why = "; ".join(self.examples) if self.examples else "no error message recorded"
        return f"{self.count} sample(s) failed ({why})"


@dataclass(frozen=True)
class SampleLedger:
    """The rows of a run's rollout shards that are samples, in storage order, and what is failed or missing."""

    keep: np.ndarray  # bool per stored row (shards in order, rows in order): True = this row is a sample
    samples: int
    failures: Failures
    superseded: int  # failed rows that a later successful row replaced
    expected: int | None  # n x problems for generated runs; None when the run does not say (imports)
    problems_without_samples: tuple[str, ...]
    status: str | None = None  # the generation's status in run.json (`running` after a crash)

    @property
    def missing(self) -> int:
        """Samples the run asked for that are neither stored nor failed."""
        if self.expected is None:
            return 0
        return max(0, self.expected - self.samples - self.failures.count)

    @property
    def complete(self) -> bool:
        return not self.failures.count and not self.missing and not self.problems_without_samples

    def describe(self) -> str:
        """One line for reports: what the metrics rest on and what they leave out."""
        parts = []
        if self.failures.count:
            parts.append(self.failures.describe())
        if self.missing:
            interrupted = " (run.json says the generation is still running: it was interrupted)"
            parts.append(f"{self.missing} sample(s) missing" + (interrupted if self.status == "running" else ""))
        if self.problems_without_samples:
            shown = ", ".join(self.problems_without_samples[:EXAMPLES])
            more = "" if len(self.problems_without_samples) <= EXAMPLES else ", ..."
            parts.append(f"{len(self.problems_without_samples)} problem(s) without any sample ({shown}{more})")
        if not parts:
            return f"all {self.samples} samples present"
        return "; ".join(parts)


def _key_rows(run_dir: Path) -> Iterator[tuple[Path, tuple[str, int], bool, str | None]]:
    """(shard, key, is a sample, error) for every stored row, in storage order."""
    for shard in rollout_shards(run_dir):
        for batch in iter_shard_batches(shard, _KEY_COLUMNS):
            columns = (batch.column(c).to_pylist() for c in _KEY_COLUMNS)
            for pid, idx, finish, error in zip(*columns, strict=True):
                yield shard, (pid, idx), finish != "error", error


def successful_keys(run_dir: Path) -> set[tuple[str, int]]:
    """(problem_id, sample_idx) of the samples a run holds; failed requests are not among them."""
    return {key for _, key, ok, _ in _key_rows(run_dir) if ok}


def ledger(run_dir: Path, generation: GenerationRecord | None, problem_ids: list[str]) -> SampleLedger:
    """Read the key columns of every shard and decide which rows are samples; refuse duplicate samples."""
    holder: dict[tuple[str, int], Path] = {}  # key -> the shard holding its successful row
    failed: dict[tuple[str, int], str] = {}
    keep: list[bool] = []
    superseded = 0
    for shard, key, ok, error in _key_rows(run_dir):
        if ok:
            if key in holder:
                raise UserError(
                    f"{run_dir}: sample (problem {key[0]!r}, sample {key[1]}) is stored twice ({holder[key].name} "
                    f"and {shard.name}); remove the duplicate shard before scoring"
                )
            holder[key] = shard
            if failed.pop(key, None) is not None:
                superseded += 1
        elif key in holder:
            superseded += 1
        else:
            failed.setdefault(key, error or "failed (no error message)")
        keep.append(ok)
    with_samples = {pid for pid, _ in holder}
    expected = generation.n * len(problem_ids) if generation is not None and generation.n else None
    return SampleLedger(
        keep=np.array(keep, dtype=bool),
        samples=len(holder),
        failures=summarize_errors(list(failed.values())),
        superseded=superseded,
        expected=expected,
        problems_without_samples=tuple(p for p in problem_ids if p not in with_samples),
        status=generation.status if generation is not None else None,
    )


def summarize_errors(errors: list[str]) -> Failures:
    """Count failures and keep the most frequent distinct messages (shortened) for a one-line report."""
    ranked = Counter(_shorten(e) for e in errors).most_common(EXAMPLES)
    return Failures(len(errors), tuple(f"{message} (x{n})" if n > 1 else message for message, n in ranked))


def _shorten(message: str, limit: int = 160) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 3] + "..."
