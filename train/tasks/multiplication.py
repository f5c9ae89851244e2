"""n x m-digit multiplication (MULT and MULT-V, paper Sec. 2): a task without (MULT) and with (MULT-V) a
verification-generation gap.

`generate(count, n_digits, m_digits, seed)` draws factors with exactly n and m digits. MULT asks for the product;
MULT-V asks the model to check its partial results on lines starting with `Check:`, the asymmetry the e3 analysis
counts (`analysis/steps.py`, preset `mult`). `check(response, a, b)` reads the last `<answer>...</answer>` (or,
failing that, the last integer of the response), ignoring thousands separators, and compares it with a * b exactly.

No response can stall the checker (issue 11; `<answer>` x 20,000 took 12.5 s when the tags were found by a lazy
regex): the last tag pair is found by `e3eval.extract.last_tag_span` (linear, searching back from the end), and only
the last `MAX_ANSWER_CHARS` characters of the answer (or of the response) are read for the integer, which must have
at most 64 digits. A product of two factors a model is asked to multiply fits in both bounds.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from e3eval.extract import last_tag_span

_INTEGER = re.compile(r"-?\d[\d,]*")
MAX_ANSWER_CHARS = 200

MULT_PROMPT = (
    "Compute {a} x {b}. Work through the partial products step by step inside <think> </think> tags, then give the "
    "final product inside <answer> </answer> tags."
)
MULT_V_PROMPT = (
    "Compute {a} x {b}. Work through the partial products step by step inside <think> </think> tags. After each "
    "partial product or sum, verify it on its own line starting with 'Check:'. Then give the final product inside "
    "<answer> </answer> tags."
)


@dataclass(frozen=True)
class MultProblem:
    a: int
    b: int

    @property
    def product(self) -> int:
        return self.a * self.b

    def prompt(self, verify: bool = False) -> str:
        return (MULT_V_PROMPT if verify else MULT_PROMPT).format(a=self.a, b=self.b)


def generate(count: int, n_digits: int, m_digits: int, seed: int) -> list[MultProblem]:
    if n_digits < 1 or m_digits < 1:
        raise ValueError("digit counts must be positive")
    rng = random.Random(f"mult/{n_digits}x{m_digits}/{seed}")

    def draw(digits: int) -> int:
        return rng.randint(10 ** (digits - 1) if digits > 1 else 0, 10**digits - 1)

    return [MultProblem(draw(n_digits), draw(m_digits)) for _ in range(count)]


def extract_answer(response: str) -> int | None:
    span = last_tag_span(response)
    start, end = span if span else (0, len(response))
    numbers = _INTEGER.findall(response[max(start, end - MAX_ANSWER_CHARS) : end])
    if not numbers:
        return None
    digits = numbers[-1].replace(",", "")
    return int(digits) if len(digits) <= 64 else None


def check(response: str, a: int, b: int) -> bool:
    return extract_answer(response) == a * b
