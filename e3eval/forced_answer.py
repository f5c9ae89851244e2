"""Forced answers at a budget (`e3eval score RUN --policy forced --model M`): the continuations, generated once.

Many papers score a trace cut at budget B by forcing an answer out of it. For every sample whose response had not
ended within B (no EOS in its first B tokens), the model is asked to continue exactly these token ids:

    prompt ids + the first B response ids + [end-of-thinking ids] + answer-cue ids

The end-of-thinking ids (`thinking.think_end`: `--think-end`, else `</think>`, else none for models without a
thinking section) are appended only when the thinking is still open: neither the first B response ids nor the prompt
(a template that closed the thinking itself, `--no-thinking`) hold them. The cue (default `\\n\\nFinal Answer:
\\boxed{`) is tokenized without special tokens. `--answer-cue s1` names s1's cue, "\\nFinal Answer:" (`S1_CUE`), with
s1's newlines: a text that does not end with a newline gets one before the end of thinking (as s1's harness does
before its own), and without an end of thinking the cue's newline is left out when the text ends with one; the
answer is the last box, else what follows the last "Answer:" (`policy.ForcedPolicy`). The continuation is
greedy (temperature 0, top-p 1) and at most `answer_tokens` long; the answer graded is the one found in the decode of
cue ids + continuation ids (so the cue's open `\\boxed{` is closed by the model), under the same extraction and
grader as every other policy (`policy.py`).
Cost: at most `answer_tokens` generated tokens per (sample, budget) whose prefix had not ended, each over a prompt of
prompt + B + a few tokens; samples that ended within B cost nothing. A grade's `tokens_used` stays the response
tokens within B: the forced answer's tokens come on top (run.json's `scoring.forced.tokens_generated` counts them).

Continuations are stored in `RUN/forced/part-NNNNNN.parquet` (`FORCED_SCHEMA`), keyed by (problem_id, sample_idx,
budget, model, the model's weights fingerprint, cue, answer_tokens, think_end) and reused only for the token ids they
continued (`context_sha1`); each part is written atomically as soon as its batch is generated, so
a later scoring reuses every stored continuation and an interrupted one resumes where it stopped. A failed request is
a row with `error` set: never an answer, retried by the next scoring (a later success supersedes it). This module
generates and stores; which answer counts at a budget is `policy.py`'s, grading is `score.py`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from e3eval.backends.logs import ENGINE_LOGS, EngineLog
from e3eval.backends.options import BackendOptions
from e3eval.backends.settings import EngineSettings, check_bounds, check_settings
from e3eval.context import context_limit, read_model_config
from e3eval.errors import EngineFailure, UserError
from e3eval.manifest import GenerationRecord
from e3eval.provenance import now
from e3eval.records import Completion, GenerationRequest, SamplingSpec
from e3eval.run import Run
from e3eval.store import FORCED_SCHEMA, ids_sha1
from e3eval.thinking import THINK_OPEN, ThinkEnd, think_end
from e3eval.tokenizers import fingerprint
from e3eval.weights import model_fingerprint, model_path

if TYPE_CHECKING:
    from e3eval.policy import ScoringContext
    from e3eval.records import Problem
    from e3eval.samples import SampleLedger

FORCED_DIR = "forced"
DEFAULT_CUE = "\n\nFinal Answer: \\boxed{"
S1_CUE = "\nFinal Answer:"  # s1's evaluation harness (`--answer-cue s1`); its answer phase is unboxed
NAMED_CUES = {"s1": S1_CUE}
DEFAULT_ANSWER_TOKENS = 64
MAX_ANSWER_TOKENS = 8192
MAX_CUE_CHARS = 1000
MAX_BATCH = 100_000
# Greedy: a forced answer is a property of the prefix, not a sample; the seed is then irrelevant to every engine.
GREEDY = {"temperature": 0.0, "top_p": 1.0}
_SEED = 0

_KEY_FIELDS = ("model", "cue", "answer_tokens", "think_end")
_READ_COLUMNS = ("problem_id", "sample_idx", "budget", "token_ids", "finish_reason", "error", "context_sha1")

Key = tuple[str, int, int]  # (problem_id, sample_idx, budget)


@dataclass(frozen=True)
class ForcedConfig:
    """Who writes the forced answers and how: model and backend (with its options), cue, length, delimiter."""

    model: str
    backend: str | None  # None: the run's recorded backend (`with_run_engine`), else the one installed
    backend_options: dict[str, Any] = field(default_factory=dict)  # `BackendOptions` fields, those given
    cue: str = DEFAULT_CUE
    answer_tokens: int = DEFAULT_ANSWER_TOKENS
    think_end: str | None = None  # None: the tokenizer's `</think>`, else none (see `thinking.think_end`)
    batch: int | None = None  # requests per engine call and per stored part; None: the backend's default
    engine: EngineSettings = field(default_factory=EngineSettings)  # --tp, --engine-arg, ... (`backends.settings`)
    verbose: bool = False  # engine logs on the console instead of RUN/logs/engine-<time>.log

    @property
    def served(self) -> bool:
        """Whether --model names a model on a server (no weights or config to read here)."""
        from e3eval.backends import spec

        return self.backend is not None and spec(self.backend).served

    def describe(self) -> dict[str, Any]:
        """The settings for run.json (no API key)."""
        options = {k: v for k, v in self.backend_options.items() if v is not None and k != "api_key"}
        return {"model": self.model, "model_path": model_path(self.model) if not self.served else None,
                "backend": self.backend, "backend_options": options, "engine_settings": self.engine.record(),
                "cue": self.cue, "answer_tokens": self.answer_tokens, "think_end": self.think_end,
                "batch": self.batch, "sampling": GREEDY}  # fmt: skip


def forced_config(
    model: str,
    backend: str | None = None,
    backend_options: dict[str, Any] | None = None,
    cue: str = DEFAULT_CUE,
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
    think_end: str | None = None,
    batch: int | None = None,
    engine: EngineSettings | None = None,
    verbose: bool = False,
) -> ForcedConfig:
    """A ForcedConfig with every flag checked (all problems in one error). Without `backend`, the backend is the
    run's (`with_run_engine`, once the run is known), else the installed one; its options are checked then."""
    from e3eval.backends import check_options, names

    options = {k: v for k, v in (backend_options or {}).items() if v is not None}
    cue = NAMED_CUES.get(cue, cue)
    problems = []
    if not model:
        problems.append("--model must name the model that writes the forced answers")
    if not cue or len(cue) > MAX_CUE_CHARS:
        problems.append(f"--answer-cue must be 1 to {MAX_CUE_CHARS} characters")
    if not 1 <= answer_tokens <= MAX_ANSWER_TOKENS:
        problems.append(f"--answer-tokens must be between 1 and {MAX_ANSWER_TOKENS}")
    if think_end is not None and not think_end:
        problems.append("--think-end must not be empty")
    if batch is not None and not 1 <= batch <= MAX_BATCH:
        problems.append(f"--batch must be between 1 and {MAX_BATCH:,}")
    problems += BackendOptions.of(options).problems()  # --dtype (and any other option given)
    if backend is not None and backend not in names():
        problems.append(f"unknown backend {backend!r}; choose one of {', '.join(names())}")
    engine = engine or EngineSettings()
    problems += check_bounds(engine)
    if problems:
        raise UserError("; ".join(problems))
    if backend is not None:
        check_options(backend, options)
    return ForcedConfig(model, backend, options, cue, answer_tokens, think_end, batch, engine, verbose)


