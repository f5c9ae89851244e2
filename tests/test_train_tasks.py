"""Training tasks, the reward function and budget selection (issue 5, first part): property tests for generators
and checkers (the checker parses, never executes), reward dispatch, Eq. 3 on a real scored sweep."""

import json
import threading
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from e3eval.train.reward import compute_score
from e3eval.train.tasks.arithmetic import ExpressionError, evaluate
from e3eval.train.tasks.countdown import check, extract_answer, generate
from e3eval.train.tasks.multiplication import check as check_mult
from e3eval.train.tasks.multiplication import extract_answer as mult_answer
from e3eval.train.tasks.multiplication import generate as generate_mult


@settings(max_examples=40, deadline=None)
@given(size=st.integers(3, 8), seed=st.integers(0, 10_000))
def test_countdown_problems_are_solvable_by_construction(size, seed):
    for problem in generate(3, size, seed):
        assert problem.difficulty == size and 1 <= problem.target <= 1000
        verdict = check(f"<think>...</think>\n<answer>{problem.solution}</answer>", problem.numbers, problem.target)
        assert verdict.correct, (problem, verdict)


def test_countdown_generation_is_seeded():
    assert generate(5, 4, 1) == generate(5, 4, 1)
    assert generate(5, 4, 1) != generate(5, 4, 2)


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("__import__('os').system('touch /tmp/pwned')", "unexpected character"),
        ("9**9**9", "unexpected '*'"),
        ("(3+5)*3 + 0", "exactly once"),
        ("(3+5)*2", "exactly once"),
        ("3/(5-5)+3", "division by zero"),
        ("1" * 20, "literal too long"),
        ("(" * 40 + "3" + ")" * 40, "nested too deeply"),
        ("+".join(["1"] * 10**6), "longer than"),
        ("-3+5*3", "unary"),
    ],
)
def test_countdown_checker_rejects_without_executing(answer, reason):
    verdict = check(f"<answer>{answer}</answer>", [3, 5, 3], 24)
    assert not verdict.correct and reason in verdict.reason


def test_countdown_answer_must_be_on_the_final_line():
    assert check("<answer>(3+5)*3</answer>", [3, 5, 3], 24).correct
    assert check("<answer>(3+5)*3 = 24</answer>", [3, 5, 3], 24).correct
    assert not check("<answer>(3+5)*3</answer>\nI am done.", [3, 5, 3], 24).correct
    assert extract_answer("<answer>1</answer> then <answer>2</answer>") == "2"
    assert check("<answer>7 / 3 * 3 + 3 - 3</answer>", [7, 3, 3, 3, 3], 7).correct, "exact fractions, not floats"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_the_safe_evaluator_never_crashes_on_arbitrary_text(text):
    try:
        value, literals = evaluate(text)
    except ExpressionError:
        return
    assert isinstance(value, Fraction) and all(isinstance(x, Fraction) for x in literals)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 999), min_size=1, max_size=6), st.lists(st.sampled_from("+-*"), min_size=5, max_size=5))
def test_the_safe_evaluator_agrees_with_exact_arithmetic(numbers, operators):
    expression = str(numbers[0])
    expected = Fraction(numbers[0])
    for number, operator in zip(numbers[1:], operators, strict=False):
        expression = f"({expression}) {operator} {number}"
        expected = {"+": expected + number, "-": expected - number, "*": expected * number}[operator]
    assert evaluate(expression)[0] == expected


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), m=st.integers(1, 6), seed=st.integers(0, 1000))
def test_multiplication_generator_and_checker(n, m, seed):
    for problem in generate_mult(4, n, m, seed):
        assert len(str(problem.a)) == n or (n == 1 and problem.a < 10)
        assert check_mult(f"<answer>{problem.product:,}</answer>", problem.a, problem.b)
        assert not check_mult(f"<answer>{problem.product + 1}</answer>", problem.a, problem.b)
    assert "Check:" in problem.prompt(verify=True) and "Check:" not in problem.prompt()


