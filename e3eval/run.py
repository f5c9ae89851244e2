"""The run directory as one typed interface for e3eval's stages: `Run` (a notebook reads runs through
`e3eval.load_run`, the read-only view in `notebook.py`).

A `Run` owns a run directory: its paths, its manifest and the tables in it. Every stage reads and writes through it:
- the manifest (`run.json`) is split into sections, one per stage (`generation`, `source`, `tokenizer`, `scoring`, and
  later `probes`, `forced`). A stage writes only its own sections (`write_sections`), which re-reads run.json and
  replaces just those keys, so scoring never clobbers what generation recorded and the reverse;
- tables come as pyarrow (`table`) or pandas (`frame`); rollouts stream batch by batch (`rollout_batches`), and only
  samples count (`samples`: failed requests are recorded, never samples; see `samples.py`);
- writers hold the run's lock (`lock`); commands that replace a whole directory build it beside the target and swap
  it in only on success (`replacing`), so a failure leaves the old directory as it was.
This module knows the layout and schemas (from `store.py`), not what the columns mean: truncation, grading and
metrics live elsewhere.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.backends.logs import ENGINE_LOGS
from e3eval.errors import UserError
from e3eval.manifest import RunManifest
from e3eval.records import Problem
from e3eval.store import (
    ATTEMPT_PROBES,
    COMPRESSION,
    GRADES,
    MANIFEST,
    PROBES,
    PROBLEMS,
    ROLLOUTS_DIR,
    SUMMARY,
    SUMMARY_CSV,
    TABLES,
    RolloutWriter,
    append_part,
    iter_rollout_batches,
    parts,
    read_manifest,
    read_problems,
    rollout_shards,
    run_lock,
    shard_columns,
    with_identity,
    write_csv,
    write_manifest,
)

if TYPE_CHECKING:
    import pandas as pd

    from e3eval.samples import SampleLedger

TableName = Literal["problems", "rollouts", "grades", "summary", "probes", "attempt_probes"]
_FILES: dict[str, str] = {
    "problems": PROBLEMS,
    "grades": GRADES,
    "summary": SUMMARY,
    "probes": PROBES,
    "attempt_probes": ATTEMPT_PROBES,
}
# Which run.json section a table is written with (`Run.commit`), and the Parquet metadata key naming the unit.
_OWNER = {"grades": "scoring", "summary": "scoring", "probes": "probes", "attempt_probes": "probes"}
_UNIT_KEY = b"e3eval.unit"
_MISSING_HINT = {
    "problems": "the run is incomplete; re-import it or rerun `e3eval generate`",
    "grades": "score it first: e3eval score {path} --budgets ...",
    "summary": "score it first: e3eval score {path} --budgets ...",
    "probes": "probe it first: e3eval probe {path} (--model: the run's own, unless given)",
    "attempt_probes": "probe it first: e3eval probe {path} --attempts PRESET",
}


class UnitMismatch(UserError):
    """A table written by another run of its stage than the one run.json records: a command interrupted, or one
    still writing (a reader may retry once it has finished)."""


class Run:
    """A run directory opened for reading (and, under `lock`, writing). Cheap to open: nothing is read but run.json."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self._manifest = manifest

    @classmethod
    def open(cls, path: Path | str) -> Run:
        """Open an existing run; a directory without run.json, or of another schema version, is a UserError."""
        path = Path(path)
        return cls(path, read_manifest(path))

    @classmethod
    def create(cls, path: Path | str, manifest: dict[str, Any]) -> Run:
        """Write run.json of a new (or rebuilt) run: generation's first write, an import's or a merge's last."""
        path = Path(path)
        write_manifest(path, manifest)
        return cls(path, read_manifest(path))

    @classmethod
    def building(cls, path: Path | str) -> Run:
        """A run whose run.json is not written yet (an import or merge filling its folder): tables only."""
        return cls(Path(path), {})

    # The manifest ------------------------------------------------------------------------------------------------

    @property
    def manifest(self) -> dict[str, Any]:
        """A copy of run.json as last read or written by this handle."""
        return dict(self._manifest)

    @property
    def run_id(self) -> str:
        """The run's identity: a uuid written when it was created, kept by grow and merge, never its folder's name.
        A run written before identities were uuids has its old id here until its first write (`ensure_identity`)."""
        return str(self._manifest.get("run_id") or self.path.name)

    @property
    def name(self) -> str:
        """The run's label in reports: `--name` at import, else its folder's name."""
        return str(self._manifest.get("name") or self.path.name)

    def ensure_identity(self) -> str:
        """Before a write (call under `lock`): give a run written before identities were uuids its uuid, and a copy of
        another run a new one (`store.with_identity`); returns the run_id."""
        current = read_manifest(self.path)
        updated = with_identity(current, self.path)
        if updated is not current:
            write_manifest(self.path, updated)
            self._manifest = read_manifest(self.path)
        return self.run_id

    @property
    def kind(self) -> str:
        """`generated`, `imported` or `merged`."""
        return str(self._manifest.get("kind") or ("generated" if "generation" in self._manifest else "imported"))

    @property
    def record(self) -> RunManifest:
        """run.json as typed sections (`manifest.RunManifest`): what every reader outside this module uses."""
        return RunManifest.from_dict(self._manifest)

    def section(self, name: str) -> dict[str, Any] | None:
        """One stage's section of run.json as a plain dict (None when that stage has not run): for writers, tests
        and this module; readers use `record`."""
        value = self._manifest.get(name)
        return dict(value) if isinstance(value, dict) else None

    @property
    def tokenizer_name(self) -> str | None:
        """The tokenizer the run's token ids belong to (path or hub name), as recorded."""
        return self.record.tokenizer.name_or_path

    @property
    def samples_wanted(self) -> int | None:
        """n per problem for generated runs; None when the run does not say (imports)."""
        generation = self.record.generation
        return generation.n or None if generation is not None else None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        """Replace run.json whole: for generation, which owns the run's identity and every section it records."""
        write_manifest(self.path, manifest)
        self._manifest = read_manifest(self.path)

    def write_sections(self, **sections: Any) -> None:
        """Replace these top-level keys of run.json (re-read from disk first); the rest stays as it is on disk."""
        current = read_manifest(self.path) if (self.path / MANIFEST).is_file() else {}
        current.update(sections)
        write_manifest(self.path, current)
        self._manifest = read_manifest(self.path)

    # Tables ------------------------------------------------------------------------------------------------------

    def has(self, name: TableName) -> bool:
        if name == "rollouts":
            return bool(rollout_shards(self.path))
        return (self.path / _FILES[name]).is_file()

    def table(self, name: TableName, columns: Sequence[str] | None = None) -> pa.Table:
        """A whole table as pyarrow (rollouts: every shard, failed rows included; prefer `rollout_batches`)."""
        if name == "rollouts":
            batches = list(self.rollout_batches(columns or self.rollout_columns()))
            return pa.Table.from_batches(batches)
        path = self.path / _FILES[name]
        if not path.is_file():
            raise UserError(f"{self.path}: no {path.name}; {_MISSING_HINT[name].format(path=self.path)}")
        try:
            table = pq.read_table(path, columns=list(columns) if columns else None)
        except (pa.ArrowException, OSError) as exc:
            raise UserError(f"{path}: not a readable Parquet table ({exc})") from None
        self._check_unit(name, path, table)
        if name in ("probes", "attempt_probes"):
            table = self._with_current_grades(table)
        return table

    def _with_current_grades(self, table: pa.Table) -> pa.Table:
        """Probe rows with `correct` joined from the grades as they are now: a scoring after the probe (other budgets,
        another policy) is what they show, never the grades of the scoring they were written under."""
        from e3eval.probes.table import run_grades, with_grades

        own = {self.run_id, *([self._manifest["legacy_run_id"]] if self._manifest.get("legacy_run_id") else [])}
        return with_grades(table, own, run_grades(self))

    def _check_unit(self, name: str, path: Path, table: pa.Table) -> None:
        """A table written with its section (`commit`) must name the same unit as run.json does."""
        written = (table.schema.metadata or {}).get(_UNIT_KEY)
        section = self.section(_OWNER.get(name, "")) or {}
        if written is not None and section.get("unit") not in (None, written.decode()):
            raise UnitMismatch(
                f"{path}: written by another `{_OWNER[name]}` run than the one run.json records (was a command "
                f"interrupted?); rerun it to make {path.name} and run.json agree"
            )

    def frame(self, name: TableName, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A whole table as a pandas DataFrame (needs pandas)."""
        return self.table(name, columns).to_pandas()

    def problem_records(self) -> list[Problem]:
        """The run's problems with gold answers, rendered prompts and prompt token ids (where stored)."""
        return read_problems(self.path)

    def rollout_columns(self) -> list[str]:
        """The rollout table's columns (those of its first shard); no rollouts is a UserError."""
        shards = rollout_shards(self.path)
        if not shards:
            raise UserError(f"{self.path}: no rollouts in {ROLLOUTS_DIR}/")
        return shard_columns(shards[0])

    # figures/readers.py reads probe tables as `load_run(path).probes`: kept until it reads `frame(kind)`.

    # Resumable tables: folders of append-only parts -------------------------------------------------------------

    def append_part(self, name: str, table: pa.Table, folder: Path | None = None, prefix: str = "part") -> Path:
        """Add `table` as the next part of table `name` (`store.TABLES`: rollouts, forced) or, with `folder`, of a
        table built outside the run's own folders (an interrupted probe's parts beside its output, one `prefix` per
        table there). One naming scheme, `PREFIX-NNNNN.parquet`, for all; returns the part's path."""
        return append_part(folder if folder is not None else self._parts_dir(name), table, prefix)

    def parts(self, name: str, folder: Path | None = None, prefix: str = "part") -> list[Path]:
        """The parts of table `name` (or of `folder`), in the order they were written."""
        return parts(folder if folder is not None else self._parts_dir(name), prefix)

    def rollout_writer(self, run_id: str | None = None, shard_rows: int = 256) -> RolloutWriter:
        """Rollouts buffered into parts of `rollouts/` (`append_part`'s scheme)."""
        return RolloutWriter(self.path, run_id or self.run_id, shard_rows)

    def _parts_dir(self, name: str) -> Path:
        spec = TABLES.get(name)
        if spec is None or not spec.parts:
            raise ValueError(f"{name!r} is not a table of parts")
        return self.path / spec.path

    def rollout_batches(self, columns: Sequence[str], batch_rows: int = 256) -> Iterator[pa.RecordBatch]:
        """Stream rollout rows shard by shard (failed rows included: filter with `samples().keep`)."""
        return iter_rollout_batches(self.path, columns, batch_rows)

    def samples(self, problems: Sequence[Problem] | None = None) -> SampleLedger:
        """Which stored rows are samples, and what is failed or missing (see `samples.py`); pass `problems` when
        they are already read."""
        from e3eval.samples import ledger

        problems = self.problem_records() if problems is None else problems
        return ledger(self.path, self.record.generation, [p.problem_id for p in problems])

    def commit(self, section: str, data: dict[str, Any], tables: dict[str, pa.Table]) -> str:
        """Write a stage's tables and its run.json section as one unit; returns the unit's id.

        Every table is written to a temporary file first, then all are renamed into place and run.json is written
        last, naming the unit; each table carries the same id in its Parquet metadata. A reader of a table whose id
        differs from its section's (an interrupted write) gets a UserError instead of mixed results.
        """
        unit = uuid.uuid4().hex
        staged: list[tuple[Path, Path]] = []
        try:
            for name, table in tables.items():
                target = self.path / _FILES[name]
                tagged = table.replace_schema_metadata({**(table.schema.metadata or {}), _UNIT_KEY: unit.encode()})
                temp = target.with_name(f".{target.name}.unit-{unit}")
                pq.write_table(tagged, temp, compression=COMPRESSION)
                staged.append((temp, target))
            for temp, target in staged:
                os.replace(temp, target)
        finally:
            for temp, _ in staged:
                temp.unlink(missing_ok=True)
        if "summary" in tables:
            write_csv(self.path / SUMMARY_CSV, tables["summary"])
        self.write_sections(**{section: {**data, "unit": unit}})
        return unit

    # Writing safely ----------------------------------------------------------------------------------------------

    def lock(self, command: str) -> AbstractContextManager[None]:
        """The run's exclusive writer lock (see `store.run_lock`)."""
        return run_lock(self.path, command)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r}, kind={self.kind!r})"


