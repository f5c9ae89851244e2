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
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.errors import UserError
from e3eval.manifest import GenerationRecord
from e3eval.outputs import record_written, written_by_e3eval
from e3eval.probes.checkpoints import Checkpoint, checkpoints, describe_checkpoints
from e3eval.probes.table import (
    ATTEMPT_KEY,
    ATTEMPT_SCHEMA,
    ATTEMPT_SLOT,
    PROBE_KEY,
    PROBE_SCHEMA,
    PROBE_SLOT,
    attempt_rows,
    budget_rows,
    conform,
    done_keys,
    latest,
    part_files,
    read_parts,
    run_grades,
    with_grades,
)
from e3eval.run import Run
from e3eval.store import ATTEMPT_PROBES, MANIFEST, PROBES, ids_sha1, output_lock, write_table
from e3eval.tokenizers import fingerprint, load_tokenizer
from e3eval.truncate import PrefixDecoder
from e3eval.weights import model_fingerprint, model_path

_COLUMNS = ["problem_id", "sample_idx", "token_ids", "num_tokens", "inserted"]
_FLUSH_SAMPLES = 64
_FLUSH_SECONDS = 60.0


@dataclass(frozen=True)
class ProbeConfig:
    run_dir: Path
    models: tuple[str, ...]
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
        from e3eval.analysis.steps import PRESETS

        if config.attempts not in PRESETS:
            raise UserError(f"--attempts {config.attempts!r}: choose one of {', '.join(PRESETS)}")
    if config.dtype not in (None, "auto", "float32", "bfloat16", "float16"):
        raise UserError(f"--dtype {config.dtype!r}: choose auto, float32, bfloat16 or float16")
    if config.temperature is not None and not (math.isfinite(config.temperature) and 0 < config.temperature <= 100):
        raise UserError(f"--temperature {config.temperature}: a positive number (the logits are divided by it)")


def run_probe(config: ProbeConfig, progress: Any = None, log: Callable[[str], None] = lambda _: None) -> ProbeOutcome:
    """Probe every sample of the run with every model; resumes from what an interrupted call saved."""
    check_config(config)
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


def with_run_settings(config: ProbeConfig, run: Run, log: Callable[[str], None] = lambda _: None) -> ProbeConfig:
    """What the flags leave unset, from how the run was generated (run.json), each choice logged:
    - dtype: the run's (`auto` when it records none: bfloat16 on CUDA, float32 on CPU);
    - temperature: the run's sampling temperature, as verl divides the logits by the rollout temperature (the
      samples were drawn from that distribution cut to top-p); 1 when the run records none or sampled greedily."""
    generation = run.record.generation or GenerationRecord()
    dtype, temperature = config.dtype, config.temperature
    if dtype is None:
        recorded = generation.dtype
        dtype = recorded if recorded in ("float32", "bfloat16", "float16") else "auto"
        if dtype != "auto":
            log(f"dtype: {dtype} (the run's, from run.json; --dtype overrides)")
    if temperature is None:
        sampled = generation.sampling.temperature
        if sampled is not None and 0 < sampled <= 100:
            temperature = float(sampled)
            log(
                f"temperature: {temperature:g} (the run's sampling temperature, from run.json; --temperature overrides)"
            )
        else:
            temperature = 1.0
            why = "sampled greedily" if sampled == 0 else "records no sampling temperature"
            log(f"temperature: 1 (the run {why}; --temperature overrides)")
    return dataclasses.replace(config, dtype=dtype, temperature=temperature)


def output_path(run: Run, out: Path | None, force: bool = False) -> Path:
    """Where the probe table goes: RUN/probes.parquet, or a `--out` file outside every run directory (a file inside
    one would sit among the run's own tables, e.g. as a rollout shard, and break the commands that read them) that
    is new, or that e3eval wrote and nobody changed since (`outputs.py`; `force` takes any probe table)."""
    if out is None or out.absolute().resolve() == (run.path / PROBES).resolve():
        return run.path / PROBES  # the run's own table, however the path was spelled
    out = out.absolute()
    if out.is_dir():
        raise UserError(f"--out {out}: a folder; give a file name such as {out / 'probes.parquet'}")
    if out.suffix != ".parquet":
        raise UserError(f"--out {out}: a probe table is a Parquet file; give a name ending in .parquet")
    for folder in out.resolve().parents:
        if (folder / MANIFEST).is_file():
            raise UserError(
                f"--out {out}: inside the run directory {folder}, where only e3eval's own tables belong; write "
                f"outside it, or leave --out out to write {run.path / PROBES}"
            )
    for path in (out, _attempts_path(out, run)):
        if path.exists() and not force and not written_by_e3eval(path):
            raise UserError(
                f"--out {out}: {path.name} exists and was not written by e3eval (or was changed since), so its "
                "rows cannot be trusted as measurements; give a new file, or pass --force to take it as it is"
            )
    return out