def with_run_engine(config: ForcedConfig, run: Run) -> tuple[ForcedConfig, str]:
    """`config` with what it leaves unset taken from how `run` was generated, and a line saying what is used.

    The backend is the run's unless `--backend` (or `--base-url`) names another; with the run's backend come its
    engine settings (`--tp`, `--gpu-memory-utilization`, `--engine-arg` ...; each flag given overrides its own) and,
    for the run's own model, its dtype. `--max-model-len` is never inherited: forced requests are sized anew.
    Everything chosen is checked against the backend before any engine starts.
    """
    from e3eval.backends import check_options, names, pick_backend, spec

    generated = run.record.generation or GenerationRecord()
    recorded = generated.backend
    options = dict(config.backend_options)
    if config.backend is not None:
        name, why = config.backend, "asked for"
    elif recorded in names() and not spec(recorded).served and not options.get("base_url"):
        name, why = recorded, "the run's, from run.json"
    else:
        name, why = pick_backend(options.get("base_url"))
    engine = config.engine
    inherited = []
    if name == recorded:  # the run's engine, named or not: its settings unless flags say otherwise
        base = EngineSettings.from_record(generated.engine_settings, str(run.path / "run.json"))
        base = dataclasses.replace(base, max_model_len=None)
        engine = config.engine.over(base)
        if base.record():
            inherited.append(f"engine {base.describe()}")
        same_model = generated.model_path and generated.model_path == model_path(config.model)
        if options.get("dtype") is None and same_model and generated.dtype not in (None, "auto"):
            options["dtype"] = generated.dtype
            inherited.append(f"--dtype {generated.dtype}")
    check_options(name, options)
    check_settings(name, engine, read_model_config(config.model) if spec(name).engine.reads_config else None)
    note = f"forced answers: backend {name} ({why}" + (f"; {', '.join(inherited)} as the run was generated" if
                                                        inherited else "") + "; pass flags to override)"  # fmt: skip
    return dataclasses.replace(config, backend=name, backend_options=options, engine=engine), note


