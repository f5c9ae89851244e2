"""Scoring policies: which answer a sample offers at budget B, and whether it may count.

- `prefix` (default; the e3 paper's evaluation protocol, App. D): the answer is the last complete box in the text
  of the first B tokens, whether or not the model stopped.
- `strict`: an answer counts only if the model finished (emitted EOS) within B tokens; for a response with a thinking
  section the answer must come after the last `</think>` (an unclosed thinking section has no answer).
- `length` (the e3 authors' training/eval scripts): the full response is graded and counts only if it is shorter
  than B tokens (`num_tokens < B`, strict, as in their `process_eval.py`).
This module neither decodes tokens nor grades answers.
"""

from __future__ import annotations

from e3eval.errors import UserError
from e3eval.extract import last_boxed
from e3eval.records import POLICIES

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise UserError(f"unknown policy {policy!r}; choose one of {', '.join(POLICIES)}")
    return policy


def final_section(text: str) -> str | None:
    """The part of a response that may hold the final answer: after `</think>` when there is a thinking section."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE) :]
    if THINK_OPEN in text:
        return None
    return text


def needs_full_text(policy: str) -> bool:
    return policy in ("strict", "length")


def answer_at_budget(
    policy: str,
    prefix_text: str,
    full_text: str,
    num_tokens: int,
    stopped: bool,
    budget: int,
    gold: str | None = None,
) -> str | None:
    """The answer `policy` lets a sample offer at `budget`, or None (no answer within the budget).

    `prefix_text` is the decode of the first `budget` tokens, `full_text` that of all tokens, `stopped` whether the
    engine stopped on EOS (finish reason `stop`), `gold` the gold answer (it decides how many boxes make the answer).
    """
    if policy == "prefix":
        return last_boxed(prefix_text, final=num_tokens <= budget)
    if policy == "strict":
        if not (stopped and num_tokens <= budget):
            return None
        section = final_section(full_text)
        return last_boxed(section) if section is not None else None
    if policy == "length":
        return last_boxed(full_text) if num_tokens < budget else None
    raise UserError(f"unknown policy {policy!r}")
