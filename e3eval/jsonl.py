"""Reading user JSON / JSON Lines files with errors that name the file and line.

`read_jsonl` streams records from a JSONL file as `(line_number, dict)`; a bad line (not UTF-8, not JSON, not an
object, longer than `MAX_LINE_BYTES`) raises `UserError("path:line: why")`, or with `skip_bad=True` is counted in a
`BadLines` tally instead. A UTF-8 byte-order mark opening the file (as Windows editors write) is not part of line 1.
Lines are read with a bounded `readline`, so a huge line is measured and skipped without ever being held in memory.
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
BOM = b"\xef\xbb\xbf"
# One record of a rollout file is a response with its token ids (and perhaps logprobs): a 128k-token response is about
# 0.5 MB of text, 1 MB of ids and 2.5 MB of logprobs. 16 MiB leaves room for 3x that, while refusing the lines that
# cost minutes and gigabytes downstream (a 50 MB line took 144 s and 8.4 GB to import: tokenizing it).
MAX_LINE_BYTES = 16 * 1024 * 1024
_SKIP_CHUNK = 1 << 20


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


class OversizedLine(bytes):
    """Stands in (as empty bytes) for a line longer than the limit, which was skipped unread; `parse_line` reports it.

    A bytes subclass so that it travels with the other lines, pickled into worker processes included."""

    size: int
    limit: int

    def __new__(cls, size: int, limit: int) -> OversizedLine:
        line = super().__new__(cls)
        line.size, line.limit = size, limit
        return line

    def __getnewargs__(self) -> tuple[int, int]:  # type: ignore[override]
        return self.size, self.limit


def raw_lines(path: Path, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw bytes) for each non-blank line; bytes are decoded by `parse_line`. A line longer
    than `max_line_bytes` comes as an `OversizedLine`, having been read through in bounded chunks."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror})") from None
    with handle:
        number = 0
        while raw := handle.readline(max_line_bytes + 1):
            number += 1
            if number == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                size = len(raw)
                while not raw.endswith(b"\n") and (raw := handle.readline(_SKIP_CHUNK)):
                    size += len(raw)
                yield number, OversizedLine(size, max_line_bytes)
            elif raw.strip():
                yield number, raw


def parse_line(raw: bytes, where: str, bad: BadLines | None) -> dict[str, Any] | None:
    """One JSONL line to an object, or None after counting it as bad (raises without `bad`)."""
    if isinstance(raw, OversizedLine):
        why = (
            f"line is {raw.size / 2**20:,.1f} MiB, over the {raw.limit / 2**20:g} MiB limit for one record "
            "(a rollout record is a few MB at most); is this a JSON Lines file?"
        )
        fail_or_skip(bad, where, why)
        return None
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
        # utf-8-sig: a byte-order mark before the array is an editor's habit, not an error.
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid UTF-8 (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot open ({exc.strerror})") from None
    if not isinstance(data, list):
        raise UserError(f"{path}: expected a JSON array of records, got {type(data).__name__}")
    return data