@dataclass(frozen=True)
class ForcedAnswer:
    """One stored or fresh continuation: `text` is the decode of cue ids + continuation ids (what is graded),
    `final` whether the model stopped (else only complete boxes count), `error` why the request failed."""

    text: str
    final: bool
    error: str | None = None
    context: str | None = None  # the stored context_sha1 (None: a part from before it was recorded)


@dataclass
class ForcedOutcome:
    """The forced answers of one scoring, by (problem_id, sample_idx, budget), and what they cost."""

    answers: dict[Key, ForcedAnswer]
    delimiter: ThinkEnd
    cue_ids: tuple[int, ...]
    wanted: int = 0  # (sample, budget) pairs whose prefix had not ended
    reused: int = 0
    stale: int = 0  # stored continuations of another context (the sample was regenerated): made again
    other_weights: int = 0  # stored continuations written by other weights at the model's path: made again
    generated: int = 0  # successful continuations made by this call
    failed: int = 0  # requests of this call that failed
    tokens: int = 0  # tokens generated by this call
    engine: dict[str, Any] | None = None
    bare_cue_ids: tuple[int, ...] | None = None  # the s1 cue without its leading newline (`S1_CUE`)
    newline_ids: tuple[int, ...] = ()  # with the s1 cue: what goes before the end of thinking after a text without one

    def describe(self, config: ForcedConfig) -> dict[str, Any]:
        """For run.json's scoring section: the settings, exactly what is appended, and the cost."""
        return {**config.describe(), "think_end_text": self.delimiter.text,
                "think_end_ids": list(self.delimiter.token_ids) if not self.delimiter.is_eos else [],
                "cue_ids": list(self.cue_ids), "wanted": self.wanted, "reused": self.reused, "stale": self.stale,
                "other_weights": self.other_weights,
                "generated": self.generated, "failed": self.failed, "tokens_generated": self.tokens,
                "engine": self.engine}  # fmt: skip


def cue_ids(tokenizer: Any, cue: str) -> tuple[int, ...]:
    ids = tuple(int(i) for i in tokenizer(cue, add_special_tokens=False)["input_ids"])
    if not ids:
        raise UserError(f"--answer-cue {cue!r} tokenizes to no token ids")
    return ids


def ended(finish_reason: str, num_tokens: int, budget: int) -> bool:
    """Whether a response ended (EOS) within `budget` tokens: such a sample offers its own answer, not a forced one."""
    return finish_reason == "stop" and num_tokens <= budget


