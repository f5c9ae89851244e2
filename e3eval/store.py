"""The run directory: manifest, Parquet tables, atomic writes, streaming readers.

Layout (ARCHITECTURE.md): `run.json`, `problems.parquet`, `rollouts/part-*.parquet` (append-only shards),
`grades.parquet`, `summary.parquet` + `summary.csv`, `figures/`. Every file is written to a temporary name and
renamed into place; the manifest is written last, so a run directory never points at a half-written table.
Readers stream rollout shards batch by batch and read only the columns they ask for; `read_manifest` checks the types
of the run.json fields that commands rely on, so a hand-edited manifest is one clear error. This module knows the
schemas but not what the columns mean: truncation, grading and metrics live elsewhere.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from e3eval.errors import UserError
from e3eval.records import SCHEMA_VERSION, Problem, Rollout

MANIFEST = "run.json"
PROBLEMS = "problems.parquet"
ROLLOUTS_DIR = "rollouts"
GRADES = "grades.parquet"
SUMMARY = "summary.parquet"
SUMMARY_CSV = "summary.csv"
PROBES = "probes.parquet"
ATTEMPT_PROBES = "attempt_probes.parquet"
COMPRESSION = "zstd"

PROBLEM_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("problem_id", pa.string()),
        ("dataset", pa.string()),
        ("problem", pa.string()),
        ("answer", pa.string()),
        ("prompt", pa.string()),
        ("prompt_token_ids", pa.list_(pa.int32())),
    ]
)

ROLLOUT_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("problem_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("seed", pa.int64()),
        ("response", pa.string()),
        ("token_ids", pa.list_(pa.int32())),
        ("num_tokens", pa.int32()),
        ("finish_reason", pa.string()),
        ("error", pa.string()),
        ("logprobs", pa.list_(pa.float32())),
        # The grade the source tool gave the full response (e3 / verl dumps), kept for comparison only.
        ("source_score", pa.float64()),
        # Budget forcing (`--wait N`): flat (start, end) pairs of the response token spans that were inserted, not
        # sampled; null when the run did not force. Shards written before this column existed lack it.
        ("inserted", pa.list_(pa.int32())),
    ]
)

GRADE_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("problem_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("budget", pa.int32()),
        ("policy", pa.string()),
        ("tokens_used", pa.int32()),
        ("finished", pa.bool_()),
        ("answer", pa.string()),
        ("correct", pa.bool_()),
        ("status", pa.string()),
        ("detail", pa.string()),  # why a grade is timeout/error; null otherwise
    ]
)

SUMMARY_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("policy", pa.string()),
        ("budget", pa.int32()),
        ("metric", pa.string()),
        ("k", pa.int32()),
        ("value", pa.float64()),
        ("ci_low", pa.float64()),
        ("ci_high", pa.float64()),
        ("n_problems", pa.int32()),
        ("n_samples", pa.int32()),
        # Samples left out of these numbers: failed requests and samples the run asked for but does not hold.
        ("n_failed", pa.int32()),
        ("n_missing", pa.int32()),
        ("flag", pa.string()),
    ]
)


# Probe tables (`e3eval probe`): one row per (model, problem, sample, budget), or per attempt index k >= 2 with
# `--attempts` (`probes/table.py` reads and joins them). Where a measurement lives (its slot): the run (its uuid), the
# model and reference (paths), the weights' dtype and the sample (probes add the budget; attempt probes the preset and
# the attempt cap instead of the reference, which they never use). A sample probed again in its slot replaces its rows.
PROBE_SLOT = ("run_id", "model", "ref", "dtype", "problem_id", "sample_idx")
ATTEMPT_SLOT = ("run_id", "model", "dtype", "problem_id", "sample_idx", "preset", "max_attempts")
_PROBE_KEY = [("run_id", pa.string()), ("model", pa.string()), ("step", pa.int64()), ("ref", pa.string()),
        ("dtype", pa.string()), ("problem_id", pa.string()), ("sample_idx", pa.int32()),
        ("model_fingerprint", pa.string()), ("ref_fingerprint", pa.string()),
        ("ids_sha1", pa.string()),
        ("temperature", pa.float64())]  # softmax(logits / temperature); tables before it: 1  # fmt: skip
PROBE_SCHEMA = pa.schema(
    [
        *_PROBE_KEY,
        ("budget", pa.int32()),
        ("n_tokens", pa.int32()),
        # Response tokens within the budget that budget forcing inserted ("Wait"): not the policy's own samples, so
        # left out of every mean (n_tokens counts only the policy's tokens) and null in the per-token lists.
        ("n_inserted", pa.int32()),
        ("mean_logprob", pa.float64()),
        ("mean_entropy", pa.float64()),
        ("kl_exact", pa.float64()),
        ("kl_k1", pa.float64()),
        ("kl_k3", pa.float64()),
        ("correct", pa.bool_()),
        ("grade_policy", pa.string()),  # the policy of the scoring `correct` comes from
        ("graded_by", pa.string()),  # that scoring's unit id (run.json `scoring.unit`): a later scoring differs
        ("token_logprob", pa.list_(pa.float32())),
        ("token_entropy", pa.list_(pa.float32())),
        ("token_kl", pa.list_(pa.float32())),
    ]
)
ATTEMPT_SCHEMA = pa.schema(
    [
        *_PROBE_KEY,
        ("preset", pa.string()),
        ("max_attempts", pa.int32()),
        ("k", pa.int32()),
        ("n_attempts", pa.int32()),
        ("tokens_k", pa.int32()),
        ("tokens_prev", pa.int32()),
        ("lp_k_given_prev", pa.float64()),
        ("lp_k_skip_prev", pa.float64()),
        ("lp_prev_given_before", pa.float64()),
        ("lp_repeat_prev", pa.float64()),
        ("fig13a", pa.float64()),
        ("fig13b", pa.float64()),
        ("fig13c", pa.float64()),
        ("fig13a_per_token", pa.float64()),
        ("fig13b_per_token", pa.float64()),
        ("fig13c_per_token", pa.float64()),
        ("correct", pa.bool_()),
        ("grade_policy", pa.string()),
        ("graded_by", pa.string()),
        ("error", pa.string()),  # why this sample's attempts could not be probed; null otherwise
    ]
)

# Forced answers (`score --policy forced`, `forced_answer.py`): one continuation per (sample, budget, setting).
FORCED_SCHEMA = pa.schema(
    [
        ("run_id", pa.string()),
        ("problem_id", pa.string()),
        ("sample_idx", pa.int32()),
        ("budget", pa.int32()),
        ("model", pa.string()),
        ("cue", pa.string()),
        ("answer_tokens", pa.int32()),
        ("think_end", pa.string()),  # the delimiter this setting appends when the thinking is still open
        ("prefix_tokens", pa.int32()),  # response tokens continued: min(budget, num_tokens)
        ("appended_ids", pa.list_(pa.int32())),  # exactly what followed them: [delimiter ids] + cue ids
        ("token_ids", pa.list_(pa.int32())),  # the continuation, as the engine produced it
        ("text", pa.string()),  # its decode (for people; grading decodes cue ids + token ids)
        ("finish_reason", pa.string()),
        ("error", pa.string()),
        ("backend", pa.string()),
        ("created_at", pa.string()),
        # sha1 of the int32 ids continued (prompt + prefix + appended): a stored continuation is reused only for the
        # very context it continued (a regenerated sample gets a new one). Null in parts written before it existed.
        ("context_sha1", pa.string()),
        # The weights that wrote it (`weights.model_fingerprint`): new weights exported to the same path never reuse
        # the old weights' answers. Null for a served model (keyed by name) and in parts written before it existed.
        ("model_fingerprint", pa.string()),
    ]
)


@dataclass(frozen=True)
class TableSpec:
    """A table of the run directory, declared once: where it lives (a file, or a folder of parts), its schema, the
    columns a row is keyed on, and the stage that writes it (the run.json section it is committed with)."""

    name: str
    path: str
    schema: pa.Schema
    keys: tuple[str, ...]
    owner: str
    parts: bool = False  # a folder of append-only parts (`next_part`), read in part order
    # Rows per Parquet row group, for tables read one sample at a time (`e3eval view`): a reader of one row
    # decompresses its whole row group, so one 40k-token sample costs milliseconds in a 16-row group and about a
    # second (cold) in a 256-row one. None: one row group per file. Files written before this still read alike.
    row_group_rows: int | None = None


TABLES = {t.name: t for t in (
    TableSpec("problems", PROBLEMS, PROBLEM_SCHEMA, ("problem_id",), "generation"),
    TableSpec("rollouts", ROLLOUTS_DIR, ROLLOUT_SCHEMA, ("problem_id", "sample_idx"), "generation", parts=True,
              row_group_rows=16),
    TableSpec("grades", GRADES, GRADE_SCHEMA, ("problem_id", "sample_idx", "budget"), "scoring"),
    TableSpec("summary", SUMMARY, SUMMARY_SCHEMA, ("policy", "budget", "metric", "k"), "scoring"),
    TableSpec("forced", "forced", FORCED_SCHEMA,
              ("problem_id", "sample_idx", "budget", "model", "cue", "answer_tokens", "think_end"), "scoring",
              parts=True),
    TableSpec("probes", PROBES, PROBE_SCHEMA, (*PROBE_SLOT, "budget"), "probes", row_group_rows=16),
    TableSpec("attempt_probes", ATTEMPT_PROBES, ATTEMPT_SCHEMA, (*ATTEMPT_SLOT, "k"), "probes"),
)}  # fmt: skip


def parts(folder: Path, prefix: str = "part") -> list[Path]:
    """The part files `PREFIX-N.parquet` of a folder, in the order they were written (by N, whatever its width:
    rollouts wrote five digits, forced answers six). A `PREFIX-*.parquet` whose N is no number comes last, so that
    its reader names it rather than skipping it."""
    if not folder.is_dir():
        return []
    found = []
    for path in folder.glob(f"{prefix}-*.parquet"):
        number = path.stem[len(prefix) + 1 :]
        found.append((0, int(number), path.name, path) if number.isdigit() else (1, 0, path.name, path))
    return [path for *_, path in sorted(found)]


def next_part(folder: Path, prefix: str = "part") -> Path:
    """Where the next part of `folder` goes: one past the last part's number, five digits (the one naming scheme)."""
    numbers = [int(p.stem[len(prefix) + 1 :]) for p in parts(folder, prefix) if p.stem[len(prefix) + 1 :].isdigit()]
    return folder / f"{prefix}-{max(numbers, default=-1) + 1:05d}.parquet"


