"""`e3eval probe` end to end on tiny-model runs: generate -> score -> probe, resume after an interruption, bad input.

Real components throughout: the tiny random Qwen3 model, the hf backend, math-verify scoring, Parquet tables. The
per-token numbers themselves are checked against direct computations in test_probe_forward.py and
test_probe_attempts.py; here the run-level contract is checked: one row per (model, sample, budget), prefix means
that agree with the stored generation logprobs, grades joined, KL columns, resumability and refusals.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

import e3eval
from e3eval.run import Run

BUDGETS = (8, 16, 32)


@pytest.fixture(scope="module")
def scored_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("probe") / "run"
    generated = run_cli("e3eval", "generate", "--model", str(tiny_model_dir), "--backend", "hf", "--dataset", "demo",
                        "--limit", "3", "--n", "2", "--max-tokens", "32", "--logprobs", "--out", str(run))  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    scored = run_cli("e3eval", "score", str(run), "--budgets", ",".join(map(str, BUDGETS)), "--workers", "1")
    assert scored.returncode == 0, scored.stderr
    return run


@pytest.fixture(scope="module")
def perturbed_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with noise on its final norm and one MLP: a 'trained checkpoint' of the same vocabulary."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path_factory.mktemp("perturbed") / "global_step_7" / "actor" / "huggingface"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if "layers.1.mlp" in name or name.endswith("model.norm.weight"):
                weight.add_(0.5 * torch.randn(weight.shape, generator=generator))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(out)
    return out


def rows(path: Path) -> list[dict]:
    return pq.read_table(path).to_pylist()


def test_probe_end_to_end_with_ref_and_attempts(scored_run, tiny_model_dir, perturbed_model, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    result = run_cli("e3eval", "probe", str(run), "--model", str(perturbed_model.parents[2]), "--ref",
                     str(tiny_model_dir), "--attempts", "countdown", "--chunk", "5", "--per-token")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "probed 6 (model, sample) pair(s), 0 already there" in result.stdout
    assert "(step 7)" in result.stdout and "KL to ref [95% CI]" in result.stdout
    probes = rows(run / "probes.parquet")
    assert len(probes) == 6 * len(BUDGETS)
    assert {r["step"] for r in probes} == {7} and {r["budget"] for r in probes} == set(BUDGETS)
    grades = {(g["problem_id"], g["sample_idx"], g["budget"]): g["correct"] for g in rows(run / "grades.parquet")}
    for r in probes:
        assert r["correct"] == grades[(r["problem_id"], r["sample_idx"], r["budget"])]
        assert r["kl_exact"] > 0 and r["mean_entropy"] > 0 and r["mean_logprob"] < 0
        assert (r["token_logprob"] is not None) == (r["budget"] == max(BUDGETS))
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["probes"]["refs"] == [str(tiny_model_dir)]
    assert manifest["probes"]["models"] == [{"model": str(perturbed_model), "step": 7}]
    attempts = rows(run / "attempt_probes.parquet")
    notebook = e3eval.load_run(run)
    assert len(notebook.probes) == len(probes) and len(notebook.attempt_probes) == len(attempts)
    probed = {(r["problem_id"], r["sample_idx"]) for r in probes}
    assert {(a["problem_id"], a["sample_idx"]) for a in attempts} == probed


def test_probe_means_match_generation_logprobs_and_self_kl_is_zero(scored_run, tiny_model_dir, tmp_path):
    out = tmp_path / "self.parquet"
    # Generation stores the raw model's logprobs (temperature 1), so the probe runs at temperature 1 too.
    result = run_cli("e3eval", "probe", str(scored_run), "--model", str(tiny_model_dir), "--ref", str(tiny_model_dir),
                     "--out", str(out), "--budgets", "4,32", "--temperature", "1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    stored = {}
    for shard in sorted((scored_run / "rollouts").glob("*.parquet")):
        for r in pq.read_table(shard).to_pylist():
            stored[(r["problem_id"], r["sample_idx"])] = r["logprobs"]
    probes = rows(out)
    assert len(probes) == 12
    for r in probes:
        logprobs = stored[(r["problem_id"], r["sample_idx"])][: r["budget"]]
        assert r["n_tokens"] == len(logprobs)
        assert r["mean_logprob"] == pytest.approx(float(np.mean(logprobs)), abs=1e-4)
        assert r["kl_exact"] == pytest.approx(0.0, abs=1e-6)
        assert r["kl_k1"] == pytest.approx(0.0, abs=1e-6) and r["kl_k3"] == pytest.approx(0.0, abs=1e-6)
    assert not (scored_run / "probes.parquet").exists(), "--out must not write into the run"


def test_interrupted_probe_resumes_without_recomputing(scored_run, tiny_model_dir, tmp_path, monkeypatch):
    from e3eval.probes import forward, job

    run = tmp_path / "run"
    shutil.copytree(scored_run, run)
    config = job.ProbeConfig(run_dir=run, models=(str(tiny_model_dir),), budgets=BUDGETS)
    monkeypatch.setattr(job, "_FLUSH_SAMPLES", 1)
    real, calls = forward.token_stats, []

    def interrupted(*args, **kwargs):  # the fourth sample is never finished: as if the process were killed there
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(forward, "token_stats", interrupted)
    with pytest.raises(KeyboardInterrupt):
        job.run_probe(config)
    assert not (run / "probes.parquet").exists()
    assert len(list((run / ".probes.parquet.parts").glob("probes-*.parquet"))) == 3
    monkeypatch.setattr(forward, "token_stats", real)
    outcome = job.run_probe(config)
    assert (outcome.computed, outcome.reused) == (3, 3)
    assert not (run / ".probes.parquet.parts").exists()
    fresh = tmp_path / "fresh.parquet"
    job.run_probe(job.ProbeConfig(run_dir=scored_run, models=(str(tiny_model_dir),), budgets=BUDGETS, out=fresh))
    # The copy got its own run id on its first write (its original still holds the first): all else is the same.
    assert [{**r, "run_id": None} for r in rows(run / "probes.parquet")] == [{**r, "run_id": None} for r in rows(fresh)]
    again = job.run_probe(config)
    assert (again.computed, again.reused) == (0, 6)


def test_probe_refuses_bad_input(scored_run, tiny_model_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3ForCausalLM

    def refused(*args: str) -> str:
        result = run_cli("e3eval", "probe", str(scored_run), *args)
        assert result.returncode == 2, result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        return result.stderr

    assert "no such folder" in refused("--model", str(tmp_path / "missing"))
    wide = tmp_path / "wide"
    config = AutoModelForCausalLM.from_pretrained(tiny_model_dir).config
    config.vocab_size += 64
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).save_pretrained(wide)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(wide)
    assert "KL needs the same vocabulary" in refused("--model", str(tiny_model_dir), "--ref", str(wide))
    other = tmp_path / "other"
    from e3eval.dev.tiny_model import build_tiny_model

    build_tiny_model(other, seed=3)
    assert "does not match the run's token ids" in refused("--model", str(other))
    assert "--chunk" in refused("--model", str(tiny_model_dir), "--chunk", "0")
    assert "--attempts" in refused("--model", str(tiny_model_dir), "--attempts", "poetry")


def test_probe_outputs_feed_the_figures(tiny_model_dir, perturbed_model, tmp_path):
    """Countdown-style traces (paragraph attempts) imported, probed at two checkpoints, then drawn (Fig. 11, 13)."""
    from conftest import write_jsonl

    from e3eval.figures import attempt_probes as attempts
    from e3eval.figures import training

    paragraphs = ["25 + 5 = 30, too far.", "25 - 5 = 20, not 24.", "5 * 5 = 25, close.", "25 - 1 = 24, the target."]
    records = [{"id": f"p{i}", "problem": "Make 24.", "answer": "24", "response": "\n\n".join(paragraphs[: 2 + i % 3])}
               for i in range(6)]  # fmt: skip
    source = write_jsonl(tmp_path / "traces.jsonl", records)
    run = tmp_path / "imported"
    imported = run_cli("e3eval", "import", str(source), "--out", str(run), "--tokenizer", str(tiny_model_dir))
    assert imported.returncode == 0, imported.stderr
    steps = tmp_path / "ckpts"
    shutil.copytree(tiny_model_dir, steps / "global_step_0" / "actor" / "huggingface")
    shutil.copytree(perturbed_model, steps / "global_step_7" / "actor" / "huggingface")
    result = run_cli("e3eval", "probe", str(run), "--model", str(steps), "--ref", str(tiny_model_dir),
                     "--attempts", "countdown", "--budgets", "64")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "re-tokenizing imported text" in result.stderr
    table = rows(run / "attempt_probes.parquet")
    assert sorted({r["k"] for r in table}) == [2, 3, 4]
    assert all(r["fig13a"] == pytest.approx(r["lp_k_given_prev"] - r["lp_k_skip_prev"]) for r in table)
    frame = attempts.FAMILY.load({"probes": {"tiny": str(run)}}, tmp_path)
    assert set(frame["k"]) >= {2, 3}
    figure = attempts.FAMILY.draw(frame, {"min_n": 1})
    assert len(figure.axes) >= 3
    curves = training.FAMILY.load({"probes": {"tiny": str(run)}}, tmp_path)
    probe_kl = curves[curves["panel"] == "probe_kl"].sort_values("step")
    assert probe_kl["step"].tolist() == [0, 7] and probe_kl["value"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert probe_kl["value"].iloc[1] > 0


def test_later_calls_keep_rows_refresh_grades_and_key_on_run_and_dtype(tiny_model_dir, perturbed_model, tmp_path):
    """Review findings: attempt rows survive a later call with another ref; a probe made before scoring gets its
    grades when the run is scored; another run into the same --out is probed, not taken as done; a new dtype is a
    new measurement."""
    from e3eval.probes import job

    runs = []
    for name in ("a", "b"):
        run = tmp_path / name
        generated = run_cli("e3eval", "generate", "--model", str(tiny_model_dir), "--backend", "hf", "--dataset",
                            "demo", "--limit", "2", "--n", "2", "--max-tokens", "24", "--seed", str(len(runs)),
                            "--out", str(run))  # fmt: skip
        assert generated.returncode == 0, generated.stderr
        runs.append(run)
    a, b = runs
    first = job.run_probe(job.ProbeConfig(run_dir=a, models=(str(tiny_model_dir),), budgets=(24,), attempts="math"))
    assert first.computed == 4
    attempts_before = rows(a / "attempt_probes.parquet")
    assert all(r["correct"] is None for r in rows(a / "probes.parquet")), "unscored"
    assert run_cli("e3eval", "score", str(a), "--budgets", "24", "--workers", "1").returncode == 0
    again = job.run_probe(job.ProbeConfig(run_dir=a, models=(str(tiny_model_dir),), budgets=(24,),
                                          ref=str(perturbed_model)))  # fmt: skip
    assert again.computed == 4, "another ref is another measurement"
    unit = Run.open(a).section("scoring")["unit"]
    assert rows(a / "attempt_probes.parquet") == [
        {**r, "correct": False, "grade_policy": "prefix", "graded_by": unit} for r in attempts_before
    ]
    assert all(r["correct"] is False for r in rows(a / "probes.parquet")), "grades joined after scoring"
    shared = tmp_path / "shared.parquet"
    for run in (a, b):
        outcome = job.run_probe(job.ProbeConfig(run_dir=run, models=(str(tiny_model_dir),), budgets=(24,), out=shared))
        assert outcome.computed == 4
    assert {r["run_id"] for r in rows(shared)} == {e3eval.load_run(a).run_id, e3eval.load_run(b).run_id}
    assert len(rows(shared)) == 8
    bf16 = job.run_probe(job.ProbeConfig(run_dir=b, models=(str(tiny_model_dir),), budgets=(24,), out=shared,
                                         dtype="bfloat16"))  # fmt: skip
    assert bf16.computed == 4 and {r["dtype"] for r in rows(shared)} == {"float32", "bfloat16"}
