"""`e3eval generate`: sample responses into a run directory, resumably, at the largest budget.

Work is one item per (problem, sample_idx). Each sample's seed is derived from (base seed, problem id, sample index)
alone, so rerunning after a kill regenerates exactly the missing samples, and growing n from 16 to 32 generates only
samples 16..31. Finished samples are appended as atomic Parquet shards after every batch; a SIGKILL loses at most
the batch in flight, and a rerun never duplicates a sample. A run's sampling settings are fixed at creation: a rerun
with different settings (model, dataset, template, temperature, top-p, max tokens, seed, backend, dtype) is refused
rather than mixed; so is a rerun with other budget forcing (`--wait N`, `budget_forcing.py`: the engine calls of a
batch go through its loop, and run.json records the delimiter and wait text as ids). `--shard i/N` takes every N-th
problem, for independent jobs that `merge.merge_runs` joins. Scoring is not this module's business.

A failed request is written as an `error` row for the record but is not a sample (see `samples.py`): a rerun
generates it again. The result counts the failures and quotes their first distinct messages so the caller can exit
non-zero; when every sample of a batch fails (a server that refuses connections, a model that cannot load a prompt)
the run stops after that batch instead of failing every remaining request the same way.

Before any engine loads, the engine settings (`--tp`, `--engine-arg`, ...) are checked against the backend used and
the context preflight (`context.py`) refuses prompts plus the largest budget beyond the model's context; an engine
that sizes its memory for a context (vLLM, SGLang) then reserves what the longest request needs (`engine_for`), and
one that prints on its own writes that to RUN/logs. What a backend is and takes is its `BackendSpec`, never its name.
run.json records `engine_settings` and `context`; an `--engine-arg` that may change what is sampled is fixed for the
run.

A forced run also counts what the forcing did: the result carries this invocation's `Insertions` (the command prints
them, and warns when `--wait N` inserted nothing), and run.json's generation section records the run's totals under
`insertions` (recounted from the stored `inserted` spans, so a killed and resumed run is counted exactly).

run.json also records which problems the run holds (`limit`, the prefix of the dataset that `--limit` took, widened to
cover what earlier invocations stored; `problems_total`, the dataset's size; `shard`) and the `--train-budget` it is
evaluated against, so that labels and figures can say "first 4/30". Ctrl-C ends a generation after the samples
already stored with `Interrupted`, which says how many there are (a rerun resumes from them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.backends import Backend, check_model, check_options, open_backend, pick_backend
from e3eval.backends import spec as backend_spec
from e3eval.backends.logs import ENGINE_LOGS, EngineLog
from e3eval.backends.options import BackendOptions
from e3eval.backends.settings import EngineSettings, check_bounds, check_settings, config_overrides, fixed_args
from e3eval.budget_forcing import (
    DEFAULT_S1_ANSWER_TOKENS,
    DEFAULT_WAIT_TEXT,
    FORCING_MODES,
    MAX_S1_ANSWER_TOKENS,
    MAX_WAIT,
    Forcing,
    Insertions,
    forcing_for,
    generate_forced,
    generate_s1,
)
from e3eval.context import AfterPrompt, context_for, longest_prompt, read_model_config
from e3eval.datasets import resolve_problems
from e3eval.errors import UserError
from e3eval.manifest import FIXED_SETTINGS, differs
from e3eval.prompts import PromptSpec, render_prompt
from e3eval.provenance import environment, now
from e3eval.records import GenerationRequest, Problem, Rollout, SamplingSpec
from e3eval.run import Run
from e3eval.samples import Failures, successful_keys, summarize_errors
from e3eval.store import (
    MANIFEST,
    PROBLEM_SCHEMA,
    PROBLEMS,
    iter_rollout_batches,
    new_run_id,
    problems_table,
    rollout_shards,
    run_lock,
    run_origin,
    with_identity,
    write_table,
)
from e3eval.tokenizers import fingerprint, load_tokenizer
from e3eval.weights import model_fingerprint, model_path

MAX_SAMPLES = 100_000  # per problem; the paper's sweeps use 16-256


@dataclass(frozen=True)
class GenerateConfig:
    model: str
    dataset: str
    out: Path
    n: int
    max_tokens: int
    temperature: float = 0.6
    top_p: float = 0.95
    seed: int = 0
    prompt: PromptSpec = field(default_factory=PromptSpec)
    backend: str | None = None
    backend_options: dict[str, Any] = field(default_factory=dict)  # `BackendOptions` fields; `options` reads them
    batch_samples: int | None = None  # None: the backend's default (`default_batch`)
    shard: tuple[int, int] = (0, 1)
    limit: int | None = None
    logprobs: bool = False
    id_field: str = "id"
    problem_field: str = "problem"
    answer_field: str = "answer"
    wait: int = 0  # budget forcing: end-of-thinking suppressions per sample (0: plain sampling)
    wait_text: str = DEFAULT_WAIT_TEXT
    think_end: str | None = None  # the delimiter's text; None: `</think>`, else EOS (`thinking.think_end`)
    forcing_mode: str = "e3eval"  # `--forcing`: e3eval (truncation serves every budget) or s1 (its harness, one budget)
    answer_tokens: int | None = None  # --forcing s1: the answer phase's token limit (None: DEFAULT_S1_ANSWER_TOKENS)
    answer_temperature: float | None = None  # --forcing s1: the answer phase's temperature (None: the run's)
    engine: EngineSettings = field(default_factory=EngineSettings)  # --tp, --max-model-len, --engine-arg, ...
    train_budget: int | None = None  # --train-budget: recorded for labels and figures (None: keep the recorded one)
    context_check: bool = True  # refuse prompts + the largest budget beyond the model's context (`context.py`)
    verbose: bool = False  # engine logs on the console instead of RUN/logs/engine-<time>.log

    @property
    def options(self) -> BackendOptions:
        """The backend options, typed (a key that is not one is a UserError)."""
        return BackendOptions.of(self.backend_options)


@dataclass
class GenerateResult:
    run_dir: Path
    generated: int
    skipped: int
    total: int
    seconds: float
    tokens: int
    backend: str
    backend_reason: str
    failures: Failures = field(default_factory=lambda: Failures(0, ()))
    stopped: str | None = None  # why the run stopped before trying every missing sample
    forcing: Forcing | None = None  # the run's budget forcing (None: plain sampling)
    insertions: Insertions | None = None  # what the forcing did to this invocation's samples (None: not forced)
    problems: int = 0  # problems this invocation covers (after --limit and --shard)
    n: int = 0  # samples per problem

    @property
    def shape(self) -> str:
        """`4 problems x 2 samples`: what `total` counts."""
        problems, samples = ("problem" if self.problems == 1 else "problems"), ("sample" if self.n == 1 else "samples")
        return f"{self.problems} {problems} x {self.n} {samples}"

    @property
    def failed(self) -> int:
        return self.failures.count

    def forcing_warning(self) -> str | None:
        """Why a forced generation inserted nothing (see `Insertions.warning`); None when it did or was not forced."""
        if self.forcing is None or self.insertions is None:
            return None
        return self.insertions.warning(self.forcing)

    def failure_line(self) -> str:
        """One line for the user: how many failed, why, and what to do."""
        line = f"{self.failures.describe()} of {self.generated + self.failed} attempted"
        if self.stopped:
            line += f"; {self.stopped}"
        return line + ". Failed samples are not counted; rerun the same command to retry them"


def default_batch(backend_name: str) -> int:
    """Samples per engine call (and per saved shard) when `--batch` is not given: the backend's `default_batch`.

    Engines that schedule requests themselves (vllm, sglang, a server) run faster the more they see at once: calls
    of 64 samples cost vLLM's CPU build 11-12% over one call, calls of 256 about 1% (`bench_generate.py`). The hf
    loop batches exactly what it is given, so it keeps 64. A kill loses at most the batch in flight.
    """
    return backend_spec(backend_name).default_batch


def sample_seed(base_seed: int, problem_id: str, sample_idx: int) -> int:
    """A 63-bit seed that depends only on (base seed, problem, sample index)."""
    digest = hashlib.sha256(f"{base_seed}\x1f{problem_id}\x1f{sample_idx}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def parse_shard(text: str) -> tuple[int, int]:
    """`2/8` -> (2, 8); shards are numbered from 0."""
    try:
        index_text, count_text = text.split("/")
        index, count = int(index_text), int(count_text)
    except ValueError:
        raise UserError(f"--shard {text!r}: expected i/N such as 0/4") from None
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {text!r}: need 0 <= i < N")
    return index, count


def _settings(config: GenerateConfig, backend_name: str, forcing: Forcing | None) -> dict[str, Any]:
    sampling = asdict(SamplingSpec(config.max_tokens, config.temperature, config.top_p, config.logprobs))
    del sampling["stop_token_ids"], sampling["min_tokens"]  # mechanisms of one engine call, not run settings
    settings = {
        "model": config.model,
        "model_path": model_path(config.model),
        "model_fingerprint": model_fingerprint(config.model),
        "dataset": config.dataset,
        "prompt": config.prompt.describe(),
        "sampling": sampling,
        "seed": config.seed,
        "backend": backend_name,
        # The requested dtype (`auto` resolves per device): float32 and bf16 samples are not one distribution.
        "dtype": config.options.dtype or "auto",
    }
    if forcing is not None:
        settings["forcing"] = forcing.settings()
    if fixed_args(config.engine):
        settings["engine_args"] = fixed_args(config.engine)
    return settings


def _forcing(config: GenerateConfig, tokenizer: Any) -> Forcing | None:
    """The run's budget forcing, its delimiter and wait text as ids of the model's tokenizer (None for `--wait 0` in
    e3eval mode; s1 mode always forces the end of thinking)."""
    if not config.wait and config.forcing_mode == "e3eval":
        return None
    return forcing_for(tokenizer, config.wait, config.wait_text, config.think_end, config.forcing_mode,
                       config.answer_tokens or DEFAULT_S1_ANSWER_TOKENS, config.answer_temperature)  # fmt: skip


def thinking_positions(config: GenerateConfig, wait_ids: int = 1) -> int:
    """The most positions after the prompt that one request of the run can hold: the budget; in s1 mode N + 1 rounds
    of up to the budget each with N waits between them (before the cut), or the cut thinking with its appended end
    and answer phase (a few ids for the end: `len("\n</think>\nFinal Answer:")` is under 16 ids for any BPE)."""
    if config.forcing_mode != "s1":
        return config.max_tokens
    rounds = (config.wait + 1) * config.max_tokens + config.wait * wait_ids
    return max(rounds, config.max_tokens + 16 + (config.answer_tokens or DEFAULT_S1_ANSWER_TOKENS))


def done_samples(run_dir: Path) -> set[tuple[str, int]]:
    """The samples a run already holds (failed requests excluded: they are generated again)."""
    return successful_keys(run_dir)


def generate_run(
    config: GenerateConfig, progress: Any = None, log: Callable[[str], None] = lambda _: None
) -> GenerateResult:
    """Generate the missing samples of `config.out` (creating the run if needed); failures are counted, not raised.

    Three reusable steps under the run's lock: `plan_generation` (which samples are missing), `run_batches` (ask the
    backend, batch by batch) and the shard writer (one append-only shard per batch).
    """
    check_config(config)
    with run_lock(Path(config.out), "generate"):
        check_model_of(config)  # after the lock: a second writer hears about the first before any hub request
        return _generate(config, progress, log)


def check_config(config: GenerateConfig) -> None:
    """Refuse flags that would fail (or silently do less) only after loading the model: every bound at once, no I/O
    beyond looking at `--out`. `check_model_of` checks the model itself."""
    problems = []
    if not 1 <= config.n <= MAX_SAMPLES:
        problems.append(f"--n must be between 1 and {MAX_SAMPLES:,}")
    if not 0 <= config.temperature <= 10 or not 0 < config.top_p <= 1:
        problems.append("need 0 <= --temperature <= 10 and 0 < --top-p <= 1")
    if not 1 <= config.max_tokens < 2**31:
        problems.append("the largest budget must be between 1 and 2^31 - 1 tokens")
    if config.batch_samples is not None and config.batch_samples < 1:
        problems.append("--batch must be at least 1")
    if config.limit is not None and config.limit < 1:
        problems.append("--limit must be at least 1 (it takes the first N problems)")
    if config.train_budget is not None and not 1 <= config.train_budget < 2**31:
        problems.append("--train-budget must be between 1 and 2^31 - 1 tokens")
    if not 0 <= config.wait <= MAX_WAIT:
        problems.append(f"--wait must be between 0 and {MAX_WAIT}")
    elif (
        not config.wait
        and config.forcing_mode == "e3eval"
        and (config.wait_text != DEFAULT_WAIT_TEXT or config.think_end is not None)
    ):
        problems.append("--wait-text and --think-end apply only to budget forcing: add --wait N (N >= 1)")
    if config.forcing_mode not in FORCING_MODES:
        problems.append(f"--forcing {config.forcing_mode!r}: choose one of {', '.join(FORCING_MODES)}")
    elif config.forcing_mode == "s1":
        if config.answer_tokens is not None and not 1 <= config.answer_tokens <= MAX_S1_ANSWER_TOKENS:
            problems.append(f"--answer-tokens must be between 1 and {MAX_S1_ANSWER_TOKENS:,}")
        if config.answer_temperature is not None and not 0 <= config.answer_temperature <= 10:
            problems.append("need 0 <= --answer-temperature <= 10")
    elif config.answer_tokens is not None or config.answer_temperature is not None:
        problems.append("--answer-tokens and --answer-temperature set s1's answer phase: add --forcing s1")
    if not config.wait_text:
        problems.append("--wait-text must not be empty")
    problems += config.options.problems()  # --dtype, --batch, --concurrency, --request-timeout
    problems += check_bounds(config.engine)
    if Path(config.out).exists() and not Path(config.out).is_dir():
        problems.append(f"--out {config.out}: a file, not a run directory")
    if problems:
        raise UserError("; ".join(dict.fromkeys(problems)))


def check_model_of(config: GenerateConfig) -> None:
    """The model (or, for a served model, the tokenizer that renders its prompts) exists, before anything loads."""
    options = config.options
    backend = config.backend or pick_backend(options.base_url)[0]
    if backend_spec(backend).served:  # --model is the served name; the prompts need the tokenizer
        check_model(options.tokenizer or config.model, "--tokenizer" if options.tokenizer else "--model")
    else:
        check_model(config.model, "--model", needs_config=True)


@dataclass(frozen=True)
class GenerationPlan:
    """What a generation has to do: the run's settings and manifest so far, its problems, the missing samples."""

    out: Path
    settings: dict[str, Any]
    manifest: dict[str, Any]
    problems: list[Problem]
    todo: list[tuple[Problem, int]]
    done: int
    forcing: Forcing | None = None
    tokenizer: Any = None  # the model's tokenizer, loaded before any engine (prompts, forcing, the context check)
    subset: dict[str, Any] = field(default_factory=dict)  # run.json's `limit`, `problems_total` and `train_budget`

    @property
    def wanted(self) -> int:
        return self.done + len(self.todo)


