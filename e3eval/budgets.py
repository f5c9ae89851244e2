"""Token budgets: the one parser for every `--budgets` flag.

Grammar (k = 1024, case-insensitive, no other suffixes):
  `4k..40k`      doubling from the start, plus the end point: 4096, 8192, 16384, 32768, 40960
  `4k..40k:4k`   linear steps from the start, plus the end point if the step does not land on it
  `4096,8192`    an explicit list (sorted and de-duplicated)
A budget is below 2^31 (budgets and token counts are stored as int32) and a spec names at most `MAX_BUDGETS`
budgets, so a typo fails at once instead of after all the grading (or in a list of two billion budgets).
This module does not know what a budget is used for; truncation and scoring consume the parsed list.
"""

from __future__ import annotations

import re

from e3eval.errors import UserError

_SIZE = re.compile(r"^\s*(\d+)\s*([kK]?)\s*$")
MAX_TOKENS = 2**31 - 1  # the int32 columns (budget, tokens_used, num_tokens) hold no more
MAX_BUDGETS = 10_000


def parse_size(text: str, name: str = "budget") -> int:
    """`4k` -> 4096, `4096` -> 4096. Raises UserError (naming the flag as `name`) on anything else."""
    match = _SIZE.match(text)
    if not match:
        raise UserError(f"{name} {_shown(text)} is not a token count (write 4096 or 4k; k = 1024)")
    digits = match.group(1).lstrip("0") or "0"
    # Python refuses to parse integers of over 4,300 digits; anything over 12 is too large anyway.
    value = int(digits[:13]) * (1024 if match.group(2) else 1)
    if value <= 0:
        raise UserError(f"{name} {_shown(text)} must be positive")
    if value > MAX_TOKENS:
        raise UserError(f"{name} {_shown(text)} is too large: at most {MAX_TOKENS:,} tokens (2^31 - 1)")
    return value


def parse_budgets(spec: str) -> list[int]:
    """Parse a budget spec into a sorted list of distinct positive token counts."""
    spec = spec.strip()
    if not spec:
        raise UserError("empty budget spec (examples: 4k..40k, 4k..40k:4k, 4096,8192)")
    if ".." in spec:
        return _parse_range(spec)
    if ":" in spec:
        raise UserError(f"budget spec {_shown(spec)}: a step (':') needs a range such as 4k..40k:4k")
    parts = [p for p in spec.split(",")]
    if any(not p.strip() for p in parts):
        raise UserError(f"budget spec {_shown(spec)} has an empty list item")
    _check_count(spec, len(parts))
    return sorted({parse_size(p) for p in parts})


def _parse_range(spec: str) -> list[int]:
    range_part, _, step_part = spec.partition(":")
    start_text, _, end_text = range_part.partition("..")
    if ".." in end_text or not start_text.strip() or not end_text.strip():
        raise UserError(f"budget range {_shown(spec)} must look like 4k..40k or 4k..40k:4k")
    start, end = parse_size(start_text), parse_size(end_text)
    if start > end:
        raise UserError(f"budget range {_shown(spec)} starts above its end")
    budgets: list[int] = []
    if step_part:
        step = parse_size(step_part)
        _check_count(spec, (end - start) // step + 1 + ((end - start) % step > 0))
        budgets = list(range(start, end + 1, step))
    else:
        value = start
        while value <= end:
            budgets.append(value)
            value *= 2
    if budgets[-1] != end:
        budgets.append(end)
    return budgets


def _check_count(spec: str, count: int) -> None:
    if count > MAX_BUDGETS:
        raise UserError(f"budget spec {_shown(spec)} names {count:,} budgets; at most {MAX_BUDGETS:,} (a larger step?)")


def _shown(text: str) -> str:
    """The user's text in a message, cut short (a pasted list of 10,001 budgets is not repeated back)."""
    return repr(text if len(text) <= 60 else text[:57] + "...")


def format_budget(tokens: int) -> str:
    """4096 -> '4k', 6000 -> '6000': the short form used in tables and plots."""
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else str(tokens)
