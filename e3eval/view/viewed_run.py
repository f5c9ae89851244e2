"""One run as `e3eval view` holds it: its sample index, its tokenizer, and its small tables read once per change.

A `ViewedRun` opens a run directory (a folder that is not a run is a UserError naming it) and keeps what the pages
ask for again and again: the problems, the grades of the last scoring (indexed by sample), the forced answers of that
scoring's setting, and where each sample's per-token probe row lies. Each is re-read only when its file (or run.json)
changed, so a reload after `score` or `probe` shows the new numbers; a grades table whose unit differs from run.json's
(a scoring in progress) is reported as being rescored, never shown. The tokenizer (for token-exact text, cuts and
heat) loads once, on first use or on `preload`'s thread; a run whose tokenizer does not load is shown from its stored
`response` text, with the reason. This module reads tables; payloads are `payload.py`'s, text offsets
`sample_text.py`'s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.errors import UserError
from e3eval.labels import short_model
from e3eval.manifest import RunManifest
from e3eval.run import Run, UnitMismatch
from e3eval.store import GRADES, MANIFEST, PROBES, PROBLEMS, ids_sha1
from e3eval.truncate import PrefixDecoder
from e3eval.view.index import Key, SampleIndex, file_stamp

_PROBE_KEYS = ("problem_id", "sample_idx", "ids_sha1", "budget")
HEAT_COLUMNS = {"entropy": "token_entropy", "logprob": "token_logprob", "kl": "token_kl"}
# One tokenizer load at a time across runs: transformers imports its classes lazily, and two threads importing them
# at once (the preload thread on one run, a request on another) can see a half-initialised module (ImportError).
_LOADING_TOKENIZER = threading.Lock()


@dataclass(frozen=True)
class Grades:
    """The last scoring's grades: its policy, budgets, the table, and each sample's rows by budget."""

    policy: str | None
    table: pa.Table
    by_sample: dict[Key, dict[int, dict[str, Any]]]


@dataclass(frozen=True)
class ForcedText:
    """A stored forced answer: the text graded (cue + continuation), or why its request failed."""

    text: str | None
    error: str | None


@dataclass(frozen=True)
class _ProbeRow:
    row_group: int
    row: int
    ids_sha1: str | None
    budget: int


class ViewedRun:
    """A run directory opened for viewing (position `index` on the command line)."""

    def __init__(self, index: int, path: Path | str) -> None:
        self.index = index
        self.path = Path(path)
        if not (self.path / MANIFEST).is_file():
            raise UserError(f"{self.path}: not a run directory (no {MANIFEST}); give e3eval view run directories"
                            + _runs_below(self.path))  # fmt: skip
        Run.open(self.path)  # a run.json of another version, or broken, is refused here
        self.samples = SampleIndex(self.path)
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()
        self._decoder: tuple[PrefixDecoder | None, Any, str | None] | None = None
        self._cache: dict[str, tuple[Any, Any]] = {}
        self._probe_groups: dict[tuple[Any, int], pa.Table] = {}

    # Run-level facts -----------------------------------------------------------------------------------------------

    def run(self) -> Run:
        """The run as it is now: run.json parsed again only when it changed (a rescoring shows)."""
        return self.cached("run", [], lambda: Run.open(self.path))

    @property
    def record(self) -> RunManifest:
        return self.run().record

    def cached(self, name: str, files: list[Path], build: Callable[[], Any]) -> Any:
        """`build()`, re-run only when one of `files` (and run.json) changed since it last ran."""
        stamp = tuple(file_stamp(p) for p in [self.path / MANIFEST, *files])
        with self._lock:
            held = self._cache.get(name)
            if held is not None and held[0] == stamp:
                return held[1]
        value = build()
        with self._lock:
            self._cache[name] = (stamp, value)
        return value

    def problems(self) -> dict[str, dict[str, Any]]:
        """problem_id -> {problem, answer, dataset}, in the run's order."""

        def build() -> dict[str, dict[str, Any]]:
            table = self.run().table("problems", ["problem_id", "problem", "answer", "dataset"])
            return {row.pop("problem_id"): row for row in table.to_pylist()}

        return self.cached("problems", [self.path / PROBLEMS], build)

    # The tokenizer -------------------------------------------------------------------------------------------------

    def preload(self) -> None:
        """Load the tokenizer now (the server calls it on a thread at start: the first page does not need it)."""
        self.decoder()

    def decoder(self) -> tuple[PrefixDecoder | None, Any, str | None]:
        """(prefix decoder, tokenizer, None), or (None, None, why not) when the run's tokenizer cannot be used."""
        with self._tokenizer_lock:
            if self._decoder is None:
                self._decoder = self._load_decoder()
            return self._decoder

    def _load_decoder(self) -> tuple[PrefixDecoder | None, Any, str | None]:
        from e3eval.tokenizers import fingerprint, load_tokenizer

        record = self.record.tokenizer
        if not record.name_or_path:
            return None, None, "run.json names no tokenizer"
        try:
            with _LOADING_TOKENIZER:
                tokenizer = load_tokenizer(record.name_or_path)
        except UserError as exc:
            return None, None, f"{exc}: the stored response text is shown, without budget cuts"
        if record.fingerprint and fingerprint(tokenizer) != record.fingerprint:
            why = (
                f"the tokenizer at {record.name_or_path} is not the one the run was written with (another fingerprint)"
            )
            return None, None, f"{why}: the stored response text is shown, without budget cuts"
        return PrefixDecoder(tokenizer), tokenizer, None

    # Grades, forced answers, probes -----------------------------------------------------------------------------

    def grades(self) -> tuple[Grades | None, str | None]:
        """The last scoring's grades, or None and why (not scored; being rescored)."""
        try:
            return self.cached("grades", [self.path / GRADES], self._read_grades), None
        except UnitMismatch as exc:  # grades.parquet and run.json of two scorings: one is in progress
            return None, f"being rescored ({exc}); reload when the scoring has finished"
        except UserError as exc:
            if not (self.path / GRADES).is_file():
                return None, "not scored yet"
            return None, f"grades unreadable ({exc}); rescore the run with `e3eval score`"

    def _read_grades(self) -> Grades:
        run = self.run()
        table = run.table("grades")
        by_sample: dict[Key, dict[int, dict[str, Any]]] = {}
        for row in table.to_pylist():
            by_sample.setdefault((row["problem_id"], row["sample_idx"]), {})[row["budget"]] = row
        scoring = run.record.scoring
        return Grades(scoring.policy if scoring is not None else None, table, by_sample)

    def forced_setting(self) -> dict[str, Any] | None:
        """run.json's record of the last `--policy forced` scoring's setting (model, cue, cue ids, delimiter)."""
        scoring = self.record.scoring
        if scoring is None:
            return None
        forced = scoring.policy_record("forced").fields.get("forced")
        return forced if isinstance(forced, dict) else None

    def forced(self) -> dict[tuple[str, int, int], ForcedText]:
        """(problem_id, sample_idx, budget) -> the stored forced answer of the recorded setting; a success supersedes
        a failure, and a later row an earlier one of the same kind (as `forced_answer.read_stored` decides)."""
        parts = self.run().parts("forced")
        return self.cached("forced", parts, lambda: self._read_forced(parts))

    def _read_forced(self, parts: list[Path]) -> dict[tuple[str, int, int], ForcedText]:
        setting = self.forced_setting()
        if setting is None or not parts:
            return {}
        model = setting.get("model_path") or setting.get("model")
        wanted = {"model": model, "cue": setting.get("cue"), "answer_tokens": setting.get("answer_tokens"),
                  "think_end": setting.get("think_end_text")}  # fmt: skip
        cue_ids = [int(i) for i in setting.get("cue_ids") or []]
        _, tokenizer, _ = self.decoder()
        raw: dict[tuple[str, int, int], tuple[list[int], str | None, str | None]] = {}
        columns = ["problem_id", "sample_idx", "budget", "token_ids", "text", "error", *wanted]
        for part in parts:
            try:
                rows = pq.read_table(part, columns=columns).to_pylist()
            except (pa.ArrowException, OSError, KeyError):
                continue  # a part of another layout: `score` names it; the viewer shows what it can read
            for row in rows:
                if any(row[name] != value for name, value in wanted.items()):
                    continue
                key = (row["problem_id"], row["sample_idx"], row["budget"])
                if row["error"] is None or key not in raw or raw[key][2] is not None:
                    raw[key] = (row["token_ids"] or [], row["text"], row["error"])
        answers = {}
        for key, (ids, text, error) in raw.items():
            if error is not None:
                answers[key] = ForcedText(None, error)
            elif tokenizer is not None and cue_ids:
                answers[key] = ForcedText(tokenizer.decode([*cue_ids, *ids], skip_special_tokens=True), None)
            else:
                answers[key] = ForcedText(f"{setting.get('cue') or ''}{text or ''}", None)
        return answers

    def _prompt_ids(self) -> dict[str, list[int] | None]:
        """problem_id -> the prompt ids a probe read before the response: stored ones, else the stored prompt
        tokenized without special tokens (as `probes.alignment` does); None without a prompt (an import)."""

        def build() -> dict[str, list[int] | None]:
            table = self.run().table("problems", ["problem_id", "prompt", "prompt_token_ids"])
            _, tokenizer, _ = self.decoder()
            ids: dict[str, list[int] | None] = {}
            for row in table.to_pylist():
                if row["prompt_token_ids"]:
                    ids[row["problem_id"]] = row["prompt_token_ids"]
                elif row["prompt"] and tokenizer is not None:
                    ids[row["problem_id"]] = list(tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
                else:
                    ids[row["problem_id"]] = None
            return ids

        return self.cached("prompt_ids", [self.path / PROBLEMS], build)

    def heat(self, key: Key, ids: np.ndarray) -> dict[str, Any] | None:
        """The per-token probe lists of this sample, from the largest budget's row, which alone carries them; the
        row must have read these very ids (`ids_sha1` of prompt + response: a regenerated sample's rows are not its
        own). None when no such row exists."""
        path = self.path / PROBES
        if not path.is_file():
            return None
        rows = self.cached("probe_rows", [path], lambda: _probe_rows(path)).get(key, [])
        prompt = self._prompt_ids().get(key[0]) if rows else None
        if prompt is None:
            return None
        read = ids_sha1(np.concatenate([np.asarray(prompt, dtype=np.int32), np.asarray(ids, dtype=np.int32)]))
        for probe in sorted(rows, key=lambda r: -r.budget):
            if probe.ids_sha1 != read:
                continue
            table = self._probe_group(path, probe.row_group)
            values = {name: _floats(table, column, probe.row) for name, column in HEAT_COLUMNS.items()}
            if any(v is not None for v in values.values()):
                return {"model": short_model(table.column("model")[probe.row].as_py()), **values}
        return None

    def _probe_group(self, path: Path, group: int) -> pa.Table:
        """One row group of the probe table, the per-token lists only; the last two read are kept (a probe table
        written as one row group is read once)."""
        key = (file_stamp(path), group)
        with self._lock:
            table = self._probe_groups.get(key)
            if table is not None:
                return table
        file = pq.ParquetFile(path)
        present = [c for c in HEAT_COLUMNS.values() if c in file.schema_arrow.names]
        table = file.read_row_group(group, columns=[*present, "model"])
        with self._lock:
            self._probe_groups[key] = table
            while len(self._probe_groups) > 2:
                self._probe_groups.pop(next(iter(self._probe_groups)))
        return table


def _runs_below(folder: Path, most: int = 6) -> str:
    """A clause naming run directories up to two levels below `folder` (a parent of runs given by mistake), or ""."""
    if not folder.is_dir():
        return ""
    found = sorted(str(m.parent) for pattern in (f"*/{MANIFEST}", f"*/*/{MANIFEST}") for m in folder.glob(pattern))
    if not found:
        return ""
    more = f" (and {len(found) - most} more)" if len(found) > most else ""
    return ", such as the ones below it: " + " ".join(found[:most]) + more


def _probe_rows(path: Path) -> dict[Key, list[_ProbeRow]]:
    """Where each sample's probe rows lie (row group, row), with the fingerprint and budget to choose by."""
    file = pq.ParquetFile(path)
    names = file.schema_arrow.names
    if any(c not in names for c in _PROBE_KEYS) or not any(c in names for c in HEAT_COLUMNS.values()):
        return {}  # a table from before per-token lists or ids fingerprints: no heat can be matched to a sample
    found: dict[Key, list[_ProbeRow]] = {}
    for group in range(file.metadata.num_row_groups):
        table = file.read_row_group(group, columns=list(_PROBE_KEYS))
        columns = (table.column(c).to_pylist() for c in _PROBE_KEYS)
        for row, (pid, idx, sha1, budget) in enumerate(zip(*columns, strict=True)):
            found.setdefault((pid, idx), []).append(_ProbeRow(group, row, sha1, budget))
    return found


def _floats(table: pa.Table, column: str, row: int) -> np.ndarray | None:
    """One row's per-token list as float64 (NaN where null: an inserted token), or None when the row has none."""
    if column not in table.column_names:
        return None
    scalar = table.column(column)[row]
    if not scalar.is_valid:
        return None
    return scalar.values.to_numpy(zero_copy_only=False).astype(np.float64)