@dataclass(frozen=True)
class _Job:
    """One scoring's forced-answer stage: the run and its samples, the settings, the run's (checked) tokenizer."""

    run: Run
    ledger: SampleLedger
    budgets: Sequence[int]
    config: ForcedConfig
    tokenizer: Any
    tokenizer_name: str
    setting: dict[str, Any]  # the key columns of this setting (`_KEY_FIELDS`)
    outcome: ForcedOutcome
    longest: int = 0  # positions the longest request needs (the engine's context when --max-model-len is not given)
    log: Callable[[str], None] = lambda _: None


def ensure_answers(context: ScoringContext, config: ForcedConfig) -> ForcedOutcome:
    """Every forced answer a scoring (`context`: its run, samples, budgets and the run's tokenizer, already checked
    against its token ids) needs: stored ones read back, missing or failed ones generated (and stored part by
    part)."""
    run, tokenizer, log = context.run, context.tokenizer, context.log
    outcome = _new_outcome(tokenizer, config)
    delimiter = outcome.delimiter
    setting = {"model": model_path(config.model), "cue": config.cue, "answer_tokens": config.answer_tokens,
               "think_end": delimiter.text}  # fmt: skip
    weights = model_fingerprint(config.model) if not config.served else None
    stored, outcome.other_weights = read_stored(run, setting, weights, tokenizer, outcome.cue_ids)
    if outcome.other_weights:
        log(f"forced answers: {outcome.other_weights} stored continuation(s) were written by other weights at "
            f"{setting['model']} (its files changed since): made again with the weights there now")  # fmt: skip
    setting = {**setting, "model_fingerprint": weights}
    prompts = _prompt_ids(run, context.problems, tokenizer)
    longest = max(map(len, prompts.values()), default=0) + max(context.budgets, default=0) + config.answer_tokens + len(
        outcome.cue_ids) + len(delimiter.token_ids)  # fmt: skip
    limit = context_limit(read_model_config(config.model)) if not config.served else None
    # A request beyond the model's context fails alone (`complete`); the engine is not asked for more than it has.
    job = _Job(run, context.samples, context.budgets, config, tokenizer, context.tokenizer_name, setting, outcome,
               min(longest, limit.tokens) if limit else longest, log)  # fmt: skip
    todo = _missing(job, prompts, stored)
    if todo:
        log(
            f"forced answers: {len(todo)} of {outcome.wanted} (sample, budget) pairs to generate with {config.model} "
            f"({config.backend}), up to {config.answer_tokens} tokens each ({len(todo) * config.answer_tokens:,} "
            f"at most); {outcome.reused} stored"
        )
        _generate(job, prompts, todo, context.progress)
    return outcome


def _new_outcome(tokenizer: Any, config: ForcedConfig) -> ForcedOutcome:
    """An empty outcome knowing the ids it appends: the end of thinking and the cue (s1's, also split at its
    newline)."""
    outcome = ForcedOutcome({}, think_end(tokenizer, config.think_end), cue_ids(tokenizer, config.cue))
    if config.cue == S1_CUE:  # the cue without its newline, and the newline, for s1's rule
        outcome.bare_cue_ids = cue_ids(tokenizer, S1_CUE.lstrip("\n"))
        outcome.newline_ids = cue_ids(tokenizer, "\n")
    return outcome


def _missing(job: _Job, prompts: dict[str, tuple[int, ...]], stored: dict[Key, ForcedAnswer]) -> set[Key]:
    """The (sample, budget) pairs without a usable stored answer; the usable ones go into the outcome. A stored
    answer counts only for the context it continued (a regenerated sample's is stale)."""
    outcome = job.outcome
    todo: set[Key] = set()
    candidates: set[Key] = set()
    for key in _unended(job.run, job.ledger, job.budgets):
        outcome.wanted += 1
        answer = stored.get(key)
        if answer is not None and answer.error is None:
            candidates.add(key)
        else:
            todo.add(key)
    for item in _pending(job, prompts, candidates):
        answer = stored[item.key]
        if answer.context is None or answer.context == item.context:
            outcome.answers[item.key] = answer
            outcome.reused += 1
        else:
            outcome.stale += 1
            todo.add(item.key)
    if outcome.stale:
        job.log(f"forced answers: {outcome.stale} stored continuation(s) continued other token ids (regenerated "
                "samples): made again")  # fmt: skip
    return todo


