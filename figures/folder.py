"""The folder `e3eval figures` writes into, and the rule that keeps it safe: figures writes only into a folder it owns.

A folder is owned when it holds the marker `.e3eval-figures`, a JSON record of the files figures wrote there with the
sha256 of each as written.
`FiguresFolder.open` takes a folder that does not exist yet, an empty one or a marked one; an existing non-empty folder
without the marker (a project, a repository root given as `--out .`) is refused unless `force`. Even then, and in a
marked folder too, a file is replaced only when the marker lists it with its content unchanged: figures never replaces
a file it did not write, nor one edited (or swapped for another) since.
A command checks every name it will write before it draws anything (`check`), and each write checks its names again;
files are written through a temporary file and a rename, and the marker is rewritten (the same way) after each one,
so it never lists a file figures did not finish. This module writes files; it draws nothing and reads no spec.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from e3eval.errors import UserError
from e3eval.outputs import file_sha256

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MARKER = ".e3eval-figures"
_WRITER = "e3eval figures"


class FiguresFolder:
    """An output folder opened for `e3eval figures` (see the module text); nothing is written until the first file."""

    def __init__(self, path: Path, written: dict[str, str | None] | None = None) -> None:
        self.path = Path(path)
        # name (in the folder) -> sha256 as figures wrote it (None: a marker from before hashes were kept): the only
        # files it may replace, while they still hold what it wrote.
        self.written: dict[str, str | None] = dict(written or {})

    @classmethod
    def open(cls, path: Path | str, force: bool = False) -> FiguresFolder:
        """The folder at `path` if figures may write there; a UserError (one line) says why not."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise UserError(f"--out {path}: exists and is not a folder")
        marker = path / MARKER
        if marker.exists():
            return cls(path, _read_marker(marker))
        if path.is_dir() and any(path.iterdir()) and not force:
            raise UserError(f"--out {path}: a folder with other files in it that e3eval figures did not make (no "
                            f"{MARKER}); give a new or empty folder, or pass --force to add the figures beside those "
                            "files (none of them is ever replaced)")  # fmt: skip
        return cls(path)

    def check(self, names: Iterable[str]) -> None:
        """Refuse, before anything is written, names that are taken by files figures did not write."""
        taken = [name for name in dict.fromkeys(names) if os.path.lexists(self.path / name) and not self._own(name)]
        if taken:
            more = f" and {len(taken) - 3} more" if len(taken) > 3 else ""
            raise UserError(f"--out {self.path}: {', '.join(taken[:3])}{more} already there and not written by e3eval "
                            "figures (or changed since), which never replaces such a file; move it, or choose another "
                            "folder")  # fmt: skip

    def _own(self, name: str) -> bool:
        """Whether the file `name` is one figures wrote and still holds what it wrote."""
        if name not in self.written:
            return False
        path = self.path / name
        recorded = self.written[name]
        return not path.is_symlink() and (recorded is None or (path.is_file() and file_sha256(path) == recorded))

    def save(self, figure: Figure, name: str) -> list[Path]:
        """Write the figure as NAME.png and NAME.pdf (`style.save`); returns [png, pdf]."""
        from e3eval.figures.style import save

        self.check([f"{name}.png", f"{name}.pdf"])
        self._claim()
        paths = save(figure, self.path / name)
        self._record(p.name for p in paths)
        return paths

    def write_text(self, name: str, text: str) -> Path:
        """Write a text file (the gallery's index.html, README.md) through a temporary file and a rename."""
        self.check([name])
        self._claim()
        path = self.path / name
        _write_atomically(path, text)
        self._record([name])
        return path

    def _claim(self) -> None:
        """Make the folder and its marker before the first file is written."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not (self.path / MARKER).exists():
                self._write_marker()
        except OSError as exc:
            raise UserError(f"--out {self.path}: cannot write there ({exc.strerror or exc})") from None

    def _record(self, names: Iterable[str]) -> None:
        self.written.update({name: file_sha256(self.path / name) for name in names})
        self._write_marker()

    def _write_marker(self) -> None:
        body = {"written_by": _WRITER, "files": dict(sorted(self.written.items()))}
        _write_atomically(self.path / MARKER, json.dumps(body, indent=1) + "\n")


def _read_marker(marker: Path) -> dict[str, str | None]:
    try:
        body = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        body = None
    files = body.get("files") if isinstance(body, dict) and body.get("written_by") == _WRITER else None
    if isinstance(files, list):  # a marker from before hashes were kept
        files = dict.fromkeys(files)
    valid = isinstance(files, dict) and all(
        isinstance(name, str) and "/" not in name and name != ".." and (sha is None or isinstance(sha, str))
        for name, sha in files.items()
    )
    if not valid:
        raise UserError(f"{marker}: not a marker written by e3eval figures; choose another folder for the figures")
    return files


def _write_atomically(path: Path, text: str) -> None:
    temp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, path)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temp.unlink(missing_ok=True)
