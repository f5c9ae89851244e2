"""`score_run` end to end on real Parquet, a real tokenizer and real math-verify, against a brute-force reference."""

import json
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import PoolSpec, write_pool
from e3eval.errors import UserError
from e3eval.extract import last_boxed
from e3eval.grade import grade_answer
from e3eval.ingest import ImportConfig, import_run
from e3eval.metrics import pass_at_k
from e3eval.records import SCHEMA_VERSION
from e3eval.score import ScoreConfig, score_run
from e3eval.store import iter_rollout_batches, read_manifest, read_problems

BUDGETS = (64, 128, 256, 512, 700)


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory, tiny_model_dir, tokenizer) -> Path:
    root = tmp_path_factory.mktemp("pool")
    spec = PoolSpec(samples=4, min_tokens=60, max_tokens=600, truncated_fraction=0.2, seed=3)
    write_pool(root / "pool.jsonl", demo_problems()[:6], spec, tokenizer)
    run = root / "run"
    import_run(
        ImportConfig(
            root / "pool.jsonl",
            run,
            str(tiny_model_dir),
            token_ids_field="token_ids",
            sample_field="sample_idx",
            finish_reason_field="finish_reason",
        )
    )
    return run


def test_grades_match_brute_force_reference(pool_run, tokenizer):
    result = score_run(pool_run, ScoreConfig(budgets=BUDGETS, workers=1, resamples=200))
    gold = {p.problem_id: p.answer for p in read_problems(pool_run)}
    expected = {}
    for batch in iter_rollout_batches(pool_run, ["problem_id", "sample_idx", "token_ids", "num_tokens"]):
        for r in batch.to_pylist():
            for b in BUDGETS:
                text = tokenizer.decode(r["token_ids"][:b], skip_special_tokens=True)
                answer = last_boxed(text, final=r["num_tokens"] <= b)
                verdict = grade_answer(gold[r["problem_id"]], answer)
                expected[(r["problem_id"], r["sample_idx"], b)] = (answer, verdict.correct, verdict.status)
    got = {
        (g["problem_id"], g["sample_idx"], g["budget"]): (g["answer"], g["correct"], g["status"])
        for g in result.grades.to_pylist()
    }
    assert got == expected
    assert set(result.grades["policy"].to_pylist()) == {"prefix"}
    pairs = {(gold[g["problem_id"]], g["answer"]) for g in result.grades.to_pylist() if g["answer"] is not None}
    assert result.distinct_pairs == len(pairs), "each distinct (gold, answer) pair is graded exactly once"
    assert result.distinct_pairs < sum(1 for g in result.grades.to_pylist() if g["answer"] is not None)
    assert result.decode_path == "byte-table"


def test_summary_values_follow_from_grades(pool_run):
    result = score_run(pool_run, ScoreConfig(budgets=BUDGETS, workers=1, resamples=300, seed=5))
    grades = result.grades.to_pylist()
    summary = result.summary.to_pylist()
    for b in BUDGETS:
        per_problem = {}
        for g in grades:
            if g["budget"] == b:
                per_problem.setdefault(g["problem_id"], []).append(bool(g["correct"]))
        rows = {(r["metric"], r["k"]): r for r in summary if r["budget"] == b}
        for k in (1, 2, 4):
            want = sum(pass_at_k(len(v), sum(v), k) for v in per_problem.values()) / len(per_problem)
            row = rows[("pass@k", k)]
            assert row["value"] == pytest.approx(want)
            assert row["ci_low"] <= row["value"] <= row["ci_high"]
            assert (row["n_problems"], row["n_samples"]) == (6, 24)
        assert ("pass@k", 8) not in rows, "k above n is never reported"
        tokens = rows[("mean_tokens", None)]["value"]
        assert tokens <= b
    # Accuracy can only come from what fits in the budget: the reference pool is built so it rises with budget.
    p1 = [r["value"] for r in summary if r["metric"] == "pass@k" and r["k"] == 1]
    assert p1[-1] > p1[0]
    again = score_run(pool_run, ScoreConfig(budgets=BUDGETS, workers=2, resamples=300, seed=5))
    assert again.summary.to_pylist() == summary, "same seed, same numbers, whatever the worker count"


def test_outputs_on_disk_and_manifest(pool_run):
    score_run(pool_run, ScoreConfig(budgets=BUDGETS, policy="strict", workers=1, resamples=50))
    grades = pq.read_table(pool_run / "grades.parquet")
    assert set(grades["policy"].to_pylist()) == {"strict"}
    assert grades.num_rows == 24 * len(BUDGETS)
    summary_csv = (pool_run / "summary.csv").read_text().splitlines()
    assert summary_csv[0].startswith('"run_id","policy","budget","metric","k","value","ci_low","ci_high"')
    manifest = read_manifest(pool_run)
    assert manifest["scoring"]["policy"] == "strict"
    assert manifest["scoring"]["grader"]["name"] == "math-verify"
    assert manifest["scoring"]["budgets"] == list(BUDGETS)
    assert not list(pool_run.glob(".*.tmp-*")), "no temp files left behind"
    # strict: nothing counts before EOS; at the smallest budget no sample has finished.
    first = grades.filter(pc.equal(grades["budget"], BUDGETS[0]))
    assert not any(first["correct"].to_pylist())


