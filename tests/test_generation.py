"""`e3eval generate` with the real hf backend on the tiny model: seeds, resumability, growing n, shards, merge."""

import sys
from collections import Counter
from pathlib import Path

import conftest
import pyarrow.parquet as pq
import pytest

from e3eval.errors import UserError
from e3eval.generation import GenerateConfig, generate_run, parse_shard, sample_seed
from e3eval.merge import merge_runs
from e3eval.run import Run
from e3eval.store import iter_rollout_batches, read_manifest, rollout_shards

E3EVAL = str(Path(sys.executable).parent / "e3eval")


def config(model: Path, out: Path, **kw) -> GenerateConfig:
    base = dict(model=str(model), dataset="demo", out=out, n=2, max_tokens=12, backend="hf", limit=3,
                batch_samples=4, backend_options={"batch_size": 4})  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def rows(run: Path) -> dict[tuple[str, int], dict]:
    cols = ["problem_id", "sample_idx", "seed", "token_ids", "num_tokens", "finish_reason", "response"]
    out = {}
    for batch in iter_rollout_batches(run, cols):
        for r in batch.to_pylist():
            key = (r["problem_id"], r["sample_idx"])
            assert key not in out, f"duplicate sample {key}"
            out[key] = r
    return out


def test_generates_seeded_reproducible_samples(tiny_model_dir, tmp_path, tokenizer):
    first = generate_run(config(tiny_model_dir, tmp_path / "a"))
    generate_run(config(tiny_model_dir, tmp_path / "b"))
    a, b = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert first.generated == 6 and len(a) == 6
    assert {k: r["token_ids"] for k, r in a.items()} == {k: r["token_ids"] for k, r in b.items()}
    for (pid, idx), r in a.items():
        assert r["seed"] == sample_seed(0, pid, idx)
        assert r["num_tokens"] == len(r["token_ids"]) <= 12
        assert r["finish_reason"] in ("stop", "length")
        assert r["response"] == tokenizer.decode(r["token_ids"], skip_special_tokens=True)
    manifest = read_manifest(tmp_path / "a")
    assert manifest["generation"]["engine"]["engine"] == "transformers"
    assert manifest["generation"]["status"] == "complete"
    assert manifest["token_ids_source"] == "engine"
    problems = pq.read_table(tmp_path / "a" / "problems.parquet").to_pylist()
    assert all(p["prompt"].startswith("<|im_start|>user\nYou will be given a math problem.") for p in problems)
    assert all(p["prompt_token_ids"] == tokenizer(p["prompt"], add_special_tokens=False)["input_ids"] for p in problems)


def test_growing_n_generates_only_new_samples(tiny_model_dir, tmp_path):
    generate_run(config(tiny_model_dir, tmp_path / "r", n=2))
    before = {p: p.stat().st_mtime_ns for p in rollout_shards(tmp_path / "r")}
    old = rows(tmp_path / "r")
    result = generate_run(config(tiny_model_dir, tmp_path / "r", n=4))
    assert (result.generated, result.skipped) == (6, 6)
    after = rows(tmp_path / "r")
    assert len(after) == 12 and all(after[k] == v for k, v in old.items())
    assert all(p.stat().st_mtime_ns == t for p, t in before.items()), "existing shards are never rewritten"
    assert generate_run(config(tiny_model_dir, tmp_path / "r", n=4)).generated == 0


def test_refuses_to_mix_settings(tiny_model_dir, tmp_path):
    generate_run(config(tiny_model_dir, tmp_path / "r"))
    for change in ({"temperature": 1.0}, {"max_tokens": 13}, {"seed": 1}, {"dataset": "aime25"}):
        with pytest.raises(UserError, match="refusing to mix"):
            generate_run(config(tiny_model_dir, tmp_path / "r", **change))


def test_shards_and_merge(tiny_model_dir, tmp_path):
    for i in range(2):
        generate_run(config(tiny_model_dir, tmp_path / f"s{i}", shard=(i, 2)))
    generate_run(config(tiny_model_dir, tmp_path / "full"))
    assert merge_runs(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"]) == 6
    merged, full = rows(tmp_path / "merged"), rows(tmp_path / "full")
    assert merged.keys() == full.keys()
    assert {r["seed"] for r in merged.values()} == {r["seed"] for r in full.values()}
    run_ids = {b.column("run_id")[0].as_py() for b in iter_rollout_batches(tmp_path / "merged", ["run_id"])}
    merged = Run.open(tmp_path / "merged")
    assert run_ids == {merged.run_id} and merged.name == "merged", "shards of two runs merge into a new run"
    sources = [Run.open(tmp_path / s).run_id for s in ("s0", "s1")]
    assert [m["run_id"] for m in merged.manifest["merged_from"]] == sources
    with pytest.raises(UserError, match="shards must not overlap"):
        merge_runs(tmp_path / "bad", [tmp_path / "s0", tmp_path / "s0"])
    with pytest.raises(UserError, match=r"shard\(s\) 1/2 of the 2-way split are not among the runs to merge"):
        merge_runs(tmp_path / "half", [tmp_path / "s0"])
    assert not (tmp_path / "half").exists()
    assert merge_runs(tmp_path / "half", [tmp_path / "s0"], allow_missing=True) == len(rows(tmp_path / "s0"))
    with pytest.raises(UserError, match="settings differ"):
        generate_run(config(tiny_model_dir, tmp_path / "t", temperature=1.0))
        merge_runs(tmp_path / "bad2", [tmp_path / "s0", tmp_path / "t"])
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(UserError):
            parse_shard(bad)


def test_sigkill_then_rerun_gives_exactly_the_sample_set(tiny_model_dir, tmp_path):
    out = tmp_path / "killed"
    args = [E3EVAL, "generate", "--model", str(tiny_model_dir), "--dataset", "demo", "--max-tokens", "48", "--n", "6",
            "--limit", "4", "--batch", "2", "--backend", "hf", "--out", str(out)]  # fmt: skip
    partial = conftest.killed_then_rerun(args, out)
    assert 0 < partial < 24, "the kill should land mid-run"
    final = rows(out)
    assert Counter(pid for pid, _ in final) == {f"demo-0{i}": 6 for i in range(1, 5)}
    assert all(r["seed"] == sample_seed(0, pid, idx) for (pid, idx), r in final.items())