def append_part(folder: Path, table: pa.Table, prefix: str = "part", row_group_rows: int | None = None) -> Path:
    """Add `table` to a folder of parts as the next `PREFIX-NNNNN.parquet` (atomically; earlier parts are never
    rewritten): the one part writer every resumable table goes through (`Run.append_part`), in row groups of
    `row_group_rows` (its `TableSpec`'s) when given. Returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = next_part(folder, prefix)
    write_table(path, table, row_group_rows)
    return path


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write to a temporary name beside `path`, then rename; a failed write leaves neither file behind."""
    tmp = _temp_path(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table(path: Path, table: pa.Table, row_group_rows: int | None = None) -> None:
    """Write a Parquet table atomically (temp file + rename), in row groups of `row_group_rows` rows when given
    (`TableSpec.row_group_rows`), else as one row group."""
    _atomically(path, lambda tmp: pq.write_table(table, tmp, compression=COMPRESSION, row_group_size=row_group_rows))


def write_csv(path: Path, table: pa.Table) -> None:
    _atomically(path, lambda tmp: pacsv.write_csv(table, tmp))


def write_json(path: Path, data: dict[str, Any]) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str) + "\n"
    _atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def ids_sha1(ids: Sequence[int]) -> str:
    """The fingerprint of a token id sequence, as int32 like the tables store them: rows computed from a sample's ids
    (probes, forced answers) carry it, so a regenerated sample is never matched with another's rows."""
    import numpy as np

    return hashlib.sha1(np.asarray(ids, dtype=np.int32).tobytes()).hexdigest()