def test_multiplication_answer_extraction_is_bounded():
    assert mult_answer("so 12 x 3 = 36, the answer is 36") == 36
    assert mult_answer("<answer>" + "9" * 100 + "</answer>") is None
    assert mult_answer("no digits") is None


GT = {"target": 24, "numbers": [3, 5, 3]}
HMMT10 = r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}"


@pytest.mark.parametrize(
    ("source", "solution", "truth", "reward"),
    [
        ("countdown", "<answer>(3+5)*3</answer>", GT, 1.0),
        ("countdown_3", "<answer>(3+5)*3</answer>", json.dumps(GT), 1.0),
        ("countdown", "<answer>__import__('os')</answer>", GT, 0.0),
        ("mult", "<answer>5535</answer>", {"a": 123, "b": 45}, 1.0),
        ("mult_v", "Check: fine\n<answer>5,536</answer>", {"a": 123, "b": 45}, 0.0),
        ("mult", "<answer>5535</answer>", "5535", 1.0),
        ("math", "<think>..</think> \\boxed{073}", "73", 1.0),
        ("deepscaler", "\\boxed{\\frac{1}{2}}", "0.5", 1.0),
        ("aime", "\\boxed{2^{2^{2^{2^{20}}}}}", "4", 0.0),
        ("aime", "no box", "4", 0.0),
        # Answers in several boxes are read together when the gold names several values; percent signs are ignored.
        ("hmmt", r"So $\boxed{\frac{-1-\sqrt{17}}{2}}$ and $\boxed{\frac{-1+\sqrt{17}}{2}}$", HMMT10, 1.0),
        ("hmmt", r"So $\boxed{\frac{-1+\sqrt{17}}{2}}$", HMMT10, 0.0),
        ("math", r"\boxed{1} or \boxed{2}", "2", 1.0),
        ("math", r"\boxed{20\%}", "20", 1.0),
        ("math", r"\boxed{20 \%}", r"20\%", 1.0),
    ],
)
def test_reward_dispatch(source, solution, truth, reward):
    assert compute_score(source, solution, truth) == reward


@pytest.mark.parametrize("truth", ["{not json", {"target": 24}, {"target": 24, "numbers": "3,5"}])
def test_malformed_ground_truth_is_a_clear_error(truth):
    with pytest.raises(ValueError, match="countdown"):
        compute_score("countdown", "<answer>1</answer>", truth)


HUGE = 10**6


