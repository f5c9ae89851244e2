"""`e3eval probe`: teacher-force a run's stored token ids through one or more models and store what the policy does.

For every sample of the run (failed requests are not samples) and every model (checkpoints in step order), the
stored prompt + response ids go through `forward.token_stats` once; the per-token log-probs, entropies and KL terms
are then averaged over the response prefix of each budget, giving one row per (model, problem, sample, budget) in
`RUN/probes.parquet` (`table.py` has the schema). With `--attempts PRESET` the response is also cut into attempts
and the Fig. 13 quantities are computed per attempt index (`attempt_logprobs.py`), into `RUN/attempt_probes.parquet`.

Work is saved as it goes: finished samples are flushed to part files beside the output, so a probe interrupted at
any point resumes without recomputing them, and the final tables (plus run.json's `probes` section) are written in
one step at the end. The model's tokenizer is checked against the run's token ids before any work. This module
wires; it computes nothing itself (`forward.py`, `attempt_logprobs.py`) and prints nothing (the command does).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.probes.alignment import aligned_prompt_ids, check_tokenizer_files, check_vocab
from e3eval.probes.checkpoints import Checkpoint, checkpoints, describe_checkpoints
from e3eval.probes.probe_files import ProbeOutputs, earlier_tables, finish, output_path
from e3eval.probes.run_defaults import budget_source, recorded_model, with_run_settings
from e3eval.probes.table import (
    ATTEMPT_KEY,
    ATTEMPT_SCHEMA,
    PROBE_KEY,
    PROBE_SCHEMA,
    Key,
    SampleIdentity,
    attempt_rows,
    budget_rows,
    done_keys,
)
from e3eval.run import Run
from e3eval.store import PROBES, ids_sha1, output_lock
from e3eval.tokenizers import load_tokenizer
from e3eval.truncate import PrefixDecoder
from e3eval.weights import model_fingerprint, model_path

if TYPE_CHECKING:
    from e3eval.probes.forward import ProbeModel
    from e3eval.records import Problem
    from e3eval.samples import SampleLedger

_COLUMNS = ["problem_id", "sample_idx", "token_ids", "num_tokens", "inserted"]
_FLUSH_SAMPLES = 64
_FLUSH_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeConfig:
    run_dir: Path
    models: tuple[str, ...]  # () = the model run.json names (`recorded_model`)
    ref: str | None = None
    budgets: tuple[int, ...] = ()  # () = the run's scored budgets, else its generation limit
    chunk: int = 4096
    per_token: bool = False
    attempts: str | None = None  # an analysis preset (countdown, math, ...) for Fig. 13 probes
    max_attempts: int | None = None
    device: str | None = None
    dtype: str | None = None  # None: the run's recorded dtype (`with_run_settings`), else auto
    temperature: float | None = None  # softmax(logits / T); None: the run's sampling temperature, else 1
    out: Path | None = None  # default RUN/probes.parquet (and RUN/attempt_probes.parquet)
    force: bool = False  # take an --out table e3eval did not write (or that was changed since) as a probe table


@dataclass(frozen=True)
class ProbeOutcome:
    out: Path
    attempts_out: Path | None
    models: tuple[Checkpoint, ...]
    budgets: tuple[int, ...]
    computed: int  # (model, sample) pairs probed by this call
    reused: int  # (model, sample) pairs found already probed
    samples: int  # samples of the run
    excluded: str | None  # what the run's samples leave out (failed, missing), when anything
    warnings: tuple[str, ...] = field(default_factory=tuple)
    run_id: str = ""
    ref: str | None = None  # as the tables name it
    dtype: str = ""
    table: pa.Table | None = None  # the probe table as written (every call's rows)
    temperature: float = 1.0  # the probe's softmax temperature


def check_config(config: ProbeConfig) -> None:
    """Flags checked before any model loads."""
    if config.chunk < 1:
        raise UserError(f"--chunk must be a positive number of positions, not {config.chunk}")
    if any(b < 1 for b in config.budgets):
        raise UserError("budgets must be positive token counts")
    if config.max_attempts is not None and config.max_attempts < 1:
        raise UserError("--max-attempts must be at least 1")
    if config.max_attempts is not None and config.attempts is None:
        raise UserError("--max-attempts caps the attempt probes: it needs --attempts PRESET")
    if config.attempts is not None:
        from e3eval.segmentation import step_presets

        if config.attempts not in step_presets():
            raise UserError(f"--attempts {config.attempts!r}: choose one of {', '.join(step_presets())}")
    if config.dtype not in (None, "auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype {config.dtype!r}: choose auto, float32, bfloat16 or float16")
    if config.temperature is not None and not (math.isfinite(config.temperature) and 0 < config.temperature <= 100):
        raise UserError(f"--temperature {config.temperature}: a positive number (the logits are divided by it)")


def run_probe(config: ProbeConfig, progress: Any = None, log: Callable[[str], None] = lambda _: None) -> ProbeOutcome:
    """Probe every sample of the run with every model; resumes from what an interrupted call saved."""
    check_config(config)
    if not config.models:
        config = dataclasses.replace(config, models=(recorded_model(Run.open(config.run_dir), log),))
    models = checkpoints(list(config.models))
    if len(models) > 1:
        log(describe_checkpoints(models))
    run = Run.open(config.run_dir)
    out = output_path(run, config.out, config.force)
    with ExitStack() as held:
        held.enter_context(run.lock("probe"))
        if out != run.path / PROBES:  # a table shared by several runs' probes: one writer at a time
            held.enter_context(output_lock(out, "probe"))
        run = Run.open(config.run_dir)
        run.ensure_identity()
        return _probe(run, with_run_settings(config, run, log), models, out, progress, log)


@dataclass(frozen=True)
class _Done:
    """The keys (`SampleIdentity.probe_key`, `.attempt_key`) of what earlier calls measured; `attempts` is None when
    this call probes no attempts."""

    probes: set[Key]
    attempts: set[Key] | None

    def todo(self, identity: SampleIdentity, config: ProbeConfig) -> _Todo:
        probe = identity.probe_key() not in self.probes
        if self.attempts is None:
            return _Todo(probe, attempts=False)
        return _Todo(probe, identity.attempt_key(config.attempts, config.max_attempts) not in self.attempts)


@dataclass(frozen=True)
class _Todo:
    """What one (model, sample) pair still needs: its budget rows, its attempt rows."""

    probe: bool
    attempts: bool


@dataclass(frozen=True)
class _Tally:
    """(model, sample) pairs probed by this call, found already probed, and whose attempts could not be placed."""

    computed: int = 0
    reused: int = 0
    unplaced: int = 0

    def __add__(self, other: _Tally) -> _Tally:
        return _Tally(self.computed + other.computed, self.reused + other.reused, self.unplaced + other.unplaced)


@dataclass(frozen=True)
class _Setup:
    """What every checkpoint of one call shares, settled before any model loads."""

    run: Run
    config: ProbeConfig
    problems: dict[str, Problem]
    ledger: SampleLedger
    budgets: tuple[int, ...]
    dtype: str
    ref_name: str | None
    ref_fingerprint: str | None
    settings: dict[str, Any]
    earlier_probes: tuple[pa.Table, ...]  # read once: the resume point, and (with this call's parts) the final tables
    earlier_attempts: tuple[pa.Table, ...]
    done: _Done
    warnings: list[str]  # collected as the call goes


@dataclass(frozen=True)
class _Reference:
    """The `--ref` model and its tokenizer (both None without `--ref`)."""

    model: ProbeModel | None = None
    tokenizer: Any = None


@dataclass(frozen=True)
class _Policy:
    """One checkpoint, loaded and checked against the run: what each sample is probed with."""

    checkpoint: Checkpoint
    model: ProbeModel
    ref: ProbeModel | None
    weights: str | None  # the checkpoint's fingerprint (`weights.py`)
    prompt_ids: dict[str, list[int]]
    decoder: PrefixDecoder | None  # for cutting attempts; None without --attempts


@dataclass(frozen=True)
class _Rollout:
    """One stored sample: its ids, and the spans budget forcing inserted (flat (start, end) pairs)."""

    problem_id: str
    sample_idx: int
    response: tuple[int, ...]
    inserted: tuple[int, ...]


def _probe(run: Run, config: ProbeConfig, models: list[Checkpoint], out: Path, progress: Any,
           log: Callable[[str], None]) -> ProbeOutcome:  # fmt: skip
    outputs = ProbeOutputs.of(out, run)
    setup = _setup(run, config, outputs)
    if not config.budgets:
        log(f"budgets: {', '.join(format_budget(b) for b in setup.budgets)} ({budget_source(run)}; --budgets "
            "overrides)")  # fmt: skip
    ref = _load_ref(config)
    writer = _PartWriter(run, outputs.parts)
    tally = _Tally()
    try:
        for checkpoint in models:
            tally += _probe_checkpoint(setup, checkpoint, ref, writer, progress, log)
    finally:
        writer.flush()
        if ref.model is not None:
            ref.model.close()
    if tally.unplaced:
        setup.warnings.append(f"{tally.unplaced} sample(s) without attempt probes: their attempts could not be placed "
                              "on their tokens (the `error` column of the attempt table says why)")  # fmt: skip
    probes = finish(run, outputs, setup.settings, [*setup.earlier_probes, *writer.written["probes"]],
                     [*setup.earlier_attempts, *writer.written["attempts"]])  # fmt: skip
    return ProbeOutcome(
        out=out,
        attempts_out=outputs.attempts if config.attempts else None,
        models=tuple(models),
        budgets=setup.budgets,
        computed=tally.computed,
        reused=tally.reused,
        samples=setup.ledger.samples,
        excluded=None if setup.ledger.complete else setup.ledger.describe(),
        warnings=tuple(setup.warnings),
        run_id=run.run_id,
        ref=setup.ref_name,
        dtype=setup.dtype,
        table=probes,
        temperature=config.temperature or 1.0,
    )


def _setup(run: Run, config: ProbeConfig, outputs: ProbeOutputs) -> _Setup:
    """The run's samples, the budgets, the dtype and what earlier calls measured; refuses a run with no sample."""
    problems = {p.problem_id: p for p in run.problem_records()}
    ledger = run.samples(list(problems.values()))
    if not ledger.samples:
        raise UserError(f"{run.path}: no successful sample to probe ({ledger.describe()})")
    warnings: list[str] = []
    if run.record.token_ids_source == "retokenized":
        warnings.append(
            f"{run.path}: the token ids were made by re-tokenizing imported text, not by the model that wrote it; "
            "probes describe those ids"
        )
    budgets = _budgets(run, config)
    ref_name = model_path(config.ref) if config.ref else None
    ref_fingerprint = model_fingerprint(config.ref) if config.ref else None
    dtype = _resolved_dtype(config)
    settings = _settings(config, budgets)
    earlier_probes, earlier_attempts = earlier_tables(run, outputs)
    done = _Done(
        done_keys(pa.concat_tables(earlier_probes), PROBE_KEY, budgets, config.per_token),
        done_keys(pa.concat_tables(earlier_attempts), ATTEMPT_KEY) if config.attempts else None,
    )
    return _Setup(run, config, problems, ledger, budgets, dtype, ref_name, ref_fingerprint, settings,
                  tuple(earlier_probes), tuple(earlier_attempts), done, warnings)  # fmt: skip


