"""`e3eval probe RUN` without `--model` / `--budgets`: the model and budgets run.json records, each choice said on a
line; a run that records no usable model (imported, served, a folder since moved) is a one-line UserError asking for
`--model`. Real components: tiny models generated with the hf backend, math-verify scoring, Parquet tables."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import generate_small, run_cli, write_jsonl

from e3eval.errors import UserError
from e3eval.probes.run_defaults import recorded_model
from e3eval.run import Run


@pytest.fixture(scope="module")
def scored(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from e3eval.score import ScoreConfig, score_run

    run = generate_small(tiny_model_dir, tmp_path_factory.mktemp("defaults") / "run", max_tokens=16, n=1)
    score_run(run, ScoreConfig(budgets=(8, 16), workers=1, resamples=0))
    return run


def test_probe_takes_the_runs_model_and_scored_budgets(scored, tiny_model_dir):
    proc = run_cli("e3eval", "probe", str(scored), "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert f"model: {tiny_model_dir.resolve()} (the run's, from run.json; --model overrides)" in proc.stdout
    assert "budgets: 8, 16 (the run's scored budgets, from run.json; --budgets overrides)" in proc.stdout
    table = pq.read_table(scored / "probes.parquet").to_pylist()
    assert {r["budget"] for r in table} == {8, 16}
    assert {r["model"] for r in table} == {str(tiny_model_dir.resolve())}
    # Flags still win, and are not announced as defaults.
    again = run_cli("e3eval", "probe", str(scored), "--model", str(tiny_model_dir), "--budgets", "8", "--device",
                    "cpu", "--out", str(scored.parent / "eight.parquet"))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "model:" not in again.stdout and "budgets:" not in again.stdout


def test_an_imported_run_still_needs_model(tmp_path, tiny_model_dir):
    from e3eval.ingest import ImportConfig, import_run

    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "p", "response": "so \\boxed{3}", "answer": "3"}])
    import_run(ImportConfig(src, tmp_path / "imported", str(tiny_model_dir)))
    proc = run_cli("e3eval", "probe", str(tmp_path / "imported"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "run.json names no model (an imported run): give --model" in proc.stderr


def test_a_moved_model_folder_served_and_hub_models(tmp_path, tiny_model_dir):
    moved = tmp_path / "model"
    shutil.copytree(tiny_model_dir, moved)
    run = generate_small(moved, tmp_path / "run", max_tokens=4, n=1)
    assert recorded_model(Run.open(run)) == str(moved.resolve())
    moved.rename(tmp_path / "elsewhere")
    with pytest.raises(UserError, match=r"names the model folder .* which is not there any more: give --model"):
        recorded_model(Run.open(run))
    manifest = json.loads((run / "run.json").read_text())
    generation = manifest["generation"]
    for model, backend, expected in (("Qwen/Qwen3-1.7B", "vllm", "Qwen/Qwen3-1.7B"), ("qwen3", "openai", None)):
        manifest["generation"] = {**generation, "model": model, "model_path": model, "backend": backend}
        (run / "run.json").write_text(json.dumps(manifest))
        if expected is None:
            with pytest.raises(UserError, match=r"generated through a server \(--backend openai\) as 'qwen3'"):
                recorded_model(Run.open(run))
        else:
            lines: list[str] = []
            assert recorded_model(Run.open(run), lines.append) == expected
            assert lines == [f"model: {expected} (the run's hub name, from run.json; --model overrides)"]