@pytest.mark.parametrize(
    ("source", "solution", "truth"),
    [
        ("math", "\\boxed{" + "1+" * (HUGE // 2) + "1}", "4"),
        ("math", "\\boxed{" + "9" * HUGE + "}", "4"),
        ("aime", "\\boxed{" + "(" * (HUGE // 4) + "1" + ")" * (HUGE // 4) + "}", "2"),
        (
            "countdown",
            "<answer>" + "(" * (HUGE // 2) + "3" + ")" * (HUGE // 2) + "</answer>",
            {"target": 3, "numbers": [3]},
        ),
        ("mult", "<answer>" + "9" * HUGE + "</answer>", {"a": 3, "b": 3}),
        ("mult_v", "Check: " * (HUGE // 7), {"a": 3, "b": 3}),
    ],
)
def test_million_character_outputs_earn_zero_without_hanging(source, solution, truth):
    results = []
    thread = threading.Thread(target=lambda: results.append(compute_score(source, solution, truth)), daemon=True)
    thread.start()
    thread.join(timeout=120)
    assert results == [0.0]


def test_math_reward_off_the_main_thread():
    """verl may call rewards from worker threads, where math-verify's SIGALRM timeouts cannot work."""
    results = []
    thread = threading.Thread(target=lambda: results.append(compute_score("math", "\\boxed{\\frac{2}{4}}", "0.5")))
    thread.start()
    thread.join(timeout=120)
    assert results == [1.0]


def _in_thread(fn):
    results = []
    thread = threading.Thread(target=lambda: results.append(fn()))
    thread.start()
    thread.join(timeout=120)
    return results[0]


def _math_reward_off_main_thread(solution: str, truth: str) -> float:
    return _in_thread(lambda: compute_score("math", solution, truth))


def test_math_reward_reuses_one_grader_process():
    """A pool per call cost ~0.4 s of start-up each; one pool per process serves every call and every thread."""
    from e3eval.train import reward

    assert _math_reward_off_main_thread("\\boxed{\\frac{3}{6}}", "0.5") == 1.0
    pool = reward._pool
    assert pool is not None and pool.alive
    worker = pool._workers[0].process.pid
    cases = [(f"\\boxed{{\\frac{{{i}}}{{{2 * i}}}}}", 1.0) for i in range(1, 11)] + [("\\boxed{\\frac{1}{3}}", 0.0)]
    threads = [threading.Thread(target=lambda s=s: _math_reward_off_main_thread(s, "0.5")) for s, _ in cases[:4]]
    for t in threads:
        t.start()
    for solution, expected in cases:
        assert _math_reward_off_main_thread(solution, "0.5") == expected
    for t in threads:
        t.join(timeout=120)
    assert reward._pool is pool and pool._workers[0].process.pid == worker
    assert pool.results == {} and pool.pending == 0, "graded items must not pile up in a long-lived pool"


def test_math_reward_replaces_a_dead_grader_process():
    from e3eval.train import reward

    assert _math_reward_off_main_thread("\\boxed{\\frac{3}{6}}", "0.5") == 1.0
    old = reward._pool
    old._workers[0].process.kill()
    old._workers[0].process.wait(timeout=10)
    assert _math_reward_off_main_thread("\\boxed{\\frac{2}{4}}", "0.5") == 1.0
    assert reward._pool is not old and reward._pool.alive


def test_math_reward_after_fork_starts_its_own_grader():
    """A forked child (a verl/Ray worker) must not share its parent's grader pipes."""
    import multiprocessing

    from e3eval.train import reward

    assert _math_reward_off_main_thread("\\boxed{\\frac{3}{6}}", "0.5") == 1.0
    parent_pool = reward._pool
    with multiprocessing.get_context("fork").Pool(1) as children:
        child = children.apply(_child_reward, ("\\boxed{\\frac{4}{8}}", "0.5"))
    assert child[0] == 1.0 and child[1] != parent_pool._workers[0].process.pid
    assert reward._pool is parent_pool and parent_pool.alive
    assert _math_reward_off_main_thread("\\boxed{\\frac{5}{10}}", "0.5") == 1.0


def _child_reward(solution: str, truth: str) -> tuple[float, int]:
    from e3eval.train import reward

    score = _math_reward_off_main_thread(solution, truth)
    return score, reward._pool._workers[0].process.pid


def test_budget_selection_on_a_scored_sweep(tmp_path, tiny_model_dir, tokenizer):
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, write_pool
    from e3eval.errors import UserError
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run
    from e3eval.train.budget import mean_response_length, select_budget

    write_pool(tmp_path / "pool.jsonl", demo_problems(), PoolSpec(samples=4, min_tokens=100, max_tokens=800), tokenizer)
    run = tmp_path / "run"
    import_run(ImportConfig(tmp_path / "pool.jsonl", run, str(tiny_model_dir), token_ids_field="token_ids",
                            sample_field="sample_idx", finish_reason_field="finish_reason"))  # fmt: skip
    score_run(run, ScoreConfig(budgets=(100, 200, 400, 800), workers=1, resamples=0))
    length = mean_response_length(run)
    chosen, table = select_budget(run, [100, 200, 400], kappa=1.0)
    assert [c.budget for c in table] == [100, 200, 400]
    for candidate in table:
        assert candidate.ok == (candidate.j_double >= candidate.j and candidate.budget >= length)
    assert chosen == next((c.budget for c in table if c.ok), None)
    demanding, table = select_budget(run, [100, 200, 400], kappa=1e6)
    assert demanding == next((c.budget for c in table if c.j == 0 and c.budget >= length), None)
    with pytest.raises(UserError, match="no pass@1 under policy prefix at budget"):
        select_budget(run, [800], kappa=1.2)