def _load_ref(config: ProbeConfig) -> _Reference:
    if not config.ref:
        return _Reference()
    from e3eval.probes.forward import ProbeModel

    model = ProbeModel.load(config.ref, config.dtype, config.device, flag="--ref")
    check_tokenizer_files(config.ref, "--ref")
    return _Reference(model, load_tokenizer(config.ref))


def _probe_checkpoint(setup: _Setup, checkpoint: Checkpoint, ref: _Reference, writer: _PartWriter, progress: Any,
                      log: Callable[[str], None]) -> _Tally:  # fmt: skip
    """Every sample with one checkpoint, whose tokenizer is checked against the run's ids before its weights load."""
    from e3eval.probes.forward import ProbeModel

    run, config = setup.run, setup.config
    check_tokenizer_files(checkpoint.model, "--model")
    tokenizer = load_tokenizer(checkpoint.model)
    weights = model_fingerprint(checkpoint.model)
    prompt_ids = aligned_prompt_ids(run, setup.problems, checkpoint.model, "--model", tokenizer, setup.warnings)
    if ref.tokenizer is not None:
        aligned_prompt_ids(run, setup.problems, config.ref, "--ref", ref.tokenizer, [])
    decoder = PrefixDecoder(tokenizer) if config.attempts else None
    model = ProbeModel.load(checkpoint.model, config.dtype, config.device)
    try:
        check_vocab(model, tokenizer, ref.model, run, checkpoint)
        if model.dtype != setup.dtype:
            raise UserError(f"--model {checkpoint.model}: loaded as {model.dtype}, expected {setup.dtype}")
        log(f"{checkpoint.model}: {model.device}, {model.dtype}")
        policy = _Policy(checkpoint, model, ref.model, weights, prompt_ids, decoder)
        return _probe_samples(setup, policy, writer, progress)
    finally:
        writer.flush()
        model.close()