def plan_generation(config: GenerateConfig, backend_name: str) -> GenerationPlan:
    """Open (or prepare) the run, refuse changed settings, and list the (problem, sample_idx) pairs still missing."""
    tokenizer = load_tokenizer(config.options.tokenizer or config.model)
    forcing = _forcing(config, tokenizer)
    settings = _settings(config, backend_name, forcing)
    out = Path(config.out)
    manifest = _open_or_create(out, settings)
    dataset = resolve_problems(config.dataset, config.id_field, config.problem_field, config.answer_field)
    problems = dataset[: config.limit] if config.limit is not None else dataset
    index, count = config.shard
    problems = [p for i, p in enumerate(problems) if i % count == index]
    done = done_samples(out)
    todo = [(p, s) for p in problems for s in range(config.n) if (p.problem_id, s) not in done]
    previous = manifest.get("generation")
    subset = {
        "limit": _limit_held(config.limit, previous, out, [p.problem_id for p in dataset]),
        "problems_total": len(dataset),
        "train_budget": config.train_budget or (previous or {}).get("train_budget"),
    }
    return GenerationPlan(out, settings, manifest, problems, todo, len(problems) * config.n - len(todo), forcing,
                          tokenizer, subset)  # fmt: skip


def _limit_held(limit: int | None, previous: dict[str, Any] | None, out: Path, dataset: list[str]) -> int | None:
    """The `limit` run.json records: the prefix of the dataset the run's problems come from once this invocation
    is done. `--limit 4` on a run made with `--limit 8` (or without one) holds what it held; a run made before
    run.json recorded the limit is measured by the problems it stored."""
    if limit is None:
        return None
    if previous is not None and "limit" in previous:
        return None if previous["limit"] is None else max(int(previous["limit"]), limit)
    stored: set[str] = set()
    if previous is not None and (out / PROBLEMS).is_file():
        stored = set(pq.read_table(out / PROBLEMS, columns=["problem_id"]).column(0).to_pylist())
    held = max([limit, *(i + 1 for i, pid in enumerate(dataset) if pid in stored)])
    return None if held >= len(dataset) else held