@contextmanager
def replacing(target: Path, inputs: Sequence[Path] = (), force: bool = False) -> Iterator[Path]:
    """Build a directory that will become `target`; it is swapped in only if the block succeeds.

    Yields an empty folder beside `target` to build in. On success an existing `target` is replaced (only with
    `force`, and only if it is an e3eval run or empty); on any failure the folder is removed and `target` is left
    exactly as it was. A target that is, contains or lies inside one of `inputs` is refused before anything is
    touched, so no command can delete what it reads.
    """
    target = Path(target)
    resolved = target.resolve()
    for source in inputs:
        source = Path(source).resolve()
        if resolved == source or resolved in source.parents or source in resolved.parents:
            raise UserError(f"{target}: is, contains or lies inside the input {source}; choose another output")
    if target.exists():
        if not target.is_dir():
            raise UserError(f"{target}: exists and is not a directory")
        left = [p for p in target.iterdir() if p.name != ENGINE_LOGS or p.is_symlink() or not p.is_dir()]
        if left:  # (the logs/ of an engine that did not start is not a run's content)
            if not force:
                raise UserError(f"{target}: already exists and is not empty (pass --force to replace it)")
            if not (target / MANIFEST).is_file():
                raise UserError(f"{target}: not an e3eval run (no {MANIFEST}); --force replaces only runs")
            foreign = _foreign_entries(target)
            if foreign:
                shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
                raise UserError(f"{target}: holds files e3eval did not write ({shown}); --force replaces a run, not "
                                "your files: move them out first")  # fmt: skip
    target.parent.mkdir(parents=True, exist_ok=True)
    building = target.parent / f".{target.name}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir()
    try:
        yield building
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    old = target.parent / f".{target.name}.replaced-{os.getpid()}"
    if target.exists():
        os.replace(target, old)
    os.replace(building, target)
    shutil.rmtree(old, ignore_errors=True)


# What e3eval writes into a run directory: its tables, run.json, the CSV summary, engine logs and a sweep's plots.
_RUN_ENTRIES = frozenset({MANIFEST, SUMMARY_CSV, ENGINE_LOGS, *(spec.path for spec in TABLES.values())})


def _foreign_entries(target: Path) -> list[str]:
    """Entries of run directory `target` that no e3eval stage wrote (hidden ones are e3eval's parts, temporary files
    and sidecars), by their path inside it: what `replacing` must not delete."""
    foreign = []
    for entry in sorted(target.iterdir()):
        if entry.name.startswith(".") or (entry.name in _RUN_ENTRIES and not entry.is_symlink()):
            continue
        if entry.name == "figures" and entry.is_dir() and not entry.is_symlink():
            foreign += [f"figures/{p.name}" for p in sorted(entry.iterdir())
                        if not (p.name.startswith(".") or p.stem == "sweep") or p.is_dir()]  # fmt: skip
            continue
        foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign
