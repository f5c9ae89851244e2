"""The embedded default job (`e3eval demo`): the hand-set model (`dev/explorer_model.py`) through the real pipeline
(hf generation, exact truncation, math-verify grading, bootstrap CIs) draws a pass@1 curve that rises with the budget
and flattens, with pass@4 above it, and says that its model is hand-set."""

import itertools
import json
import math
import shutil
from dataclasses import replace

import pytest

from e3eval.datasets import demo_problems
from e3eval.dev.demo import DEMO_NOTE, HAND_SET_MODEL, hand_set_model, run_demo
from e3eval.dev.explorer_model import (
    ANSWER_PREFIX,
    DIFFICULTIES,
    VOCAB_SIZE,
    branch,
    chance_correct,
    explorer_plan,
)
from e3eval.errors import UserError
from e3eval.extract import last_boxed
from e3eval.grade import grade_answer
from e3eval.notebook import load_run

GOLD = {p.problem_id: p.answer for p in demo_problems()}
WRITTEN = {d.problem_id: d for d in DIFFICULTIES}


@pytest.fixture(scope="module")
def tokenizer():
    from e3eval.dev.tiny_model import build_tokenizer

    return build_tokenizer(0, VOCAB_SIZE)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One real `e3eval demo` (no plot: the title it would get is recorded), and what it logged."""
    out, logged, titles = tmp_path_factory.mktemp("demo"), [], []

    def plot(comparison, stem, train_budget, title):
        titles.append(title)
        return []

    outcome = run_demo(out, workers=2, log=logged.append, plot=plot)
    return out, outcome, logged, titles


def test_each_answer_decodes_to_what_the_grader_accepts_and_each_slip_to_a_wrong_one(tokenizer):
    plan = explorer_plan(tokenizer, demo_problems())
    for problem, (right, wrong) in zip(demo_problems(), plan.answers, strict=True):
        for path, correct in ((right, True), (wrong, False)):
            # The tokens the model writes after thinking: `</think>`, the prefix up to `{`, the answer, `}`.
            text = tokenizer.decode([*plan.prefix, *path[1:], tokenizer.eos_token_id], skip_special_tokens=True)
            assert text.startswith(f"</think>{ANSWER_PREFIX}")
            answer = last_boxed(text)
            difficulty = WRITTEN[problem.problem_id]
            assert answer == (difficulty.written if correct else difficulty.slip)
            assert grade_answer(problem.answer, answer).correct is correct, (problem.problem_id, answer)
        assert 1 <= branch(right, wrong) < min(len(right), len(wrong))


def test_a_plan_the_tokenizer_cannot_carry_is_refused(tokenizer):
    problems = demo_problems()
    with pytest.raises(UserError, match="no difficulty for demo-02"):
        explorer_plan(tokenizer, problems[:2], DIFFICULTIES[:1])
    right_slip = (replace(DIFFICULTIES[0], slip="391"),)  # a slip the grader calls right
    with pytest.raises(UserError, match="must be right"):
        explorer_plan(tokenizer, problems[:1], right_slip)
    nested = (replace(DIFFICULTIES[3], written="\\frac{3}{4}"),)  # `{` twice: no (token, problem) state writes it
    with pytest.raises(UserError, match="need a state other than"):
        explorer_plan(tokenizer, problems[3:4], nested)


def _curve(out, metric):
    frame = load_run(out / "sweep").curve(metric)
    return dict(zip(frame["budget"], frame["value"], strict=True)), frame


def test_pass_at_1_rises_with_the_budget_and_flattens(demo):
    out, outcome, _, _ = demo
    pass1, _ = _curve(out, "pass@1")
    budgets = sorted(pass1)
    assert budgets == [8, 16, 32, 64, 128]
    values = [pass1[b] for b in budgets]
    # Cut to a longer budget a sample keeps its answer (EOS follows it): the curve cannot fall.
    assert values == sorted(values)
    # 64 samples: a rise of 40 points is ~7 standard errors of either end, not noise.
    assert values[-1] - values[0] >= 0.40, values
    gains = [b - a for a, b in itertools.pairwise(values)]
    assert gains[-1] < max(gains[:-1]), gains  # flattening: the last doubling gains least
    assert outcome.scoring is not None and not outcome.generation.failed


def test_the_curve_is_the_design_within_sampling_noise(demo):
    out, _, _, _ = demo
    pass1, _ = _curve(out, "pass@1")
    n = load_run(out / "sweep").n_per_problem
    plan_lengths = _answer_lengths(out)
    for budget, observed in pass1.items():
        chances = [chance_correct(WRITTEN[pid], budget, plan_lengths[pid]) for pid in GOLD]
        expected = sum(chances) / len(chances)
        # The mean of 16 x n independent samples: its standard error from the design's own chances.
        se = math.sqrt(sum(n * c * (1 - c) for c in chances)) / (len(chances) * n)
        assert abs(observed - expected) <= 4 * se + 1e-9, (budget, observed, expected, se)


def _answer_lengths(out):
    """Per problem, the tokens from `</think>` to the right answer's `}`, from the built model's tokenizer."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out / HAND_SET_MODEL)
    plan = explorer_plan(tokenizer, demo_problems())
    return {p.problem_id: len(plan.prefix) + len(right) - 1 for p, (right, _) in zip(demo_problems(), plan.answers,
                                                                                        strict=True)}  # fmt: skip


def test_pass_at_4_lies_above_pass_at_1(demo):
    out, _, _, _ = demo
    pass1, _ = _curve(out, "pass@1")
    pass4, frame4 = _curve(out, "pass@4")
    assert all(pass4[b] >= pass1[b] for b in pass1)
    top = max(pass1)
    assert pass4[top] > pass1[top]
    # Above it beyond its CI: the lower end of pass@4's band clears pass@1 at the largest budget.
    assert frame4.loc[frame4["budget"] == top, "ci_low"].item() > pass1[top]


def test_graded_answers_are_the_models_own_and_right_exactly_when_they_are_the_gold(demo):
    out, _, _, _ = demo
    grades = load_run(out / "sweep").grades
    answered = grades[(grades["budget"] == 128) & (grades["status"] == "ok")]
    assert len(answered) >= 40  # most of the 64 samples answer within 128 tokens
    for row in answered.itertuples():
        difficulty = WRITTEN[row.problem_id]
        assert row.answer in (difficulty.written, difficulty.slip), row
        assert bool(row.correct) is (row.answer == difficulty.written), row
    assert answered["correct"].any() and not answered["correct"].all()


def test_the_demo_says_its_model_is_hand_set_and_builds_it_once(demo):
    out, _, logged, titles = demo
    assert DEMO_NOTE in logged
    assert any("building the hand-set tiny model (not trained)" in line for line in logged)
    assert len(titles) == 1 and "hand-set tiny model (not trained)" in titles[0]
    meta = json.loads((out / HAND_SET_MODEL / "e3eval_tiny.json").read_text())
    assert meta["sampling"] == {"temperature": 1.0, "top_p": 1.0}
    recorded = load_run(out / "sweep").record.generation.sampling
    assert (recorded.temperature, recorded.top_p) == (1.0, 1.0)
    again: list[str] = []
    run_demo(out, workers=2, log=again.append)
    assert not any("building" in line for line in again)
    assert any("nothing to generate" in line for line in again), again


def test_a_sweep_of_another_model_is_dropped_not_resumed(demo, tmp_path):
    """A demo folder from before: its sweep was made with another model (or another build of this one), so resuming
    it would mix samples of two models; the demo drops it."""
    out = tmp_path / "demo"
    shutil.copytree(demo[0] / HAND_SET_MODEL, out / HAND_SET_MODEL)

    def old_sweep(model):
        (out / "sweep").mkdir()
        (out / "sweep" / "run.json").write_text(json.dumps({"generation": {"model": str(model)}}))

    old_sweep(out / HAND_SET_MODEL)
    assert hand_set_model(out) == out / HAND_SET_MODEL
    assert (out / "sweep" / "run.json").is_file()  # this model's sweep is kept (and resumed)
    shutil.rmtree(out / "sweep")
    old_sweep(out / "tiny-model")  # the random model an older demo swept
    hand_set_model(out)
    assert not (out / "sweep").exists()
    meta = out / HAND_SET_MODEL / "e3eval_tiny.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "builder": "an older version"}))
    old_sweep(out / HAND_SET_MODEL)
    logged: list[str] = []
    hand_set_model(out, logged.append)
    assert any("building" in line for line in logged) and not (out / "sweep").exists()
    assert json.loads(meta.read_text())["builder"] != "an older version"