@dataclass(frozen=True)
class BatchResult:
    """One engine call's rollouts (failed ones included, for the record) and its failures' messages."""

    rollouts: list[Rollout]
    errors: list[str]
    tokens: int
    insertions: Insertions = field(default_factory=Insertions)  # budget forcing's count (zero for plain sampling)


def run_batches(
    backend: Backend,
    todo: list[tuple[Problem, int]],
    rendered: dict[str, tuple[str, list[int]]],
    spec: SamplingSpec,
    seed: int,
    batch_samples: int,
    forcing: Forcing | None = None,
) -> Iterator[BatchResult]:
    """Ask `backend` for the samples of `todo`, `batch_samples` at a time, in order; each sample has its own seed.
    With `forcing`, each batch goes through the budget-forcing loop (its rounds run before the batch is yielded)."""
    for batch in _batches(todo, batch_samples):
        requests, samples = _requests(batch, rendered, seed)
        rollouts: list[Rollout] = []
        errors: list[str] = []
        tokens = 0
        insertions = Insertions()
        if forcing is None:
            outputs = backend.generate(requests, spec)
        else:
            outputs = (generate_s1 if forcing.s1 is not None else generate_forced)(backend, requests, spec, forcing)
        for request, indices, completions in zip(requests, samples, outputs, strict=True):
            for sample_idx, sample_seed_, done in zip(indices, request.seeds, completions, strict=True):
                rollouts.append(Rollout(request.key, sample_idx, done.text, done.token_ids, done.finish_reason,
                                        sample_seed_, done.error, done.logprobs, inserted=done.inserted))  # fmt: skip
                if done.finish_reason == "error":
                    errors.append(done.error or "failed (no error message)")
                else:
                    tokens += len(done.token_ids)
                if forcing is not None:
                    insertions += Insertions.of(done.inserted, done.finish_reason, forcing.appended, forcing.wait)
        yield BatchResult(rollouts, errors, tokens, insertions)