def _probe(run: Run, config: ProbeConfig, models: list[Checkpoint], out: Path, progress: Any,
           log: Callable) -> ProbeOutcome:  # fmt: skip
    from e3eval.probes.forward import ProbeModel

    attempts_out = _attempts_path(out, run)
    parts = out.with_name(f".{out.name}.parts")
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
    # Read once: what earlier calls computed is both the resume point and (with this call's parts) the final tables.
    earlier_probes, earlier_attempts = _sources(run, out, attempts_out, parts)
    done_probes = done_keys(pa.concat_tables(earlier_probes), PROBE_KEY, budgets, config.per_token)
    done_attempts = done_keys(pa.concat_tables(earlier_attempts), ATTEMPT_KEY) if config.attempts else None
    ref = ProbeModel.load(config.ref, config.dtype, config.device, flag="--ref") if config.ref else None
    if config.ref:
        _check_tokenizer_files(config.ref, "--ref")
    ref_tokenizer = load_tokenizer(config.ref) if config.ref else None
    computed = reused = unplaced = 0
    writer = _PartWriter(parts)
    try:
        for checkpoint in models:
            _check_tokenizer_files(checkpoint.model, "--model")
            tokenizer = load_tokenizer(checkpoint.model)
            weights = model_fingerprint(checkpoint.model)
            prompt_ids = _prompt_ids(run, problems, checkpoint.model, "--model", tokenizer, warnings)
            if ref_tokenizer is not None:
                _prompt_ids(run, problems, config.ref, "--ref", ref_tokenizer, [])
            decoder = PrefixDecoder(tokenizer) if config.attempts else None
            model = ProbeModel.load(checkpoint.model, config.dtype, config.device)
            try:
                _check_vocab(model, tokenizer, ref, run, checkpoint)
                if model.dtype != dtype:
                    raise UserError(f"--model {checkpoint.model}: loaded as {model.dtype}, expected {dtype}")
                log(f"{checkpoint.model}: {model.device}, {model.dtype}")
                task = progress.add_task(f"probe {_label(checkpoint)}", total=ledger.samples) if progress else None
                for sample in _samples(run, ledger.keep):
                    pid, idx = sample["problem_id"], sample["sample_idx"]
                    if pid not in prompt_ids:
                        raise UserError(f"{run.path}: rollouts name problem {pid!r}, which problems.parquet lacks")
                    read = ids_sha1([*prompt_ids[pid], *(sample["token_ids"] or [])])
                    need_probe = (run.run_id, checkpoint.model, ref_name, dtype, pid, idx, weights, ref_fingerprint,
                                  read, config.temperature) not in done_probes  # fmt: skip
                    need_attempts = (
                        done_attempts is not None
                        and (run.run_id, checkpoint.model, dtype, pid, idx, config.attempts, config.max_attempts,
                             weights, read, config.temperature) not in done_attempts
                    )  # fmt: skip
                    if not (need_probe or need_attempts):
                        reused += 1
                    else:
                        ids = prompt_ids[sample["problem_id"]]
                        base = {"run_id": run.run_id, "model": checkpoint.model, "step": checkpoint.step,
                                "ref": ref_name, "dtype": dtype, "problem_id": pid, "sample_idx": idx,
                                "model_fingerprint": weights, "ref_fingerprint": ref_fingerprint,
                                "ids_sha1": read, "temperature": config.temperature}  # fmt: skip
                        failed = _probe_sample(model, ref, decoder, base, ids, sample, config, budgets,
                                               need_probe, need_attempts, writer)  # fmt: skip
                        unplaced += failed
                        computed += 1
                    if progress:
                        progress.advance(task)
                    writer.maybe_flush()
            finally:
                writer.flush()
                model.close()
    finally:
        writer.flush()
        if ref is not None:
            ref.close()
    if unplaced:
        warnings.append(f"{unplaced} sample(s) without attempt probes: their attempts could not be placed on their "
                        "tokens (the `error` column of the attempt table says why)")  # fmt: skip
    probes = _finish(run, out, attempts_out, parts, settings, [*earlier_probes, *writer.written["probes"]],
                     [*earlier_attempts, *writer.written["attempts"]])  # fmt: skip
    excluded = None if ledger.complete else ledger.describe()
    return ProbeOutcome(out, attempts_out if config.attempts else None, tuple(models), budgets, computed, reused,
                        ledger.samples, excluded, tuple(warnings), run.run_id, ref_name, dtype, probes,
                        config.temperature or 1.0)  # fmt: skip


