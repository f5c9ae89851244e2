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
step. Matching is done with whole-text regex scans in C, never a Python loop per marker or per line.
`step_spans` gives the same steps as character spans with their kinds (for a reader to see them in the text): one
span per step `count_steps` counts, so its counts equal the counters. A `countdown` attempt is a paragraph, marked on
its first line; the `math` preset's spans run from one sentence start to the next, trailing spaces left out.
This module does not match phrases or split sentences (`phrases.py` does), read trace files or aggregate counts
(`asymmetries.py` does), or choose the lexicon (`benchmarks/bench_steps.py` does, from
`data/math_lexicon_candidates.json`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from e3eval.analysis.phrases import PhraseScanner, char_offsets, compile_phrases, match_sentences
from e3eval.errors import UserError

PRESETS = ("math", "e3-math", "countdown", "mult")
EQUATION = re.compile(r"\b\d+\s*[\+\-\*/]\s*\d+\s*=\s*\d+(\.\d+)?\b")
_E3_CONTAINS = re.compile(r"wait|approximation", re.IGNORECASE)
_E3_PREFIX = re.compile(r"^(?:But wait|Alternatively|Is there another way|But let me double|But hold on)", re.MULTILINE)
_COUNTDOWN_COMPARE = re.compile(
    r"too (?:far|big|high|large|small|low|much)|not (?:equal|the target|enough|\d+)|\btarget\b|!=|≠|\bclose\b"
    r"|\bequals? \d+|✓|✗",
    re.IGNORECASE,
)
_MULT_STEP = re.compile(r"\d[\d,]*\s*(?:[×x\*\+])\s*\d[\d,]*\s*=\s*\d", re.MULTILINE)
_MULT_CHECK = re.compile(r"^[ \t]*Check:", re.MULTILINE)


@dataclass(frozen=True)
class PresetCounters:
    """What a preset's two counters count, in words for a table's legend. `shared` is set when the preset counts
    one thing as both (the e3 rule's flagged lines): a table then shows that counter once, under this name."""

    verify: str
    attempts: str
    shared: str | None = None


COUNTERS = {
    "math": PresetCounters(
        verify="sentences with a verification phrase (lexicon: verify)",
        attempts="sentences that start a new attempt or backtrack (lexicon: attempt)",
    ),
    "e3-math": PresetCounters(
        verify="flagged", attempts="flagged",
        shared="lines with 'wait' or 'approximation', or opening with 'But wait', 'Alternatively', 'Is there "
        "another way', 'But let me double', 'But hold on'; the e3 rule counts each as a verification and an attempt",
    ),
    "countdown": PresetCounters(
        verify="thinking lines that compare a result with the target",
        attempts="paragraphs of the thinking (each an attempt)",
    ),
    "mult": PresetCounters(verify="'Check:' lines", attempts="lines with a partial product or sum"),
}  # fmt: skip


@dataclass(frozen=True)
class Lexicon:
    """The `math` preset's phrases, compiled: kinds "verify" and "attempt"; `source` names where they came from."""

    phrases: PhraseScanner
    source: str


def load_lexicon(path: Path | None = None) -> Lexicon:
    """The `math` preset's phrase lists: the bundled file, or a user JSON file with `verify` and `attempt` lists."""
    if path is None:
        text = (resources.files("e3eval.analysis") / "data" / "math_lexicon.json").read_text(encoding="utf-8")
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
    return Lexicon(compile_phrases({"verify": verify, "attempt": attempt}, source), source)


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
        starts, (verify, attempts) = match_sentences(text, lexicon.phrases)
        return StepCounts(len(starts), len(verify), len(attempts), _chained_sentences(verify))
    if preset == "e3-math":
        flagged = e3_flagged_lines(text)
        return StepCounts(_count_lines(text), len(flagged), len(flagged), _chained(text, flagged))
    if preset == "countdown":
        return _countdown(text, target)
    if preset == "mult":
        checks, steps = mult_lines(text)
        return StepCounts(_count_lines(text), len(checks), len(steps), _chained(text, checks))
    raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


@dataclass(frozen=True)
class Step:
    """One step of a trace as a character span `[start, end)`, and what it is: a verification, the start of a new
    attempt, a verification directly after a generation step (`chained`)."""

    start: int
    end: int
    verify: bool
    attempt: bool
    chained: bool


def step_spans(text: str, preset: str, lexicon: Lexicon | None = None, target: float | None = None) -> list[Step]:
    """The steps `count_steps(text, preset)` counts, in order, as spans: as many steps, verifications, attempts and
    chained verifications as its counters say."""
    if preset == "math":
        lexicon = lexicon or _bundled_lexicon()
        starts, (verify, attempts) = match_sentences(text, lexicon.phrases)
        chars = char_offsets(text, starts)
        ends = [*chars[1:], len(text)][: len(chars)]
        chained = {i for i in verify if i > 0 and i - 1 not in verify}  # as `_chained_sentences` counts them
        return [
            Step(a, a + len(text[a:b].rstrip()), i in verify, i in attempts, i in chained)
            for i, (a, b) in enumerate(zip(chars, ends, strict=True))
        ]
    if preset == "e3-math":
        flagged = e3_flagged_lines(text)
        return _line_steps(text, flagged, flagged)
    if preset == "mult":
        checks, steps = mult_lines(text)
        return _line_steps(text, checks, steps)
    if preset == "countdown":
        thinking = thinking_part(text)
        verify = _countdown_verify(thinking, target)
        return _line_steps(thinking, verify, _paragraph_first_lines(thinking))
    raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")


@functools.cache
def _bundled_lexicon() -> Lexicon:
    """The bundled lexicon, compiled once: a reader steps through many traces (compiling takes ~10 ms)."""
    return load_lexicon()


def _line_steps(text: str, verify: set[int], attempts: set[int]) -> list[Step]:
    """Non-empty lines as steps (what `_count_lines` counts), flagged by their start offsets; chained as `_chained`
    counts it (the previous non-empty line is no verification)."""
    steps: list[Step] = []
    at = 0
    for line in text.split("\n"):
        if line.strip():
            checks = at in verify
            chained = checks and bool(steps) and not steps[-1].verify
            steps.append(Step(at, at + len(line.rstrip()), checks, at in attempts, chained))
        at += len(line) + 1
    return steps


def _paragraph_first_lines(thinking: str) -> set[int]:
    """Where each attempt of the `countdown` preset (a non-blank paragraph) shows: its first line that is not blank."""
    firsts: set[int] = set()
    at = 0
    for paragraph in thinking.split("\n\n"):
        if not is_blank(paragraph):
            line_at = at
            for line in paragraph.split("\n"):
                if not is_blank(line):
                    firsts.add(line_at)
                    break
                line_at += len(line) + 1
        at += len(paragraph) + 2
    return firsts


def e3_flagged_lines(text: str) -> set[int]:
    """Start offsets of the lines the `e3-math` rule flags (each counts once, as verification and as attempt)."""
    lowered = _lowered(text)
    if lowered is None:
        flagged = _lines_matching(text, _E3_CONTAINS)
    else:
        flagged = _lines_with_literals(text, lowered, ("wait", "approximation"))
    return flagged | _lines_matching(text, _E3_PREFIX)


def mult_lines(text: str) -> tuple[set[int], set[int]]:
    """Start offsets of the `mult` preset's `Check:` lines and of its generation-step lines (the others)."""
    checks = _lines_matching(text, _MULT_CHECK)
    return checks, _lines_matching(text, _MULT_STEP) - checks


def thinking_part(text: str) -> str:
    close = text.find("</think>")
    return text[:close] if close >= 0 else text


def is_blank(text: str) -> bool:
    """No step can start in `text`: whitespace and the `<think>` tag only (a response that opens its thinking itself,
    `<think></think>` included, has no attempt in that tag)."""
    return not text.replace("<think>", "").strip()


def _countdown_verify(thinking: str, target: float | None) -> set[int]:
    """Start offsets of the thinking's lines that compare a result with the target."""
    verify = _lines_matching(thinking, _COUNTDOWN_COMPARE)
    if target is not None:
        verify |= {
            _line_start(thinking, m.start()) for m in EQUATION.finditer(thinking) if _result(m.group(0)) == target
        }
    return verify


def _countdown(text: str, target: float | None) -> StepCounts:
    thinking = thinking_part(text)
    keys: list[tuple[str, ...]] = []
    equations = 0
    for paragraph in thinking.split("\n\n"):
        if is_blank(paragraph):
            continue
        found = [" ".join(m.group(0).split()) for m in EQUATION.finditer(paragraph)]
        equations += len(found)
        keys.append(tuple(found))
    verify = _countdown_verify(thinking, target)
    return StepCounts(_count_lines(thinking), len(verify), len(keys), _chained(thinking, verify), equations, keys)


def _result(equation: str) -> float:
    return float(equation.rsplit("=", 1)[1])
