"""`e3eval import`: build a run directory from other tools' rollout files.

The files are read by the shared input layer (`inputs.py`: formats `jsonl` with field flags, `verl` dumps, the e3
authors' `*_rollouts.json`; bad lines name file:line). This module turns its records into a run: records are grouped
into problems (by the id field; by the e3 `index`; else by identical prompt, since verl rollout dumps are reordered by
batch balancing), numbered as samples, checked against the tokenizer's vocabulary, and tokenized where the source
gives no token ids (the manifest then says `token_ids_source: retokenized`). A record that is a failed request in the
source (`--error-field` set, or finish reason `error`) is imported as an `error` row, never scored as a sample.
Gold answers come from the records or from `--dataset` (matched by id, or for prompt-only formats by the problem text
appearing in the prompt). Rows stream to append-only shards; problems and the manifest are written last, all in a
folder that replaces the output only once complete (`run.replacing`). This module does not parse JSON fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e3eval.datasets import load_problems
from e3eval.errors import UserError
from e3eval.inputs import FORMATS, FieldMap, InputRecord, detect_format, read_inputs
from e3eval.jsonl import BadLines, fail_or_skip
from e3eval.outputs import file_sha256
from e3eval.provenance import environment, now
from e3eval.records import Problem, Rollout
from e3eval.run import Run, replacing
from e3eval.store import (
    PROBLEMS,
    RolloutWriter,
    new_run_id,
    problems_table,
    run_lock,
    run_origin,
    write_table,
)
from e3eval.tokenizers import fingerprint, load_tokenizer

__all__ = ["FORMATS", "ImportConfig", "ImportResult", "detect_format", "import_run"]

_FIELD_FLAGS = (
    "id_field",
    "response_field",
    "answer_field",
    "problem_field",
    "token_ids_field",
    "sample_field",
    "finish_reason_field",
    "error_field",
)


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
    name: str | None = None  # the run's label (default: the folder's name); its identity is always a new uuid
    force: bool = False

    @property
    def fields(self) -> FieldMap:
        """The field flags as the shared input layer reads them (`jsonl` format only)."""
        return FieldMap(
            response_field=self.response_field,
            id_field=self.id_field,
            token_ids_field=self.token_ids_field,
            finish_reason_field=self.finish_reason_field,
            # With --dataset the golds come from the dataset, and records need no answer field.
            answer_field=None if self.dataset else self.answer_field,
            problem_field=self.problem_field,
            sample_field=self.sample_field,
            error_field=self.error_field,
        )


@dataclass
class ImportResult:
    run_dir: Path
    format: str
    problems: int
    rollouts: int
    skipped: BadLines
    token_ids_source: str


@dataclass
class _ProblemSlot:
    problem_id: str
    gold: str | None
    problem_text: str
    where: str  # the first record of the problem, for messages about a conflict
    next_sample: int = 0
    seen_samples: set[int] = field(default_factory=set)


# A record on its way to a shard: its problem, its sample index, and its token ids (None: to be tokenized).
_Pending = tuple[InputRecord, _ProblemSlot, int, list[int] | None]


def import_run(config: ImportConfig, progress: Any = None) -> ImportResult:
    """Create a run directory at `config.out` from `config.source`.

    The run is built in a folder beside `config.out` and swapped in only when complete, so a failed import leaves no
    half-built run, and `--force` over an existing run leaves it as it was until the new one is whole. An output that
    is, contains or lies inside the source or the dataset is refused before anything is touched.
    """
    source = Path(config.source)
    if not source.is_file():
        raise UserError(f"{source}: no such file")
    if config.format not in FORMATS:
        raise UserError(f"unknown format {config.format!r}; choose one of {', '.join(FORMATS)}")
    if config.max_tokens is not None and config.max_tokens < 1:
        raise UserError(
            f"--max-tokens must be a positive number of tokens (the generation limit), not {config.max_tokens}"
        )
    fmt = detect_format(source) if config.format == "auto" else config.format
    if fmt == "jsonl" and not config.id_field:
        raise UserError("--id-field must name the field that holds the problem id")
    out = Path(config.out)
    inputs = [source] + ([Path(config.dataset)] if config.dataset else [])
    with run_lock(out, "import"), replacing(out, inputs=inputs, force=config.force) as building:
        result = _import(source, fmt, config, building, progress)
    return ImportResult(out, *result)


def _import(
    source: Path, fmt: str, config: ImportConfig, building: Path, progress: Any
) -> tuple[str, int, int, BadLines, str]:
    tokenizer = load_tokenizer(config.tokenizer)
    vocab = len(tokenizer)
    dataset = load_problems(config.dataset) if config.dataset else None
    bad = BadLines() if config.skip_bad_lines else None
    run_id = new_run_id()
    slots: dict[str, _ProblemSlot] = {}
    task = progress.add_task(f"import {source.name}", total=None) if progress else None
    retokenized = 0
    total = 0
    with Run.building(building).rollout_writer(run_id) as writer:
        pending: list[_Pending] = []
        for record in read_inputs(source, fmt, config.fields, bad):
            slot = _slot_for(record, _problem_key(record, fmt), slots, fmt, dataset)
            idx = _sample_index(record, slot)
            # A failed request keeps no ids (they would be read as a response); it needs no tokenizing either.
            ids = [] if record.error is not None else record.token_ids
            if ids is not None and not _valid_ids(ids, vocab):
                fail_or_skip(bad, record.where, f"token ids must be integers in [0, {vocab}) for this tokenizer")
                slot.seen_samples.discard(idx)
                continue
            pending.append((record, slot, idx, ids))
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
    write_table(building / PROBLEMS, problems_table(run_id, problems))
    token_source = "retokenized" if retokenized == total else "imported" if retokenized == 0 else "mixed"
    manifest = {
        "run_id": run_id,
        "origin": run_origin(building),  # the folder keeps its inode when it is swapped into place
        **({"name": config.name} if config.name else {}),
        "created_at": now(),
        "kind": "imported",
        "source": {
            "path": str(source.resolve()),
            "format": fmt,
            "sha256": file_sha256(source),
            "records": total,
            "skipped_lines": bad.count if bad else 0,
            "skipped_examples": bad.examples if bad else [],
            "fields": {name: getattr(config, name) for name in _FIELD_FLAGS},
            "dataset": str(config.dataset) if config.dataset else None,
        },
        "tokenizer": {
            # A local tokenizer is recorded by absolute path so `score` works from any directory.
            "name_or_path": str(Path(config.tokenizer).resolve())
            if Path(config.tokenizer).exists()
            else config.tokenizer,
            "class": type(tokenizer).__name__,
            "vocab_size": vocab,
            "fingerprint": fingerprint(tokenizer),
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
    Run.create(building, manifest)
    return fmt, len(problems), total, bad or BadLines(), token_source


def _problem_key(record: InputRecord, fmt: str) -> str:
    """Which records share a problem: the id field (jsonl), the e3 `index` (whose records must share one prompt), or
    else the identical prompt (verl rollout dumps are reordered by verl's batch balancing, so consecutive order is not
    relied on)."""
    if fmt == "jsonl":
        return str(record.key)
    if record.key is not None:
        return f"index:{record.key}"
    return f"prompt:{record.prompt}"


def _slot_for(
    record: InputRecord, key: str, slots: dict[str, _ProblemSlot], fmt: str, dataset: list[Problem] | None
) -> _ProblemSlot:
    slot = slots.get(key)
    text = record.prompt if record.prompt is not None else record.problem_text
    if slot is None:
        if fmt == "jsonl":
            problem_id = key
        elif key.startswith("index:"):
            problem_id = key.removeprefix("index:")
        else:
            problem_id = f"p{len(slots):05d}"
        if dataset is not None and fmt != "jsonl":
            match = _match_prompt(text, dataset)
            if match is not None:
                problem_id = match.problem_id
        slot = slots[key] = _ProblemSlot(problem_id, record.gold, text, record.where)
    elif key.startswith("index:") and text != slot.problem_text:
        # Samples of one e3 problem share its prompt; another prompt under the same index would be graded against
        # the first one's gold answer.
        raise UserError(
            f"{record.where}: index {key.removeprefix('index:')} is also the index of {slot.where}, whose prompt "
            "differs; each problem needs its own index (fix the file, or remove the `index` fields to group records "
            "by prompt)"
        )
    elif record.gold is not None and slot.gold is not None and record.gold != slot.gold:
        raise UserError(f"{record.where}: gold answer {record.gold!r} conflicts with {slot.gold!r} given earlier")
    elif slot.gold is None:
        slot.gold = record.gold
    return slot


def _sample_index(record: InputRecord, slot: _ProblemSlot) -> int:
    idx = record.sample_idx if record.sample_idx is not None else slot.next_sample
    if idx in slot.seen_samples:
        raise UserError(f"{record.where}: duplicate sample {idx} for problem {slot.problem_id!r}")
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


def _valid_ids(ids: list[int], vocab: int) -> bool:
    # The input layer checked they are integers; only this tokenizer knows the range.
    return all(0 <= i < vocab for i in ids)


def _flush(pending: list[_Pending], tokenizer: Any, config: ImportConfig, writer: RolloutWriter) -> int:
    """Tokenize what needs it, write the rows; returns how many were retokenized."""
    to_encode = [record.response for record, _, _, ids in pending if ids is None]
    encoded = iter(tokenizer(to_encode, add_special_tokens=False)["input_ids"]) if to_encode else iter(())
    for record, slot, idx, given in pending:
        ids = given if given is not None else next(encoded)
        finish = record.finish_reason
        if finish is None:
            finish = "length" if config.max_tokens and len(ids) >= config.max_tokens else "stop"
        writer.add(
            Rollout(
                problem_id=slot.problem_id,
                sample_idx=idx,
                response=record.response,
                token_ids=tuple(ids),
                finish_reason=finish,
                error=record.error,
                source_score=record.score,
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