def read_stored(run: Run, setting: dict[str, Any], weights: str | None, tokenizer: Any,
                cue: Sequence[int]) -> tuple[dict[Key, ForcedAnswer], int]:  # fmt: skip
    """The stored continuations of one setting (`_KEY_FIELDS` -> value) written by the weights `weights`, and how
    many of that setting other weights at the same path wrote (not returned). A success supersedes any failure of
    the same key, and a later failure (a retry) supersedes an earlier one."""
    raw: dict[Key, tuple[list[int], str, str | None, str | None]] = {}
    other: set[Key] = set()
    for part in run.parts("forced"):
        table = _read_part(part)
        mask = pc.equal(table["model"], setting["model"])
        for name in _KEY_FIELDS[1:]:
            mask = pc.and_(mask, pc.equal(table[name], setting[name]))
        table = table.filter(mask)
        same = (
            pc.is_null(table["model_fingerprint"]) if weights is None else pc.equal(table["model_fingerprint"], weights)
        )
        same = pc.fill_null(same, False)
        other.update(zip(*(table.filter(pc.invert(same))[c].to_pylist() for c in _READ_COLUMNS[:3]), strict=True))
        table = table.filter(same)
        rows = zip(*(table[c].to_pylist() for c in _READ_COLUMNS), strict=True)
        for pid, idx, budget, ids, finish, error, context in rows:
            key = (pid, idx, budget)
            if error is None or key not in raw or raw[key][2] is not None:
                raw[key] = (ids or [], finish, error, context)
    answers = {
        key: ForcedAnswer("", False, error) if error is not None else _answer(tokenizer, cue, ids, finish, context)
        for key, (ids, finish, error, context) in raw.items()
    }
    return answers, len(other - answers.keys())


def _read_part(part: Path) -> pa.Table:
    """One stored part, in today's columns (ones it predates are null); a damaged file, or a Parquet file that is
    not a forced-answer part (another table put in forced/), is a UserError naming it."""
    try:
        table = pq.read_table(part)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(
            f"{part}: not a readable Parquet part of the forced answers ({exc}); remove it and rescore to generate "
            "its continuations again"
        ) from None
    for name in ("context_sha1", "model_fingerprint"):
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, pa.string()))
    missing = [c for c in (*_READ_COLUMNS, *_KEY_FIELDS) if c not in table.column_names]
    if missing:
        raise UserError(
            f"{part}: not a forced-answer part (no column {', '.join(missing)}); only e3eval's parts belong in "
            f"{FORCED_DIR}/: move this file out of the run"
        )
    return table.select([*_READ_COLUMNS, *_KEY_FIELDS, "model_fingerprint"])


def _answer(tokenizer: Any, cue: Sequence[int], ids: Sequence[int], finish: str,
            context: str | None = None) -> ForcedAnswer:  # fmt: skip
    return ForcedAnswer(tokenizer.decode([*cue, *ids], skip_special_tokens=True), finish == "stop", None, context)


def _unended(run: Run, ledger: SampleLedger, budgets: Sequence[int]) -> Iterator[Key]:
    """(problem_id, sample_idx, budget) of every sample whose response had not ended within a budget."""
    start = 0
    for batch in run.rollout_batches(("problem_id", "sample_idx", "num_tokens", "finish_reason")):
        keep = ledger.keep[start : start + batch.num_rows]
        start += batch.num_rows
        columns = (batch.column(c).to_pylist() for c in ("problem_id", "sample_idx", "num_tokens", "finish_reason"))
        for ok, pid, idx, num_tokens, finish in zip(keep, *columns, strict=True):
            if ok:
                for budget in budgets:
                    if not ended(finish, num_tokens, budget):
                        yield pid, idx, budget


