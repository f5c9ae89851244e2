"""n x m-digit multiplication (MULT and MULT-V, paper Sec. 2): a task without (MULT) and with (MULT-V) a
verification-generation gap.

`generate(count, n_digits, m_digits, seed)` draws factors with exactly n and m digits. MULT asks for the product;
MULT-V asks the model to check its partial results on lines starting with `Check:`, the asymmetry the e3 analysis
counts (`analysis/steps.py`, preset `mult`). `check(response, a, b)` reads the last `<answer>...</answer>` (or,
failing that, the last integer of the response), ignoring thousands separators, and compares it with a * b exactly.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
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
    found = _ANSWER.findall(response)
    text = found[-1] if found else response[-MAX_ANSWER_CHARS:]
    numbers = _INTEGER.findall(text[-MAX_ANSWER_CHARS:])
    if not numbers:
        return None
    digits = numbers[-1].replace(",", "")
    return int(digits) if len(digits) <= 64 else None


def check(response: str, a: int, b: int) -> bool:
    return extract_answer(response) == a * b