def _generate(config: GenerateConfig, progress: Any, log: Callable[[str], None]) -> GenerateResult:
    backend_name, reason = (config.backend, "asked for") if config.backend else pick_backend(config.options.base_url)
    check_options(backend_name, config.options)
    model_config = read_model_config(config.model) if backend_spec(backend_name).engine.reads_config else None
    check_settings(backend_name, config.engine, model_config)
    plan = plan_generation(config, backend_name)
    tally = _Tally(time.monotonic())
    shape = {"problems": len(plan.problems), "n": config.n}
    if not plan.todo:
        log(f"nothing to generate: all {len(plan.problems)} problems x {config.n} samples are in {plan.out}")
        _record_subset(plan)
        return GenerateResult(plan.out, 0, plan.done, plan.wanted, 0.0, 0, backend_name, reason, **shape)
    if config.temperature == 0 and config.n > 1:
        log(f"temperature 0 is greedy: the {config.n} samples of each problem will be the same response "
            "(pass@k then equals pass@1)")  # fmt: skip
    try:
        session = _start(config, plan, backend_name, reason, log)
    except KeyboardInterrupt:  # while the engine loads: nothing new is stored
        raise Interrupted(plan.out, 0, plan.done, plan.wanted) from None
    try:
        _sample(session, tally, progress)
    except KeyboardInterrupt:
        raise Interrupted(plan.out, *_stored_after(plan, tally), plan.wanted) from None
    finally:
        session.backend.close()
        _finish(session, tally)
    seconds = time.monotonic() - tally.started
    return GenerateResult(plan.out, tally.generated, plan.done, plan.wanted, seconds, tally.tokens, backend_name,
                          reason, summarize_errors(tally.errors), tally.stopped, plan.forcing,
                          tally.insertions if plan.forcing is not None else None, **shape)  # fmt: skip


