"""Reading traces to analyse, one at a time, from a JSONL file, a verl rollout dump or an e3eval run directory.

Every reader yields `Trace` records in input order and never holds more than one input line (or one rollout batch)
in memory. Bad lines follow `e3eval import`'s rules: an error naming file:line, or with `skip_bad` a counted skip.
For run directories, correctness per budget comes from `grades.parquet` when it exists. This module does not count
anything.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.errors import UserError
from e3eval.jsonl import BadLines, fail_or_skip, read_jsonl


@dataclass
class Trace:
    key: str
    response: str
    correct: bool | None = None
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    target: float | None = None
    group: str | None = None  # the problem, for per-problem statistics
    correct_at: dict[int, bool | None] | None = None  # per-budget correctness (run directories)


@dataclass(frozen=True)
class TraceFields:
    response_field: str = "response"
    id_field: str | None = None
    correct_field: str | None = None
    token_ids_field: str | None = None
    finish_reason_field: str | None = None
    target_field: str | None = None
    group_field: str | None = None


def as_correct(value: Any) -> bool | None:
    """true/false, 1/0, scores (> 0 is correct), or null."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value > 0
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ValueError(f"cannot read {value!r} as correct/incorrect")


def as_target(value: Any) -> float | None:
    """A Countdown target: a number, or a (JSON) object with a `target` key, as in verl ground truths."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"cannot read a target from {value[:50]!r}") from None
    if isinstance(value, dict):
        value = value.get("target")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"cannot read a target from {value!r}")
    return float(value)


def read_traces(source: Path, fields: TraceFields, bad: BadLines | None) -> Iterator[Trace]:
    """Traces from a JSONL file (generic or verl dump) or a run directory, in input order."""
    source = Path(source)
    if source.is_dir():
        yield from _run_traces(source)
        return
    if not source.is_file():
        raise UserError(f"{source}: no such file or run directory")
    verl = is_verl_dump(source, fields)
    for number, record in read_jsonl(source, bad):
        trace = trace_from_record(record, number, f"{source}:{number}", fields, verl, bad)
        if trace is not None:
            yield trace


def is_verl_dump(source: Path, fields: TraceFields) -> bool:
    from e3eval.ingest import detect_format

    return detect_format(source) == "verl" and fields.response_field == "response"


def trace_from_record(
    record: dict, number: int, where: str, fields: TraceFields, verl: bool, bad: BadLines | None
) -> Trace | None:
    if verl:
        return _verl_trace(record, number, where, bad)
    return _generic_trace(record, number, where, fields, bad)


def _generic_trace(record: dict, number: int, where: str, fields: TraceFields, bad: BadLines | None) -> Trace | None:
    response = record.get(fields.response_field)
    if not isinstance(response, str):
        name = fields.response_field
        why = f"missing field {name!r}" if response is None else f"field {name!r} must be a string"
        fail_or_skip(bad, where, why)
        return None
    key = str(number)
    if fields.id_field:
        value = record.get(fields.id_field)
        if value is None or isinstance(value, (dict, list)):
            fail_or_skip(bad, where, f"missing or non-scalar id field {fields.id_field!r}")
            return None
        key = str(value)
    trace = Trace(key, response, group=str(record.get(fields.group_field)) if fields.group_field else key)
    try:
        if fields.correct_field:
            trace.correct = as_correct(record.get(fields.correct_field))
        if fields.target_field:
            trace.target = as_target(record.get(fields.target_field))
    except ValueError as exc:
        fail_or_skip(bad, where, str(exc))
        return None
    if fields.token_ids_field:
        ids = record.get(fields.token_ids_field)
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            fail_or_skip(bad, where, f"field {fields.token_ids_field!r} must be a list of integers")
            return None
        trace.token_ids = ids
    if fields.finish_reason_field:
        trace.finish_reason = record.get(fields.finish_reason_field)
    return trace


def _verl_trace(record: dict, number: int, where: str, bad: BadLines | None) -> Trace | None:
    output, prompt = record.get("output"), record.get("input")
    if not isinstance(output, str) or not isinstance(prompt, str):
        fail_or_skip(bad, where, "verl dump lines need string fields 'input' and 'output'")
        return None
    try:
        correct = as_correct(record.get("score"))
        target = as_target(record.get("gts")) if isinstance(record.get("gts"), (dict, str)) else None
    except ValueError:
        target = None  # a math ground truth such as "\\frac{1}{2}" is not a Countdown target
        correct = as_correct(record.get("score")) if isinstance(record.get("score"), (int, float, bool)) else None
    return Trace(str(number), output, correct, target=target, group=prompt)


def _run_traces(run_dir: Path) -> Iterator[Trace]:
    import pyarrow.parquet as pq

    from e3eval.store import GRADES, iter_rollout_batches, read_manifest

    read_manifest(run_dir)
    grades: dict[tuple[str, int], dict[int, bool | None]] = {}
    if (run_dir / GRADES).is_file():
        table = pq.read_table(run_dir / GRADES, columns=["problem_id", "sample_idx", "budget", "correct"])
        for pid, idx, budget, correct in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            grades.setdefault((pid, idx), {})[budget] = correct
    columns = ["problem_id", "sample_idx", "response", "token_ids", "finish_reason"]
    for batch in iter_rollout_batches(run_dir, columns, batch_rows=64):
        for row in batch.to_pylist():
            if row["finish_reason"] == "error":
                continue  # a failed request is not a trace (the CLI reports how many were left out)
            at = grades.get((row["problem_id"], row["sample_idx"]))
            full = at[max(at)] if at else None
            yield Trace(f"{row['problem_id']}#{row['sample_idx']}", row["response"], full, row["token_ids"],
                        row["finish_reason"], group=row["problem_id"], correct_at=at)  # fmt: skip
