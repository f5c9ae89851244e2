"""Phrase matching: which sentences of a text match which of several lists of phrases, found fast.

A phrase is a case-insensitive regular expression; one that starts with `^` counts only at the start of a sentence
(after spaces, list numbers, bullets and quotes). A sentence is a piece of a line that ends at ". ", "? ", "! " or
the line's end, and counts at most once per list. This module owns splitting a text into sentences, reading a
phrase's literal anchors (the literal texts its matches start with) off its tokens, compiling phrase lists into a
`PhraseScanner` (checked: non-empty lists of valid expressions), and scanning UTF-8 bytes with it: one whole-text
regex scan in C per first letter of the anchors, Python only where an anchor is found, never a Python loop per
phrase or per line. It does not know what the phrases mean or where they come from: the `math` step preset and its
lexicon (`steps.py`) do, and `benchmarks/bench_steps.py` chooses the phrases.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from e3eval.errors import UserError

# A boundary is ". ", "? ", "! " or a newline. `_SENTENCE` matches a boundary and the blank run after it up to a
# non-space byte, where the next non-empty sentence starts.
_SENTENCE = re.compile(rb"[.!?\n](?:(?<=\n)|(?= ))\s*(?=\S)")
_NONSPACE = re.compile(rb"\S")
# What may stand before a sentence's first word without making a `^` phrase miss: list numbers, bullets, quotes.
_SENTENCE_LEAD = b" \t\r\f\v*-#>\"'`(0123456789.)"


_META = set("\\.^$*+?{}[]|()")
_TOKEN = re.compile(r"\\.?|.", re.DOTALL)  # one escape sequence or one character


def literal_anchor(pattern: str) -> str | None:
    """The literal text every match of `pattern` starts with (lowercased), or None if it has none of 3+ chars.

    Used to find candidate positions in C before running the full expression there only. A leading `^` (the
    lexicon's "at the start of a sentence") is not part of the anchor.
    """
    rest = pattern.removeprefix("^")
    while rest.startswith("\\b"):
        rest = rest[2:]
    if "|" in rest.split("(", 1)[0]:
        return None  # a top-level alternative: no single anchor
    anchor: list[str] = []
    for token in _TOKEN.findall(rest):
        if token.startswith("\\") and len(token) == 2 and not token[1].isalnum():
            anchor.append(token[1])  # an escaped punctuation mark is a literal
            continue
        if token[0] in _META:
            if token[0] in "?*{" and anchor:
                anchor.pop()  # the last literal is optional
            break
        anchor.append(token)
    text = "".join(anchor).lower()
    return text if len(text.strip()) >= 3 else None


_MAX_ANCHORS = 32  # per phrase; more alternatives than this fall back to the common literal prefix


def literal_anchors(pattern: str) -> tuple[str, ...] | None:
    """Literal texts (lowercased) one of which every match of `pattern` starts with, each of 3+ characters, or None.

    Like `literal_anchor`, but a group of alternatives is expanded, so that `let me (?:check|verify)` gives
    `let me check` and `let me verify`: longer anchors mean fewer candidate positions where Python has to look.
    """
    expanded = _anchors(pattern.removeprefix("^"))
    if expanded is not None and 0 < len(expanded) <= _MAX_ANCHORS:
        anchors = tuple(dict.fromkeys(a.lower() for a in expanded))
        if all(len(a.strip()) >= 3 for a in anchors):
            return anchors
    single = literal_anchor(pattern)
    return None if single is None else (single,)


def _structure(tokens: list[str], start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, token, group depth after it) for each token of `tokens` from `start` that is outside a character
    class: a `|`, `(` or `)` inside `[...]` is a literal, not structure."""
    depth, in_class = 0, False
    for i in range(start, len(tokens)):
        token = tokens[i]
        if in_class:
            in_class = token != "]"
        elif token == "[":
            in_class = True
        else:
            depth += (token == "(") - (token == ")")
            yield i, token, depth


def _alternatives(tokens: list[str]) -> list[list[str]]:
    """`tokens` split at its top-level `|`s (outside groups and character classes)."""
    cuts = [i for i, token, depth in _structure(tokens) if token == "|" and depth == 0]
    bounds = [-1, *cuts, len(tokens)]
    return [tokens[after + 1 : end] for after, end in pairwise(bounds)]


def _group_end(tokens: list[str], start: int) -> int | None:
    """Index of the `)` closing the group opened at `tokens[start]`."""
    return next((i for i, token, depth in _structure(tokens, start) if token == ")" and depth == 0), None)


def _anchors(pattern: str) -> list[str] | None:
    """The literal starts of `pattern` (see `literal_anchors`); an empty string where an alternative has none."""
    tokens = _TOKEN.findall(pattern)
    branches = _alternatives(tokens)
    if len(branches) > 1:
        found: list[str] = []
        for branch in branches:
            sub = _anchors("".join(branch))
            if sub is None or len(found) + len(sub) > _MAX_ANCHORS:
                return None
            found += sub
        return found
    prefix: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1] if i + 1 < len(tokens) else ""
        if token == "\\b":
            i += 1  # zero-width: the anchor goes on
            continue
        if (token == "(" and after != "?") or tokens[i : i + 3] == ["(", "?", ":"]:
            end = _group_end(tokens, i)
            if end is None or (end + 1 < len(tokens) and tokens[end + 1] in ("?", "*", "{")):
                break  # an optional group: the anchor ends before it
            body = tokens[i + (1 if after != "?" else 3) : end]
            rest = "" if end + 1 < len(tokens) and tokens[end + 1] == "+" else "".join(tokens[end + 1 :])
            found = []
            for branch in _alternatives(body):
                sub = _anchors("".join(branch) + rest)
                if sub is None or len(found) + len(sub) > _MAX_ANCHORS:
                    return None
                found += sub
            return ["".join(prefix) + s for s in found]
        if len(token) == 2 and token[0] == "\\" and not token[1].isalnum():
            literal = token[1]  # an escaped punctuation mark is a literal
        elif token in _META or token.startswith("\\"):
            break
        else:
            literal = token
        if after in ("?", "*", "{"):
            break  # the literal is optional
        prefix.append(literal)
        if after == "+":
            break
        i += 1
    return ["".join(prefix)]