def _record_subset(plan: GenerationPlan) -> None:
    """A rerun that generates nothing still records a `--train-budget` given now, and the subset of a run made before
    run.json recorded it (only those keys of the generation section change)."""
    generation = plan.manifest.get("generation")
    if not isinstance(generation, dict) or not (plan.out / MANIFEST).is_file():
        return
    changed = {k: v for k, v in plan.subset.items() if generation.get(k, ...) != v}
    if changed:
        Run.open(plan.out).write_sections(generation={**generation, **changed})


def _stored_after(plan: GenerationPlan, tally: _Tally) -> tuple[int, int]:
    """(new samples, samples held) once a generation was interrupted, counted on disk: the writer stores what it
    buffered when it closes, which the tally may not have counted yet; the tally's count if the shards cannot be
    read."""
    try:
        held = done_samples(plan.out)
        new = sum((problem.problem_id, sample) in held for problem, sample in plan.todo)
    except UserError:
        new = tally.generated
    return new, plan.done + new


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a generation (or the scoring after it, `stage`), with what the run holds: `generated` new samples
    in this call, `stored` of the `wanted` ones in `run_dir`. A KeyboardInterrupt still, for callers that only stop."""

    def __init__(self, run_dir: Path, generated: int, stored: int, wanted: int, stage: str = "generation") -> None:
        super().__init__(run_dir, generated, stored, wanted, stage)
        self.run_dir, self.generated, self.stored, self.wanted, self.stage = run_dir, generated, stored, wanted, stage

    def describe(self) -> str:
        """`interrupted after 12 samples (40 of 64 stored in RUN); rerun the same command to resume`."""
        during = "" if self.stage == "generation" else f" during the {self.stage}"
        return (f"interrupted{during} after {self.generated} samples ({self.stored} of {self.wanted} stored in "
                f"{self.run_dir}); rerun the same command to resume")  # fmt: skip


@dataclass
class _Tally:
    """What this call has generated so far."""

    started: float
    generated: int = 0
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    insertions: Insertions = field(default_factory=Insertions)
    stopped: str | None = None  # why it stopped before the end, when it did

    def describe(self) -> str:
        """The progress bar's line: throughput so far and failures."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return (f"generate ({self.generated / elapsed:.1f} samples/s, {self.tokens / elapsed:,.0f} tok/s, "
                f"{len(self.errors)} failed)")  # fmt: skip