def _prompt_ids(run: Run, problems: Sequence[Problem], tokenizer: Any) -> dict[str, tuple[int, ...]]:
    """Each problem's prompt ids: stored with the run, else its stored prompt text tokenized without special tokens."""
    ids: dict[str, tuple[int, ...]] = {}
    for problem in problems:
        if problem.prompt_token_ids:
            ids[problem.problem_id] = tuple(problem.prompt_token_ids)
        elif problem.prompt:
            ids[problem.problem_id] = tuple(tokenizer(problem.prompt, add_special_tokens=False)["input_ids"])
        else:
            raise UserError(
                f"{run.path}: problem {problem.problem_id!r} has no stored prompt, and a forced answer continues the "
                "prompt + response; import the run with its prompts (a `prompt` field) to use --policy forced"
            )
    return ids


def _closes(prompt: Sequence[int], delimiter: Any, opener: int | None) -> bool:
    """Whether the prompt leaves the thinking closed: its last delimiter comes after its last `<think>` (a few-shot
    or multi-turn prompt may hold earlier, closed thinking sections and still open a new one at its end)."""
    last_close = -1
    at = delimiter.find(prompt)
    while at is not None:
        last_close = at
        at = delimiter.find(prompt, at + 1)
    if last_close < 0:
        return False
    last_open = max((i for i, token in enumerate(prompt) if token == opener), default=-1) if opener is not None else -1
    return last_close > last_open


@dataclass(frozen=True)
class _Pending:
    key: Key
    request: GenerationRequest
    prefix_tokens: int
    appended: tuple[int, ...]
    context: str  # context_sha1 of the request's ids


def _pending(job: _Job, prompts: dict[str, tuple[int, ...]], todo: set[Key]) -> Iterator[_Pending]:
    """The continuation requests of `todo`, streamed in storage order (never every prefix in memory at once)."""
    delimiter = job.outcome.delimiter
    opener = job.tokenizer.get_vocab().get(THINK_OPEN)
    closed_by_prompt = {pid: _closes(ids, delimiter, opener) for pid, ids in prompts.items()}
    start = 0
    for batch in job.run.rollout_batches(("problem_id", "sample_idx", "token_ids")):
        keep = job.ledger.keep[start : start + batch.num_rows]
        start += batch.num_rows
        token_lists = batch.column("token_ids")
        offsets = token_lists.offsets.to_numpy()
        flat = token_lists.values.to_numpy(zero_copy_only=False)
        keys = zip(keep, batch.column("problem_id").to_pylist(), batch.column("sample_idx").to_pylist(), strict=True)
        for i, (ok, pid, idx) in enumerate(keys):
            wanted = [b for b in job.budgets if ok and (pid, idx, b) in todo]
            if not wanted:
                continue
            ids: np.ndarray = flat[offsets[i] : offsets[i + 1]]
            # Thinking is open unless the prompt or the model closed it; a model without one has none to close.
            can_close = not (delimiter.is_eos or closed_by_prompt[pid])
            closed_at = delimiter.find(ids) if can_close else None
            for budget in wanted:
                prefix = ids[:budget].tolist()
                open_ = can_close and (closed_at is None or closed_at + len(delimiter.token_ids) > budget)
                appended = (*(delimiter.token_ids if open_ else ()), *job.outcome.cue_ids)
                if job.outcome.bare_cue_ids is not None:  # s1's newlines: one only where the text lacks one
                    ends_line = job.tokenizer.decode(prefix[-2:]).endswith("\n")
                    if open_:
                        appended = (*(() if ends_line else job.outcome.newline_ids), *appended)
                    elif ends_line:
                        appended = job.outcome.bare_cue_ids
                context = (*prompts[pid], *prefix, *appended)
                request = GenerationRequest(f"{pid}\x1f{idx}\x1f{budget}", "", context, (_SEED,))
                yield _Pending((pid, idx, budget), request, len(prefix), appended, ids_sha1(context))


def _chunks(items: Iterator[_Pending], size: int) -> Iterator[list[_Pending]]:
    chunk: list[_Pending] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _generate(job: _Job, prompts: dict[str, tuple[int, ...]], todo: set[Key], progress: Any) -> None:
    from e3eval.generation import default_batch

    size = job.config.batch or default_batch(job.config.backend)
    spec = SamplingSpec(job.config.answer_tokens, logprobs=False, **GREEDY)
    task = progress.add_task("forced answers", total=len(todo)) if progress else None
    backend = None
    try:
        for chunk in _chunks(_pending(job, prompts, todo), size):
            backend = backend or _open(job, size)
            _flush(job, backend, chunk, spec)
            if progress:
                progress.advance(task, len(chunk))
    finally:
        if backend is not None:
            backend.close()


