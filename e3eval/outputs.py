"""Outputs outside a run directory: files and folders e3eval writes without ever replacing what it did not write.

A single-file output (`count-asymmetries --out`, `report --out`, `probe --out`, `dev example-pool`) is written
atomically under a lock and recorded in a hidden sidecar beside it, `.NAME.e3eval`, holding the sha256 of what was
written. A later write replaces the file only when that sidecar exists and the file still has that content: e3eval
wrote it and nobody changed it since. Any other existing file (the user's own `summary.csv`, a file e3eval wrote and
the user edited) is refused unless `force`. A folder output (`dev tiny-model DIR`, `demo`) is created with a marker
file; an existing non-empty folder without the marker is refused. Run directories have their own rules (`run.py`,
`store.py`); this module knows nothing of what the files hold.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from e3eval.errors import UserError
from e3eval.store import MANIFEST, output_lock

_SIDECAR = ".{name}.e3eval"
FOLDER_MARKER = ".e3eval-output"


def sidecar(path: Path) -> Path:
    return path.with_name(_SIDECAR.format(name=path.name))


def check_replaceable(path: Path, force: bool = False, flag: str = "--out") -> None:
    """Refuse `path` as an output when writing it would replace a file e3eval did not write (or one edited since),
    a folder, or anything inside a run directory."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path}: a folder; give a file name inside it")
    check_outside_runs(path, flag)
    if path.is_symlink() and not path.exists():
        raise UserError(f"{flag} {path}: a link to nothing; give a real file name")
    if path.exists() and not force and not written_by_e3eval(path):
        raise UserError(
            f"{flag} {path}: exists and was not written by e3eval (or was changed since); choose another name, or "
            "pass --force to replace it"
        )


def check_outside_runs(path: Path, flag: str = "--out") -> None:
    """Refuse an output that is, or lies inside, a run directory: its files belong to the stages that write them."""
    resolved = Path(path).absolute().resolve()
    for folder in (resolved, *resolved.parents):
        if (folder / MANIFEST).is_file():
            where = "is" if folder == resolved else f"lies inside {folder}, which is"
            raise UserError(f"{flag} {path}: {where} a run directory, where only e3eval's own tables belong; write "
                            "it elsewhere")  # fmt: skip


def write_output(path: Path, write: Callable[[Path], object], force: bool = False, flag: str = "--out") -> None:
    """Write one output file through `write(temp_path)`, atomically and under a lock, after `check_replaceable`;
    then record it as e3eval's."""
    path = Path(path)
    check_replaceable(path, force, flag)
    side = sidecar(path)
    if (side.is_symlink() or side.exists()) and not _is_sidecar(side):
        raise UserError(f"{side}: a file e3eval did not write has the name of {path.name}'s record; move it away")
    if not path.parent.exists():
        path.parent.mkdir(parents=True)
    with output_lock(path, "write"):
        temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            write(temp)
            digest = file_sha256(temp)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        record_written(path, digest)


def record_written(path: Path, digest: str | None = None) -> None:
    """Record `path` (just written by e3eval) as e3eval's, with the sha256 of its content: written to a temporary
    name and renamed over the sidecar, so a link or a file at the sidecar's name is replaced, never written through."""
    text = json.dumps({"sha256": digest or file_sha256(path)}) + "\n"
    target = sidecar(path)
    temp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def claim_folder(folder: Path, flag: str, layout: frozenset[str] = frozenset()) -> None:
    """Make `folder` an output folder of e3eval's: created with a marker, or already marked, or empty, or holding
    only the entries a command of this kind writes (`layout`: its folders from before markers existed); an existing
    folder holding anything else is refused (nothing in it is replaced)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UserError(f"{flag} {folder}: exists and is not a folder")
    check_outside_runs(folder, flag)
    foreign = [p.name for p in folder.iterdir() if p.name not in layout] if folder.is_dir() else []
    if foreign and not (folder / FOLDER_MARKER).is_file():
        raise UserError(
            f"{flag} {folder}: a folder e3eval did not create, and not empty; give a new or empty folder (nothing "
            "in it was touched)"
        )
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FOLDER_MARKER).write_text("written by e3eval; it may replace the files in this folder\n")


def _is_sidecar(path: Path) -> bool:
    """Whether `path` is a regular file holding one of e3eval's records (never a link)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        return set(json.loads(path.read_text(encoding="utf-8"))) == {"sha256"}
    except (OSError, ValueError, TypeError):
        return False


def written_by_e3eval(path: Path) -> bool:
    """Whether e3eval wrote `path` and nobody changed it since (its sidecar holds its sha256)."""
    side = sidecar(path)
    if not _is_sidecar(side) or path.is_symlink():
        return False
    return json.loads(side.read_text(encoding="utf-8"))["sha256"] == file_sha256(path)


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