@dataclass(frozen=True)
class _Session:
    """One call's open engine and the run it writes to."""

    config: GenerateConfig
    plan: GenerationPlan
    run: Run
    backend: Backend
    rendered: dict[str, tuple[str, list[int]]]
    batch_samples: int


def _start(config: GenerateConfig, plan: GenerationPlan, backend_name: str, reason: str,
           log: Callable[[str], None]) -> _Session:  # fmt: skip
    """Open the engine (the context preflight first), store the problems as the engine renders them, and record
    the generation as running."""
    out, manifest = plan.out, plan.manifest
    batch_samples = config.batch_samples or default_batch(backend_name)
    options = dataclasses.replace(config.options, batch_size=config.options.batch_size or batch_samples)
    rendered = {p.problem_id: render_prompt(p, config.prompt, plan.tokenizer) for p in plan.problems}
    wait_ids = len(plan.forcing.wait_ids) if plan.forcing is not None else 1
    engine, context = engine_for(config, backend_name, rendered, wait_ids)
    engine_log = EngineLog(out / ENGINE_LOGS, backend_name, config.verbose)
    where = f"; log: {engine_log.path} (--verbose shows it here)" if backend_spec(backend_name).logged else ""
    chosen = f"backend: {backend_name} ({reason}" + ("" if config.backend else "; --backend overrides") + ")"
    log(f"{chosen}; {config.engine.describe()}{where}")
    log(describe_context(context, engine.max_model_len, given=config.engine.max_model_len is not None))
    backend = open_backend(backend_name, config.model, options, engine, engine_log)
    tokenizer_fingerprint = fingerprint(backend.tokenizer)
    if tokenizer_fingerprint != fingerprint(plan.tokenizer):  # the engine's own tokenizer decides
        rendered = {p.problem_id: render_prompt(p, config.prompt, backend.tokenizer) for p in plan.problems}
    _write_problems(out, manifest["run_id"], plan.problems, rendered)
    index, count = config.shard
    manifest.update(
        generation={**plan.settings, "n": max(config.n, manifest.get("generation", {}).get("n", 0)),
                    "engine": backend.describe(), "engine_settings": engine.record(), "context": context,
                    "token_ids_source": backend.token_ids_source,
                    "shard": f"{index}/{count}", **plan.subset, "status": "running", "updated_at": now()},
        tokenizer={"name_or_path": model_path(config.options.tokenizer or config.model),
                   "fingerprint": tokenizer_fingerprint},
        token_ids_source=backend.token_ids_source,
        environment=environment(),
    )  # fmt: skip
    return _Session(config, plan, Run.create(out, manifest), backend, rendered, batch_samples)


def _sample(session: _Session, tally: _Tally, progress: Any) -> None:
    """Generate the missing samples batch by batch, each batch stored as a part before the next starts; stops after
    a batch in which every sample failed."""
    config, plan = session.config, session.plan
    spec = SamplingSpec(config.max_tokens, config.temperature, config.top_p, config.logprobs)
    task = progress.add_task("generate", total=len(plan.todo)) if progress else None
    batches = run_batches(session.backend, plan.todo, session.rendered, spec, config.seed, session.batch_samples,
                          plan.forcing)  # fmt: skip
    with session.run.rollout_writer(shard_rows=1 << 30) as writer:
        for batch in batches:
            for rollout in batch.rollouts:
                writer.add(rollout)
            writer.flush()  # failed rows are kept for the record; they are not samples
            tally.generated += len(batch.rollouts) - len(batch.errors)
            tally.errors += batch.errors
            tally.tokens += batch.tokens
            tally.insertions += batch.insertions
            if progress:
                progress.update(task, completed=tally.generated + len(tally.errors), description=tally.describe())
            if len(batch.errors) == len(batch.rollouts):
                left = len(plan.todo) - tally.generated - len(tally.errors)
                if left:
                    tally.stopped = f"stopped after a batch in which every sample failed ({left} not attempted)"
                break