@dataclass(frozen=True)
class _Probe:
    """Expressions of one kind and placement (anywhere, or only at a sentence start) that begin with one anchor."""

    kind: int
    initial: bool
    pattern: re.Pattern


@dataclass(frozen=True)
class PhraseScanner:
    """Phrases of several kinds compiled for UTF-8 bytes. Every anchor (a literal that a phrase's matches start with,
    see `literal_anchors`; anchors that extend a shorter one are folded into it) is found by one regular expression
    per first byte, run over the ASCII-lowered text in C, so the text is scanned once per distinct first byte, not
    once per phrase; where an anchor is found, the expressions that start with it are tried there. Anchor-less
    expressions scan the whole text."""

    kinds: tuple[str, ...]
    searches: tuple[re.Pattern, ...]
    probes: dict[bytes, tuple[_Probe, ...]]
    unanchored: tuple[_Probe, ...]


def compile_phrases(kinds: dict[str, Any], source: str) -> PhraseScanner:
    """A scanner for the phrase lists in `kinds` (checked, in order: each a non-empty list of valid regular
    expressions, else a `UserError` naming `source` and the kind)."""
    return _scanner({kind: _checked(phrases, kind, source) for kind, phrases in kinds.items()})


def _checked(phrases: Any, kind: str, source: str) -> list[str]:
    if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p for p in phrases):
        raise UserError(f"{source}: needs a non-empty list of strings under {kind!r}")
    for phrase in phrases:
        try:
            re.compile(phrase.removeprefix("^").encode("utf-8"))  # compiled for UTF-8 bytes
        except re.error as exc:
            raise UserError(f"{source}: bad regular expression in {kind!r}: {phrase!r}: {exc}") from None
    return phrases


def _scanner(kinds: dict[str, list[str]]) -> PhraseScanner:
    items = [(literal_anchors(p), k, p) for k, phrases in enumerate(kinds.values()) for p in phrases]
    loose: dict[tuple[int, bool], list[str]] = {}
    anchored: list[tuple[str, int, str]] = []
    for anchors, kind, phrase in items:
        if anchors is None:
            loose.setdefault((kind, phrase.startswith("^")), []).append(phrase.removeprefix("^"))
        else:
            anchored += [(anchor, kind, phrase) for anchor in anchors]
    kept: list[str] = []
    grouped: dict[tuple[str, int, bool], list[str]] = {}
    for anchor, kind, phrase in sorted(anchored, key=lambda item: len(item[0])):
        shorter = next((a for a in kept if anchor.startswith(a)), None)
        if shorter is None:
            kept.append(anchor)
        bodies = grouped.setdefault((shorter or anchor, kind, phrase.startswith("^")), [])
        if phrase.removeprefix("^") not in bodies:
            bodies.append(phrase.removeprefix("^"))

    def combine(bodies: list[str]) -> re.Pattern:
        return re.compile("|".join(f"(?:{b})" for b in bodies).encode("utf-8"), re.IGNORECASE)

    probes: dict[bytes, list[_Probe]] = {}
    for (anchor, kind, initial), bodies in sorted(grouped.items()):
        probes.setdefault(anchor.encode("utf-8"), []).append(_Probe(kind, initial, combine(bodies)))
    by_first: dict[bytes, list[bytes]] = {}
    for anchor in probes:
        by_first.setdefault(anchor[:1], []).append(anchor)
    searches = tuple(re.compile(_trie(group)) for _, group in sorted(by_first.items()))
    unanchored = tuple(_Probe(kind, initial, combine(bodies)) for (kind, initial), bodies in sorted(loose.items()))
    return PhraseScanner(tuple(kinds), searches, {a: tuple(p) for a, p in probes.items()}, unanchored)


