"""`e3eval import`: build a run directory from other tools' rollout files.

Formats:
- `jsonl`: one sample per line; field names from `--id-field`, `--response-field`, `--answer-field` and optional
  `--token-ids-field`, `--sample-field`, `--finish-reason-field`, `--problem-field`. A record whose `--error-field`
  (default `error`) is set, or whose finish reason is `error`, is a failed request: it is imported as an `error` row
  for the record and is never scored as a sample.
- `verl`: verl's `trainer.validation_data_dir` / `rollout_data_dir` dumps (`{step}.jsonl` with `input`, `output`,
  `score`, `step`, and `gts` since Aug 2025). Samples are grouped by identical `input` (rollout dumps are reordered by
  verl's batch balancing, so consecutive order is not relied on).
- `e3`: the e3 authors' `*_rollouts.json`, one JSON array of `{input, output, score, ...}` with the n samples of a
  problem consecutive; their optional `index` field names the problem.
Gold answers come from the records or from `--dataset` (matched by id, or for prompt-only formats by the problem text
appearing in the prompt). Responses without token ids are tokenized with the given tokenizer and the manifest says
`token_ids_source: retokenized`. Rows stream to append-only shards; problems and the manifest are written last.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e3eval.datasets import load_problems
from e3eval.errors import UserError
from e3eval.jsonl import BadLines, fail_or_skip, read_json_list, read_jsonl
from e3eval.provenance import environment, now
from e3eval.records import FINISH_REASONS, Problem, Rollout
from e3eval.store import PROBLEMS, RolloutWriter, problems_table, run_lock, write_manifest, write_table
from e3eval.truncate import load_tokenizer

FORMATS = ("auto", "jsonl", "verl", "e3")


@dataclass(frozen=True)
class ImportConfig:
    source: Path
    out: Path
    tokenizer: str
    format: str = "auto"
    id_field: str = "id"
    response_field: str = "response"
    answer_field: str = "answer"
    problem_field: str = "problem"
    token_ids_field: str | None = None
    sample_field: str | None = None
    finish_reason_field: str | None = None
    error_field: str | None = "error"
    dataset: Path | None = None
    max_tokens: int | None = None
    skip_bad_lines: bool = False
    run_id: str | None = None
    force: bool = False


@dataclass
class ImportResult:
    run_dir: Path
    format: str
    problems: int
    rollouts: int
    skipped: BadLines
    token_ids_source: str


@dataclass
class _Sample:
    where: str
    problem_key: str
    response: str
    token_ids: list[int] | None = None
    sample_idx: int | None = None
    finish_reason: str | None = None
    error: str | None = None
    gold: str | None = None
    problem_text: str = ""
    source_score: float | None = None


@dataclass
class _ProblemSlot:
    problem_id: str
    gold: str | None
    problem_text: str
    next_sample: int = 0
    seen_samples: set[int] = field(default_factory=set)


def detect_format(path: Path) -> str:
    with path.open("rb") as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"["):
        return "e3"
    first_line = head.split(b"\n", 1)[0]
    if b'"input"' in first_line and b'"output"' in first_line and b'"score"' in first_line:
        return "verl"
    return "jsonl"


def import_run(config: ImportConfig, progress: Any = None) -> ImportResult:
    """Create a run directory at `config.out` from `config.source`."""
    source = Path(config.source)
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if config.format not in FORMATS:
        raise UserError(f"unknown format {config.format!r}; choose one of {', '.join(FORMATS)}")
    fmt = detect_format(source) if config.format == "auto" else config.format
    with run_lock(Path(config.out), "import"):
        _prepare_out(Path(config.out), config.force)
        try:
            return _import(source, fmt, config, progress)
        except BaseException:
            # No half-built run is left behind: without run.json it would only confuse the next command.
            shutil.rmtree(config.out, ignore_errors=True)
            raise


def _import(source: Path, fmt: str, config: ImportConfig, progress: Any) -> ImportResult:
    tokenizer = load_tokenizer(config.tokenizer)
    vocab = len(tokenizer)
    dataset = load_problems(config.dataset) if config.dataset else None
    bad = BadLines() if config.skip_bad_lines else None
    run_id = config.run_id or Path(config.out).name
    samples = _samples(source, fmt, config, bad)
    slots: dict[str, _ProblemSlot] = {}
    task = progress.add_task(f"import {source.name}", total=None) if progress else None
    retokenized = 0
    total = 0
    with RolloutWriter(Path(config.out), run_id) as writer:
        pending: list[tuple[_Sample, _ProblemSlot, int]] = []
        for sample in samples:
            slot = _slot_for(sample, slots, fmt, dataset)
            idx = _sample_index(sample, slot)
            if sample.token_ids is not None and not _valid_ids(sample.token_ids, vocab):
                fail_or_skip(bad, sample.where, f"token ids must be integers in [0, {vocab}) for this tokenizer")
                slot.seen_samples.discard(idx)
                continue
            pending.append((sample, slot, idx))
            if len(pending) >= writer.shard_rows:
                retokenized += _flush(pending, tokenizer, config, writer)
                total += len(pending)
                if progress:
                    progress.update(task, completed=total)
                pending = []
        retokenized += _flush(pending, tokenizer, config, writer)
        total += len(pending)
    if progress:
        progress.update(task, total=total, completed=total)
    if total == 0:
        raise UserError(f"{source}: no usable records")
    problems = _resolve_golds(slots, dataset, source)
    write_table(Path(config.out) / PROBLEMS, problems_table(run_id, problems))
    token_source = "retokenized" if retokenized == total else "imported" if retokenized == 0 else "mixed"
    manifest = {
        "run_id": run_id,
        "created_at": now(),
        "kind": "imported",
        "source": {
            "path": str(source.resolve()),
            "format": fmt,
            "sha256": _sha256(source),
            "records": total,
            "skipped_lines": bad.count if bad else 0,
            "skipped_examples": bad.examples if bad else [],
            "fields": {
                k: getattr(config, k)
                for k in (
                    "id_field",
                    "response_field",
                    "answer_field",
                    "problem_field",
                    "token_ids_field",
                    "sample_field",
                    "finish_reason_field",
                    "error_field",
                )
            },
            "dataset": str(config.dataset) if config.dataset else None,
        },
        "tokenizer": {
            # A local tokenizer is recorded by absolute path so `score` works from any directory.
            "name_or_path": str(Path(config.tokenizer).resolve())
            if Path(config.tokenizer).exists()
            else config.tokenizer,
            "class": type(tokenizer).__name__,
            "vocab_size": vocab,
        },
        "token_ids_source": token_source,
        "finish_reason_source": (
            f"field {config.finish_reason_field!r}"
            if config.finish_reason_field
            else f"length >= --max-tokens {config.max_tokens}"
            if config.max_tokens
            else "assumed stop (no finish reason in the source)"
        ),
        "counts": {"problems": len(problems), "rollouts": total},
        "environment": environment(),
    }
    write_manifest(Path(config.out), manifest)
    return ImportResult(Path(config.out), fmt, len(problems), total, bad or BadLines(), token_source)


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out}: already exists and is not empty (pass --force to replace it)")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def _samples(source: Path, fmt: str, config: ImportConfig, bad: BadLines | None) -> Iterator[_Sample]:
    if fmt == "jsonl":
        for number, record in read_jsonl(source, bad):
            sample = _generic(record, f"{source}:{number}", config, bad)
            if sample is not None:
                yield sample
    elif fmt == "verl":
        for number, record in read_jsonl(source, bad):
            sample = _prompted(record, f"{source}:{number}", bad, gold_key="gts")
            if sample is not None:
                yield sample
    elif fmt == "e3":
        for position, record in enumerate(read_json_list(source)):
            where = f"{source} record {position}"
            if not isinstance(record, dict):
                fail_or_skip(bad, where, "expected a JSON object")
                continue
            sample = _prompted(record, where, bad, gold_key=None)
            if sample is not None:
                if "index" in record and isinstance(record["index"], (int, str)):
                    sample.problem_key = f"index:{record['index']}"
                yield sample


def _text_field(record: dict, name: str, where: str, bad: BadLines | None, required: bool = True) -> str | None:
    value = record.get(name)
    if value is None:
        if required:
            fail_or_skip(bad, where, f"missing field {name!r}")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        fail_or_skip(bad, where, f"field {name!r} must be a string, got {type(value).__name__}")
        return None
    return str(value)


def _generic(record: dict, where: str, config: ImportConfig, bad: BadLines | None) -> _Sample | None:
    problem_key = _text_field(record, config.id_field, where, bad)
    if problem_key is None:
        return None
    response = record.get(config.response_field)
    error = record.get(config.error_field) if config.error_field else None
    if error not in (None, "", False):
        # A failed request in the source: kept for the record, never a sample (see samples.py).
        response = response if isinstance(response, str) else ""
    if not isinstance(response, str):
        name = config.response_field
        why = (
            f"missing field {name!r}"
            if response is None
            else f"field {name!r} must be a string, got {type(response).__name__}"
        )
        fail_or_skip(bad, where, why)
        return None
    gold = None
    if config.dataset is None:
        gold = _text_field(record, config.answer_field, where, bad)
        if gold is None:
            return None
    sample = _Sample(
        where,
        problem_key,
        response,
        gold=gold,
        problem_text=_text_field(record, config.problem_field, where, None, required=False) or "",
    )
    if error not in (None, "", False):
        sample.finish_reason = "error"
        sample.error = error if isinstance(error, str) else json.dumps(error)[:500]
        sample.token_ids = []
    elif config.token_ids_field:
        ids = record.get(config.token_ids_field)
        if not isinstance(ids, list):
            fail_or_skip(bad, where, f"field {config.token_ids_field!r} must be a list of token ids")
            return None
        sample.token_ids = ids
    if config.sample_field:
        idx = record.get(config.sample_field)
        if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
            fail_or_skip(bad, where, f"field {config.sample_field!r} must be a non-negative integer")
            return None
        sample.sample_idx = idx
    if config.finish_reason_field and sample.error is None:
        reason = record.get(config.finish_reason_field)
        if reason not in FINISH_REASONS:
            fail_or_skip(bad, where, f"field {config.finish_reason_field!r} must be one of {', '.join(FINISH_REASONS)}")
            return None
        sample.finish_reason = reason
        if reason == "error":
            sample.error = f"marked {reason!r} by field {config.finish_reason_field!r} in the source"
            sample.token_ids = []
    return sample


def _prompted(record: dict, where: str, bad: BadLines | None, gold_key: str | None) -> _Sample | None:
    prompt = _text_field(record, "input", where, bad)
    response = record.get("output")
    if prompt is None:
        return None
    if not isinstance(response, str):
        fail_or_skip(bad, where, "missing field 'output'" if response is None else "field 'output' must be a string")
        return None
    score = record.get("score")
    gold = _text_field(record, gold_key, where, None, required=False) if gold_key else None
    return _Sample(
        where,
        problem_key=f"prompt:{prompt}",
        response=response,
        gold=gold,
        problem_text=prompt,
        source_score=float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) else None,
    )


def _slot_for(sample: _Sample, slots: dict[str, _ProblemSlot], fmt: str, dataset: list[Problem] | None) -> _ProblemSlot:
    slot = slots.get(sample.problem_key)
    if slot is None:
        if fmt == "jsonl":
            problem_id = sample.problem_key
        elif sample.problem_key.startswith("index:"):
            problem_id = sample.problem_key.removeprefix("index:")
        else:
            problem_id = f"p{len(slots):05d}"
        if dataset is not None and fmt != "jsonl":
            match = _match_prompt(sample.problem_text, dataset)
            if match is not None:
                problem_id = match.problem_id
        slot = slots[sample.problem_key] = _ProblemSlot(problem_id, sample.gold, sample.problem_text)
    elif sample.gold is not None and slot.gold is not None and sample.gold != slot.gold:
        raise UserError(f"{sample.where}: gold answer {sample.gold!r} conflicts with {slot.gold!r} given earlier")
    elif slot.gold is None:
        slot.gold = sample.gold
    return slot


def _sample_index(sample: _Sample, slot: _ProblemSlot) -> int:
    idx = sample.sample_idx if sample.sample_idx is not None else slot.next_sample
    if idx in slot.seen_samples:
        raise UserError(f"{sample.where}: duplicate sample {idx} for problem {slot.problem_id!r}")
    slot.seen_samples.add(idx)
    slot.next_sample = max(slot.next_sample, idx + 1)
    return idx


def _match_prompt(prompt: str, dataset: list[Problem]) -> Problem | None:
    best: Problem | None = None
    for problem in dataset:
        text = problem.problem.strip()
        if text and text in prompt and (best is None or len(text) > len(best.problem.strip())):
            best = problem
    return best


def _valid_ids(ids: list[Any], vocab: int) -> bool:
    return all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < vocab for i in ids)


def _flush(
    pending: list[tuple[_Sample, _ProblemSlot, int]], tokenizer: Any, config: ImportConfig, writer: RolloutWriter
) -> int:
    """Tokenize what needs it, write the rows; returns how many were retokenized."""
    to_encode = [s.response for s, _, _ in pending if s.token_ids is None]
    encoded = iter(tokenizer(to_encode, add_special_tokens=False)["input_ids"]) if to_encode else iter(())
    for sample, slot, idx in pending:
        ids = sample.token_ids if sample.token_ids is not None else next(encoded)
        finish = sample.finish_reason
        if finish is None:
            finish = "length" if config.max_tokens and len(ids) >= config.max_tokens else "stop"
        writer.add(
            Rollout(
                problem_id=slot.problem_id,
                sample_idx=idx,
                response=sample.response,
                token_ids=tuple(ids),
                finish_reason=finish,
                error=sample.error,
                source_score=sample.source_score,
            )
        )
    return len(to_encode)


def _resolve_golds(slots: dict[str, _ProblemSlot], dataset: list[Problem] | None, source: Path) -> list[Problem]:
    by_id = {p.problem_id: p for p in dataset} if dataset else {}
    problems: list[Problem] = []
    missing: list[str] = []
    seen_ids: set[str] = set()
    for slot in slots.values():
        known = by_id.get(slot.problem_id)
        gold = known.answer if known is not None else slot.gold
        if gold is None:
            missing.append(slot.problem_id)
            continue
        if slot.problem_id in seen_ids:
            raise UserError(f"{source}: two different prompts map to problem {slot.problem_id!r}")
        seen_ids.add(slot.problem_id)
        problems.append(
            Problem(
                problem_id=slot.problem_id,
                answer=gold,
                problem=known.problem if known is not None else slot.problem_text,
                dataset=known.dataset if known is not None else "",
                prompt=slot.problem_text if slot.problem_text != (known.problem if known else None) else "",
            )
        )
    if missing:
        hint = "pass --dataset FILE with their answers" if dataset is None else "they are not in --dataset"
        raise UserError(f"{source}: no gold answer for {len(missing)} problem(s) (first: {missing[0]!r}); {hint}")
    return problems


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