def _finish(session: _Session, tally: _Tally) -> None:
    """Record how this call ended (also when it failed): complete or partial, failures, forcing's totals."""
    plan, backend = session.plan, session.backend
    manifest = plan.manifest
    # An OpenAI-compatible server may lack token ids; the backend then re-tokenized and says so.
    manifest["token_ids_source"] = manifest["generation"]["token_ids_source"] = backend.token_ids_source
    manifest["generation"]["status"] = "complete" if tally.generated == len(plan.todo) else "partial"
    manifest["generation"]["failed_last_run"] = len(tally.errors)
    if plan.forcing is not None:  # the run's totals, beside `forcing` (a fixed setting a rerun must match)
        try:
            manifest["generation"]["insertions"] = count_insertions(plan.out, plan.forcing.appended).record()
        except UserError:  # a damaged shard: every reader names it; it must not hide why this run stopped
            manifest["generation"].pop("insertions", None)
    manifest["generation"]["updated_at"] = now()
    session.run.write_manifest(manifest)


def engine_for(
    config: GenerateConfig, backend_name: str, rendered: dict[str, tuple[str, list[int]]], wait_ids: int = 1
) -> tuple[EngineSettings, dict[str, Any]]:
    """The engine settings to start with and the context preflight's record: every prompt plus the budget (in s1
    mode its rounds or thinking + answer phase, `thinking_positions`) must fit the model (unless
    `--no-context-check`), and an engine that reserves a context (vLLM, SGLang) reserves what the longest request
    needs when `--max-model-len` is not given (not the model's whole context)."""
    declared = backend_spec(backend_name)
    served = declared.served  # the config of the tokenizer's folder, where it is the model's
    source = (config.options.tokenizer or config.model) if served else config.model
    overrides = config_overrides(backend_name, config.engine)
    after = _s1_positions(config, wait_ids) if config.forcing_mode == "s1" else None
    context = context_for(source, longest_prompt(rendered), thinking_positions(config, wait_ids),
                          config.engine.max_model_len, config.context_check, overrides=overrides,
                          after=after)  # fmt: skip
    if after is not None:  # what the positions after the prompt are for (`describe_context`)
        context["after_prompt"] = after.label
    engine = config.engine
    if declared.engine.reserves_context and engine.max_model_len is None:
        engine = dataclasses.replace(engine, max_model_len=context["needed"])
    return engine, context