def lock_path(run_dir: Path) -> Path:
    """The writer lock of a run (or of any output): a hidden file beside it, so it outlives replacing it."""
    run_dir = Path(run_dir).resolve()
    return run_dir.parent / f".{run_dir.name}.e3eval-lock"


@contextmanager
def run_lock(run_dir: Path, command: str) -> Iterator[None]:
    """Hold the exclusive writer lock of `run_dir` while the block runs; refuse at once if another process holds it.

    Every command that writes into a run takes it, so two writers never interleave shards or overwrite each other's
    grades. The kernel releases the lock when the holder exits, even on SIGKILL: a stale lock file is harmless.
    """
    with output_lock(run_dir, command, what="this run"):
        yield


@contextmanager
def output_lock(target: Path, command: str, what: str = "this output") -> Iterator[None]:
    """The exclusive writer lock of any file or folder e3eval writes (a run, a probe table shared by several runs);
    a second writer is refused at once with one line naming the holder."""
    path = lock_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # never through a link, never over a file of someone else's that happens to bear the lock's name
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise UserError(f"{path}: cannot be used as e3eval's lock file ({exc.strerror}); move it away") from None
    handle = os.fdopen(descriptor, "r+", encoding="utf-8", errors="replace")
    try:
        owner = handle.read(64)
        if owner and not owner.startswith("pid "):
            raise UserError(f"{path}: a file e3eval did not write has the name of its lock file; move it away")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(
                f"{target}: another e3eval command is writing to {what} ({holder}); wait for it to finish "
                "or stop it, then rerun"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}, e3eval {command}")
        handle.flush()
        yield
    finally:
        handle.close()


