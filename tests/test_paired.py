"""Paired differences and the extrapolation gain against brute force: every bootstrap resample of a few problems
enumerated, per-problem values recomputed from the grades by hand, and `report --diff R R` exactly zero."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli
from test_report_formats import scored_pool

from e3eval.errors import UserError
from e3eval.paired import paired_interval
from e3eval.report import compare


def exact_bootstrap(a: np.ndarray, b: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every resample of the problems (n^n index tuples, all equally likely), applied to both sides: the sorted
    means of a - b and their cumulative probabilities."""
    d = a - (b if b is not None else 0)
    n = len(d)
    means = np.sort([d[list(idx)].mean() for idx in itertools.product(range(n), repeat=n)])
    return means, np.arange(1, len(means) + 1) / len(means)


def quantile(means: np.ndarray, cdf: np.ndarray, q: float) -> float:
    return float(means[np.searchsorted(cdf, q)])


def test_paired_interval_is_the_exact_paired_bootstrap_of_four_problems():
    a = np.array([0.75, 0.5, 0.25, 1.0])
    b = np.array([0.5, 0.5, 0.0, 0.5])
    means, cdf = exact_bootstrap(a, b)
    low, high = quantile(means, cdf, 0.025), quantile(means, cdf, 0.975)
    # The quantiles lie well inside their atoms, so a large resample lands on them exactly.
    for q, value in ((0.025, low), (0.975, high)):
        inside = cdf[means == value]
        assert inside.min() - 1 / len(means) < q - 0.003 and inside.max() > q + 0.003
    got = paired_interval(a, b, 200_000, seed=7)
    assert got.value == pytest.approx(float((a - b).mean()))
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    # Independent resamples of each side (what two separate CIs amount to) spread wider than the paired ones.
    rng = np.random.default_rng(0)
    independent = a[rng.integers(0, 4, (200_000, 4))].mean(1) - b[rng.integers(0, 4, (200_000, 4))].mean(1)
    lo, hi = np.percentile(independent, [2.5, 97.5])
    assert hi - lo > (high - low) + 0.1


def test_three_problems_all_27_resamples():
    a, b = np.array([1.0, 0.0, 0.5]), np.array([0.0, 0.0, 0.5])
    means, cdf = exact_bootstrap(a, b)
    assert len(means) == 27 and means.mean() == pytest.approx((a - b).mean())
    got = paired_interval(a, b, 100_000, seed=1)
    assert (got.low, got.high) == (
        pytest.approx(quantile(means, cdf, 0.025)),
        pytest.approx(quantile(means, cdf, 0.975)),
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_model_dir, tokenizer):
    root = tmp_path_factory.mktemp("paired")
    return [scored_pool(root, name, tiny_model_dir, tokenizer, seed=seed, problems=slice(0, 5))
            for name, seed in (("left", 11), ("right", 12))]  # fmt: skip


def per_problem(run, budget: int, k: int = 1) -> dict[str, float]:
    """pass@k per problem from grades.parquet, by the textbook formula 1 - C(n-c, k) / C(n, k)."""
    rows = [r for r in pq.read_table(run / "grades.parquet").to_pylist() if r["budget"] == budget]
    out = {}
    for problem in sorted({r["problem_id"] for r in rows}):
        correct = [bool(r["correct"]) for r in rows if r["problem_id"] == problem]
        n, c = len(correct), sum(correct)
        out[problem] = 1 - math.comb(n - c, k) / math.comb(n, k)
    return out


def test_diff_of_two_runs_against_brute_force(pair):
    frame = compare(pair).diff(0, 1, "pass@1,pass@2,pass@4", resamples=100_000)
    assert list(frame.columns) == ["budget", "metric", "k", "value_a", "value_b", "diff", "ci_low", "ci_high",
                                   "n_problems", "unit"]  # fmt: skip
    assert set(frame["metric"]) == {"pass@1", "pass@2", "pass@4"} and set(frame["n_problems"]) == {5}
    summary = {run: pq.read_table(run / "summary.parquet").to_pylist() for run in pair}
    checked = 0
    for row in frame.itertuples():
        left, right = per_problem(pair[0], row.budget, row.k), per_problem(pair[1], row.budget, row.k)
        a, b = np.array(list(left.values())), np.array(list(right.values()))
        assert row.value_a == pytest.approx(a.mean()) and row.value_b == pytest.approx(b.mean())
        assert row.diff == pytest.approx(a.mean() - b.mean())
        stored = [s["value"] for s in summary[pair[0]] if (s["budget"], s["metric"], s["k"]) == (row.budget, "pass@k",
                                                                                               row.k)]  # fmt: skip
        assert stored == [pytest.approx(row.value_a)], "the values are the curves' values"
        means, cdf = exact_bootstrap(a, b)  # 5^5 resamples, each applied to both runs
        assert quantile(means, cdf, 0.02) - 1e-9 <= row.ci_low <= quantile(means, cdf, 0.03) + 1e-9
        assert quantile(means, cdf, 0.97) - 1e-9 <= row.ci_high <= quantile(means, cdf, 0.98) + 1e-9
        checked += 1
    assert checked == 12


