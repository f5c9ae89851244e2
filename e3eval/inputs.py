"""Other tools' rollout files, read one way for every command: format detection, one field map, one record type.

`e3eval import` (ingest.py) and `count-asymmetries` / `unique-attempts` (analysis/traces.py) read the same files
through this module. Formats:
- `jsonl`: one record per line; which field holds what is a `FieldMap` (the commands' `--*-field` flags).
- `verl`: verl's `trainer.validation_data_dir` / `rollout_data_dir` dumps (`{step}.jsonl` with `input`, `output`,
  `score`, `step`, and `gts` since Aug 2025).
- `e3`: the e3 authors' `*_rollouts.json`, one JSON array of `{input, output, score, ...}`; their optional `index`
  field names the problem.
Every reader yields frozen `InputRecord`s in input order (JSONL one line at a time). The error rules are the same for
every command: a bad line raises `UserError("path:line: why")`, or under `--skip-bad-lines` is counted in `BadLines`
(`jsonl.py`). A failed request in the source (its error field set, or finish reason `error`) is a record with `error`
set, not a bad line. This module reads and checks fields; it does not decide what a record becomes (a sample, a trace),
group records into problems, or check token ids against a tokenizer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.jsonl import BOM, BadLines, fail_or_skip, read_json_list, read_jsonl
from e3eval.records import FINISH_REASONS

FORMATS = ("auto", "jsonl", "verl", "e3")


@dataclass(frozen=True)
class FieldMap:
    """Which field of a generic JSONL record holds what; None (or "") means the input has no such field.

    The defaults are `count-asymmetries`' (only the response); `e3eval import` sets id, answer, problem and error
    fields (see `ImportConfig`). A field that is named must be present and well-formed, except `problem_field`,
    `correct_field`, `target_field` and `group_field`, which may be missing or null. A set `answer_field` also says
    that the caller reads gold answers, which verl dumps carry in `gts`. The first seven fields keep the positional
    order of the former `analysis.traces.TraceFields`.
    """

    response_field: str = "response"
    id_field: str | None = None
    correct_field: str | None = None
    token_ids_field: str | None = None
    finish_reason_field: str | None = None
    target_field: str | None = None
    group_field: str | None = None
    answer_field: str | None = None
    problem_field: str | None = None
    sample_field: str | None = None
    error_field: str | None = None


@dataclass(frozen=True)
class InputRecord:
    """One record of an input file, its fields read and checked; what the input does not say is None."""

    where: str  # "path:line" (JSONL) or "path record N" (e3 array): the prefix of every message about it
    line: int  # 1-based line of a JSONL file, 0-based position in an e3 array
    response: str
    key: str | None = None  # the id field (jsonl) or `index` (e3); verl dumps have none
    token_ids: list[int] | None = None
    sample_idx: int | None = None
    finish_reason: str | None = None  # stop | length | error
    error: str | None = None  # set: a failed request in the source, never a sample
    gold: str | None = None  # the answer field (jsonl) or `gts` when it is text (verl)
    problem_text: str = ""  # the problem field (jsonl)
    prompt: str | None = None  # `input` (verl, e3): the rendered prompt
    score: float | None = None  # `score` (verl, e3) when it is a number
    correct: bool | None = None  # the correct field (jsonl) or `score` (verl, e3)
    target: float | None = None  # a Countdown target: the target field (jsonl) or `gts` (verl)
    group: str | None = None  # the group field (jsonl)


def detect_format(path: Path) -> str:
    """`e3` for a JSON array, `verl` when the first line has verl's fields, else `jsonl` (a byte-order mark is
    skipped, as the readers skip it)."""
    with Path(path).open("rb") as handle:
        head = handle.read(4096).removeprefix(BOM).lstrip()
    if head.startswith(b"["):
        return "e3"
    first_line = head.split(b"\n", 1)[0]
    if b'"input"' in first_line and b'"output"' in first_line and b'"score"' in first_line:
        return "verl"
    return "jsonl"


def read_inputs(source: Path, fmt: str, fields: FieldMap, bad: BadLines | None = None) -> Iterator[InputRecord]:
    """Every usable record of `source` in order; `fields` applies to `jsonl` only (verl and e3 fields are fixed)."""
    source = Path(source)
    if fmt == "e3":
        for position, obj in enumerate(read_json_list(source)):
            where = f"{source} record {position}"
            if not isinstance(obj, dict):
                fail_or_skip(bad, where, "expected a JSON object")
                continue
            record = _prompted(obj, position, where, bad, with_gold=False)
            if record is not None:
                yield record
        return
    for number, obj in read_jsonl(source, bad):
        record = to_record(obj, number, f"{source}:{number}", fmt, fields, bad)
        if record is not None:
            yield record


def to_record(
    obj: dict[str, Any], line: int, where: str, fmt: str, fields: FieldMap, bad: BadLines | None
) -> InputRecord | None:
    """One parsed JSONL line (`jsonl` or `verl`) as a record, or None after counting it as bad (raises without
    `bad`). Public so that callers parsing lines in worker processes apply the same rules."""
    if fmt == "verl":
        return _prompted(obj, line, where, bad, with_gold=True, gold_wanted=fields.answer_field is not None)
    return _generic(obj, line, where, fields, bad)


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


def _is_text(value: Any) -> bool:
    # Numbers are accepted as text (ids 17, answers 2.5); booleans are almost always a field mix-up.
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _text(obj: dict[str, Any], name: str, where: str, bad: BadLines | None) -> str | None:
    """A required text field, or None after failing or counting the line."""
    value = obj.get(name)
    if value is None:
        fail_or_skip(bad, where, f"missing field {name!r}")
        return None
    if not _is_text(value):
        fail_or_skip(bad, where, f"field {name!r} must be a string, got {type(value).__name__}")
        return None
    return str(value)


def _response(obj: dict[str, Any], name: str, where: str, bad: BadLines | None, failed: bool) -> str | None:
    value = obj.get(name)
    if failed and not isinstance(value, str):
        return ""  # a failed request has no response; it is kept for the record
    if isinstance(value, str):
        return value
    why = f"missing field {name!r}" if value is None else f"field {name!r} must be a string, got {type(value).__name__}"
    fail_or_skip(bad, where, why)
    return None


def _generic(obj: dict[str, Any], line: int, where: str, fields: FieldMap, bad: BadLines | None) -> InputRecord | None:
    key = None
    if fields.id_field:
        key = _text(obj, fields.id_field, where, bad)
        if key is None:
            return None
    error = obj.get(fields.error_field) if fields.error_field else None
    failed = error not in (None, "", False)
    response = _response(obj, fields.response_field, where, bad, failed)
    if response is None:
        return None
    gold = None
    if fields.answer_field:
        gold = _text(obj, fields.answer_field, where, bad)
        if gold is None:
            return None
    problem = obj.get(fields.problem_field) if fields.problem_field else None
    if problem is not None and not _is_text(problem):
        fail_or_skip(bad, where, f"field {fields.problem_field!r} must be a string, got {type(problem).__name__}")
        return None
    token_ids = finish = error_text = None
    if failed:
        finish, error_text = "error", error if isinstance(error, str) else json.dumps(error)[:500]
    elif fields.token_ids_field:
        token_ids = obj.get(fields.token_ids_field)
        # `type(i) is int` also refuses booleans, and is the cheap test on 40k-id lists.
        if not isinstance(token_ids, list) or not all(type(i) is int for i in token_ids):
            fail_or_skip(bad, where, f"field {fields.token_ids_field!r} must be a list of integer token ids")
            return None
    sample_idx = None
    if fields.sample_field:
        sample_idx = obj.get(fields.sample_field)
        if type(sample_idx) is not int or sample_idx < 0:
            fail_or_skip(bad, where, f"field {fields.sample_field!r} must be a non-negative integer")
            return None
    if fields.finish_reason_field and not failed:
        finish = obj.get(fields.finish_reason_field)
        if not isinstance(finish, str) or finish not in FINISH_REASONS:
            fail_or_skip(bad, where, f"field {fields.finish_reason_field!r} must be one of {', '.join(FINISH_REASONS)}")
            return None
        if finish == "error":
            error_text = f"marked 'error' by field {fields.finish_reason_field!r} in the source"
    try:
        correct = as_correct(obj.get(fields.correct_field)) if fields.correct_field else None
        target = as_target(obj.get(fields.target_field)) if fields.target_field else None
    except ValueError as exc:
        fail_or_skip(bad, where, str(exc))
        return None
    group = obj.get(fields.group_field) if fields.group_field else None
    return InputRecord(
        where,
        line,
        response,
        key=key,
        token_ids=token_ids,
        sample_idx=sample_idx,
        finish_reason=finish,
        error=error_text,
        gold=gold,
        problem_text="" if problem is None else str(problem),
        correct=correct,
        target=target,
        group=None if group is None else str(group),
    )


def _prompted(
    obj: dict[str, Any], line: int, where: str, bad: BadLines | None, with_gold: bool, gold_wanted: bool = False
) -> InputRecord | None:
    """A verl dump line (`with_gold`: `gts`) or an e3 record: prompt in, one response out, a score. With
    `gold_wanted` (the caller reads answers: `FieldMap.answer_field` is set) a `gts` that can be neither a gold answer
    nor a ground-truth object (a list, a boolean) makes the line bad, since its samples could never be graded."""
    prompt = _text(obj, "input", where, bad)
    if prompt is None:
        return None
    response = obj.get("output")
    if not isinstance(response, str):
        fail_or_skip(bad, where, "missing field 'output'" if response is None else "field 'output' must be a string")
        return None
    score = obj.get("score")
    try:
        correct = as_correct(score)
    except ValueError:
        correct = None  # an odd score is not a bad line: import keeps the record, analysis reads it as unknown
    gold = target = None
    if with_gold:
        gts = obj.get("gts")
        if gold_wanted and gts is not None and not (_is_text(gts) or isinstance(gts, dict)):
            fail_or_skip(bad, where, f"field 'gts' must be a string (a gold answer), got {type(gts).__name__}")
            return None
        # `gts` is a math answer ("\\frac{1}{2}") or a Countdown ground truth ({"target": 24, "numbers": [...]},
        # or that object as JSON text): text is a gold answer, a target is read from whichever holds one.
        gold = str(gts) if _is_text(gts) else None
        if isinstance(gts, (dict, str)):
            try:
                target = as_target(gts)
            except ValueError:
                target = None
    index = obj.get("index")
    return InputRecord(
        where,
        line,
        response,
        key=str(index) if not with_gold and isinstance(index, (int, str)) else None,
        gold=gold,
        prompt=prompt,
        score=float(score) if _is_text(score) and not isinstance(score, str) else None,
        correct=correct,
        target=target,
    )