def test_length_policy_and_budget_above_longest(pool_run):
    result = score_run(pool_run, ScoreConfig(budgets=(128, 4096), policy="length", workers=1, resamples=0))
    assert any("4096 is above the longest response" in w for w in result.warnings)
    rows = result.grades.to_pylist()
    finished_short = [r for r in rows if r["budget"] == 128 and r["answer"] is not None]
    assert all(r["tokens_used"] < 128 for r in finished_short)


def _tiny_run(tmp_path, tiny_model_dir, records) -> Path:
    src = write_jsonl(tmp_path / "r.jsonl", records)
    run = tmp_path / "run"
    import_run(ImportConfig(src, run, str(tiny_model_dir), finish_reason_field="fr", sample_field="s"))
    return run


def test_pathological_answers_end_as_statuses(tmp_path, tiny_model_dir):
    answers = ["2^{2^{2^{2^{20}}}}", "1000000!", "+".join(["1"] * 10_000), "391"]
    records = [
        {"id": "p", "s": i, "response": f"\\boxed{{{a}}}", "answer": "391", "fr": "stop"} for i, a in enumerate(answers)
    ]
    run = _tiny_run(tmp_path, tiny_model_dir, records)
    result = score_run(run, ScoreConfig(budgets=(100_000,), workers=2, deadline_s=2.0, inner_timeout_s=1, resamples=0))
    by_sample = {r["sample_idx"]: r for r in result.grades.to_pylist()}
    assert by_sample[3]["correct"] is True
    for i in range(3):
        assert by_sample[i]["correct"] is not True
        assert by_sample[i]["status"] in ("ok", "timeout", "error")


def test_error_rows_are_left_out_and_counted_and_varying_counts_flagged(tmp_path, tiny_model_dir):
    records = [
        {"id": "a", "s": 0, "response": "\\boxed{1}", "answer": "1", "fr": "stop"},
        {"id": "a", "s": 1, "response": "", "answer": "1", "fr": "error"},
        {"id": "b", "s": 0, "response": "\\boxed{2}", "answer": "2", "fr": "stop"},
        {"id": "b", "s": 1, "response": "\\boxed{5}", "answer": "2", "fr": "stop"},
        {"id": "c", "s": 0, "response": "", "answer": "3", "fr": "stop"},
    ]
    run = _tiny_run(tmp_path, tiny_model_dir, records)
    result = score_run(run, ScoreConfig(budgets=(64,), workers=1, resamples=0))
    statuses = {(r["problem_id"], r["sample_idx"]): (r["status"], r["correct"]) for r in result.grades.to_pylist()}
    assert ("a", 1) not in statuses, "a failed request is not a sample: it has no grade"
    assert statuses[("c", 0)] == ("no_answer", False), "an empty response is a sample without an answer"
    summary = result.summary.to_pylist()
    assert all(r["n_samples"] == 4 and r["n_failed"] == 1 and r["n_missing"] == 0 for r in summary)
    assert all(r["flag"] and "1 sample(s) failed" in r["flag"] and "vary (1..2)" in r["flag"] for r in summary)
    assert {(r["metric"], r["k"]) for r in summary if r["metric"] == "pass@k"} == {("pass@k", 1)}
    pass1 = next(r for r in summary if r["metric"] == "pass@k" and r["k"] == 1)
    assert pass1["value"] == pytest.approx((1 + 0.5 + 0) / 3), "problem a is 1/1 correct, not 1/2"
    ungraded = next(r for r in summary if r["metric"] == "frac_ungraded")
    assert ungraded["value"] == 0.0
    assert result.warnings[0].startswith("1 sample(s) failed")
    assert any("vary" in w for w in result.warnings)
    assert read_manifest(run)["scoring"]["samples"]["failed"] == 1


def test_refuses_other_schema_versions(pool_run, tmp_path):
    manifest = json.loads((pool_run / "run.json").read_text())
    other = tmp_path / "old"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({**manifest, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(UserError, match="schema_version"):
        score_run(other, ScoreConfig(budgets=(64,)))
    with pytest.raises(UserError, match="not a run directory"):
        score_run(tmp_path / "missing", ScoreConfig(budgets=(64,)))
    with pytest.raises(UserError, match="unknown policy"):
        score_run(pool_run, ScoreConfig(budgets=(64,), policy="nope"))


def test_a_score_config_refuses_budgets_and_resamples_that_mean_nothing(pool_run):
    for budgets in ((0, 64), (-5,), (16.5,), ("64",)):
        with pytest.raises(UserError, match="budgets must be positive whole numbers"):
            score_run(pool_run, ScoreConfig(budgets=budgets, workers=1))
    with pytest.raises(UserError, match="too few resamples"):
        score_run(pool_run, ScoreConfig(budgets=(64,), workers=1, resamples=1))