def _probe_samples(setup: _Setup, policy: _Policy, writer: _PartWriter, progress: Any) -> _Tally:
    task = progress.add_task(f"probe {_label(policy.checkpoint)}", total=setup.ledger.samples) if progress else None
    tally = _Tally()
    for rollout in _samples(setup.run, setup.ledger.keep):
        tally += _probe_sample(setup, policy, rollout, writer)
        if progress:
            progress.advance(task)
        writer.maybe_flush()
    return tally


def _probe_sample(setup: _Setup, policy: _Policy, rollout: _Rollout, writer: _PartWriter) -> _Tally:
    """Probe one sample into `writer`, unless earlier calls did; its attempts failing to place is counted."""
    if rollout.problem_id not in policy.prompt_ids:
        raise UserError(f"{setup.run.path}: rollouts name problem {rollout.problem_id!r}, which problems.parquet lacks")
    identity = _identity(setup, policy, rollout)
    todo = setup.done.todo(identity, setup.config)
    if not (todo.probe or todo.attempts):
        return _Tally(reused=1)
    probes = _budget_rows(setup, policy, rollout, identity) if todo.probe else []
    attempts = _attempt_rows(setup.config, policy, rollout, identity) if todo.attempts else []
    writer.add(probes, attempts)
    return _Tally(computed=1, unplaced=int(any(row["error"] is not None for row in attempts)))


