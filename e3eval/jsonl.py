"""Reading user JSON / JSON Lines files with errors that name the file and line.

`read_jsonl` streams records from a JSONL file as `(line_number, dict)`; a bad line (not UTF-8, not JSON, not an
object) raises `UserError("path:line: why")`, or with `skip_bad=True` is counted in a `BadLines` tally instead.
Nothing here interprets fields; that is `inputs.py`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e3eval.errors import UserError

_MAX_EXAMPLES = 20


@dataclass
class BadLines:
    """Lines skipped under `--skip-bad-lines`, with the first few reasons kept for the manifest."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, where: str, why: str) -> None:
        self.count += 1
        if len(self.examples) < _MAX_EXAMPLES:
            self.examples.append(f"{where}: {why}")


def fail_or_skip(bad: BadLines | None, where: str, why: str) -> None:
    """Raise a UserError for `where: why`, or count it when skipping bad lines."""
    if bad is None:
        raise UserError(f"{where}: {why}")
    bad.add(where, why)


def raw_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes) for each non-blank line; bytes are decoded by `parse_line`."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                yield number, raw


def parse_line(raw: bytes, where: str, bad: BadLines | None) -> dict[str, Any] | None:
    """One JSONL line to an object, or None after counting it as bad (raises without `bad`)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail_or_skip(bad, where, f"not valid UTF-8 (byte {exc.start})")
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        fail_or_skip(bad, where, f"invalid JSON ({exc.msg} at column {exc.colno})")
        return None
    if not isinstance(record, dict):
        fail_or_skip(bad, where, f"expected a JSON object, got {type(record).__name__}")
        return None
    return record


def read_jsonl(path: Path, bad: BadLines | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    for number, raw in raw_lines(path):
        record = parse_line(raw, f"{path}:{number}", bad)
        if record is not None:
            yield number, record


def read_json_list(path: Path) -> list[Any]:
    """Load a whole-file JSON array (the e3 authors' rollouts format)."""
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    return data
