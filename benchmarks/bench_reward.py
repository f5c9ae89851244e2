"""Benchmark: the math reward's cost per call off the main thread, with one shared grader pool vs a pool per call.

verl calls `compute_score` from worker threads, where math-verify's SIGALRM timeout cannot work, so the math branch
grades in an isolated worker process. Measured in one run, on the same `--calls` answers (distinct fractions that
need math-verify, not the integer fast path), from one non-main thread:
- ours: `e3eval.train.reward.compute_score`, which reuses one grader pool per process;
- baseline: what the reward did before, a fresh `GraderPool(workers=1)` started and closed for every call.
The last line is `bench_reward: ours=<ms per call> baseline=<ms per call> ratio=<x>`.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from collections.abc import Callable

from e3eval.extract import last_boxed
from e3eval.grade_pool import GraderPool
from e3eval.train.reward import compute_score


def _responses(calls: int) -> list[str]:
    return [f"so \\boxed{{\\frac{{{i + 1}}}{{{2 * (i + 1)}}}}}" for i in range(calls)]


def _pool_per_call(response: str, gold: str) -> float:
    with GraderPool(workers=1, deadline_s=10.0) as pool:
        pool.submit(0, gold, last_boxed(response))
        return 1.0 if pool.drain()[0].correct else 0.0


def _timed_in_thread(score: Callable[[str, str], float], responses: list[str]) -> tuple[list[float], float]:
    times: list[float] = []
    rewards: list[float] = []

    def work() -> None:
        for response in responses:
            started = time.perf_counter()
            rewards.append(score(response, "0.5"))
            times.append(time.perf_counter() - started)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if rewards != [1.0] * len(responses):
        raise SystemExit(f"wrong rewards: {rewards}")
    return times, sum(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args()
    responses = _responses(args.calls)
    ours, ours_total = _timed_in_thread(lambda r, g: compute_score("math", r, g), responses)
    base, base_total = _timed_in_thread(_pool_per_call, responses)
    for name, times, total in (("ours", ours, ours_total), ("baseline", base, base_total)):
        print(f"{name}: {args.calls} calls in {total:.2f}s; first {1000 * times[0]:.0f} ms (pool start), "
              f"median {1000 * statistics.median(times):.1f} ms")  # fmt: skip
    ours_ms, base_ms = 1000 * ours_total / args.calls, 1000 * base_total / args.calls
    print(f"bench_reward: ours={ours_ms:.1f} baseline={base_ms:.1f} ratio={base_ms / ours_ms:.1f}")


if __name__ == "__main__":
    main()
