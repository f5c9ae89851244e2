"""Run and model identity (issue: numbers that never lie, wave 3): a run is its uuid, a model is its path plus its
weights' fingerprint, a stored row is valid only for the token ids it read; probe outputs cannot clobber a run or
each other; grades are joined when read. Real components: tiny models, the hf backend, math-verify, Parquet."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import generate_small, run_cli, write_jsonl

import e3eval
from e3eval.errors import UserError
from e3eval.probes import job
from e3eval.probes.alignment import first_difference
from e3eval.run import Run
from e3eval.store import is_run_id, output_lock
from e3eval.weights import model_fingerprint

STOP_AFTER = 12


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory) -> Path:
    from e3eval.dev.tiny_model import build_stopping_model

    return build_stopping_model(tmp_path_factory.mktemp("stopping"), STOP_AFTER)


def _generate(model: Path, out: Path, **kwargs) -> Path:
    return generate_small(model, out, 32, **kwargs)


@pytest.fixture(scope="module")
def generated(tiny_model_dir, tmp_path_factory) -> Path:
    return _generate(tiny_model_dir, tmp_path_factory.mktemp("gen") / "run")


@pytest.fixture
def run_dir(generated, tmp_path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "x" / "run"))


def _probe(run: Path, model: Path, **kwargs) -> job.ProbeOutcome:
    return job.run_probe(job.ProbeConfig(run_dir=run, models=(str(model),), budgets=(32,), **kwargs))


def test_two_runs_of_one_folder_name_are_two_runs_in_a_shared_table(tiny_model_dir, generated, tmp_path):
    x = _generate(tiny_model_dir, tmp_path / "x" / "run", seed=1)
    y = _generate(tiny_model_dir, tmp_path / "y" / "run", seed=2)
    ids = {e3eval.load_run(x).run_id, e3eval.load_run(y).run_id}
    assert len(ids) == 2 and all(is_run_id(i) for i in ids)
    assert e3eval.load_run(x).name == "run"
    shared = tmp_path / "shared.parquet"
    assert _probe(x, tiny_model_dir, out=shared).computed == 4
    second = _probe(y, tiny_model_dir, out=shared)
    assert (second.computed, second.reused) == (4, 0), "y/run is not x/run"
    table = pq.read_table(shared)
    assert set(table["run_id"].to_pylist()) == ids and table.num_rows == 8


def test_a_copied_run_becomes_its_own_run_and_rows_hold_only_for_the_ids_read(run_dir, tiny_model_dir, tmp_path):
    """`cp -r` copies the uuid: the copy gets its own on its first write while the original still holds it (a moved
    run keeps it); a probe row is valid only for the token ids it read (ids_sha1): a regenerated sample is probed
    again."""
    shared = tmp_path / "shared.parquet"
    assert _probe(run_dir, tiny_model_dir, out=shared).computed == 4
    original = e3eval.load_run(run_dir).run_id  # run_dir is itself a copy: its first write gave it its own id
    copy = Path(shutil.copytree(run_dir, tmp_path / "copy"))
    assert e3eval.load_run(copy).run_id == original, "reading writes nothing"
    assert _probe(copy, tiny_model_dir, out=shared).computed == 4, "the copy is another run"
    copied = Run.open(copy)
    assert copied.run_id != original and copied.manifest["copied_from"]["run_id"] == original
    assert e3eval.load_run(run_dir).run_id == original and pq.read_table(shared).num_rows == 8
    moved = Path(shutil.move(str(copy), tmp_path / "moved"))
    assert _probe(moved, tiny_model_dir, out=shared).reused == 4, "a moved run keeps its id"
    shard = sorted((run_dir / "rollouts").glob("part-*.parquet"))[0]
    table = pq.read_table(shard)
    ids = [list(reversed(t)) for t in table["token_ids"].to_pylist()]
    pq.write_table(table.set_column(table.schema.get_field_index("token_ids"), "token_ids",
                                    pa.array(ids, pa.list_(pa.int32()))), shard)  # fmt: skip
    again = _probe(run_dir, tiny_model_dir, out=shared)
    assert again.computed == 4 and pq.read_table(shared).num_rows == 8, "new ids replace the rows of their slots"


def test_a_run_from_before_uuids_gets_one_on_its_first_write(run_dir, tiny_model_dir):
    manifest = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**manifest, "run_id": "aime25"}))
    assert e3eval.load_run(run_dir).run_id == "aime25", "reading writes nothing"
    _probe(run_dir, tiny_model_dir)
    run = e3eval.load_run(run_dir)
    assert is_run_id(run.run_id) and run.name == "aime25" and run.record.legacy_run_id == "aime25"
    assert set(run.probes["run_id"]) == {run.run_id}
    assert _probe(run_dir, tiny_model_dir).reused == 4, "kept on later writes"


def test_new_weights_at_a_probed_path_are_probed_again(run_dir, tiny_model_dir, tmp_path):
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "ckpt" / "latest"))
    before = model_fingerprint(str(model))
    assert _probe(run_dir, model).computed == 4
    assert _probe(run_dir, model).reused == 4
    assert model_fingerprint(str(shutil.copytree(model, tmp_path / "moved"))) == before, "copies are one model"
    _perturb(model)
    assert model_fingerprint(str(model)) != before
    again = _probe(run_dir, model)
    assert again.computed == 4, "the same path with other weights is another model"
    probes = e3eval.load_run(run_dir).probes
    assert len(probes) == 4 and set(probes["model_fingerprint"]) == {model_fingerprint(str(model))}


def _perturb(model: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    weights = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    with torch.no_grad():
        weights.model.norm.weight.add_(1.0)
    weights.save_pretrained(model)


def test_grades_are_joined_when_read_never_stale(run_dir, tiny_model_dir):
    assert run_cli("e3eval", "score", str(run_dir), "--budgets", "8,32", "--workers", "1").returncode == 0
    job.run_probe(job.ProbeConfig(run_dir=run_dir, models=(str(tiny_model_dir),), budgets=(8, 32)))
    assert e3eval.load_run(run_dir).probes["correct"].notna().all()
    assert run_cli("e3eval", "score", str(run_dir), "--budgets", "16", "--workers", "1").returncode == 0
    probes = e3eval.load_run(run_dir).probes
    assert probes["correct"].isna().all(), "budgets 8 and 32 are no longer scored: no grade, not the old one"


def test_probe_outputs_inside_a_run_are_refused(run_dir, tiny_model_dir, tmp_path):
    for out in ("rollouts/part-zzzz.parquet", "forced/part-0.parquet", ".", "run.json", "figures"):
        with pytest.raises(UserError, match=r"inside the run directory|a folder|Parquet file"):
            _probe(run_dir, tiny_model_dir, out=run_dir / out)
    assert not (run_dir / "rollouts" / "part-zzzz.parquet").exists()
    assert not list(run_dir.parent.glob(".*.parts"))
    assert _probe(run_dir, tiny_model_dir, out=run_dir / "probes.parquet").computed == 4, "its own table is fine"


def test_a_foreign_parquet_file_in_rollouts_or_forced_is_named(run_dir, tmp_path):
    pq.write_table(pa.table({"x": [1]}), run_dir / "rollouts" / "part-zzzz.parquet")
    done = run_cli("e3eval", "score", str(run_dir), "--budgets", "8", "--workers", "1")
    assert done.returncode == 2 and "part-zzzz.parquet: not a rollout shard (no column" in done.stderr
    assert "Traceback" not in done.stderr


def test_two_probes_into_one_out_file_cannot_interleave(run_dir, tiny_model_dir, tmp_path):
    shared = tmp_path / "shared.parquet"
    with output_lock(shared, "probe"), pytest.raises(UserError, match="another e3eval command is writing"):
        _probe(run_dir, tiny_model_dir, out=shared)


def test_probe_user_mistakes_are_one_line(run_dir, tiny_model_dir, tmp_path):
    bare = Path(shutil.copytree(tiny_model_dir, tmp_path / "bare"))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt", "special_tokens_map.json"):
        (bare / name).unlink(missing_ok=True)
    with pytest.raises(UserError, match="no tokenizer files"):
        _probe(run_dir, bare)
    with pytest.raises(UserError, match="needs --attempts"):
        job.check_config(job.ProbeConfig(run_dir=run_dir, models=("m",), max_attempts=2))
    manifest = json.loads((run_dir / "run.json").read_text())
    for bad in ("16,32", [16, "abc"], [0]):
        (run_dir / "run.json").write_text(json.dumps({**manifest, "scoring": {"budgets": bad}}))
        with pytest.raises(UserError, match=r"scoring\.budgets' must be a list of positive integers"):
            e3eval.load_run(run_dir)
    (run_dir / "run.json").write_text(json.dumps(manifest))
    assert job._budgets(Run.open(run_dir), job.ProbeConfig(run_dir, ("m",))) == (32,), "the generation limit"


def test_a_truncated_shard_is_a_user_error_in_the_notebook(run_dir):
    shard = sorted((run_dir / "rollouts").glob("part-*.parquet"))[0]
    shard.write_bytes(shard.read_bytes()[:100])
    with pytest.raises(UserError, match="not a readable Parquet shard"):
        _ = e3eval.load_run(run_dir).rollouts


def test_an_import_without_prompts_cannot_be_probed(tiny_model_dir, tmp_path):
    source = write_jsonl(tmp_path / "r.jsonl", [{"id": "p1", "response": "so \\boxed{3}", "answer": "3"}])
    run = tmp_path / "imported"
    assert (
        run_cli("e3eval", "import", str(source), "--out", str(run), "--tokenizer", str(tiny_model_dir)).returncode == 0
    )
    done = run_cli("e3eval", "probe", str(run), "--model", str(tiny_model_dir))
    assert done.returncode == 2 and "has no prompt" in done.stderr and "Traceback" not in done.stderr


def test_inserted_wait_tokens_are_not_the_policys(stopping_dir, tmp_path):
    dataset = write_jsonl(tmp_path / "p.jsonl", [{"id": "seven", "problem": "What is 3 + 4?", "answer": "7"}])
    out = tmp_path / "wait"
    done = run_cli("e3eval", "generate", "--model", str(stopping_dir), "--backend", "hf", "--dataset", str(dataset),
                   "--n", "1", "--max-tokens", "64", "--wait", "2", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    inserted = e3eval.load_run(out).rollouts["inserted"].iloc[0].tolist()
    assert len(inserted) == 4, "two insertions"
    job.run_probe(job.ProbeConfig(run_dir=out, models=(str(stopping_dir),), budgets=(64,), per_token=True))
    row = e3eval.load_run(out).probes.iloc[0]
    spans = [range(a, b) for a, b in zip(inserted[::2], inserted[1::2], strict=True)]
    width = sum(len(s) for s in spans)
    assert row["n_inserted"] == width and row["n_tokens"] == len(row["token_logprob"]) - width
    logprobs = [None if math.isnan(v) else v for v in row["token_logprob"]]
    assert all(logprobs[i] is None for s in spans for i in s)
    own = [v for v in logprobs if v is not None]
    assert row["mean_logprob"] == pytest.approx(sum(own) / len(own))
    assert row["mean_logprob"] > -0.01, "the hand-set model is sure of every token it sampled itself"


def test_an_imported_run_is_not_told_to_rerun_generate(tiny_model_dir, tmp_path):
    source = write_jsonl(tmp_path / "r.jsonl", [
        {"id": "p1", "response": "so \\boxed{3}", "answer": "3", "sample_idx": 0},
        {"id": "p1", "response": "", "answer": "3", "sample_idx": 1, "error": "server timeout"},
    ])  # fmt: skip
    run = tmp_path / "imported"
    imported = run_cli("e3eval", "import", str(source), "--out", str(run), "--tokenizer", str(tiny_model_dir),
                       "--sample-field", "sample_idx", "--name", "vendor-dump")  # fmt: skip
    assert imported.returncode == 0, imported.stderr
    assert e3eval.load_run(run).name == "vendor-dump" and is_run_id(e3eval.load_run(run).run_id)
    done = run_cli("e3eval", "score", str(run), "--budgets", "16", "--workers", "1")
    assert done.returncode == 0, done.stderr
    assert "This run was imported" in done.stderr and "e3eval generate" not in done.stderr


def test_a_checkpoint_folder_with_two_experiments_says_so(tmp_path):
    from e3eval.probes.checkpoints import checkpoints, describe_checkpoints, experiment_of

    for experiment in ("exp-a", "exp-b"):
        for step in (10, 20):
            folder = tmp_path / "checkpoints" / "proj" / experiment / f"global_step_{step}" / "actor" / "huggingface"
            folder.mkdir(parents=True)
            (folder / "config.json").write_text("{}")
    found = checkpoints([str(tmp_path / "checkpoints")])
    assert [c.step for c in found] == [10, 10, 20, 20]
    assert {experiment_of(c.model) for c in found} == {str(tmp_path / "checkpoints" / "proj" / e)
                                                       for e in ("exp-a", "exp-b")}  # fmt: skip
    text = describe_checkpoints(found)
    assert "4 model(s) in 2 folder(s)" in text and "exp-a: step 10, 20" in text and "exp-b: step 10, 20" in text


def test_a_tokenizer_mismatch_names_the_first_differing_position():
    assert first_difference([1, 2, 3], [1, 5, 3]) == "re-tokenizes to id 2 at position 1, where the run stores 5"
    assert first_difference([1, 2], [1, 2, 3]) == "re-tokenizes to 2 ids, the run stores 3 (the first 2 agree)"


def test_a_run_grows_only_with_the_weights_it_was_generated_with(tiny_model_dir, tmp_path, monkeypatch):
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "m"))
    run = _generate(model, tmp_path / "grow")
    monkeypatch.chdir(tmp_path)
    grown = run_cli("e3eval", "generate", "--model", "./m/", "--backend", "hf", "--dataset",
                    str(tmp_path / "grow-problems.jsonl"), "--n", "3", "--max-tokens", "32", "--dtype", "float32",
                    "--out", str(run), cwd=tmp_path)  # fmt: skip
    assert grown.returncode == 0, "another spelling of the same folder is the same model: " + grown.stderr
    _perturb(model)
    refused = run_cli("e3eval", "generate", "--model", str(model), "--backend", "hf", "--dataset",
                      str(tmp_path / "grow-problems.jsonl"), "--n", "4", "--max-tokens", "32", "--dtype", "float32",
                      "--out", str(run))  # fmt: skip
    assert refused.returncode == 2 and "changed since this run was generated" in refused.stderr, refused.stderr
    assert len(e3eval.load_run(run).rollouts) == 6, "nothing of the new weights was added"


def test_a_shared_probe_table_edited_by_hand_is_not_trusted(run_dir, tiny_model_dir, tmp_path):
    shared = tmp_path / "shared.parquet"
    assert _probe(run_dir, tiny_model_dir, out=shared).computed == 4
    table = pq.read_table(shared)
    index = table.schema.get_field_index("mean_entropy")
    pq.write_table(table.set_column(index, "mean_entropy", pa.array([123.0] * table.num_rows)), shared)
    with pytest.raises(UserError, match="was not written by e3eval"):
        _probe(run_dir, tiny_model_dir, out=shared)
    assert _probe(run_dir, tiny_model_dir, out=shared, force=True).reused == 4, "--force takes it as it is"
    assert _probe(run_dir, tiny_model_dir, out=shared).reused == 4, "written by e3eval again"


def test_probe_rows_say_which_scoring_their_grades_come_from(run_dir, tiny_model_dir, tmp_path):
    assert run_cli("e3eval", "score", str(run_dir), "--budgets", "32", "--workers", "1").returncode == 0
    shared = tmp_path / "shared.parquet"
    _probe(run_dir, tiny_model_dir, out=shared)
    unit = Run.open(run_dir).section("scoring")["unit"]
    stored = pq.read_table(shared).to_pylist()
    assert {(r["grade_policy"], r["graded_by"]) for r in stored} == {("prefix", unit)}
    assert run_cli("e3eval", "score", str(run_dir), "--budgets", "32", "--policy", "strict",
                   "--workers", "1").returncode == 0  # fmt: skip
    _probe(run_dir, tiny_model_dir)
    now = e3eval.load_run(run_dir)
    shown = set(zip(now.probes["grade_policy"], now.probes["graded_by"], strict=True))
    current = Run.open(run_dir).section("scoring")["unit"]
    assert shown == {("strict", current)}, "read through the run: the current scoring"
    assert {r["graded_by"] for r in pq.read_table(shared).to_pylist()} == {unit}, "the file says which one it had"
