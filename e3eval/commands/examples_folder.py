"""The folder `e3eval figures --examples DIR` writes: new or empty, or one it wrote before whose files are unchanged.

The marker `.e3eval-examples` lists every file the command wrote there with its sha256. A rerun rewrites the same
files, so it goes ahead only when none of them was edited since (a user's changes to a spec copy or a table are never
overwritten); files it did not write are left alone. The marker is written first, marked incomplete, so a run stopped
half-way can be rerun. Another command's folder (a demo's, a figures gallery) has no such marker and is refused like
any non-empty folder. This module owns only those rules; `example_data.py` makes what goes in the folder.
"""

from __future__ import annotations

import json
from pathlib import Path

from e3eval.errors import UserError
from e3eval.outputs import check_outside_runs, file_sha256

MARKER = ".e3eval-examples"
_WRITER = "e3eval figures --examples"


def claim(out: Path) -> None:
    """Refuse `out` unless it is new, empty or an examples folder whose files are as this command wrote them; then
    mark it (incomplete) before anything is written."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--examples {out}: exists and is not a folder")
    check_outside_runs(out, "--examples")
    marker = out / MARKER
    if marker.is_file():
        written = _read(marker)
        changed = sorted(name for name, sha in written.items() if _changed(out / name, sha))
        if changed:
            more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
            raise UserError(f"--examples {out}: {', '.join(changed[:3])}{more} changed since e3eval wrote them, and "
                            "a rerun would overwrite them; move them away, or choose another folder")  # fmt: skip
    elif out.is_dir() and any(out.iterdir()):
        raise UserError(f"--examples {out}: a folder with files e3eval figures --examples did not write (no {MARKER}); "
                        "give a new or empty folder (nothing in it was touched)")  # fmt: skip
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--examples {out}: cannot make the folder ({exc.strerror or exc})") from None
    _write(marker, {}, complete=False)


def record(out: Path, files: list[Path]) -> None:
    """Mark the folder complete, with the sha256 of every file written into it."""
    hashes = {str(path.relative_to(out)): file_sha256(path) for path in files if path.is_file()}
    _write(out / MARKER, hashes, complete=True)


def written_files(out: Path) -> list[Path]:
    """Every file now in the folder but the marker and lock files: what a run of the command leaves there."""
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name != MARKER and not p.name.endswith("-lock"))


def _changed(path: Path, sha: str) -> bool:
    return path.is_symlink() or (path.exists() and (not path.is_file() or file_sha256(path) != sha))


def _read(marker: Path) -> dict[str, str]:
    try:
        body = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        body = None
    files = body.get("files") if isinstance(body, dict) and body.get("written_by") == _WRITER else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise UserError(f"{marker}: not a marker e3eval figures --examples wrote; give another folder")
    return files


def _write(marker: Path, files: dict[str, str], complete: bool) -> None:
    body = {"written_by": _WRITER, "complete": complete, "files": dict(sorted(files.items()))}
    temp = marker.with_name(marker.name + ".tmp")
    temp.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    temp.replace(marker)
