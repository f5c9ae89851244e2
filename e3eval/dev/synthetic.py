"""Synthetic rollout pools: realistic-looking long reasoning traces for the demo, tests and benchmarks.

The generator (seeded, pure Python) writes, per problem and sample, a thinking section of paragraphs with LaTeX
arithmetic, self-checks ("Wait, let me verify ..."), and intermediate `\\boxed{}` guesses, then `</think>` and a final
boxed answer. Each problem has a difficulty p (its chance that a finished sample's final answer is correct); the
final answer is written in a varied but equivalent form (`391`, `0391`, `\\frac{782}{2}`, `\\dfrac{3}{4}`, `0.75`)
so grading does real work. Intermediate guesses are right with probability p/2 and otherwise wrong, so accuracy rises
with the budget. A fraction of samples run out of tokens before any final answer; they are cut at exactly
`max_tokens` tokens and marked `finish_reason: length`, as an engine would. Records carry token ids, so importing
them is exact. This module does not grade or score anything.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.records import Problem

_OPENERS = [
    "Let me think about this carefully.",
    "First, I need to understand what the problem is asking.",
    "Okay, so we want to find the value requested.",
    "Let me set up the computation step by step.",
]
_STEPS = [
    "We have ${a} \\times {b} = {ab}$, so the product is {ab}.",
    "Then $\\frac{{{ab}}}{{{b}}} = {a}$, as expected.",
    "Consider $x^2 - {s}x + {p} = 0$; the roots sum to {s} and multiply to {p}.",
    "Using $\\binom{{{n}}}{{2}} = \\frac{{{n}({n}-1)}}{{2}} = {c2}$ pairs.",
    "The sum $\\sum_{{k=1}}^{{{n}}} k = \\frac{{{n}({n}+1)}}{{2}} = {tri}$.",
    "So $\\sqrt{{{sq}}} = {r}$ and ${r}^2 = {sq}$.",
    "Modulo {m}, we get ${a} \\equiv {amod} \\pmod{{{m}}}$.",
    "The area is $\\frac{{1}}{{2}} \\cdot {a} \\cdot {b} = {half}$.",
]
_CHECKS = [
    "Wait, let me verify that by substituting back.",
    "Let me double-check this computation.",
    "Hold on, I should confirm the previous step.",
    "Alternatively, let me try another approach to be sure.",
    "But wait, is there another way to see this?",
]
_GUESS = "So the answer might be $\\boxed{{{guess}}}$."
_UNICODE_SPICE = ["≤", "→", "×", "π", "√", "é", "∑", "🙂"]


@dataclass(frozen=True)
class PoolSpec:
    samples: int = 8
    min_tokens: int = 200
    max_tokens: int = 2048
    truncated_fraction: float = 0.15
    seed: int = 0


def _equivalent(gold: str, rng: random.Random) -> str:
    if gold.lstrip("-").isdigit():
        value = int(gold)
        return rng.choice([str(value), f"{value:04d}", f"\\frac{{{2 * value}}}{{2}}", f"{value}.0", str(value)])
    if gold == "\\frac{3}{4}":
        return rng.choice(["\\dfrac{3}{4}", "0.75", "3/4", "\\frac{6}{8}"])
    if gold == "\\frac{1}{8}":
        return rng.choice(["\\frac18", "0.125", "1/8"])
    return gold


def _wrong(gold: str, rng: random.Random) -> str:
    if gold.lstrip("-").isdigit():
        value = int(gold)
        return str(value + rng.choice([-11, -3, -1, 1, 2, 7, 100]))
    return rng.choice(["\\frac{2}{3}", "\\sqrt{3}", "3\\pi", "\\frac{5}{8}", "12"])


def _sentence(rng: random.Random) -> str:
    a, b, n, m = rng.randint(2, 99), rng.randint(2, 99), rng.randint(3, 60), rng.randint(3, 13)
    r = rng.randint(2, 40)
    values = {
        "a": a, "b": b, "ab": a * b, "s": a + b, "p": a * b, "n": n, "c2": n * (n - 1) // 2,
        "tri": n * (n + 1) // 2, "sq": r * r, "r": r, "m": m, "amod": a % m, "half": a * b / 2,
    }  # fmt: skip
    return rng.choice(_STEPS).format(**values)


def _paragraph(rng: random.Random) -> str:
    sentences = [_sentence(rng) for _ in range(rng.randint(2, 5))]
    if rng.random() < 0.1:
        sentences.append(f"Note {rng.choice(_UNICODE_SPICE)} this bound.")
    return " ".join(sentences)


def reasoning_trace(problem: Problem, p: float, target_chars: int, rng: random.Random) -> str:
    """One synthetic trace of about `target_chars` characters whose final answer is right with probability p."""
    parts = ["<think>", rng.choice(_OPENERS)]
    size = 0
    while size < target_chars:
        paragraph = _paragraph(rng)
        if rng.random() < 0.3:
            paragraph += " " + rng.choice(_CHECKS)
        if rng.random() < 0.12:
            guess = _equivalent(problem.answer, rng) if rng.random() < p / 2 else _wrong(problem.answer, rng)
            paragraph += " " + _GUESS.format(guess=guess)
        parts.append(paragraph)
        size += len(paragraph) + 2
    final = _equivalent(problem.answer, rng) if rng.random() < p else _wrong(problem.answer, rng)
    parts.append("</think>")
    parts.append(f"Therefore, the final answer is $\\boxed{{{final}}}$.")
    return "\n\n".join(parts)


def generate_pool(problems: list[Problem], spec: PoolSpec, tokenizer: Any) -> Iterator[dict[str, Any]]:
    """Yield one JSON-ready record per (problem, sample): id, sample_idx, response, token_ids, finish_reason, answer."""
    rng = random.Random(spec.seed)
    probe = " ".join(_paragraph(random.Random(i)) for i in range(50))
    chars_per_token = len(probe) / len(tokenizer(probe, add_special_tokens=False)["input_ids"])
    for problem in problems:
        p = rng.choice([0.05, 0.2, 0.4, 0.6, 0.8, 0.95])
        for sample_idx in range(spec.samples):
            truncated = rng.random() < spec.truncated_fraction
            tokens = spec.max_tokens * 2 if truncated else rng.randint(spec.min_tokens, spec.max_tokens)
            text = reasoning_trace(problem, p, int(tokens * chars_per_token * 0.92), rng)
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            finish = "stop"
            if len(ids) >= spec.max_tokens:
                ids, finish = ids[: spec.max_tokens], "length"
                text = tokenizer.decode(ids, skip_special_tokens=True)
            yield {
                "id": problem.problem_id,
                "sample_idx": sample_idx,
                "response": text,
                "token_ids": ids,
                "finish_reason": finish,
                "answer": problem.answer,
            }


def write_pool(path: Path, problems: list[Problem], spec: PoolSpec, tokenizer: Any) -> int:
    """Write a synthetic pool as JSONL; returns the number of records."""
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in generate_pool(problems, spec, tokenizer):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    return count