def test_gain_is_resampled_like_the_curves(pair):
    comparison = compare(pair[:1])
    with pytest.raises(UserError, match="training budget 100 was not scored"):
        comparison.gain(100)
    frame = comparison.gain(128)
    assert list(frame["budget"]) == [256, 512] and set(frame["train_budget"]) == {128}
    curve = {s["budget"]: s for s in pq.read_table(pair[0] / "summary.parquet").to_pylist()
             if s["metric"] == "pass@k" and s["k"] == 1}  # fmt: skip
    for row in frame.itertuples():
        assert row.gain == pytest.approx(curve[row.budget]["value"] - curve[128]["value"])
        later, base = per_problem(pair[0], row.budget), per_problem(pair[0], 128)
        means, cdf = exact_bootstrap(np.array(list(later.values())), np.array(list(base.values())))
        assert quantile(means, cdf, 0.01) - 1e-9 <= row.ci_low <= quantile(means, cdf, 0.05) + 1e-9
    # The run's own curves were drawn with 200 resamples and seed 0: the gain uses the same.
    assert "200 resamples" in frame.attrs["method"]


def test_problems_only_one_run_holds_are_left_out_with_a_warning(pair, tmp_path, tiny_model_dir, tokenizer):
    shifted = scored_pool(tmp_path, "shifted", tiny_model_dir, tokenizer, problems=slice(2, 8), seed=3)
    frame = compare([pair[0], shifted]).diff()
    assert set(frame["n_problems"]) == {3}
    assert frame.attrs["warnings"] == ["left · prefix and shifted · prefix share 3 problems (2 only in A, 3 only in "
                                       "B): the differences are over the 3 shared"]  # fmt: skip
    apart = scored_pool(tmp_path, "apart", tiny_model_dir, tokenizer, problems=slice(10, 12), seed=4)
    with pytest.raises(UserError, match="share no problem"):
        compare([pair[0], apart]).diff()


def test_report_diff_of_a_run_with_itself_is_zero(pair):
    result = run_cli("e3eval", "report", "--diff", str(pair[0]), str(pair[0]), "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)["diff"]["rows"]
    assert rows and all(r["diff"] == 0 and r["ci_low"] == 0 and r["ci_high"] == 0 for r in rows)
    shown = run_cli("e3eval", "report", str(pair[0]), "--diff", str(pair[0]), str(pair[0]), "--train-budget", "128")
    assert shown.returncode == 0, shown.stderr
    assert "paired difference A − A" in shown.stdout and "extrapolation gain" in shown.stdout
    assert "paired bootstrap over problems, 200 resamples, 95% percentile CI" in " ".join(shown.stdout.split())


def test_diff_of_a_run_scored_under_several_policies_says_which(pair, tmp_path):
    import shutil

    from e3eval.score import ScoreConfig, score_run

    strict = tmp_path / "strict"
    shutil.copytree(pair[0], strict)
    score_run(strict, ScoreConfig(budgets=(64, 128, 256, 512), workers=1, resamples=200, policy="strict"))
    comparison = compare([strict, pair[1]])
    assert [r.policy for r in comparison.runs] == ["prefix", "strict", "prefix"]
    frame = comparison.diff(strict, pair[1], "pass@1")  # the run's current grades: strict's
    stored = {s["budget"]: s["value"] for s in pq.read_table(strict / "summary.parquet").to_pylist()
              if (s["policy"], s["metric"], s["k"]) == ("strict", "pass@k", 1)}  # fmt: skip
    assert [row.value_a for row in frame.itertuples()] == [pytest.approx(stored[b]) for b in frame["budget"]]
    said = " ".join(frame.attrs["warnings"])
    assert "B: left was scored under prefix, strict; the difference uses strict" in said, said
    assert "B and C were scored under different policies (B: strict; C: prefix)" in said, said
    with pytest.raises(UserError, match="holds the last scoring \\(strict\\), not prefix's"):
        comparison.diff("A", "C")  # prefix's entry: its grades were replaced by strict's
    shown = run_cli("e3eval", "report", str(strict), str(pair[1]), "--policy", "strict", "--diff", "A", "B",
                    "--metrics", "pass@1")  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "paired difference A − B" in shown.stdout and "scored under different policies" in shown.stderr
    refused = run_cli("e3eval", "report", str(strict), "--policy", "forced")
    assert refused.returncode == 2 and "was scored under prefix, strict" in refused.stderr


def test_budgets_only_one_run_scored_are_named(pair, tmp_path, tiny_model_dir, tokenizer):
    wider = scored_pool(tmp_path, "wider", tiny_model_dir, tokenizer, seed=11, problems=slice(0, 5),
                        budgets=(64, 128, 1024))  # fmt: skip
    frame = compare([pair[0], wider]).diff(0, 1, "pass@1")
    assert sorted(set(frame["budget"])) == [64, 128]
    said = " ".join(frame.attrs["warnings"])
    assert "budgets only one run scored are left out: 256 (A only), 512 (A only), 1k (B only)" in said, said