_RUN_ID = re.compile(r"[0-9a-f]{32}")


def new_run_id() -> str:
    """A run's identity: a random uuid (hex), written once when the run is created and never derived from its
    folder, so two folders named alike (`a/run`, `b/run`) are two runs in every table keyed on `run_id`."""
    return uuid.uuid4().hex


def is_run_id(value: object) -> bool:
    """Whether `value` is an identity minted by `new_run_id` (runs written before identities were uuids are not)."""
    return isinstance(value, str) and _RUN_ID.fullmatch(value) is not None


def with_identity(manifest: dict[str, Any], run_dir: Path) -> dict[str, Any]:
    """`manifest` with a uuid `run_id` that no other folder holds, for a write into `run_dir`.

    - A run written before identities were uuids gets one now (its first write), its old id kept as its `name` (the
      label reports use) when that was not its folder's name, and as `legacy_run_id`.
    - A copy (`cp -r`) has its original's id: run.json's `origin` names the folder (path, device, inode) the id was
      given in; written in another folder while the original still holds the same id, the copy gets a new id
      (`copied_from` names the original). A moved run (the original folder is gone) keeps its id.
    The manifest is returned unchanged (the same object) when nothing is to be written.
    """
    old = manifest.get("run_id")
    here = run_origin(run_dir)
    if not is_run_id(old):
        named = {"name": str(old)} if old and old != Path(run_dir).name and not manifest.get("name") else {}
        return {**manifest, "run_id": new_run_id(), **named, "legacy_run_id": old, "origin": here}
    origin = manifest.get("origin") if isinstance(manifest.get("origin"), dict) else None
    if origin == here:
        return manifest
    same_folder = origin is not None and (origin.get("device"), origin.get("inode")) == (here["device"], here["inode"])
    if origin is not None and not same_folder and _holds(origin.get("path"), old, run_dir):
        return {**manifest, "run_id": new_run_id(), "copied_from": {"path": origin.get("path"), "run_id": old},
                "origin": here}  # fmt: skip
    return {**manifest, "origin": here}


