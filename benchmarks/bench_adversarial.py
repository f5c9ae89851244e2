"""Benchmark: the time one adversarial model output costs, through the real entry points (issue 11, item 2).

Each case is one hostile response, timed where a model output is parsed:
- reward: `e3eval.train.reward.compute_score(data_source, response, ground_truth)` for Countdown, multiplication (MULT
  and MULT-V) and math, on the main thread (math-verify imported beforehand: its first import is not a response's cost);
- score: what `e3eval score` does for one sample, `PrefixDecoder.decode_prefixes` of its stored token ids at every
  budget, then the scoring policy's answer at each budget (prefix, strict, length), with the tiny model's tokenizer.
Every case also checks the verdict (the reward, or the answer at the largest budget) and exits 1 when one is wrong.
Each time is the median of `--repeats` runs. The baseline is the target of the issue, 0.1 s per response; before the
fixes the same responses took minutes (`<answer>` x 100,000: 306 s) and one 36k-token sample at 4k..36000 52.7 s.
The last line is `bench_adversarial: worst=<s> per response (target < 0.1 s), cases=<n>`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from e3eval.budgets import parse_budgets
from e3eval.dev.tiny_model import build_tiny_model
from e3eval.policy import SampleAtBudget, get_policy
from e3eval.tokenizers import load_tokenizer
from e3eval.train.reward import compute_score
from e3eval.truncate import PrefixDecoder

GT = {"target": 24, "numbers": [3, 5, 3]}
MULT = {"a": 123, "b": 45}
OPEN, CLOSE = "<answer>", "</answer>"
NESTED = "\\boxed{" * 30_000 + "1" + "}" * 30_000
THINK = "<think>" + "\\boxed{" * 11_000 + "</think> \\boxed{1}"


@dataclass(frozen=True)
class RewardCase:
    id: str
    source: str
    response: str
    truth: Any
    reward: float


@dataclass(frozen=True)
class ScoreCase:
    id: str
    response: str
    gold: str
    budgets: str
    answer: str | None  # under the prefix policy at the largest budget


REWARDS = [
    RewardCase("countdown <answer> x100000", "countdown", OPEN * 100_000, GT, 0.0),
    RewardCase("countdown <answer> x20000", "countdown", OPEN * 20_000, GT, 0.0),
    RewardCase("countdown <answer>( x100000", "countdown", f"{OPEN}(" * 100_000, GT, 0.0),
    RewardCase("countdown </answer> x100000", "countdown", CLOSE * 100_000, GT, 0.0),
    RewardCase("countdown ( x100000 nested", "countdown", OPEN + "(" * 10**5 + "3" + ")" * 10**5 + CLOSE, GT, 0.0),
    RewardCase("countdown 10^6-char line", "countdown", "x" * 10**6 + f"{OPEN}(3+5)*3{CLOSE}", GT, 1.0),
    RewardCase("countdown 10^6 newlines", "countdown", "\n" * 10**6, GT, 0.0),
    RewardCase("mult <answer> x20000", "mult", OPEN * 20_000, MULT, 0.0),
    RewardCase("mult <answer> x100000", "mult", OPEN * 100_000, MULT, 0.0),
    RewardCase("mult-v Check: lines x100000", "mult_v", "Check: 12 x 3 = 36\n" * 100_000, MULT, 0.0),
    RewardCase("mult 10^6 digits", "mult", OPEN + "9" * 10**6 + CLOSE, MULT, 0.0),
    RewardCase("math \\boxed{ x8000", "math", "\\boxed{" * 8_000, "1", 0.0),
    RewardCase("math \\boxed{ x12000", "math", "\\boxed{" * 12_000, "1", 0.0),
    RewardCase("math \\boxed{ x12000, gold 1, 2", "math", "\\boxed{" * 12_000, "1, 2", 0.0),
    RewardCase("math nested \\boxed{ x30000", "math", NESTED, "1", 1.0),
    RewardCase("math \\fbox{ x100000", "math", "\\fbox{" * 100_000, "1", 0.0),
    RewardCase("math \\boxed bare x100000", "math", "\\boxed " * 100_000, "1", 0.0),
    RewardCase("math { x10^6", "math", "\\boxed{" + "{" * 10**6, "1", 0.0),
    RewardCase("math blank lines x500000, gold 1, 2", "math", "\n\n" * 500_000 + "\\boxed{1}, \\boxed{2}", "1, 2", 1.0),
]
SCORES = [
    ScoreCase("\\boxed{ x12000 (36k tokens)", "\\boxed{" * 12_000, "1", "4k..36000", None),
    ScoreCase("\\boxed{ x12000 (36k tokens)", "\\boxed{" * 12_000, "1", "4k..36000:1k", None),
    ScoreCase("\\boxed{ x12000 (36k tokens), gold 1, 2", "\\boxed{" * 12_000, "1, 2", "4k..36000", None),
    ScoreCase("nested \\boxed{ x6000", "\\boxed{" * 6_000 + "1" + "}" * 6_000, "1", "4k..36000", "1"),
    ScoreCase("think + \\boxed{ x11000", THINK, "1", "4k..36000", "1"),
    ScoreCase("{ x30000 then \\boxed{1}", "\\boxed{" + "{" * 30_000 + " \\boxed{1}", "1", "4k..36000", "1"),
]


def _median_seconds(work: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def _score_sample(decoder: PrefixDecoder, policy: str, ids: np.ndarray, budgets: list[int], gold: str) -> list:
    """One sample through score's per-sample path (`score._Extractor._sample`): decode every prefix, answer per
    budget."""
    chosen = get_policy(policy)
    texts = decoder.decode_prefixes(ids, [*budgets, len(ids)])
    return [
        chosen.answer(SampleAtBudget(texts[j], texts[-1], len(ids), True, budget, gold))
        for j, budget in enumerate(budgets)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tokenizer", type=Path, help="tokenizer folder (default: build the tiny model in a temp dir)")
    args = parser.parse_args()
    compute_score("math", "\\boxed{\\frac{1}{2}}", "0.5")  # imports math-verify once, outside every timing
    worst, cases, wrong = 0.0, 0, []
    for case in REWARDS:
        seconds, reward = _median_seconds(lambda c=case: compute_score(c.source, c.response, c.truth), args.repeats)
        worst, cases = max(worst, seconds), cases + 1
        print(f"reward {case.id}: {seconds:.4f} s, reward {reward} ({len(case.response):,} chars)")
        if reward != case.reward:
            wrong.append(f"{case.id}: reward {reward}, expected {case.reward}")
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_tokenizer(str(args.tokenizer or build_tiny_model(Path(tmp) / "tiny")))
        decoder = PrefixDecoder(tokenizer)
        for case in SCORES:
            ids = np.asarray(tokenizer(case.response, add_special_tokens=False)["input_ids"], dtype=np.int64)
            budgets = parse_budgets(case.budgets)
            for policy in ("prefix", "strict", "length"):
                seconds, answers = _median_seconds(
                    lambda c=case, p=policy, i=ids, b=budgets: _score_sample(decoder, p, i, b, c.gold), args.repeats
                )
                worst, cases = max(worst, seconds), cases + 1
                print(f"score {policy} {case.id} at {case.budgets} ({len(budgets)} budgets, {len(ids):,} tokens): "
                      f"{seconds:.4f} s, answer at {budgets[-1]}: {answers[-1]!r}")  # fmt: skip
                if policy == "prefix" and answers[-1] != case.answer:
                    wrong.append(f"{case.id}: answer {answers[-1]!r}, expected {case.answer!r}")
    if wrong:
        print("wrong verdicts:\n" + "\n".join(wrong), file=sys.stderr)
        raise SystemExit(1)
    print(f"bench_adversarial: worst={worst:.4f} per response (target < 0.1 s), cases={cases}")


if __name__ == "__main__":
    main()
