"""Countdown (CDOWN, paper Sec. 2): combine every given number exactly once with + - * / to reach a target.

`generate(count, seed)` makes problems with 3..8 numbers that are solvable by construction: it draws the numbers,
combines them in a random order with random operations (keeping every intermediate a positive integer) and uses the
result as the target; difficulty is the number of numbers. `check(response, numbers, target)` takes the last
`<answer>...</answer>` on the response's final non-empty line, evaluates the part before any `=` with the safe parser
of `arithmetic.py` (never `eval`), requires every given number used exactly once, and accepts |result - target| <
1e-5.

The checker grades RL rollouts, so no response can stall it (issue 11; `<answer>` x 100,000 took 306 s when the tags
were found by a lazy regex): the final non-empty line is found by searching back from the end of the response (never
splitting the whole of it into lines), the last tag pair on it by `e3eval.extract.last_tag_span` (linear), and the
expression is bounded by `arithmetic.py` (512 characters, nesting depth 32, literals of 12 digits) before any
arithmetic is done. These bounds find the same answer and verdict as the rule above for every response.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from e3eval.extract import last_tag_span
from e3eval.train.tasks.arithmetic import ExpressionError, evaluate

# The characters `str.splitlines` breaks lines at (all of them whitespace, so `str.strip` removes them too).
_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
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


def final_line(response: str) -> str:
    """The last non-empty line of `response` (its trailing whitespace cut), or "": the line holding the last
    non-whitespace character, which is what `[line for line in response.splitlines() if line.strip()][-1]` gives."""
    end = len(response.rstrip())
    start = max(response.rfind(c, 0, end) for c in _LINE_BREAKS) + 1
    return response[start:end]


def extract_answer(response: str) -> str | None:
    line = final_line(response)
    span = last_tag_span(line)
    return line[span[0] : span[1]].strip() if span else None


def check(response: str, numbers: list[int] | tuple[int, ...], target: float) -> CountdownCheck:
    answer = extract_answer(response)
    if answer is None:
        return CountdownCheck(False, "no <answer> on the final line")
    expression = answer.partition("=")[0]
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