def _probe_sample(model, ref, decoder, base, prompt_ids, sample, config, budgets,
                  need_probe, need_attempts, writer) -> int:  # fmt: skip
    """Probe one sample into `writer`; returns 1 when its attempts could not be probed (recorded as a row)."""
    from e3eval.probes.forward import token_stats

    response = list(sample["token_ids"] or [])
    ids = list(prompt_ids) + response
    start = len(prompt_ids)
    if need_probe:
        stats = token_stats(model, ids, start, config.chunk, ref, temperature=config.temperature) if response else None
        writer.probes.extend(budget_rows(base, stats, budgets, config.per_token, sample.get("inserted") or ()))
    if not need_attempts:
        return 0
    from e3eval.probes.attempt_logprobs import attempt_probes

    # Attempts are cut in the decode of the ids (an import's stored text may differ from it).
    text = decoder.decode_prefix(response, len(response))
    try:
        found = attempt_probes(model, prompt_ids, response, text, config.attempts, decoder,
                               config.chunk, config.max_attempts, config.temperature)  # fmt: skip
    except UserError as exc:  # this sample's text cannot be cut into token spans: recorded, the others go on
        writer.attempts.extend(attempt_rows(base, [], config.attempts, config.max_attempts, None, str(exc)))
        return 1
    n_attempts = found[0].n_attempts if found else None
    if n_attempts is None:
        from e3eval.analysis.segments import attempt_spans

        n_attempts = min(len(attempt_spans(text, config.attempts)), 1)  # fewer than two: 0 or 1
    writer.attempts.extend(attempt_rows(base, found, config.attempts, config.max_attempts, n_attempts))
    return 0


