"""Globs in figure specs, bounded: they expand inside the spec's root folder and walk a capped number of folders.

A spec path with `*`, `?` or `[` is a glob (`runs/*`, `ckpts/**/probes.parquet`), expanded in sorted order with
`glob.glob`'s rules (`**` spans folders, hidden names match only a pattern that starts with `.`, a trailing `/`
matches folders). Unlike `glob.glob`, `expand` refuses a glob whose fixed part (the folders before its first wildcard)
lies outside the spec's root folder, or a `**` directly under the file-system root (`/**/` would walk every disk), and
it stops with a UserError past `MAX_FOLDERS` folders listed or `MAX_MATCHES` matches, so a typo cannot walk a home
folder or a network mount for an hour. Paths without wildcards are not globs and are not bounded here: a spec may name
a run anywhere. This module only expands patterns; `spec.py` and `readers.py` decide what a match must be.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path

from e3eval.errors import UserError

MAX_FOLDERS = 50_000
MAX_MATCHES = 10_000
_GLOB_CHARS = re.compile(r"[*?\[]")


def is_glob(written: str) -> bool:
    return _GLOB_CHARS.search(written) is not None


def expand(written: str, base: Path) -> list[Path]:
    """The sorted matches of the glob `written` (relative to `base`, the spec's root folder). A UserError says why a
    glob is refused (outside `base`, `**` at the file-system root) or too broad (past the caps)."""
    full = os.path.normpath(os.path.join(base, os.path.expanduser(written)))
    parts = Path(full).parts
    fixed = next(i for i, part in enumerate(parts) if is_glob(part))  # `written` is a glob: some part has a wildcard
    start = Path(*parts[:fixed])
    root = Path(os.path.normpath(base))
    if "**" in parts[fixed:] and start == Path(start.anchor):
        raise UserError(f"glob {written!r} walks the whole file system from {start} (`**` at the root); start it "
                        "in a folder")  # fmt: skip
    if start != root and root not in start.parents:
        raise UserError(f"glob {written!r} reaches outside the spec's root folder {root} (it starts in {start}); "
                        "set `root:` to a folder that holds it, or list the paths")  # fmt: skip
    dirs_only = written.endswith(("/", os.sep))
    walker = _Walker(written, start)
    matches = []
    for match in walker.walk(start, parts[fixed:]):
        if dirs_only and not match.is_dir():
            continue
        matches.append(match)
        if len(matches) > MAX_MATCHES:
            raise UserError(f"glob {written!r} matches more than {MAX_MATCHES:,} paths under {start}; narrow it")
    return sorted(set(matches))


class _Walker:
    """Match pattern parts folder by folder, counting the folders listed."""

    def __init__(self, written: str, start: Path) -> None:
        self.written, self.start = written, start
        self.listed = 0
        self.seen: set[tuple[int, int]] = set()  # (device, inode) of folders `**` entered: symlink loops end

    def walk(self, folder: Path, parts: tuple[str, ...]) -> Iterator[Path]:
        if not parts:
            yield folder
            return
        part, rest = parts[0], parts[1:]
        if part == "**":
            for below, files in self._below(folder):
                yield from self.walk(below, rest)
                if not rest:  # a final `**` matches the files too, as in `glob`
                    yield from (below / name for name in files)
        elif not is_glob(part):
            if os.path.lexists(folder / part):
                yield from self.walk(folder / part, rest)
        else:
            for name, is_dir in self._entries(folder):
                if (is_dir or not rest) and _matches(name, part):
                    yield from self.walk(folder / name, rest)

    def _below(self, folder: Path) -> Iterator[tuple[Path, list[str]]]:
        """(folder, its files) for `folder` and every folder under it, not hidden ones (as `glob`), each once."""
        try:
            info = folder.stat()
        except OSError:
            return
        if not folder.is_dir() or (info.st_dev, info.st_ino) in self.seen:
            return
        self.seen.add((info.st_dev, info.st_ino))
        entries = self._entries(folder)
        yield folder, [name for name, is_dir in entries if not is_dir and not name.startswith(".")]
        for name, is_dir in entries:
            if is_dir and not name.startswith("."):
                yield from self._below(folder / name)

    def _entries(self, folder: Path) -> list[tuple[str, bool]]:
        """(name, is a folder) of what `folder` holds, sorted; counts against `MAX_FOLDERS`."""
        self.listed += 1
        if self.listed > MAX_FOLDERS:
            raise UserError(f"glob {self.written!r} walked more than {MAX_FOLDERS:,} folders under {self.start} "
                            "without finishing; narrow it (fewer `**`, a deeper fixed folder)")  # fmt: skip
        try:
            with os.scandir(folder) as entries:
                return sorted((e.name, _is_dir(e)) for e in entries)
        except OSError:  # not a folder, gone, or not readable: nothing matches in it
            return []


def _matches(name: str, part: str) -> bool:
    """`glob`'s rule for one path part: a hidden name matches only a pattern that starts with `.`."""
    return fnmatch.fnmatchcase(name, part) and (part.startswith(".") or not name.startswith("."))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
