"""Reading traces to analyse, one at a time, from a JSONL file, a verl rollout dump, an e3 rollouts file or a run
directory.

Files are read by the shared input layer (`e3eval/inputs.py`), so bad lines follow `e3eval import`'s rules: an error
naming file:line, or with `skip_bad` a counted skip. This module turns its records into `Trace`s: a trace's key is the
id field (or the line number), its group the problem (group field, else the prompt of verl / e3 files, else the key).
Run directories are read through `e3eval.run.Run`; correctness per budget comes from their grades table when it
exists, and failed requests are not traces. Every reader yields traces in input order and never holds more than one
input line (or one rollout batch) in memory, e3 files aside (one JSON array). This module does not count anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from e3eval.errors import UserError
from e3eval.inputs import FieldMap, InputRecord, as_correct, as_target, detect_format, read_inputs
from e3eval.jsonl import BadLines

__all__ = ["Trace", "TraceFields", "as_correct", "as_target", "read_traces", "to_trace", "trace_format"]

# The analysis commands' field flags are the shared field map; its defaults are theirs (only `response`).
TraceFields = FieldMap


@dataclass(frozen=True)
class Trace:
    key: str
    response: str
    correct: bool | None = None
    token_ids: list[int] | None = None
    finish_reason: str | None = None
    target: float | None = None
    group: str | None = None  # the problem, for per-problem statistics
    correct_at: dict[int, bool | None] | None = None  # per-budget correctness (run directories)


def read_traces(source: Path, fields: FieldMap, bad: BadLines | None) -> Iterator[Trace]:
    """Traces from a JSONL file (generic or verl dump), an e3 rollouts file or a run directory, in input order."""
    source = Path(source)
    if source.is_dir():
        yield from _run_traces(source)
        return
    if not source.is_file():
        raise UserError(f"{source}: no such file or run directory")
    for record in read_inputs(source, trace_format(source, fields), fields, bad):
        yield to_trace(record)


def trace_format(source: Path, fields: FieldMap) -> str:
    """The input format of a trace file: verl and e3 files are recognised by their fixed fields, unless a
    `--response-field` says the file is generic JSONL."""
    return detect_format(source) if fields.response_field == "response" else "jsonl"


def to_trace(record: InputRecord) -> Trace:
    key = record.key if record.key is not None else str(record.line)
    return Trace(key, record.response, record.correct, record.token_ids, record.finish_reason, record.target,
                 group=record.group or record.prompt or key)  # fmt: skip


def _run_traces(run_dir: Path) -> Iterator[Trace]:
    from e3eval.run import Run

    run = Run.open(run_dir)
    grades: dict[tuple[str, int], dict[int, bool | None]] = {}
    if run.has("grades"):
        table = run.table("grades", ["problem_id", "sample_idx", "budget", "correct"])
        for pid, idx, budget, correct in zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True):
            grades.setdefault((pid, idx), {})[budget] = correct
    columns = ["problem_id", "sample_idx", "response", "token_ids", "finish_reason"]
    for batch in run.rollout_batches(columns, batch_rows=64):
        for row in batch.to_pylist():
            if row["finish_reason"] == "error":
                continue  # a failed request is not a trace (the CLI reports how many were left out)
            at = grades.get((row["problem_id"], row["sample_idx"]))
            # Whole-trace correctness is known only from a budget the whole response fits in; a smaller largest
            # budget graded a prefix, not the trace.
            fits = [b for b in at or () if b >= len(row["token_ids"])]
            full = at[min(fits)] if fits else None
            yield Trace(f"{row['problem_id']}#{row['sample_idx']}", row["response"], full, row["token_ids"],
                        row["finish_reason"], group=row["problem_id"], correct_at=at)  # fmt: skip
