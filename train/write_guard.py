"""Where e3train may write: never inside an e3eval run directory, and never over a file it did not write.

Every e3train command that writes asks here before it does any work. A run directory (one holding `run.json`) belongs
to e3eval's commands and their lock; e3train writes neither into one nor into any folder below one. An existing file
is replaced only when it is recognisably one of e3train's own outputs of the same kind: a Parquet file of
`e3train prepare` (its schema metadata names e3train), a CSV of `e3train bigram` (its header row is exactly the
documented columns) with its provenance JSON (an object with a `config`), or a Matplotlib figure (e3eval's figure
writer; a figure from another Matplotlib script cannot be told apart from ours). e3train has no `--force`: anything
else in the way is one UserError naming the file, and nothing is written. This module writes nothing itself.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from e3eval.errors import UserError
from e3eval.store import MANIFEST

PROVENANCE_KEY = b"e3train"  # Parquet schema metadata of `e3train prepare` files: JSON naming the command
_LEGACY_COLUMNS = ["data_source", "prompt", "ability", "reward_model", "extra_info"]


def enclosing_run(path: Path) -> Path | None:
    """The e3eval run directory that `path` is or lies in (resolving links), or None."""
    resolved = Path(path).resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / MANIFEST).is_file():
            return folder
    return None


def check_not_in_run(path: Path, flag: str) -> None:
    """Refuse a destination inside an e3eval run directory (e3eval's commands own those, under their lock)."""
    run = enclosing_run(path)
    if run is not None:
        where = "is" if run == Path(path).resolve() else f"lies inside {run}, which is"
        raise UserError(f"{flag} {path}: {where} an e3eval run directory ({MANIFEST}); e3train does not write into "
                        "runs: choose another folder")  # fmt: skip


def check_output_dir(out: Path, flag: str = "--out") -> None:
    """A folder e3train will create or add files to: not a file, not inside a run."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{flag} {out}: exists and is not a folder")
    check_not_in_run(out, flag)


def check_replaceable(path: Path, ours: Callable[[Path], bool], what: str) -> None:
    """Refuse to replace `path` unless it is absent or `ours` recognises it as `what` (one of e3train's outputs)."""
    folder = next((p for p in path.parents if p.exists()), None)
    if folder is not None and not folder.is_dir():
        raise UserError(f"{path}: {folder} is a file, not a folder")
    if path.is_dir():
        raise UserError(f"{path}: is a folder; e3train writes {what} there: name a file")
    if path.exists() and not ours(path):
        raise UserError(f"{path}: exists and is not {what}; e3train replaces only its own files: move it away or "
                        "choose another path")  # fmt: skip


def is_prepared_parquet(path: Path) -> bool:
    """A Parquet file written by `e3train prepare`: its schema metadata names e3train, or it has exactly the columns
    earlier versions wrote (with `extra_info` as a JSON string, which verl cannot read: rewriting it is the fix)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (OSError, ValueError):  # ArrowInvalid is a ValueError: not a Parquet file at all
        return False
    if PROVENANCE_KEY in (schema.metadata or {}):
        return True
    return schema.names == _LEGACY_COLUMNS and schema.field("extra_info").type == pa.string()


def is_bigram_csv(path: Path) -> bool:
    """A CSV whose header row is the documented columns of `e3train bigram` (the first six, for older files)."""
    from e3eval.train.bigram_sim import CSV_COLUMNS

    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader([handle.readline(4096)]), [])
    except (OSError, UnicodeDecodeError):
        return False
    return tuple(header) in (CSV_COLUMNS, CSV_COLUMNS[:6])


def is_provenance_json(path: Path) -> bool:
    """The provenance file `e3train bigram` writes beside its CSV: a JSON object with the run's `config`."""
    try:
        if path.stat().st_size > 1 << 20:
            return False
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and isinstance(data.get("config"), dict)


def is_matplotlib_figure(path: Path) -> bool:
    """A PNG or PDF that Matplotlib wrote (PNG: its Software text chunk; PDF: its Creator/Producer entry)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
            handle.seek(max(0, path.stat().st_size - (1 << 16)))
            tail = handle.read()
    except OSError:
        return False
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return b"Software\x00Matplotlib" in head
    return head.startswith(b"%PDF") and b"Matplotlib" in head + tail


def bigram_targets(out: Path, algos: Sequence[str], plot: Path | None) -> tuple[list[Path], list[Path]]:
    """The CSVs and figures `e3train bigram` will write (one CSV per algorithm when there are two: OUT-ALGO.csv),
    checked before any training: none is a folder, inside a run, or a file e3train did not write."""
    if out.is_dir():
        raise UserError(f"--out {out}: is a folder; --out names the CSV file to write, e.g. {out / 'bigram.csv'}")
    csvs = [out] if len(algos) == 1 else [out.with_name(f"{out.stem}-{a}{out.suffix or '.csv'}") for a in algos]
    plots: list[Path] = []
    if plot is not None:
        if plot.is_dir():
            raise UserError(f"--plot {plot}: is a folder; --plot names the figure file, e.g. {plot / 'bigram.png'} "
                            "(a .png and a .pdf are written)")  # fmt: skip
        stem = plot.with_suffix("") if plot.suffix.lower() in (".png", ".pdf") else plot
        plots = [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    targets = [*csvs, *(p.with_name(p.name + ".json") for p in csvs), *plots]
    clashes = sorted({str(p) for p in targets if targets.count(p) > 1})
    if clashes:
        raise UserError(f"--out and --plot would write the same file twice: {', '.join(clashes)}")
    for path in csvs:
        check_not_in_run(path.parent, "--out")
        check_replaceable(path, is_bigram_csv, "a CSV written by `e3train bigram`")
        provenance = path.with_name(path.name + ".json")
        check_replaceable(provenance, is_provenance_json, "a provenance file written by `e3train bigram`")
    for path in plots:
        check_not_in_run(path.parent, "--plot")
        check_replaceable(path, is_matplotlib_figure, "a figure written by Matplotlib")
    return csvs, plots