def run_origin(run_dir: Path) -> dict[str, Any]:
    """Where a run's id was given: its folder's resolved path, device and inode (a copy has another inode)."""
    resolved = Path(run_dir).resolve()
    stat = resolved.stat()
    return {"path": str(resolved), "device": stat.st_dev, "inode": stat.st_ino}


def _holds(path: Any, run_id: str, here: Path) -> bool:
    """Whether the folder at `path` (not `here`) is a run with this id."""
    if not isinstance(path, str) or Path(path).resolve() == Path(here).resolve():
        return False
    try:
        return json.loads((Path(path) / MANIFEST).read_text(encoding="utf-8")).get("run_id") == run_id
    except (OSError, ValueError, AttributeError):
        return False


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    manifest = {"schema_version": SCHEMA_VERSION, **manifest}
    write_json(run_dir / MANIFEST, manifest)


# The sections of run.json that commands read, and the fields in them that code relies on (section -> field -> type).
# Each stage owns its section (run.py); anything else in run.json is provenance, kept but never interpreted.
_SECTIONS = ("source", "tokenizer", "generation", "scoring", "counts", "environment")
_SECTION_FIELDS: dict[str, dict[str, type]] = {
    "tokenizer": {"name_or_path": str},
    "generation": {"n": int, "status": str},
    "source": {"skipped_lines": int, "format": str},
}
_REQUIRED_FIELDS = {"tokenizer": ("name_or_path",)}
_EXPECTED = {str: "a string", int: "an integer"}


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """Read run.json, refusing run directories of another schema version and manifests whose known fields have the
    wrong type (a hand edit), with one line naming run.json and the field."""
    path = run_dir / MANIFEST
    if not path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no {MANIFEST}); create one with `e3eval import`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise UserError(f"{path}: must hold a JSON object (the run's manifest), not a {_json_type(manifest)}")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(
            f"{path}: schema_version {version!r}, but this e3eval reads version {SCHEMA_VERSION}; "
            "re-import the run with this version"
        )
    problems = _manifest_problems(manifest)
    if problems:
        raise UserError(f"{path}: " + "; ".join(problems) + " (was it edited by hand?)")
    return manifest


def _manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the fields of a manifest that commands read: `run_id`, `kind`, and the stage sections
    with the fields code relies on; empty for a valid manifest. Fields not listed are not checked."""
    problems = []
    run_id = manifest.get("run_id")
    if run_id == "":
        problems.append("field 'run_id' is empty")
    elif not isinstance(run_id, str):
        problems.append(_wrong("run_id", run_id, "a non-empty string"))
    if manifest.get("name") is not None and not isinstance(manifest["name"], str):
        problems.append(_wrong("name", manifest["name"], "a string"))
    if manifest.get("kind") is not None and not isinstance(manifest["kind"], str):
        problems.append(_wrong("kind", manifest["kind"], "a string"))
    for name in _SECTIONS:
        if name not in manifest:
            continue
        section = manifest[name]
        if not isinstance(section, dict):
            problems.append(_wrong(name, section, "an object"))
            continue
        for key in _REQUIRED_FIELDS.get(name, ()):
            if section.get(key) is None:
                problems.append(f"field '{name}.{key}' is missing")
        for key, kind in _SECTION_FIELDS.get(name, {}).items():
            value = section.get(key)
            # bool is an int to Python, never to a reader of run.json.
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                problems.append(_wrong(f"{name}.{key}", value, _EXPECTED[kind]))
        for key in _BUDGET_LISTS.get(name, ()):
            value = section.get(key)
            if value is not None and not _is_budget_list(value):
                shown = json.dumps(value)[:80]
                problems.append(f"field '{name}.{key}' must be a list of positive integers, not {shown}")
    return problems


# Lists of token budgets that commands read back (a probe takes the scored budgets as its default).
_BUDGET_LISTS = {"scoring": ("budgets",)}


def _is_budget_list(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(b, int) and not isinstance(b, bool) and 0 < b < 2**31 for b in value
    )


def _wrong(name: str, value: Any, expected: str) -> str:
    return (
        f"field '{name}' is missing" if value is None else f"field '{name}' must be {expected}, not {_json_type(value)}"
    )


def _json_type(value: Any) -> str:
    """The JSON name of a parsed value's type, as the user wrote it."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "list", dict: "object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def problems_table(run_id: str, problems: Sequence[Problem]) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * len(problems),
            "problem_id": [p.problem_id for p in problems],
            "dataset": [p.dataset for p in problems],
            "problem": [p.problem for p in problems],
            "answer": [p.answer for p in problems],
            "prompt": [p.prompt for p in problems],
            "prompt_token_ids": [
                list(p.prompt_token_ids) if p.prompt_token_ids is not None else None for p in problems
            ],
        },
        schema=PROBLEM_SCHEMA,
    )


