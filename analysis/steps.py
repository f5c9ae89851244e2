"""Step segmentation and classification: how many verification and attempt steps a trace chains.

Every preset is defined here and only here:
- `math` (default): a step is a sentence: a piece of a line that ends at ". ", "? ", "! " or the line's end (the
  unit in which GPT-4o labelled the reference traces; R1-style lines are paragraphs of several sentences). A sentence
  is a verification if it matches a `verify` phrase of the lexicon (`data/math_lexicon.json`, or `--lexicon FILE`),
  and a new attempt / backtrack if it matches an `attempt` phrase. Phrases are case-insensitive regular expressions;
  one that starts with `^` counts only at the start of a sentence (after spaces, list numbers, bullets and quotes);
  a sentence counts at most once per kind. How well the counts track sentence labels is measured by
  `benchmarks/bench_steps.py`.
- `e3-math`: the e3 authors' rule exactly. A line counts once if it contains "wait" or "approximation"
  (case-insensitive, so "await" counts) or starts with "But wait", "Alternatively", "Is there another way",
  "But let me double" or "But hold on" (case-sensitive, at the very start of the line). That single count is both
  `n_verify` and `n_attempts`.
- `countdown`: the thinking (text before `</think>`, or all of it) is split into `\\n\\n`-separated paragraphs; each
  non-empty paragraph is an attempt whose key is its sequence of equations (`a op b = c` per the paper's regex). A
  verification is a line comparing a result with the target: a line with a comparison phrase ("too far", "not 24",
  "target", ...), or an equation whose result equals the target when the target is known.
- `mult`: verification steps are lines starting with `Check:` (the MULT-V format); attempts (generation steps) are
  the lines with a partial product or sum (`a x b = c`, `a + b = c`).
Chained asymmetries (`n_chained`) count verification steps that directly follow a non-verification (generation)
step. Matching is done with whole-text regex scans in C (for `math`: one scan per first letter of the phrases'
literal anchors, Python only where an anchor is found), never a Python loop per marker or per line.
This module does not read trace files or aggregate counts (`asymmetries.py` does), and does not choose the
lexicon (`benchmarks/bench_steps.py` does, from `data/math_lexicon_candidates.json`).
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from e3eval.errors import UserError

PRESETS = ("math", "e3-math", "countdown", "mult")
EQUATION = re.compile(r"\b\d+\s*[\+\-\*/]\s*\d+\s*=\s*\d+(\.\d+)?\b")
_NONEMPTY_LINE = re.compile(r"^[ \t\r\f\v]*\S", re.MULTILINE)
_E3_CONTAINS = re.compile(r"wait|approximation", re.IGNORECASE)
_E3_PREFIX = re.compile(r"^(?:But wait|Alternatively|Is there another way|But let me double|But hold on)", re.MULTILINE)
_COUNTDOWN_COMPARE = re.compile(
    r"too (?:far|big|high|large|small|low|much)|not (?:equal|the target|enough|\d+)|\btarget\b|!=|≠|\bclose\b"
    r"|\bequals? \d+|✓|✗",
    re.IGNORECASE,
)
_MULT_STEP = re.compile(r"\d[\d,]*\s*(?:[×x\*\+])\s*\d[\d,]*\s*=\s*\d", re.MULTILINE)
_MULT_CHECK = re.compile(r"^[ \t]*Check:", re.MULTILINE)
# The `math` preset's sentences: a boundary is ". ", "? ", "! " or a newline. `_SENTENCE` matches a boundary and the
# blank run after it up to a non-space byte, where the next non-empty sentence starts.
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


def _alternatives(tokens: list[str]) -> list[list[str]]:
    """`tokens` split at its top-level `|`s (outside groups and character classes)."""
    parts: list[list[str]] = [[]]
    depth, in_class = 0, False
    for token in tokens:
        if in_class:
            in_class = token != "]"
        elif token == "[":
            in_class = True
        elif token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
        elif token == "|" and depth == 0:
            parts.append([])
            continue
        parts[-1].append(token)
    return parts


def _group_end(tokens: list[str], start: int) -> int | None:
    """Index of the `)` closing the group opened at `tokens[start]`."""
    depth, in_class = 0, False
    for i in range(start, len(tokens)):
        token = tokens[i]
        if in_class:
            in_class = token != "]"
        elif token == "[":
            in_class = True
        elif token == "(":
            depth += 1
        elif token == ")":
            depth -= 1
            if depth == 0:
                return i
    return None


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


@dataclass(frozen=True)
class Lexicon:
    """The `math` preset's phrases, compiled: kinds "verify" and "attempt"; `source` names where they came from."""

    phrases: PhraseScanner
    source: str


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


def load_lexicon(path: Path | None = None) -> Lexicon:
    """The `math` preset's phrase lists: the bundled file, or a user JSON file with `verify` and `attempt` lists."""
    if path is None:
        text = (resources.files("analysis") / "data" / "math_lexicon.json").read_text(encoding="utf-8")
        source = "bundled math_lexicon.json"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"{path}: cannot read lexicon ({exc.strerror})") from None
        source = str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(data, dict):
        raise UserError(f"{source}: needs a JSON object with 'verify' and 'attempt' lists")
    return lexicon_from(data.get("verify"), data.get("attempt"), source)


def lexicon_from(verify: Any, attempt: Any, source: str = "phrases") -> Lexicon:
    """A lexicon from two phrase lists (checked: non-empty lists of valid regular expressions)."""
    checked = {"verify": _checked(verify, "verify", source), "attempt": _checked(attempt, "attempt", source)}
    return Lexicon(_scanner(checked), source)