def _trie(anchors: list[bytes]) -> bytes:
    """A regular expression matching exactly `anchors`, none a prefix of another, with shared prefixes written once
    (`let me (?:check|verify)`): the regex engine tries alternatives one by one, so a trie keeps each candidate
    position cheap, and a literal first byte lets it find candidates with a fast single-byte search."""
    if len(anchors) == 1:
        return re.escape(anchors[0])
    common = b""
    for column in zip(*anchors, strict=False):
        if len(set(column)) > 1:
            break
        common += bytes([column[0]])
    branches: dict[bytes, list[bytes]] = {}
    for anchor in anchors:
        branches.setdefault(anchor[len(common) : len(common) + 1], []).append(anchor[len(common) :])
    return re.escape(common) + b"(?:" + b"|".join(_trie(group) for _, group in sorted(branches.items())) + b")"


def sentences_matching(text: str, phrases: list[str]) -> frozenset[int]:
    """Where the sentences of `text` that match any of `phrases` start (byte offsets of their first non-space byte),
    as the `math` preset finds them: for measuring and choosing phrases one by one; `steps.count_steps` counts."""
    starts, found = match_sentences(text, compile_phrases({"phrases": phrases}, "sentences_matching"))
    return frozenset(starts[i] for i in found[0])


def match_sentences(text: str, scanner: PhraseScanner) -> tuple[list[int], list[set[int]]]:
    """Where each non-empty sentence of `text` starts (byte offsets into its UTF-8 encoding, in order), and per kind
    of `scanner`, the indices (into those starts) of the sentences that match one of its phrases."""
    data = text.encode("utf-8", "surrogatepass")
    starts = _sentence_starts(data)
    return starts, _scan(data, scanner, starts)


def _sentence_starts(data: bytes) -> list[int]:
    """Where each non-empty sentence of UTF-8 `data` starts (its first non-space byte), in order."""
    starts = [m.end() for m in _SENTENCE.finditer(data)]
    first = _NONSPACE.search(data)
    if first is not None and (not starts or first.start() < starts[0]):
        starts.insert(0, first.start())  # the text before the first boundary
    return starts


def _scan(data: bytes, scanner: PhraseScanner, starts: list[int]) -> list[set[int]]:
    """Per kind, the indices (into `starts`) of the sentences of `data` that match a phrase (a sentence counts once).
    There is no Python-level pass per phrase over the text: Python runs only where an anchor is found."""
    lowered = data.lower()  # ASCII-only: offsets never move
    found: list[set[int]] = [set() for _ in scanner.kinds]
    hits: list[tuple[_Probe, int]] = []
    for search in scanner.searches:
        m = search.search(lowered)
        while m is not None:
            at = m.start()
            hits += [(probe, at) for probe in scanner.probes[m.group()] if probe.pattern.match(data, at)]
            m = search.search(lowered, at + 1)
    for probe in scanner.unanchored:
        hits += [(probe, m.start()) for m in probe.pattern.finditer(data)]
    if not starts:
        return found  # only an anchor-less phrase can match blank text
    for probe, at in hits:
        sentence = bisect_right(starts, at) - 1
        if sentence < 0:
            sentence = 0  # a phrase that starts with blanks, before the first sentence
        if not probe.initial or not data[starts[sentence] : at].strip(_SENTENCE_LEAD):
            found[probe.kind].add(sentence)
    return found


def char_offsets(text: str, byte_offsets: list[int]) -> list[int]:
    """Character offsets of increasing byte offsets into `text`'s UTF-8 (each at a character's first byte, as the
    scanner's sentence starts are): how `match_sentences`' offsets index the str."""
    if text.isascii():
        return list(byte_offsets)
    data = text.encode("utf-8", "surrogatepass")
    chars: list[int] = []
    char = byte = 0
    for offset in byte_offsets:
        char += len(data[byte:offset].decode("utf-8", "surrogatepass"))
        byte = offset
        chars.append(char)
    return chars
