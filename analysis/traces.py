"""Reading traces to analyse, one at a time, from a JSONL file, a verl rollout dump, an e3 rollouts file or a run
directory.

Files are read by the shared input layer (`e3eval/inputs.py`), so bad lines follow `e3eval import`'s rules: an error
naming file:line, or with `skip_bad` a counted skip. This module turns its records into `Trace`s: a trace's key is the
id field (or the line number), its group the problem (group field, else the prompt of verl / e3 files, else the key).
Run directories are read through `e3eval.run.Run`; correctness per budget comes from their grades table when it
exists, and failed requests are not traces. Every reader yields traces in input order and never holds more than one
input line (or one rollout batch) in memory, e3 files aside (one JSON array). `field_warnings` looks at the first
lines of a generic JSONL file for a counted field that is not the model's reasoning alone (it holds the prompt, or a
reasoning field sits unused beside it). This module does not count anything.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from e3eval.errors import UserError
from e3eval.inputs import FieldMap, InputRecord, as_correct, as_target, detect_format, read_inputs
from e3eval.jsonl import BadLines, OversizedLine, raw_lines

__all__ = ["Trace", "TraceFields", "as_correct", "as_target", "field_warnings", "read_traces", "to_trace",
           "trace_format"]  # fmt: skip

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


# Field names that hold the prompt or the model's reasoning alone in the files people export (HF datasets, vLLM's
# `reasoning_content`, the labelled R1 traces' `question` / `thinking`).
_PROMPT_FIELDS = ("prompt", "question", "problem", "input", "query", "instruction")
_REASONING_FIELDS = ("thinking", "reasoning", "reasoning_content", "think")
# A chat template's opening user turn: a response that starts with one was saved with its prompt.
_USER_TURNS = ("<｜User｜>", "<|im_start|>user", "<|start_header_id|>user", "<|user|>", "[INST]", "<start_of_turn>user")
_PEEK_LINES = 20
_MIN_PROMPT_CHARS = 12  # shorter texts ("7", "yes") occur anywhere by chance
_TEMPLATE_CHARS = 1000  # how far into the response a prompt may start (system prompt, template text)


def field_warnings(source: Path, fields: FieldMap) -> tuple[str, ...]:
    """Warnings about the counted field of a generic JSONL file, from its first lines: it holds the prompt too (a
    prompt-like field's text, or a chat template's user turn, near its start), or a reasoning field (`thinking`)
    sits beside it unused. Other inputs (verl and e3 files, run directories) keep the prompt apart: no warnings.
    Unreadable lines are skipped here; the reader reports them."""
    source = Path(source)
    if not source.is_file() or trace_format(source, fields) != "jsonl":
        return ()
    name = fields.response_field
    prompt_field = turn = reasoning = None
    for _, raw in itertools.islice(raw_lines(source), _PEEK_LINES):
        try:
            obj = None if isinstance(raw, OversizedLine) else json.loads(raw)
        except ValueError:  # JSON and UTF-8 errors alike
            continue
        response = obj.get(name) if isinstance(obj, dict) else None
        if not isinstance(response, str):
            continue
        reasoning = reasoning or next((f for f in _REASONING_FIELDS if f != name and isinstance(obj.get(f), str)), None)
        turn = turn or next((t for t in _USER_TURNS if t in response[:200]), None)
        prompt_field = prompt_field or next(
            (f for f in _PROMPT_FIELDS if f != name and _opens_with(response, obj.get(f))), None
        )
    which = f"field '{name}'" + (" (the default --response-field)" if name == "response" else "")
    warnings = []
    if prompt_field or turn:
        why = f"it starts with field '{prompt_field}'" if prompt_field else f"it opens with a chat user turn {turn!r}"
        warnings.append(f"{which} includes the prompt ({why}): steps in the prompt are counted as the model's")
    if reasoning:
        warnings.append(f"the traces have a '{reasoning}' field that is not counted: --response-field {reasoning} "
                        "counts the model's reasoning alone")  # fmt: skip
    return tuple(warnings)


def _opens_with(response: str, prompt: object) -> bool:
    """Whether `response` starts with the text `prompt`, at most a template's head before it: nothing, a special
    token (`...>`, `...]`) or a role label (`<|im_start|>user`, `User:`). A model that restates the question in its
    own words ("So I have this question: ...") does not count."""
    if not isinstance(prompt, str) or len(prompt.strip()) < _MIN_PROMPT_CHARS:
        return False
    at = response.find(prompt.strip(), 0, _TEMPLATE_CHARS + len(prompt))
    if at < 0:
        return False
    before = response[:at].rstrip()
    return not before or before.endswith((">", "]", "user", "User:", "Human:", "Question:", "Problem:"))
