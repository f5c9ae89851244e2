"""Hostile conditions around a run directory: interrupted writes, a wrong tokenizer, a crashed generation,
whole-trace correctness that the scored budgets cannot know, and a budget rule fed only zeros."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli, write_jsonl

from e3eval.errors import UserError
from e3eval.generation import GenerateConfig, generate_run
from e3eval.ingest import ImportConfig, import_run
from e3eval.run import Run
from e3eval.score import ScoreConfig, score_run
from e3eval.store import rollout_shards


def _imported(tmp_path: Path, model: Path, records: list[dict], name: str = "run") -> Path:
    src = write_jsonl(tmp_path / f"{name}.jsonl", records)
    import_run(ImportConfig(src, tmp_path / name, str(model), sample_field="s"))
    return tmp_path / name


RECORDS = [{"id": "a", "s": i, "response": f"x \\boxed{{{i}}}", "answer": "1"} for i in range(3)]


def test_tables_and_run_json_from_different_scorings_are_refused(tmp_path, tiny_model_dir):
    run = _imported(tmp_path, tiny_model_dir, RECORDS)
    score_run(run, ScoreConfig(budgets=(8,), workers=1, resamples=0))
    shutil.copy(run / "grades.parquet", tmp_path / "old-grades.parquet")
    score_run(run, ScoreConfig(budgets=(4, 16), workers=1, resamples=0))
    assert Run.open(run).table("grades").num_rows == 6
    shutil.copy(tmp_path / "old-grades.parquet", run / "grades.parquet")  # as if the second scoring stopped half way
    with pytest.raises(UserError, match="written by another `scoring` run"):
        Run.open(run).table("grades")
    result = run_cli("e3eval", "count-asymmetries", str(run))
    assert result.returncode == 2 and "rerun it to make grades.parquet and run.json agree" in result.stderr


def test_a_tokenizer_that_decodes_differently_is_refused(tmp_path, tiny_model_dir):
    from e3eval.dev.tiny_model import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=1)  # same vocabulary size, other merges
    run = _imported(tmp_path, tiny_model_dir, RECORDS)
    with pytest.raises(UserError, match=r"is not the one .* token ids were made with"):
        score_run(run, ScoreConfig(budgets=(8,), workers=1, resamples=0, tokenizer=str(other)))
    moved = tmp_path / "moved-tokenizer"
    shutil.copytree(tiny_model_dir, moved)  # the same tokenizer at another path is fine
    result = score_run(run, ScoreConfig(budgets=(8,), workers=1, resamples=0, tokenizer=str(moved)))
    recorded = Run.open(run)
    assert result.grades.num_rows == 3
    assert recorded.section("scoring")["tokenizer_fingerprint"] == recorded.section("tokenizer")["fingerprint"]


def test_an_interrupted_generation_is_scored_with_a_loud_flag(tmp_path, tiny_model_dir):
    out = tmp_path / "gen"
    generate_run(GenerateConfig(model=str(tiny_model_dir), dataset="demo", out=out, n=2, max_tokens=4, backend="hf",
                                limit=4, batch_samples=2))  # fmt: skip
    rollout_shards(out)[-1].unlink()  # the batch in flight when the process died
    manifest = json.loads((out / "run.json").read_text())
    manifest["generation"]["status"] = "running"
    (out / "run.json").write_text(json.dumps(manifest))
    result = score_run(out, ScoreConfig(budgets=(4,), workers=1, resamples=0))
    interrupted = "2 sample(s) missing (run.json says the generation is still running: it was interrupted)"
    assert interrupted in result.warnings[0]
    rows = result.summary.to_pylist()
    assert {(r["n_samples"], r["n_missing"]) for r in rows} == {(6, 2)}
    assert all("interrupted" in r["flag"] for r in rows)


def test_whole_trace_correctness_is_unknown_beyond_the_largest_scored_budget(tmp_path, tiny_model_dir, tokenizer):
    long = "so " * 40 + "\\boxed{1}"
    records = [{"id": "a", "s": 0, "response": long, "answer": "1"}, {"id": "a", "s": 1, "response": "\\boxed{1}",
                                                                       "answer": "1"}]  # fmt: skip
    run = _imported(tmp_path, tiny_model_dir, records)
    assert len(tokenizer(long, add_special_tokens=False)["input_ids"]) > 16
    score_run(run, ScoreConfig(budgets=(16,), workers=1, resamples=0))
    out = tmp_path / "steps.csv"
    assert run_cli("e3eval", "count-asymmetries", str(run), "--out", str(out)).returncode == 0
    import pyarrow.csv as pacsv

    rows = pacsv.read_csv(out).to_pylist()
    assert [r["correct"] for r in rows] == [None, True], "a 16-token budget did not grade the 40-token trace"


def test_budget_selection_refuses_a_sweep_that_never_solves_anything(tmp_path, tiny_model_dir):
    from e3eval.train.budget import select_budget

    run = _imported(tmp_path, tiny_model_dir, [{"id": "a", "s": 0, "response": "\\boxed{2}", "answer": "1"}])
    score_run(run, ScoreConfig(budgets=(8, 16, 32), workers=1, resamples=0))
    with pytest.raises(UserError, match="pass@1 is 0 at every candidate budget"):
        select_budget(run, [8, 16], kappa=1.2)
    assert pq.read_table(run / "summary.parquet").num_rows > 0
