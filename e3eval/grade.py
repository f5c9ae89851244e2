"""The grader: is an extracted answer equal to the gold answer? One function, shared by evaluation and RL rewards.

`grade_answer(gold, answer)` returns a `Verdict` (status `ok` with correct True/False, `timeout`, or `error`); it never
raises for bad answers. Integer golds (AIME's `073`, numeric `27.0`) compare as integers: an integer-looking answer is
compared by value without math-verify, anything else goes to math-verify against the canonical integer. All other
golds go to math-verify with the gold first (`verify(gold, pred)` is asymmetric), both sides parsed from a `\\boxed{}`
wrapper. Percentages: a percent sign (`\\%`, `%`, `\\percent`, `\\text{\\%}`) is dropped from both sides before
anything else, so `20\\%` equals `20` and `20 \\%` (the numbers must agree: `0.2` does not equal `20\\%`), as in the
MATH graders of Hendrycks et al. and NeMo-Skills; inside a `\\boxed{}` math-verify would otherwise read `20\\%` as a
string. math-verify's own timeouts use SIGALRM, so this function must run on a process's main thread; `grade_pool.py`
runs it in worker processes with a hard outer deadline. This module does not extract answers from responses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from e3eval.records import GradeStatus

_INTEGER = re.compile(r"^[+-]?\d+(?:\.0*)?$")
# A percent sign in any spelling, with the braces of `\text{\%}`; the escaped forms go first so no backslash is left.
_PERCENT = re.compile(r"\\(?:text|textrm|mathrm)\{\s*\\?%\s*\}|\\percent(?![a-zA-Z])|\\?%")
_INTEGER_NOISE = re.compile(r"\\[,!;: ]|\s|^\$+|\$+$|\\text\{\s*|\.$")
# Integers longer than this are not compared by value (they are no benchmark's answer, and huge ones are slow).
_MAX_INTEGER_DIGITS = 200


@dataclass(frozen=True)
class Verdict:
    status: GradeStatus
    correct: bool | None
    detail: str | None = None


def canonical_integer(text: str) -> int | None:
    """`073` -> 73, `27.0` -> 27, `$1\\,024$` -> 1024; None if the text is not a plain integer."""
    cleaned = _INTEGER_NOISE.sub("", text.strip())
    if cleaned.endswith("}") and text.strip().startswith("\\text{"):
        cleaned = cleaned[:-1]
    if not _INTEGER.match(cleaned) or len(cleaned) > _MAX_INTEGER_DIGITS:
        return None
    return int(cleaned.split(".")[0])


def without_percent(text: str) -> str:
    """`20\\%` -> `20`: the grading convention that a percent sign on either side is ignored (module docstring)."""
    return _PERCENT.sub("", text) if "%" in text or "\\percent" in text else text


def _math_verify() -> Any:
    import math_verify

    return math_verify


def _parse(text: str, timeout_s: int) -> list[Any]:
    mv = _math_verify()
    return mv.parse(f"\\boxed{{{text}}}", parsing_timeout=timeout_s, raise_on_error=True)


@lru_cache(maxsize=4096)
def _parse_gold(gold: str, timeout_s: int) -> list[Any]:
    return _parse(gold, timeout_s)


def quick_verdict(gold: str, answer: str | None) -> Verdict | None:
    """The verdict when no symbolic work is needed (no answer, or integer vs integer), else None.

    Safe to call anywhere (any thread, no math-verify, bounded work), so callers can skip the isolated pool.
    """
    if answer is None or not answer.strip():
        return Verdict("no_answer", False)
    gold, answer = without_percent(gold), without_percent(answer)
    if not answer.strip():
        return Verdict("ok", False, "answer is only a percent sign")
    gold_int = canonical_integer(gold)
    answer_int = canonical_integer(answer) if gold_int is not None else None
    if answer_int is not None:
        return Verdict("ok", answer_int == gold_int)
    return None


def grade_answer(gold: str, answer: str | None, timeout_s: int = 3) -> Verdict:
    """Judge one extracted answer against a gold answer. Runs on the main thread (math-verify uses SIGALRM)."""
    quick = quick_verdict(gold, answer)
    if quick is not None:
        return quick
    assert answer is not None
    gold, answer = without_percent(gold), without_percent(answer)
    gold_int = canonical_integer(gold)
    if gold_int is not None:
        gold = str(gold_int)
    from math_verify.errors import TimeoutException

    try:
        gold_parsed = _parse_gold(gold, timeout_s)
        pred_parsed = _parse(answer, timeout_s)
    except TimeoutException:
        return Verdict("timeout", None, "parse timed out")
    except Exception as exc:  # math-verify's failures on hostile input are data, not crashes
        return Verdict("error", None, f"parse: {type(exc).__name__}: {str(exc)[:200]}")
    if not gold_parsed:
        return Verdict("error", None, "gold answer could not be parsed")
    if not pred_parsed:
        return Verdict("ok", False, "answer could not be parsed")
    return _compare(gold_parsed, pred_parsed, timeout_s)


def _compare(gold_parsed: list[Any], pred_parsed: list[Any], timeout_s: int) -> Verdict:
    from math_verify.errors import TimeoutException

    mv = _math_verify()
    timed_out = errors = 0
    for g in gold_parsed:
        for p in pred_parsed:
            try:
                if mv.verify(g, p, timeout_seconds=timeout_s, raise_on_error=True):
                    return Verdict("ok", True)
            except TimeoutException:
                timed_out += 1
            except Exception:
                errors += 1
    pairs = len(gold_parsed) * len(pred_parsed)
    if timed_out:
        return Verdict("timeout", None, f"verify timed out on {timed_out}/{pairs} comparisons")
    if errors == pairs:
        return Verdict("error", None, "every comparison raised")
    return Verdict("ok", False)
