"""Countdown (CDOWN, paper Sec. 2): combine every given number exactly once with + - * / to reach a target.

`generate(count, seed)` makes problems with 3..8 numbers that are solvable by construction: it draws the numbers,
combines them in a random order with random operations (keeping every intermediate a positive integer) and uses the
result as the target; difficulty is the number of numbers. `check(response, numbers, target)` takes the last
`<answer>...</answer>` on the response's final non-empty line, evaluates it with the safe parser of
`arithmetic.py` (never `eval`), requires every given number used exactly once, and accepts |result - target| < 1e-5.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass

from train.tasks.arithmetic import ExpressionError, evaluate

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
TOLERANCE = 1e-5
PROMPT = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic operations "
    "(+, -, *, /) and each number must be used exactly once. Show your work in <think> </think> tags. And return the "
    "final equation in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>."
)


@dataclass(frozen=True)
class CountdownProblem:
    numbers: tuple[int, ...]
    target: int
    solution: str

    @property
    def difficulty(self) -> int:
        return len(self.numbers)

    def prompt(self) -> str:
        return PROMPT.format(numbers=list(self.numbers), target=self.target)


@dataclass(frozen=True)
class CountdownCheck:
    correct: bool
    reason: str


def _one(rng: random.Random, size: int, max_number: int, max_target: int) -> CountdownProblem | None:
    numbers = [rng.randint(1, max_number) for _ in range(size)]
    order = numbers[:]
    rng.shuffle(order)
    value, expression = order[0], str(order[0])
    for number in order[1:]:
        choices = ["+", "*"] + (["-"] if value > number else []) + (["/"] if number and value % number == 0 else [])
        operator = rng.choice(choices)
        value = {"+": value + number, "-": value - number, "*": value * number, "/": value // number}[operator]
        expression = f"({expression} {operator} {number})"
    if not 1 <= value <= max_target:
        return None
    return CountdownProblem(tuple(numbers), value, expression[1:-1] if expression.startswith("(") else expression)


def generate(count: int, size: int, seed: int, max_number: int = 99, max_target: int = 1000) -> list[CountdownProblem]:
    """`count` distinct solvable problems with `size` numbers (3..8), reproducible from `seed`."""
    if not 3 <= size <= 8:
        raise ValueError("Countdown problems have 3 to 8 numbers")
    rng = random.Random(f"countdown/{size}/{seed}")
    problems: list[CountdownProblem] = []
    seen: set[tuple[tuple[int, ...], int]] = set()
    attempts = 0
    while len(problems) < count:
        attempts += 1
        if attempts > 200 * count + 1000:
            raise RuntimeError("could not generate enough distinct Countdown problems")
        problem = _one(rng, size, max_number, max_target)
        if problem is not None and (problem.numbers, problem.target) not in seen:
            seen.add((problem.numbers, problem.target))
            problems.append(problem)
    return problems


def extract_answer(response: str) -> str | None:
    lines = [line for line in response.splitlines() if line.strip()]
    if not lines:
        return None
    found = _ANSWER.findall(lines[-1])
    return found[-1].strip() if found else None


def check(response: str, numbers: list[int] | tuple[int, ...], target: float) -> CountdownCheck:
    answer = extract_answer(response)
    if answer is None:
        return CountdownCheck(False, "no <answer> on the final line")
    expression = answer.split("=")[0]
    try:
        value, literals = evaluate(expression)
    except ExpressionError as exc:
        return CountdownCheck(False, f"not an arithmetic expression: {exc}")
    if any(lit.denominator != 1 for lit in literals):
        return CountdownCheck(False, "uses a non-integer literal")
    if Counter(int(lit) for lit in literals) != Counter(numbers):
        return CountdownCheck(False, "must use every given number exactly once")
    if abs(float(value) - float(target)) >= TOLERANCE:
        return CountdownCheck(False, f"evaluates to {float(value):g}, not {target:g}")
    return CountdownCheck(True, "ok")
