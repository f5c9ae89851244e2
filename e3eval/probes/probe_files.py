"""Where `e3eval probe` writes, and how one call's rows join what earlier calls wrote.

The tables go to RUN/probes.parquet (and attempt_probes.parquet), committed with run.json's `probes` section, or to
a `--out` file outside every run directory. A call's finished samples go first to numbered parts in a folder beside
the output (`Run.append_part`); the next call reads the final tables and those parts (`earlier_tables`) as its
resume point, and `finish` folds them all, oldest first, into the final tables in one write and drops the parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.errors import UserError
from e3eval.outputs import record_written, written_by_e3eval
from e3eval.probes.table import (
    ATTEMPT_SCHEMA,
    ATTEMPT_SLOT,
    PROBE_SCHEMA,
    PROBE_SLOT,
    conform,
    latest,
    part_files,
    read_parts,
    run_grades,
    with_grades,
)
from e3eval.run import Run
from e3eval.store import ATTEMPT_PROBES, MANIFEST, PROBES, write_table


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
    for path in (out, attempts_path(out, run)):
        if path.exists() and not force and not written_by_e3eval(path):
            raise UserError(
                f"--out {out}: {path.name} exists and was not written by e3eval (or was changed since), so its "
                "rows cannot be trusted as measurements; give a new file, or pass --force to take it as it is"
            )
    return out


@dataclass(frozen=True)
class ProbeOutputs:
    """Where one call's tables go, and the folder of parts that makes it resumable."""

    probes: Path
    attempts: Path
    parts: Path

    @classmethod
    def of(cls, out: Path, run: Run) -> ProbeOutputs:
        return cls(out, attempts_path(out, run), out.with_name(f".{out.name}.parts"))


def attempts_path(out: Path, run: Run) -> Path:
    if out == run.path / PROBES:
        return run.path / ATTEMPT_PROBES
    return out.with_name(f"{out.stem}.attempts{out.suffix or '.parquet'}")


def earlier_tables(run: Run, outputs: ProbeOutputs) -> tuple[list[pa.Table], list[pa.Table]]:
    """What earlier calls computed, oldest first: the final tables, then the parts an interrupted call left."""
    own = outputs.probes == run.path / PROBES
    probes = [_read(outputs.probes, PROBE_SCHEMA, run, own), *read_parts(outputs.parts, "probes", PROBE_SCHEMA)]
    attempts = [_read(outputs.attempts, ATTEMPT_SCHEMA, run, own),
                *read_parts(outputs.parts, "attempts", ATTEMPT_SCHEMA)]  # fmt: skip
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


def finish(run: Run, outputs: ProbeOutputs, settings: dict[str, Any], probes_in: list[pa.Table],
            attempts_in: list[pa.Table]) -> pa.Table:  # fmt: skip
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
    if outputs.probes == run.path / PROBES:
        run.commit("probes", section, tables)
    else:
        for name, path in (("probes", outputs.probes), ("attempt_probes", outputs.attempts)):
            if name in tables:
                write_table(path, tables[name])
                record_written(path)
    for part in part_files(outputs.parts):
        part.unlink()
    if outputs.parts.is_dir() and not any(outputs.parts.iterdir()):
        outputs.parts.rmdir()
    return probes


def _sorted(table: pa.Table) -> pa.Table:
    order = ("run_id", "step", "model", "ref", "dtype", "preset", "problem_id", "sample_idx", "budget", "k")
    return table.sort_by([(c, "ascending") for c in order if c in table.column_names])
