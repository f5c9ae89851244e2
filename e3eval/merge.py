"""`e3eval merge`: join shard runs (`generate --shard i/N`) with identical settings into one run.

The merged run is built beside its target and swapped in only when complete (`run.replacing`): a refused or failed
merge leaves the target as it was, `--force` replaces only an e3eval run, and the target may not be one of the
inputs. Shards must not overlap (a sample in two shards is refused); failed rows are carried over for the record.
Generating is `generation.py`'s business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.errors import UserError
from e3eval.generation import count_insertions, done_samples
from e3eval.manifest import GenerationRecord
from e3eval.provenance import now
from e3eval.run import Run, replacing
from e3eval.store import (
    PROBLEM_SCHEMA,
    PROBLEMS,
    ROLLOUTS_DIR,
    is_run_id,
    new_run_id,
    run_lock,
    run_origin,
    write_table,
)


def merge_runs(out: Path, sources: list[Path], force: bool = False, allow_missing: bool = False) -> int:
    """Join shard runs with identical settings into `out`; returns the number of samples (failed rows are kept).

    Shards of one split (`--shard i/N`) must all be there, unless `allow_missing`: a SLURM task that died would
    otherwise leave its problems out of every number without a word.

    The merged run is built beside `out` and swapped in only when complete (`run.replacing`): a refused or failed
    merge leaves `out` as it was, `--force` replaces only an e3eval run, and `out` may not be one of the inputs.
    """
    if not sources:
        raise UserError("give the run directories to merge")
    resolved = [Path(s).resolve() for s in sources]
    repeated = sorted({str(s) for s in sources if resolved.count(Path(s).resolve()) > 1})
    if repeated:
        raise UserError(f"{', '.join(repeated)}: given more than once; shards must not overlap")
    runs = [Run.open(s) for s in sources]
    with run_lock(out, "merge"), replacing(out, inputs=sources, force=force) as building:
        ids = {r.run_id for r in runs}
        run_id = ids.pop() if len(ids) == 1 and is_run_id(runs[0].run_id) else new_run_id()
        return _merge(building, run_id, runs, allow_missing)


def check_complete(runs: list[Run]) -> None:
    """Refuse a split (`--shard i/N`) with shards missing, or a shard missing samples (a generation interrupted or
    stopped), naming them."""
    split: dict[int, set[int]] = {}
    for run in runs:
        ledger = run.samples()
        if ledger.missing or ledger.problems_without_samples:
            raise UserError(f"{run.path}: {ledger.describe()}; rerun its `e3eval generate` to finish it, or pass "
                            "--allow-missing to merge what it holds")  # fmt: skip
        shard = (run.record.generation.shard if run.record.generation is not None else None) or ""
        index, _, count = shard.partition("/")
        if index.isdigit() and count.isdigit():
            split.setdefault(int(count), set()).add(int(index))
    for count, indices in split.items():
        missing = [f"{i}/{count}" for i in range(count) if i not in indices]
        if count > 1 and missing:
            raise UserError(f"shard(s) {', '.join(missing)} of the {count}-way split are not among the runs to merge: "
                            "their problems would be missing from every number; merge all of them, or pass "
                            "--allow-missing")  # fmt: skip


def _merge(building: Path, run_id: str, runs: list[Run], allow_missing: bool = False) -> int:
    first = runs[0].record.generation
    if first is None:
        raise UserError(f"{runs[0].path}: not a generated run")
    for run in runs[1:]:
        diffs = first.differences(run.record.generation or GenerationRecord())
        if diffs:
            raise UserError(f"{run.path}: settings differ from {runs[0].path} ({', '.join(diffs)}); cannot merge")
    try:
        check_complete(runs)
        whole = True
    except UserError:
        if not allow_missing:
            raise
        whole = False  # recorded: a merge that left shards out holds part of the dataset (`GenerationRecord.subset`)
    merged = Run.building(building)
    (building / ROLLOUTS_DIR).mkdir(parents=True)
    problems: dict[str, dict[str, Any]] = {}
    seen: set[tuple[str, int]] = set()
    for run in runs:
        for row in run.table("problems").to_pylist():
            problems.setdefault(row["problem_id"], {**row, "run_id": run_id})
        for key in done_samples(run.path):
            if key in seen:
                raise UserError(f"{run.path}: sample {key} also appears in another run; shards must not overlap")
            seen.add(key)
        for shard in run.parts("rollouts"):
            table = pq.read_table(shard)
            table = table.set_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string()))
            merged.append_part("rollouts", table)
    write_table(building / PROBLEMS, pa.Table.from_pylist(list(problems.values()), schema=PROBLEM_SCHEMA))
    manifest = {**runs[0].manifest, "run_id": run_id, "origin": run_origin(building), "created_at": now(),
                "kind": "merged", "merged_from": [{"path": str(r.path), "run_id": r.run_id} for r in runs]}  # fmt: skip
    for inherited in ("name", "legacy_run_id", "copied_from"):
        manifest.pop(inherited, None)
    limits = [r.record.generation.limit if r.record.generation is not None else None for r in runs]
    manifest["generation"] = {**first.fields, "shard": "merged" if whole else "merged-incomplete",
                              "n": max(r.samples_wanted or 0 for r in runs),
                              "limit": None if None in limits else max(limits)}  # fmt: skip
    if first.forcing is not None:  # budget forcing's counts are of all the merged samples, not of the first shard's
        appended = int(first.forcing.mode == "s1")  # s1's appended end of thinking is no wait
        manifest["generation"]["insertions"] = count_insertions(building, appended).record()
    manifest.pop("scoring", None)  # the merged run has not been scored
    Run.create(building, manifest)
    return len(seen)