class _PartWriter:
    """Finished rows go to numbered part files (atomically), probes after attempts, so a probes row on disk
    means that sample's attempt rows are on disk too."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.probes: list[dict[str, Any]] = []
        self.attempts: list[dict[str, Any]] = []
        self.written: dict[str, list[pa.Table]] = {"probes": [], "attempts": []}  # kept: the final tables use them
        self._last = time.monotonic()
        self._pending = 0

    def maybe_flush(self) -> None:
        self._pending += 1
        if self._pending >= _FLUSH_SAMPLES or time.monotonic() - self._last > _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if self.probes or self.attempts:
            self.folder.mkdir(parents=True, exist_ok=True)
            stamp = f"{time.time_ns()}"
            for kind, rows, schema in (
                ("attempts", self.attempts, ATTEMPT_SCHEMA),
                ("probes", self.probes, PROBE_SCHEMA),
            ):
                if rows:
                    table = pa.Table.from_pylist(rows, schema)
                    write_table(self.folder / f"{kind}-{stamp}.parquet", table)
                    self.written[kind].append(table)
        self.probes, self.attempts = [], []
        self._pending, self._last = 0, time.monotonic()


def _samples(run: Run, keep: np.ndarray) -> Iterator[dict[str, Any]]:
    start = 0
    for batch in run.rollout_batches(_COLUMNS, batch_rows=64):
        mask = keep[start : start + batch.num_rows]
        start += batch.num_rows
        for row, kept in zip(batch.to_pylist(), mask, strict=True):
            if kept:
                yield row


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


def _prompt_ids(run: Run, problems: dict[str, Any], model: str, flag: str, tokenizer: Any,
                warnings: list[str]) -> dict[str, list[int]]:  # fmt: skip
    """Each problem's prompt ids, after checking that `model`'s tokenizer is the run's: the same fingerprint, or
    each stored prompt re-tokenizes to its stored ids (with or without the special tokens a tokenizer adds)."""
    recorded = run.record.tokenizer.fingerprint
    same = recorded is not None and recorded == fingerprint(tokenizer)
    ids: dict[str, list[int]] = {}
    for problem in problems.values():
        stored = list(problem.prompt_token_ids) if problem.prompt_token_ids else None
        if stored is None and not problem.prompt:
            raise UserError(
                f"{run.path}: this run has no prompt for problem {problem.problem_id!r}; probes need prompt + "
                "response (import the run with its prompts: a `prompt` field)"
            )
        if stored is None:
            stored = tokenizer(problem.prompt, add_special_tokens=False)["input_ids"]
        elif not same:
            plain = list(tokenizer(problem.prompt or "", add_special_tokens=False)["input_ids"])
            special = list(tokenizer(problem.prompt or "")["input_ids"])
            if stored not in (plain, special):
                raise UserError(
                    f"{flag} {model}: its tokenizer does not match the run's token ids (the prompt of "
                    f"{problem.problem_id!r} {_first_difference(plain, stored)}); use a model of the run's "
                    f"tokenizer ({run.record.tokenizer.name_or_path or 'see run.json'})"
                )
        ids[problem.problem_id] = stored
    if not any(p.prompt_token_ids for p in problems.values()):
        warnings.append(f"{run.path}: no stored prompt token ids; prompts were tokenized with {model}'s tokenizer")
    return ids


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def _check_tokenizer_files(model: str, flag: str) -> None:
    """A local model folder must carry its tokenizer: the probe checks it against the run's ids (verl's exported
    checkpoints hold one; a bare weights folder does not)."""
    folder = Path(model).expanduser()
    if folder.is_dir() and not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        raise UserError(
            f"{flag} {model}: no tokenizer files ({', '.join(_TOKENIZER_FILES[:2])}, ...); copy the tokenizer of the "
            "model that generated the run into this folder"
        )


def _first_difference(mine: list[int], stored: list[int]) -> str:
    """Where a re-tokenized prompt parts from the stored ids, in words."""
    at = next((i for i, (a, b) in enumerate(zip(mine, stored, strict=False)) if a != b), min(len(mine), len(stored)))
    if at < min(len(mine), len(stored)):
        return f"re-tokenizes to id {mine[at]} at position {at}, where the run stores {stored[at]}"
    return f"re-tokenizes to {len(mine)} ids, the run stores {len(stored)} (the first {at} agree)"


def _resolved_dtype(config: ProbeConfig) -> str:
    """The dtype the weights are loaded in (`auto`: bfloat16 on CUDA, float32 on CPU), as `ProbeModel.load` does."""
    if config.dtype != "auto":
        return config.dtype
    import torch

    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return "bfloat16" if device.startswith("cuda") else "float32"


def _check_vocab(model: Any, tokenizer: Any, ref: Any, run: Run, checkpoint: Checkpoint) -> None:
    vocab = run.record.tokenizer.vocab_size
    size = len(tokenizer)
    if vocab is not None and int(vocab) != size:
        raise UserError(f"--model {checkpoint.model}: its tokenizer has {size} tokens, the run's has {vocab}")
    if size > model.vocab_size:
        raise UserError(f"--model {checkpoint.model}: {size} tokens but only {model.vocab_size} logits")
    if ref is not None and ref.vocab_size != model.vocab_size:
        raise UserError(
            f"--ref {ref.name} has a vocabulary of {ref.vocab_size}, --model {checkpoint.model} one of "
            f"{model.vocab_size}: KL needs the same vocabulary"
        )


def _settings(config: ProbeConfig, budgets: tuple[int, ...]) -> dict[str, Any]:
    import torch
    import transformers

    return {"ref": config.ref, "budgets": list(budgets), "chunk": config.chunk, "dtype": config.dtype,
            "device": config.device, "temperature": config.temperature, "softmax": "float32",
            "per_token": config.per_token,
            "attempts": config.attempts, "max_attempts": config.max_attempts,
            "torch": torch.__version__, "transformers": transformers.__version__}  # fmt: skip


def _attempts_path(out: Path, run: Run) -> Path:
    if out == run.path / PROBES:
        return run.path / ATTEMPT_PROBES
    return out.with_name(f"{out.stem}.attempts{out.suffix or '.parquet'}")


def _sources(run: Run, out: Path, attempts_out: Path, parts: Path) -> tuple[list[pa.Table], list[pa.Table]]:
    """What earlier calls computed, oldest first: the final tables, then the parts an interrupted call left."""
    own = out == run.path / PROBES
    probes = [_read(out, PROBE_SCHEMA, run, own), *read_parts(parts, "probes", PROBE_SCHEMA)]
    attempts = [_read(attempts_out, ATTEMPT_SCHEMA, run, own), *read_parts(parts, "attempts", ATTEMPT_SCHEMA)]
    return probes, attempts


def _read(path: Path, schema: pa.Schema, run: Run, own: bool) -> pa.Table:
    """An earlier probe table. In the run's own table, rows under the run's id from before identities were uuids
    are the run's (relabelled); in a table shared by several runs such an id is ambiguous and its rows stay as
    they are (they never match a run's uuid, so they are never taken for its measurements)."""
    if not path.is_file():
        return schema.empty_table()
    try:
        table = conform(pq.read_table(path), schema)
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable Parquet table ({exc}); move it away to probe again") from None
    except ValueError as exc:
        raise UserError(f"{path}: {exc}; pass another --out") from None
    legacy = run.record.legacy_run_id
    if own and legacy is not None:
        ids = pa.array([run.run_id if r == legacy else r for r in table["run_id"].to_pylist()], pa.string())
        table = table.set_column(table.schema.get_field_index("run_id"), "run_id", ids)
    return table


def _finish(run: Run, out: Path, attempts_out: Path, parts: Path, settings: dict[str, Any],
            probes_in: list[pa.Table], attempts_in: list[pa.Table]) -> pa.Table:  # fmt: skip
    """Fold earlier tables and this call's parts (oldest first) into the final tables (one write), with `correct`
    from the run's current grades, then drop the parts; returns the probes table. Attempt probes of earlier calls
    are carried over when this call made none, so the two tables always belong to one unit."""
    grades = run_grades(run)
    probes = _sorted(with_grades(latest(probes_in, [*PROBE_SLOT, "budget"], PROBE_SCHEMA), run.run_id, grades))
    attempts = _sorted(with_grades(latest(attempts_in, ATTEMPT_SLOT, ATTEMPT_SCHEMA), run.run_id, grades))
    models = sorted({(m, s) for m, s in zip(probes["model"].to_pylist(), probes["step"].to_pylist(), strict=True)},
                    key=lambda c: (c[1] if c[1] is not None else -1, c[0]))  # fmt: skip
    section = {"last_call": settings, "models": [{"model": m, "step": s} for m, s in models],
               "refs": sorted({r for r in probes["ref"].to_pylist() if r is not None}),
               "rows": probes.num_rows, "attempt_rows": attempts.num_rows}  # fmt: skip
    tables = {"probes": probes}
    if attempts.num_rows:
        tables["attempt_probes"] = attempts
    if out == run.path / PROBES:
        run.commit("probes", section, tables)
    else:
        for name, path in (("probes", out), ("attempt_probes", attempts_out)):
            if name in tables:
                write_table(path, tables[name])
                record_written(path)
    for part in part_files(parts):
        part.unlink()
    if parts.is_dir() and not any(parts.iterdir()):
        parts.rmdir()
    return probes


def _sorted(table: pa.Table) -> pa.Table:
    order = ("run_id", "step", "model", "ref", "dtype", "preset", "problem_id", "sample_idx", "budget", "k")
    return table.sort_by([(c, "ascending") for c in order if c in table.column_names])


def _label(checkpoint: Checkpoint) -> str:
    return f"step {checkpoint.step}" if checkpoint.step is not None else Path(checkpoint.model).name or checkpoint.model