def read_problems(run_dir: Path) -> list[Problem]:
    """The problems of a run, with gold answers, rendered prompts and prompt token ids where stored."""
    path = run_dir / PROBLEMS
    if not path.is_file():
        raise UserError(f"{run_dir}: missing {PROBLEMS}")
    try:
        rows = pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as exc:
        raise UserError(f"{path}: not a readable Parquet table ({exc})") from None
    return [
        Problem(
            problem_id=r["problem_id"],
            answer=r["answer"],
            problem=r["problem"] or "",
            dataset=r["dataset"] or "",
            prompt=r["prompt"] or "",
            prompt_token_ids=tuple(r["prompt_token_ids"]) if r.get("prompt_token_ids") is not None else None,
        )
        for r in rows
    ]


def rollouts_table(run_id: str, rollouts: Sequence[Rollout]) -> pa.Table:
    return pa.table(
        {
            "run_id": [run_id] * len(rollouts),
            "problem_id": [r.problem_id for r in rollouts],
            "sample_idx": [r.sample_idx for r in rollouts],
            "seed": [r.seed for r in rollouts],
            "response": [r.response for r in rollouts],
            "token_ids": [list(r.token_ids) for r in rollouts],
            "num_tokens": [r.num_tokens for r in rollouts],
            "finish_reason": [r.finish_reason for r in rollouts],
            "error": [r.error for r in rollouts],
            "logprobs": [list(r.logprobs) if r.logprobs is not None else None for r in rollouts],
            "source_score": [r.source_score for r in rollouts],
            "inserted": [list(r.inserted) if r.inserted is not None else None for r in rollouts],
        },
        schema=ROLLOUT_SCHEMA,
    )


class RolloutWriter:
    """Appends rollouts to a run as new `part-NNNNN.parquet` shards; existing shards are never rewritten."""

    def __init__(self, run_dir: Path, run_id: str, shard_rows: int = 256) -> None:
        self.dir = run_dir / ROLLOUTS_DIR
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run_id = run_id
        self.shard_rows = shard_rows
        self._buffer: list[Rollout] = []
        self.rows_written = 0

    def add(self, rollout: Rollout) -> None:
        self._buffer.append(rollout)
        if len(self._buffer) >= self.shard_rows:
            self.flush()

    def flush(self) -> None:
        if not self._buffer:
            return
        append_part(
            self.dir, rollouts_table(self.run_id, self._buffer), row_group_rows=TABLES["rollouts"].row_group_rows
        )
        self.rows_written += len(self._buffer)
        self._buffer = []

    def __enter__(self) -> RolloutWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()


def rollout_shards(run_dir: Path) -> list[Path]:
    """The rollout shards, in the order they were written (`parts`)."""
    return parts(run_dir / ROLLOUTS_DIR)


def _unreadable(shard: Path, exc: Exception) -> UserError:
    return UserError(
        f"{shard}: not a readable Parquet shard ({exc}); it was cut short or corrupted. Remove it and rerun "
        "`e3eval generate` with the same settings to regenerate its samples (or re-import the run)"
    )