def _identity(setup: _Setup, policy: _Policy, rollout: _Rollout) -> SampleIdentity:
    read = ids_sha1([*policy.prompt_ids[rollout.problem_id], *rollout.response])
    return SampleIdentity(run_id=setup.run.run_id, model=policy.checkpoint.model, step=policy.checkpoint.step,
                          ref=setup.ref_name, dtype=setup.dtype, problem_id=rollout.problem_id,
                          sample_idx=rollout.sample_idx, model_fingerprint=policy.weights,
                          ref_fingerprint=setup.ref_fingerprint, ids_sha1=read,
                          temperature=setup.config.temperature)  # fmt: skip


def _budget_rows(setup: _Setup, policy: _Policy, rollout: _Rollout, identity: SampleIdentity) -> list[dict[str, Any]]:
    """One row per budget (`table.budget_rows`) from one forward pass over prompt + response."""
    from e3eval.probes.forward import token_stats

    config, prompt = setup.config, policy.prompt_ids[rollout.problem_id]
    stats = None
    if rollout.response:
        ids = [*prompt, *rollout.response]
        stats = token_stats(policy.model, ids, len(prompt), config.chunk, policy.ref, temperature=config.temperature)
    return budget_rows(identity.columns(), stats, setup.budgets, config.per_token, rollout.inserted)