def _s1_positions(config: GenerateConfig, wait_ids: int) -> AfterPrompt:
    """s1 mode's positions after the prompt: the largest thinking budget B whose N + 1 rounds (with N waits) and
    whose cut thinking + end + answer phase fit what is left."""
    waits, answer = config.wait, (config.answer_tokens or DEFAULT_S1_ANSWER_TOKENS) + 16

    def largest(left: int) -> int:
        return min((left - waits * wait_ids) // (waits + 1), left - answer)

    return AfterPrompt("s1's rounds or thinking + answer phase", largest)


def describe_context(context: dict[str, Any], reserved: int | None, given: bool) -> str:
    """`context: longest request 171 positions (prompt 107 + budget 64); the engine reserves 171 (what the longest
    request needs); the model allows 65,536`."""
    prompt = context["longest_prompt"]["tokens"]
    after = context.get("after_prompt", "budget")
    line = f"context: longest request {context['needed']:,} positions (prompt {prompt:,} + {after} "
    line += f"{context['budget']:,})"
    if reserved is not None:
        line += f"; the engine reserves {reserved:,} (" + ("--max-model-len" if given else "what it needs") + ")"
    if context.get("limit"):
        line += f"; the model allows {context['limit']:,}" + ("" if context.get("checked") else " (not checked)")
    return line


def count_insertions(run_dir: Path, appended: int = 0, wait: int = 0) -> Insertions:
    """What budget forcing inserted into a run's stored samples (failed rows are not samples; runs written before
    the `inserted` column count zero; `appended` spans per sample are not waits, `Forcing.appended`; `wait`, the
    run's limit, counts the samples that reached it): reads two columns of every shard."""
    total = Insertions()
    if not rollout_shards(run_dir):
        return total
    for batch in iter_rollout_batches(run_dir, ("inserted", "finish_reason")):
        for spans, finish in zip(*(batch.column(c).to_pylist() for c in ("inserted", "finish_reason")), strict=True):
            total += Insertions.of(spans, finish, appended, wait)
    return total


def _forcing_change(recorded: Any, now: Any) -> str:
    """A change of budget forcing in the flags that set it."""

    def flags(forcing: Any) -> str:
        if not isinstance(forcing, dict):
            return "no budget forcing"
        s1 = "--forcing s1 " if forcing.get("mode") == "s1" else ""
        answer = f" --answer-tokens {forcing.get('answer_tokens')} --answer-temperature " \
                 f"{forcing.get('answer_temperature')}" if s1 else ""  # fmt: skip
        return f"{s1}--wait {forcing.get('wait')} --wait-text {forcing.get('wait_text')!r}{answer} (ending thinking " \
               f"at {forcing.get('think_end')!r})"  # fmt: skip

    return f"this run was generated with {flags(recorded)}, now asked for {flags(now)}"


def _open_or_create(out: Path, settings: dict[str, Any]) -> dict[str, Any]:
    if (out / MANIFEST).is_file():
        manifest = Run.open(out).manifest
        previous = manifest.get("generation")
        if previous is None:
            raise UserError(f"{out}: an imported run; generate into a new directory")
        diffs = [k for k in FIXED_SETTINGS if differs(previous, settings, k)]
        if diffs == ["model_fingerprint"]:
            raise UserError(
                f"{out}: the weights at {settings.get('model_path')} changed since this run was generated (weights "
                f"fingerprint {previous.get('model_fingerprint')}, now {settings.get('model_fingerprint')}); samples "
                "of two models in one run would be averaged as one: generate into a new --out"
            )
        if diffs == ["forcing"]:
            raise UserError(f"{out}: {_forcing_change(previous.get('forcing'), settings.get('forcing'))}; a run "
                            "holds samples of one forcing only: use a new --out")  # fmt: skip
        if diffs:
            detail = "; ".join(f"{k}: run has {previous.get(k)!r}, now {settings.get(k)!r}" for k in diffs)
            raise UserError(f"{out}: refusing to mix sampling settings in one run ({detail}); use a new --out")
        return with_identity(manifest, out)
    if out.exists() and any(
        p.name != ENGINE_LOGS or p.is_symlink() or not p.is_dir() for p in out.iterdir()
    ):  # logs/: of an engine that did not start
        raise UserError(f"{out}: exists and is not a run directory")
    out.mkdir(parents=True, exist_ok=True)
    return {"run_id": new_run_id(), "origin": run_origin(out), "created_at": now(), "kind": "generated"}


def _write_problems(
    out: Path, run_id: str, problems: list[Problem], rendered: dict[str, tuple[str, list[int]]]
) -> None:
    """Write problems.parquet: rows already stored stay, rows of this invocation are (re)rendered."""
    rows: dict[str, dict[str, Any]] = {}
    if (out / PROBLEMS).is_file():
        rows = {r["problem_id"]: r for r in pq.read_table(out / PROBLEMS).to_pylist()}
    fresh = [
        Problem(
            p.problem_id, p.answer, p.problem, p.dataset, rendered[p.problem_id][0], tuple(rendered[p.problem_id][1])
        )
        for p in problems
    ]
    rows.update({r["problem_id"]: r for r in problems_table(run_id, fresh).to_pylist()})
    write_table(out / PROBLEMS, pa.Table.from_pylist(list(rows.values()), schema=PROBLEM_SCHEMA))


def _batches(todo: list[tuple[Problem, int]], size: int) -> list[list[tuple[Problem, int]]]:
    return [todo[i : i + size] for i in range(0, len(todo), max(1, size))]


def _requests(
    batch: list[tuple[Problem, int]], rendered: dict[str, tuple[str, list[int]]], seed: int
) -> tuple[list[GenerationRequest], list[list[int]]]:
    """One request per problem in the batch, with its sample indices (in the same order as the seeds)."""
    by_problem: dict[str, list[int]] = {}
    for problem, sample_idx in batch:
        by_problem.setdefault(problem.problem_id, []).append(sample_idx)
    requests = [
        GenerationRequest(
            key=pid,
            prompt=rendered[pid][0],
            prompt_token_ids=tuple(rendered[pid][1]),
            seeds=tuple(sample_seed(seed, pid, s) for s in samples),
        )
        for pid, samples in by_problem.items()
    ]
    return requests, list(by_problem.values())