def count_rollouts(run_dir: Path) -> int:
    total = 0
    for shard in rollout_shards(run_dir):
        try:
            total += pq.ParquetFile(shard).metadata.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise _unreadable(shard, exc) from None
    return total


# Rollout columns that shards written by older e3eval versions lack: read as nulls there.
OPTIONAL_ROLLOUT_COLUMNS = ("logprobs", "source_score", "inserted")


def shard_columns(shard: Path) -> list[str]:
    """The columns of a rollout shard; a damaged file, or a Parquet file that is not a rollout shard (another table
    put in rollouts/), is a UserError naming it."""
    return _checked_columns(shard, _open_shard(shard))


def _open_shard(shard: Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(shard)
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(shard, exc) from None


def _checked_columns(shard: Path, file: pq.ParquetFile) -> list[str]:
    names = file.schema_arrow.names
    missing = [c for c in ROLLOUT_SCHEMA.names if c not in names and c not in OPTIONAL_ROLLOUT_COLUMNS]
    if missing:
        raise UserError(
            f"{shard}: not a rollout shard (no column {', '.join(missing)}); only e3eval's rollout shards belong in "
            f"{ROLLOUTS_DIR}/: move this file out of the run"
        )
    return names


def iter_shard_batches(shard: Path, columns: Sequence[str], batch_rows: int = 256) -> Iterator[pa.RecordBatch]:
    """Stream one shard's rows, reading only `columns` (optional ones it lacks come as nulls); a damaged or foreign
    file is a UserError naming it."""
    file = _open_shard(shard)  # one footer read per shard: the schema check and the batches share it
    present = _checked_columns(shard, file)
    absent = [c for c in columns if c not in present]
    unknown = [c for c in absent if c not in OPTIONAL_ROLLOUT_COLUMNS]
    if unknown:
        raise UserError(f"{shard}: no column {', '.join(unknown)}")
    try:
        for batch in file.iter_batches(batch_size=batch_rows, columns=[c for c in columns if c in present]):
            if absent:
                arrays = [
                    batch.column(c) if c in present else pa.nulls(batch.num_rows, ROLLOUT_SCHEMA.field(c).type)
                    for c in columns
                ]
                batch = pa.RecordBatch.from_arrays(arrays, names=list(columns))
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(shard, exc) from None


def iter_rollout_batches(run_dir: Path, columns: Sequence[str], batch_rows: int = 256) -> Iterator[pa.RecordBatch]:
    """Stream rollout rows shard by shard, reading only `columns` (never the whole pool at once)."""
    shards = rollout_shards(run_dir)
    if not shards:
        raise UserError(f"{run_dir}: no rollouts in {ROLLOUTS_DIR}/")
    for shard in shards:
        yield from iter_shard_batches(shard, columns, batch_rows)


def shard_row_groups(shard: Path) -> list[int]:
    """The number of rows in each row group of a rollout shard, in order: where a row lies, for a reader of one row
    (`read_row_group`); a damaged or foreign file is a UserError naming it."""
    file = _open_shard(shard)
    _checked_columns(shard, file)
    metadata = file.metadata
    return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]


def read_row_group(shard: Path, row_group: int, columns: Sequence[str]) -> pa.Table:
    """One row group of a rollout shard, only `columns` (optional ones it lacks come as nulls): the least a reader of
    one row decompresses (pyarrow reads no smaller unit). A damaged or foreign file is a UserError naming it."""
    file = _open_shard(shard)
    present = _checked_columns(shard, file)
    unknown = [c for c in columns if c not in present and c not in OPTIONAL_ROLLOUT_COLUMNS]
    if unknown:
        raise UserError(f"{shard}: no column {', '.join(unknown)}")
    try:
        table = file.read_row_group(row_group, columns=[c for c in columns if c in present])
    except (pa.ArrowException, OSError) as exc:
        raise _unreadable(shard, exc) from None
    arrays = [
        table.column(c) if c in present else pa.nulls(table.num_rows, ROLLOUT_SCHEMA.field(c).type) for c in columns
    ]
    return pa.table(arrays, names=list(columns))
