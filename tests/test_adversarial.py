"""No model output can stall scoring or rewards (issue 11, item 2): adversarial responses through every place a model
output is parsed (`\\boxed{}` extraction, the multi-box final answer, `<answer>` tags, the Countdown and
multiplication checkers, the math reward, scoring at many budgets), each finishing well within 10 s with the verdict
a legitimate grader gives (no answer / reward 0.0, or the right answer when one stands after the hostile text).

Before the fixes: `compute_score('countdown', '<answer>' * 100000, gt)` took 306 s (x 20,000: 12.2 s), mult 12.5 s,
math (`\\boxed{` x 8,000) 9.8 s, and one `\\boxed{` x 12,000 sample scored at 4k..36000 took 52.7 s. The property tests
pin the linear extractors to the definitions they replace (`re.findall` of a lazy tag regex, `str.splitlines`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import write_jsonl
from hostile import Case, run_case
from hypothesis import given, settings
from hypothesis import strategies as st

from e3eval.budgets import parse_budgets
from e3eval.extract import boxes, last_boxed, last_tag_span
from e3eval.ingest import ImportConfig, import_run
from e3eval.policy import answer_at_budget, final_answer
from e3eval.score import ScoreConfig, score_run
from e3eval.train.reward import compute_score
from e3eval.train.tasks.countdown import check, extract_answer
from e3eval.train.tasks.multiplication import extract_answer as mult_answer

BOUND_S = 10.0  # generous: linear extraction takes milliseconds on these; the quadratic one took minutes
GT = {"target": 24, "numbers": [3, 5, 3]}
MULT = {"a": 123, "b": 45}  # 5535
NESTED = "\\boxed{" * 30_000 + "1" + "}" * 30_000


def _timed(work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    result = work()
    seconds = time.perf_counter() - started
    assert seconds < BOUND_S, f"took {seconds:.1f} s"
    return result


@pytest.fixture(scope="module", autouse=True)
def _grader_imported() -> None:
    """math-verify's first import (seconds) is not the response's cost: pay it before any timing."""
    assert compute_score("math", "\\boxed{\\frac{1}{2}}", "0.5") == 1.0


@dataclass(frozen=True)
class Reward:
    id: str
    source: str
    response: str
    truth: Any
    reward: float


OPEN, CLOSE = "<answer>", "</answer>"
RIGHT = f"{OPEN}(3+5)*3{CLOSE}"  # the one right Countdown answer for GT
CHECKS = "Check: 12 x 3 = 36\n" * 100_000
REWARDS = [
    Reward("countdown-answer-x100k", "countdown", OPEN * 100_000, GT, 0.0),
    Reward("countdown-answer-x20k", "countdown", OPEN * 20_000, GT, 0.0),
    Reward("countdown-answer-paren-x100k", "countdown", f"{OPEN}(" * 100_000, GT, 0.0),
    Reward("countdown-close-x100k", "countdown", CLOSE * 100_000, GT, 0.0),
    Reward("countdown-closed-answers-x100k", "countdown", f"{OPEN}(3+5)*{CLOSE}" * 100_000, GT, 0.0),
    Reward("countdown-deep-parens", "countdown", OPEN + "(" * 100_000 + "3" + ")" * 100_000 + CLOSE, GT, 0.0),
    Reward("countdown-deep-parens-short", "countdown", OPEN + "(" * 200 + "(3+5)*3" + ")" * 200 + CLOSE, GT, 0.0),
    Reward("countdown-equals-x1e6", "countdown", f"{OPEN}(3+5)*3" + "=" * 10**6 + CLOSE, GT, 1.0),
    Reward("countdown-1e6-line", "countdown", "x" * 10**6, GT, 0.0),
    Reward("countdown-1e6-line-then-answer", "countdown", "x" * 10**6 + RIGHT, GT, 1.0),
    Reward("countdown-1e6-newlines", "countdown", "\n" * 10**6, GT, 0.0),
    Reward("countdown-answer-lines-then-answer", "countdown", f"{OPEN}\n" * 100_000 + RIGHT, GT, 1.0),
    Reward("mult-answer-x20k", "mult", OPEN * 20_000, MULT, 0.0),
    Reward("mult-answer-x100k", "mult", OPEN * 100_000, MULT, 0.0),
    Reward("mult-close-x100k", "mult", CLOSE * 100_000, MULT, 0.0),
    Reward("mult-v-check-lines-x100k", "mult_v", CHECKS, MULT, 0.0),
    Reward("mult-v-check-lines-then-answer", "mult_v", f"{CHECKS}{OPEN}5,535{CLOSE}", MULT, 1.0),
    Reward("mult-digits-1e6", "mult", OPEN + "9" * 10**6 + CLOSE, MULT, 0.0),
    Reward("mult-answer-x100k-then-answer", "mult", OPEN * 100_000 + f"5535{CLOSE}", MULT, 1.0),
    Reward("math-boxed-open-x8000", "math", "\\boxed{" * 8_000, "1", 0.0),
    Reward("math-boxed-open-x12000", "math", "\\boxed{" * 12_000, "1", 0.0),
    Reward("math-boxed-open-x12000-multi", "math", "\\boxed{" * 12_000, "1, 2", 0.0),
    Reward("math-nested-30000", "math", NESTED, "1", 1.0),
    Reward("math-nested-30000-multi", "math", NESTED, "1, 2", 0.0),
    Reward("math-fbox-open-x100k", "math", "\\fbox{" * 100_000, "1", 0.0),
    Reward("math-boxed-bare-x100k", "math", "\\boxed " * 100_000, "1", 0.0),
    Reward("math-braces-open-1e6", "math", "\\boxed{" + "{" * 10**6, "1", 0.0),
    Reward("math-braces-pairs-5e5", "math", "\\boxed{" + "{}" * 500_000, "1", 0.0),
    Reward("math-blank-lines-then-boxes", "math", "\n\n" * 500_000 + "\\boxed{1} and \\boxed{2}", "1, 2", 1.0),
    Reward("math-boxes-x100k-multi", "math", "\\boxed{1}" * 100_000, "1, 2", 0.0),
]


@pytest.mark.parametrize("case", REWARDS, ids=lambda c: c.id)
def test_reward_is_fast_and_right_on_adversarial_output(case: Reward) -> None:
    assert _timed(lambda: compute_score(case.source, case.response, case.truth)) == case.reward


@dataclass(frozen=True)
class Boxed:
    id: str
    text: str
    gold: str | None
    answer: str | None  # what `final_answer` gives, whether the text is final or cut at a budget


BOXED = [
    Boxed("open-x12000", "\\boxed{" * 12_000, None, None),
    Boxed("open-x8000", "\\boxed{" * 8_000, None, None),
    Boxed("open-x12000-multi", "\\boxed{" * 12_000, "1, 2", None),
    Boxed("nested", NESTED, None, "1"),
    Boxed("nested-multi", NESTED, "1, 2", "1"),
    Boxed("unbalanced", "}" * 100_000 + "\\boxed{" * 12_000 + "}" * 100_000, None, None),
    Boxed("fbox-x100k", "\\fbox{" * 100_000 + "\\fbox{1}", None, "1"),
    Boxed("bare-x100k", "\\boxed 7 " + "\\boxed " * 100_000, None, "\\boxed"),
    Boxed("escapes-1e6", "\\boxed{\\{" + "\\{" * 500_000 + "}", None, "\\{" * 1_000),  # cut at 2,000 chars
    Boxed("boxes-x100k-multi", "\\boxed{1}" * 100_000 + "\n\n\\boxed{2} \\boxed{3}", "1, 2", "2, 3"),
]


@pytest.mark.parametrize("case", BOXED, ids=lambda c: c.id)
def test_box_extraction_is_fast_and_right(case: Boxed) -> None:
    for final in (True, False):
        assert _timed(lambda final=final: final_answer(case.text, final, case.gold)) == case.answer
    _timed(lambda: boxes(case.text))


def test_nested_boxes_list_once_without_copying_each_level() -> None:
    # Every level of a 30,000-deep nest used to copy its whole argument (quadratic); listed once, as the inner box.
    found = _timed(lambda: boxes(NESTED))
    assert [(b.start, b.end, b.content) for b in found] == [(0, len(NESTED), "1")]
    assert _timed(lambda: last_boxed(NESTED[:-1], final=False)) == "1"


@pytest.mark.parametrize("policy", ["prefix", "strict", "length"])
def test_policies_at_many_budgets_are_fast(policy: str) -> None:
    text = "<think>" + "\\boxed{" * 12_000 + "</think>\\boxed{1}"
    for budget in parse_budgets("4k..36000:1k"):
        prefix = text[: budget * 2]
        assert _timed(lambda p=prefix, b=budget: answer_at_budget(policy, p, text, 36_000, True, b, "1, 2")) in (
            None,
            "1",
        )


# --- the linear extractors give exactly what the definitions they replace give ---------------------------------

_LAZY_TAGS = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TAG_PARTS = ["<answer>", "</answer>", "<answer", "answer>", "<", ">", "/", "1", "3", "+", "=", " ", "\n", "\r\n", "\r",
              "\x85", "\u2028", "\x1f", "\t", "12,3"]  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(_TAG_PARTS), max_size=30))
def test_tag_span_and_final_line_match_their_definitions(parts: list[str]) -> None:
    text = "".join(parts)
    found = _LAZY_TAGS.findall(text)
    span = last_tag_span(text)
    assert (text[span[0] : span[1]] if span else None) == (found[-1] if found else None)
    lines = [line for line in text.splitlines() if line.strip()]
    last = _LAZY_TAGS.findall(lines[-1]) if lines else []
    assert extract_answer(text) == (last[-1].strip() if last else None)
    tail = found[-1] if found else text[-200:]
    numbers = re.findall(r"-?\d[\d,]*", tail[-200:])
    digits = numbers[-1].replace(",", "") if numbers else ""
    assert mult_answer(text) == (int(digits) if digits and len(digits) <= 64 else None)


def test_checker_reasons_stay_the_same() -> None:
    assert check("<answer>" * 100_000, GT["numbers"], 24).reason == "no <answer> on the final line"
    deep = _timed(lambda: check("<answer>" + "(" * 20 + "3" + ")" * 20 + "</answer>", [3], 3))
    assert deep.correct
    deeper = _timed(lambda: check("<answer>" + "(" * 40 + "3" + ")" * 40 + "</answer>", [3], 3))
    assert "nested too deeply" in deeper.reason


# --- scoring: one 36k-token adversarial sample at 4k..36000 -----------------------------------------------------


def _import(tmp_path: Path, model: Path) -> Path:
    records = [
        {"id": "p", "s": 0, "response": "\\boxed{" * 12_000, "answer": "1", "fr": "length"},
        {"id": "p", "s": 1, "response": "<think>" + "\\boxed{" * 11_000 + "</think> so \\boxed{1}", "answer": "1",
         "fr": "stop"},
    ]  # fmt: skip
    write_jsonl(tmp_path / "adversarial.jsonl", records)
    run = tmp_path / "run"
    import_run(
        ImportConfig(tmp_path / "adversarial.jsonl", run, str(model), finish_reason_field="fr", sample_field="s")
    )
    return run


def test_score_run_of_a_36k_token_boxed_sample_at_many_budgets(tmp_path, tiny_model_dir, tokenizer) -> None:
    assert len(tokenizer("\\boxed{" * 12_000)["input_ids"]) == 36_000
    run = _import(tmp_path, tiny_model_dir)
    budgets = tuple(parse_budgets("4k..36000"))
    # Whole call (grader start, writes) under the bound; the extraction part of it took 52.7 s before.
    result = _timed(lambda: score_run(run, ScoreConfig(budgets=budgets, workers=1, deadline_s=2.0, resamples=0)))
    rows = {(r["sample_idx"], r["budget"]): r for r in result.grades.to_pylist()}
    assert all(rows[(0, b)]["status"] == "no_answer" and rows[(0, b)]["answer"] is None for b in budgets)
    assert rows[(1, 36_000)]["answer"] == "1" and rows[(1, 36_000)]["correct"] is True
    assert all(rows[(1, b)]["answer"] is None for b in budgets if b < 33_000)


def _adversarial_run(tmp: Path, model: Path) -> None:
    _import(tmp, model)


def _nine_without_answer(tmp: Path) -> None:
    # No time bound here: a fresh process spends seconds importing transformers; the test above times the scoring.
    scoring = json.loads((tmp / "run" / "run.json").read_text())["scoring"]
    assert scoring["status_counts"]["no_answer"] == 9 and scoring["status_counts"]["ok"] == 1, scoring


CASES = [
    Case(
        "score-36k-boxed-at-4k..36000",
        ("score", "{tmp}/run", "--budgets", "4k..36000", "--timeout", "2", "--workers", "1", "--bootstrap", "0"),
        code=0,
        says="36000",
        setup=_adversarial_run,
        check=_nine_without_answer,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_cli(case: Case, tmp_path: Path, tiny_model_dir: Path) -> None:
    run_case(case, tmp_path, tiny_model_dir)


@pytest.mark.slow
def test_bench_adversarial_prints_its_line(tiny_model_dir: Path) -> None:
    bench = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_adversarial.py"
    argv = [sys.executable, str(bench), "--repeats", "1", "--tokenizer", str(tiny_model_dir)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"bench_adversarial: worst=[\d.]+ per response \(target < 0\.1 s\), cases=\d+", last), last