def _checked(phrases: Any, kind: str, source: str) -> list[str]:
    if not isinstance(phrases, list) or not phrases or not all(isinstance(p, str) and p for p in phrases):
        raise UserError(f"{source}: needs a non-empty list of strings under {kind!r}")
    for phrase in phrases:
        try:
            re.compile(phrase.removeprefix("^").encode("utf-8"))  # compiled for UTF-8 bytes
        except re.error as exc:
            raise UserError(f"{source}: bad regular expression in {kind!r}: {phrase!r}: {exc}") from None
    return phrases


def sentences_matching(text: str, phrases: list[str]) -> frozenset[int]:
    """Where the sentences of `text` that match any of `phrases` start (byte offsets of their first non-space byte),
    as the `math` preset finds them: for measuring and choosing phrases one by one; `count_steps` counts."""
    scanner = _scanner({"phrases": _checked(phrases, "phrases", "sentences_matching")})
    data = text.encode("utf-8", "surrogatepass")
    starts = _sentence_starts(data)
    return frozenset(starts[i] for i in _scan(data, scanner, starts)[0])


@dataclass
class StepCounts:
    n_steps: int = 0
    n_verify: int = 0
    n_attempts: int = 0
    n_chained: int = 0
    n_equations: int | None = None
    attempt_keys: list[tuple[str, ...]] = field(default_factory=list)


def _newline(text: str | bytes) -> str | bytes:
    return b"\n" if isinstance(text, bytes) else "\n"


def _line_start(text: str | bytes, pos: int) -> int:
    return text.rfind(_newline(text), 0, pos) + 1


def _lines_matching(text: str | bytes, pattern: re.Pattern) -> set[int]:
    """Start offsets of the lines where `pattern` matches (a line counts once)."""
    return {_line_start(text, m.start()) for m in pattern.finditer(text)}


def _lines_with_literals(text: str, lowered: str, literals: tuple[str, ...]) -> set[int]:
    starts: set[int] = set()
    for literal in literals:
        at = lowered.find(literal)
        while at >= 0:
            starts.add(_line_start(text, at))
            end = text.find("\n", at)
            at = lowered.find(literal, end) if end >= 0 else -1
    return starts


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


def _count_lines(text: str) -> int:
    """Steps: non-empty lines."""
    return sum(1 for line in text.split("\n") if line.strip())


def _previous_step(text: str | bytes, line_start: int) -> int | None:
    newline = _newline(text)
    end = line_start - 1  # the newline that ends the previous line
    while end >= 0:
        start = text.rfind(newline, 0, end) + 1
        if text[start:end].strip():
            return start
        end = start - 1
    return None


def _chained_sentences(verify: set[int]) -> int:
    """Verification sentences whose previous sentence is a generation (non-verification) sentence."""
    return sum(1 for sentence in verify if sentence > 0 and sentence - 1 not in verify)


def _chained(text: str | bytes, verify: set[int]) -> int:
    """Verification steps whose previous step is a generation (non-verification) step."""
    chained = 0
    for start in verify:
        previous = _previous_step(text, start)
        if previous is not None and previous not in verify:
            chained += 1
    return chained


def _lowered(text: str) -> str | None:
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else None


def count_steps(text: str, preset: str, lexicon: Lexicon | None = None, target: float | None = None) -> StepCounts:
    """Count steps of one trace (or one budget prefix of it) under `preset`."""
    if preset == "math":
        lexicon = lexicon or load_lexicon()
        data = text.encode("utf-8", "surrogatepass")
        starts = _sentence_starts(data)
        verify, attempts = _scan(data, lexicon.phrases, starts)
        return StepCounts(len(starts), len(verify), len(attempts), _chained_sentences(verify))
    if preset == "e3-math":
        lowered = _lowered(text)
        if lowered is None:
            flagged = _lines_matching(text, _E3_CONTAINS)
        else:
            flagged = _lines_with_literals(text, lowered, ("wait", "approximation"))
        flagged |= _lines_matching(text, _E3_PREFIX)
        return StepCounts(_count_lines(text), len(flagged), len(flagged), _chained(text, flagged))
    if preset == "countdown":
        return _countdown(text, target)
    if preset == "mult":
        checks = _lines_matching(text, _MULT_CHECK)
        steps = _lines_matching(text, _MULT_STEP) - checks
        return StepCounts(_count_lines(text), len(checks), len(steps), _chained(text, checks))
    raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


def thinking_part(text: str) -> str:
    close = text.find("</think>")
    return text[:close] if close >= 0 else text


def _countdown(text: str, target: float | None) -> StepCounts:
    thinking = thinking_part(text)
    keys: list[tuple[str, ...]] = []
    equations = 0
    for paragraph in thinking.split("\n\n"):
        if not paragraph.strip():
            continue
        found = [" ".join(m.group(0).split()) for m in EQUATION.finditer(paragraph)]
        equations += len(found)
        keys.append(tuple(found))
    verify = _lines_matching(thinking, _COUNTDOWN_COMPARE)
    if target is not None:
        verify |= {
            _line_start(thinking, m.start()) for m in EQUATION.finditer(thinking) if _result(m.group(0)) == target
        }
    return StepCounts(_count_lines(thinking), len(verify), len(keys), _chained(thinking, verify), equations, keys)


def _result(equation: str) -> float:
    return float(equation.rsplit("=", 1)[1])