def _open(job: _Job, size: int) -> Any:
    """The backend, opened only when a continuation is missing (a rescoring that finds them all loads no model)."""
    from e3eval.backends import check_model, open_backend, spec

    config = job.config
    declared = spec(config.backend)
    options = dataclasses.replace(BackendOptions.of(config.backend_options), batch_size=size)
    if declared.served:  # the server's model name is no tokenizer to load
        options = dataclasses.replace(options, tokenizer=options.tokenizer or job.tokenizer_name)
    else:
        check_model(config.model, "--model", needs_config=True)
    engine = config.engine
    if declared.engine.reserves_context and engine.max_model_len is None:
        engine = dataclasses.replace(engine, max_model_len=job.longest)
    engine_log = EngineLog(job.run.path / ENGINE_LOGS, config.backend, config.verbose)
    if declared.engine.reserves_context:
        logged = declared.logged and engine_log.path is not None
        where = f"; engine log: {engine_log.path}" if logged else ""
        reserve = "--max-model-len" if config.engine.max_model_len is not None else "the longest forced request"
        job.log(f"forced answers: the engine reserves {engine.max_model_len:,} positions ({reserve}){where}")
    backend = open_backend(config.backend, config.model, options, engine, engine_log)
    try:
        if fingerprint(backend.tokenizer) != fingerprint(job.tokenizer):
            raise UserError(
                f"--model {config.model}: its tokenizer is not the one the run's token ids were made with "
                f"({job.tokenizer_name}); it would continue other text than the responses. Force answers with a "
                "model of the run's tokenizer"
            )
    except BaseException:
        backend.close()
        raise
    job.outcome.engine = backend.describe()
    return backend


def complete(backend: Any, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[Completion]:
    """One completion per request (one seed each). An engine that refuses one request of a batch (a prompt over its
    context length) raises for the whole batch: then each request is tried once alone, so only that one fails."""
    try:
        return [completions[0] for completions in backend.generate(requests, spec)]
    except (UserError, EngineFailure):  # a mistake, or an engine that died: no request of it can succeed
        raise
    except Exception as exc:
        if len(requests) == 1:
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]
            return [Completion((), "error", "", None, reason)]
        return [complete(backend, [request], spec)[0] for request in requests]


def _flush(job: _Job, backend: Any, chunk: list[_Pending], spec: SamplingSpec) -> None:
    """Generate one batch and store it as the next part before anything else happens (a kill loses at most it)."""
    outcome, tokenizer = job.outcome, job.tokenizer
    rows = []
    for item, done in zip(chunk, complete(backend, [p.request for p in chunk], spec), strict=True):
        failed = done.finish_reason == "error" or done.error is not None
        error = (done.error or "failed (no error message)") if failed else None
        ids = [] if failed else list(done.token_ids)
        if failed:
            outcome.failed += 1
            outcome.answers[item.key] = ForcedAnswer("", False, error)
        else:
            outcome.generated += 1
            outcome.tokens += len(ids)
            outcome.answers[item.key] = _answer(tokenizer, outcome.cue_ids, ids, done.finish_reason)
        pid, idx, budget = item.key
        rows.append({
            "run_id": job.run.run_id, "problem_id": pid, "sample_idx": idx, "budget": budget, **job.setting,
            "prefix_tokens": item.prefix_tokens, "appended_ids": list(item.appended), "token_ids": ids,
            "text": tokenizer.decode(ids, skip_special_tokens=True), "error": error, "backend": backend.name,
            "finish_reason": "error" if failed else done.finish_reason, "created_at": now(),
            "context_sha1": item.context,
        })  # fmt: skip
    # The folder is made with the first part: a scoring that fails before it leaves no folder.
    job.run.append_part("forced", pa.Table.from_pylist(rows, schema=FORCED_SCHEMA))
