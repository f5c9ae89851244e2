"""Where things fall in one sample's text: budget cuts, inserted waits, the end of thinking, per-token heat.

The text a reader sees is the decode of the sample's token ids (`truncate.PrefixDecoder`), the text every budget was
scored on. The cut at budget B is a character offset: the length of the longest common prefix of the decode of the
first B ids and the full text. They differ only where B splits a multi-byte character (the prefix then ends in
U+FFFD: `inside_char`) or where a tokenizer rewrites spaces on decode. Inserted waits (rollout column `inserted`,
token spans) are placed the same way, span end by span end; per-token heat needs each token's end offset, which only
the byte-table decoder gives (`PrefixDecoder.char_offsets`), so the tokenizer path has no heat. Nothing here is
re-tokenized, and nothing here reads files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from e3eval.truncate import PrefixDecoder

REPLACEMENT = "\ufffd"
HEAT_DIGITS = 4  # per-token values are shown as colours: more digits would only grow the payload


@dataclass(frozen=True)
class Cut:
    """Where budget B ends in the full text, and whether the budget splits a character there."""

    budget: int
    char: int
    inside_char: bool


def common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of `a` and `b` (compared in C: a binary search over `startswith`)."""
    if b.startswith(a):
        return len(a)
    low, high = 0, min(len(a), len(b))
    while low < high:  # invariant: a[:low] == b[:low]; a[:high + 1] is not a prefix of b
        middle = (low + high + 1) // 2
        if b.startswith(a[:middle]):
            low = middle
        else:
            high = middle - 1
    return low


def cuts(decoder: PrefixDecoder, ids: np.ndarray, text: str, budgets: Sequence[int]) -> list[Cut]:
    """The cut of every budget in `text` (the decode of all of `ids`), from one prefix decode of them all."""
    prefixes = decoder.decode_prefixes(ids, budgets) if budgets else []
    found = []
    for budget, prefix in zip(budgets, prefixes, strict=True):
        char = common_prefix(prefix, text)
        found.append(Cut(budget, char, char != len(prefix)))
    return found


def token_spans(decoder: PrefixDecoder, ids: np.ndarray, text: str, flat: Sequence[int] | None) -> list[list[int]]:
    """Token spans given as flat (start, end) pairs (the `inserted` column) as [start_char, end_char] pairs."""
    if not flat:
        return []
    bounds = sorted({int(b) for b in flat})
    offsets = dict(zip(bounds, (c.char for c in cuts(decoder, ids, text, bounds)), strict=True))
    return [[offsets[int(s)], offsets[int(e)]] for s, e in zip(flat[0::2], flat[1::2], strict=True)]


def think_end(text: str, delimiter: str | None) -> int | None:
    """Where the end-of-thinking delimiter starts in `text` (its first occurrence, as the step presets split), or
    None when the text has none."""
    if not delimiter:
        return None
    at = text.find(delimiter)
    return at if at >= 0 else None


def heat(decoder: PrefixDecoder, ids: np.ndarray, lists: dict[str, np.ndarray | None]) -> dict | None:
    """The heat overlay: each token's end offset and the per-token values (null where none: an inserted token, or
    beyond the probed budget); None when the decoder cannot place tokens or there are no values."""
    ends = decoder.char_offsets(ids)
    if ends is None or all(v is None for v in lists.values()):
        return None
    overlay: dict = {"metrics": [name for name, values in lists.items() if values is not None],
                     "token_ends": ends.tolist()}  # fmt: skip
    for name, values in lists.items():
        overlay[name] = None if values is None else _rounded(values)
    return overlay


def _rounded(values: np.ndarray) -> list[float | None]:
    return [None if not math.isfinite(v) else round(v, HEAT_DIGITS) for v in values.tolist()]