def _attempt_rows(config: ProbeConfig, policy: _Policy, rollout: _Rollout,
                  identity: SampleIdentity) -> list[dict[str, Any]]:  # fmt: skip
    """The sample's attempt rows (`table.attempt_rows`); attempts that cannot be placed on its tokens give one row
    whose `error` says why, and the other samples go on."""
    from e3eval.probes.attempt_logprobs import attempt_probes

    prompt, response = policy.prompt_ids[rollout.problem_id], list(rollout.response)
    # Attempts are cut in the decode of the ids (an import's stored text may differ from it).
    text = policy.decoder.decode_prefix(response, len(response))
    try:
        found = attempt_probes(policy.model, prompt, response, text, config.attempts, policy.decoder,
                               config.chunk, config.max_attempts, config.temperature)  # fmt: skip
    except UserError as exc:
        return attempt_rows(identity.columns(), [], config.attempts, config.max_attempts, None, str(exc))
    n_attempts = found[0].n_attempts if found else None
    if n_attempts is None:
        from e3eval.segmentation import attempt_spans

        n_attempts = min(len(attempt_spans(text, config.attempts)), 1)  # fewer than two: 0 or 1
    return attempt_rows(identity.columns(), found, config.attempts, config.max_attempts, n_attempts)


class _PartWriter:
    """Finished rows go to numbered part files (`Run.append_part`, atomically), a sample's rows together and the
    attempts part before the probes part, so a probes row on disk means that sample's attempt rows are on disk too."""

    def __init__(self, run: Run, folder: Path) -> None:
        self.run = run
        self.folder = folder
        self.probes: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.written: dict[str, list[pa.Table]] = {"probes": [], "attempts": []}  # kept: the final tables use them
        self._last = time.monotonic()
        self._pending = 0

    def add(self, probes: list[dict[str, Any]], attempts: list[dict[str, Any]]) -> None:
        self.probes.extend(probes)
        self.attempts.extend(attempts)

    def maybe_flush(self) -> None:
        self._pending += 1
        if self._pending >= _FLUSH_SAMPLES or time.monotonic() - self._last > _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        for name, prefix, rows, schema in (
            ("attempt_probes", "attempts", self.attempts, ATTEMPT_SCHEMA),
            ("probes", "probes", self.probes, PROBE_SCHEMA),
        ):
            if rows:
                table = pa.Table.from_pylist(rows, schema)
                self.run.append_part(name, table, folder=self.folder, prefix=prefix)
                self.written[prefix].append(table)
        self.probes, self.attempts = [], []
        self._pending, self._last = 0, time.monotonic()


def _samples(run: Run, keep: np.ndarray) -> Iterator[_Rollout]:
    start = 0
    for batch in run.rollout_batches(_COLUMNS, batch_rows=64):
        mask = keep[start : start + batch.num_rows]
        start += batch.num_rows
        for row, kept in zip(batch.to_pylist(), mask, strict=True):
            if kept:
                yield _Rollout(row["problem_id"], row["sample_idx"], tuple(row["token_ids"] or ()),
                               tuple(row.get("inserted") or ()))  # fmt: skip


def _budgets(run: Run, config: ProbeConfig) -> tuple[int, ...]:
    if config.budgets:
        return tuple(sorted(set(config.budgets)))
    scored = run.record.scoring.budgets if run.record.scoring is not None else ()
    if scored:
        return tuple(sorted(scored))  # run.json's reader checked they are positive integers
    limit = run.record.generation.sampling.max_tokens if run.record.generation is not None else None
    if limit is not None and limit > 0:
        return (limit,)
    longest = max((int(n) for b in run.rollout_batches(["num_tokens"]) for n in b.column(0).to_pylist()), default=0)
    return (max(longest, 1),)


def _resolved_dtype(config: ProbeConfig) -> str:
    """The dtype the weights are loaded in (`auto`: bfloat16 on CUDA, float32 on CPU), as `ProbeModel.load` does."""
    if config.dtype != "auto":
        return config.dtype
    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return "bfloat16" if device.startswith("cuda") else "float32"


def _settings(config: ProbeConfig, budgets: tuple[int, ...]) -> dict[str, Any]:
    import torch
    import transformers

    return {"ref": config.ref, "budgets": list(budgets), "chunk": config.chunk, "dtype": config.dtype,
            "device": config.device, "temperature": config.temperature, "softmax": "float32",
            "per_token": config.per_token,
            "attempts": config.attempts, "max_attempts": config.max_attempts,
            "torch": torch.__version__, "transformers": transformers.__version__}  # fmt: skip


def _label(checkpoint: Checkpoint) -> str:
    return f"step {checkpoint.step}" if checkpoint.step is not None else Path(checkpoint.model).name or checkpoint.model
