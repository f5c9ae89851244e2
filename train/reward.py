"""The verl custom reward function: `compute_score(data_source, solution_str, ground_truth, extra_info=None)`.

Use it with `custom_reward_function.path=train/reward.py custom_reward_function.name=compute_score`. It dispatches on
`data_source`: names containing `countdown` (ground truth `{"target": int, "numbers": [int, ...]}`, as a dict or JSON
string), `mult` (ground truth `{"a": int, "b": int}` or the product), and everything else as math, graded with the
same grader as `e3eval` (the answer of `e3eval.policy.final_answer`: the last complete `\\boxed{}`, or, when the
gold names several values, the boxes of the final answer read together; math-verify with the gold first; integer
golds compare as integers; a percent sign is ignored). Off the main thread (where math-verify's SIGALRM timeouts
cannot work) math answers are graded in one isolated grader process per reward process, started on first use, shared
by all threads under a lock, restarted if it died or after a fork, and closed at interpreter exit (a pool started per
call cost 0.4 s or more a call, start-up almost all of it). Rewards are 1.0 or 0.0; a malformed ground truth raises
ValueError naming the data source (a bug in the data), while any model output, however adversarial, only ever earns
0.0: it is parsed, never executed. Nor can one output stall a training step (issue 11): reading the answer takes time
linear in the response for every data source (boxes: `e3eval/extract.py`; `<answer>` tags, the final line and the
expression bounds: `train/tasks/countdown.py`, `train/tasks/multiplication.py`), and math grading is bounded by the
grader's timeouts and its answer cap of 2,000 characters; `benchmarks/bench_adversarial.py` times the worst cases.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e3eval.grade import Verdict
    from e3eval.grade_pool import GraderPool

_pool: GraderPool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def _forget_pool_in_child() -> None:
    """After a fork the child owns neither the parent's workers nor, if another thread held it, the lock."""
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


def _close_pool() -> None:
    global _pool
    if _pool is not None and _pool_pid == os.getpid():
        _pool.close()
    _pool = None


atexit.register(_close_pool)


def _grade_isolated(gold: str, answer: str) -> Verdict:
    """Grade in this process's shared grader pool (created lazily; one item at a time, whichever thread asks)."""
    global _pool, _pool_pid
    from e3eval.grade_pool import GraderPool

    with _pool_lock:
        if _pool is not None and _pool_pid != os.getpid():
            _pool = None  # inherited through a fork: those workers are the parent's to close
        if _pool is not None and not _pool.alive:
            _pool.close()
            _pool = None
        if _pool is None:
            _pool, _pool_pid = GraderPool(workers=1, deadline_s=10.0), os.getpid()
        return _pool.grade(gold, answer)


def _ground_truth(ground_truth: Any, data_source: str, keys: tuple[str, ...]) -> dict[str, Any]:
    value = ground_truth
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"{data_source}: ground truth is not JSON: {ground_truth[:80]!r}") from None
    if not isinstance(value, dict) or any(k not in value for k in keys):
        raise ValueError(f"{data_source}: ground truth must have keys {', '.join(keys)}, got {ground_truth!r:.80}")
    return value


def _countdown(solution: str, ground_truth: Any, data_source: str) -> float:
    from e3eval.train.tasks.countdown import check

    truth = _ground_truth(ground_truth, data_source, ("target", "numbers"))
    numbers = truth["numbers"]
    if not isinstance(numbers, list) or not all(isinstance(n, int) for n in numbers):
        raise ValueError(f"{data_source}: numbers must be a list of integers")
    return 1.0 if check(solution, numbers, float(truth["target"])).correct else 0.0


def _mult(solution: str, ground_truth: Any, data_source: str) -> float:
    from e3eval.train.tasks.multiplication import extract_answer

    if isinstance(ground_truth, (int, str)) and str(ground_truth).lstrip("-").isdigit():
        product = int(ground_truth)
    else:
        truth = _ground_truth(ground_truth, data_source, ("a", "b"))
        product = int(truth["a"]) * int(truth["b"])
    return 1.0 if extract_answer(solution) == product else 0.0


def _math(solution: str, ground_truth: Any, data_source: str) -> float:
    from e3eval.grade import grade_answer, quick_verdict
    from e3eval.policy import final_answer

    if not isinstance(ground_truth, (str, int, float)) or isinstance(ground_truth, bool):
        raise ValueError(f"{data_source}: math ground truth must be a string, got {type(ground_truth).__name__}")
    gold = str(ground_truth)
    answer = final_answer(solution, gold=gold)
    quick = quick_verdict(gold, answer)
    if quick is not None:
        return 1.0 if quick.correct else 0.0
    assert answer is not None  # quick_verdict answers for a missing answer
    if threading.current_thread() is not threading.main_thread():
        # math-verify's timeouts need the main thread: grade in an isolated worker instead of risking a hang.
        verdict = _grade_isolated(gold, answer)
    else:
        verdict = grade_answer(gold, answer)
    return 1.0 if verdict.correct else 0.0


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: dict | None = None) -> float:
    """verl's reward hook: 1.0 for a correct response, 0.0 otherwise."""
    source = (data_source or "").lower()
    if not isinstance(solution_str, str):
        return 0.0
    if "countdown" in source:
        return _countdown(solution_str, ground_truth, data_source)
    if "mult" in source:
        return _mult(solution_str, ground_truth, data_source)
    return _math(solution_str, ground_truth, data_source)
