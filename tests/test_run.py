"""The run directory handle (`Run`; the notebook's read-only view is tested in test_notebook.py): sections, tables,
the writer lock and build-then-swap replacing."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_cli, write_jsonl

import e3eval
from e3eval.errors import UserError
from e3eval.generation import GenerateConfig, generate_run
from e3eval.ingest import ImportConfig, import_run
from e3eval.merge import merge_runs
from e3eval.run import Run, replacing
from e3eval.score import ScoreConfig, score_run
from e3eval.store import is_run_id, run_lock


@pytest.fixture(scope="module")
def generated(tiny_model_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "run"
    generate_run(GenerateConfig(model=str(tiny_model_dir), dataset="demo", out=out, n=2, max_tokens=8, backend="hf",
                                limit=2, backend_options={"dtype": "float32"}))  # fmt: skip
    return out


def test_a_run_gives_tables_as_arrow_and_pandas(generated):
    run = Run.open(generated)
    assert run.kind == "generated" and run.name == "run" and is_run_id(run.run_id) and run.samples_wanted == 2
    problems = run.problem_records()
    assert len(problems) == 2 and all(p.prompt_token_ids for p in problems), "prompt ids are kept for probes"
    rollouts = run.frame("rollouts", ["problem_id", "sample_idx", "num_tokens"])
    assert isinstance(rollouts, pd.DataFrame) and len(rollouts) == 4
    assert run.table("problems").num_rows == 2
    assert run.samples().complete
    with pytest.raises(UserError, match="score it first"):
        run.table("grades")


def test_notebook_properties_are_dataframes(generated, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(generated, run_dir)
    run = e3eval.load_run(run_dir)
    assert list(run.problems.columns) == ["problem_id", "dataset", "problem", "answer", "prompt"]
    assert len(run.rollouts) == 4 and "token_ids" not in run.rollouts.columns
    assert run.rollouts_frame(token_ids=True)["token_ids"].map(len).tolist() == run.rollouts["num_tokens"].tolist()
    with pytest.raises(UserError, match="score it first"):
        _ = run.summary
    score_run(run_dir, ScoreConfig(budgets=(4, 8), workers=1, resamples=0))
    run = e3eval.load_run(run_dir)
    assert len(run.grades) == 8 and set(run.summary["budget"]) == {4, 8}
    with pytest.raises(UserError, match="probe it first"):
        _ = run.probes


def test_sections_of_one_stage_never_clobber_another(generated, tmp_path):
    stale = Run.open(generated)  # opened before scoring: its idea of run.json is out of date
    score_run(generated, ScoreConfig(budgets=(4, 8), workers=1, resamples=0))
    stale.write_sections(probes={"models": ["m"]})
    on_disk = Run.open(generated)
    assert on_disk.section("probes") == {"models": ["m"]}
    assert on_disk.section("scoring")["budgets"] == [4, 8], "the scoring section survives a later stage's write"
    assert on_disk.section("generation")["n"] == 2
    assert on_disk.frame("summary").query("metric == 'pass@k' and k == 1").shape[0] == 2
    compared = e3eval.compare([generated, generated]).frame()
    assert set(compared["budget"]) == {4, 8} and len(compared) == 2 * on_disk.table("summary").num_rows
    assert compared.columns[0] == "run" and compared["run"].nunique() == 2, "labels collide: the runs still differ"
    assert set(compared["name"]) == {generated.name} and set(compared["metric"]) >= {"pass@1", "mean_tokens"}


def test_a_second_writer_is_refused(generated):
    with run_lock(generated, "probe"):
        result = run_cli("e3eval", "generate", "--model", "x", "--dataset", "demo", "--max-tokens", "8",
                         "--out", str(generated), "--backend", "hf")  # fmt: skip
    assert result.returncode == 2
    assert f"another e3eval command is writing to this run (pid {os.getpid()}, e3eval probe)" in result.stderr


def test_replacing_swaps_only_on_success(tmp_path):
    target = tmp_path / "out"
    target.mkdir()
    (target / "run.json").write_text("{}")
    with pytest.raises(RuntimeError), replacing(target, force=True) as building:
        (building / "half.parquet").write_text("x")
        raise RuntimeError("failed half way")
    assert sorted(p.name for p in target.iterdir()) == ["run.json"], "the old directory is intact"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no half-built folder is left behind"
    with replacing(target, force=True) as building:
        (building / "new").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["new"]
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not an e3eval run"), replacing(plain, force=True):
        pass
    with pytest.raises(UserError, match="is, contains or lies inside the input"), replacing(tmp_path, inputs=[plain]):
        pass
    assert (plain / "notes.txt").read_text() == "mine"


def _shards(tiny_model_dir: Path, tmp_path: Path) -> list[Path]:
    """The two shards of a 2-way split of two demo problems, one sample each."""
    shards = [tmp_path / f"sh{i}" for i in range(2)]
    for i, out in enumerate(shards):
        generate_run(GenerateConfig(model=str(tiny_model_dir), dataset="demo", out=out, n=1, max_tokens=4,
                                    backend="hf", limit=2, shard=(i, 2)))  # fmt: skip
    return shards


def test_merge_never_destroys_an_input_and_cleans_up_when_refused(tiny_model_dir, tmp_path):
    shards = _shards(tiny_model_dir, tmp_path)
    before = sorted(p.name for p in (shards[0] / "rollouts").iterdir())
    result = run_cli("e3eval", "merge", str(shards[0]), str(shards[0]), str(shards[1]), "--force")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert sorted(p.name for p in (shards[0] / "rollouts").iterdir()) == before, "the input shard is untouched"
    with pytest.raises(UserError, match="is, contains or lies inside the input"):
        merge_runs(shards[0], shards, force=True)
    with pytest.raises(UserError, match="shards must not overlap"):
        merge_runs(tmp_path / "m", [shards[0], shards[0]])
    assert not (tmp_path / "m").exists(), "a refused merge leaves nothing behind"
    assert merge_runs(tmp_path / "m", shards) == 2
    assert Run.open(tmp_path / "m").kind == "merged"
    # The run directories come first, as in score, report and probe; the old order still works, with a warning.
    merged = run_cli("e3eval", "merge", str(shards[0]), str(shards[1]), "--out", str(tmp_path / "m2"))
    assert merged.returncode == 0 and "deprecated" not in merged.stderr, merged.stderr
    assert Run.open(tmp_path / "m2").kind == "merged"
    old = run_cli("e3eval", "merge", str(tmp_path / "m3"), str(shards[0]), str(shards[1]))
    assert old.returncode == 0 and "deprecated" in old.stderr and "--out" in old.stderr, old.stderr
    assert Run.open(tmp_path / "m3").kind == "merged"


def test_import_is_a_run_through_the_handle(tmp_path, tiny_model_dir):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "response": "\\boxed{1}", "answer": "1"}])
    import_run(ImportConfig(src, tmp_path / "imp", str(tiny_model_dir)))
    run = Run.open(tmp_path / "imp")
    assert run.kind == "imported" and run.samples_wanted is None and run.tokenizer_name


def test_import_e3eval_stays_light():
    code = "import sys, e3eval; assert 'pyarrow' not in sys.modules and 'torch' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


def test_every_resumable_table_grows_through_one_part_writer(generated, tmp_path):
    """Rollouts, forced answers and probe parts are `PREFIX-NNNNN.parquet`, numbered on from the last part whatever
    its width (forced answers once wrote six digits, probes a timestamp), read back in the order written."""
    import re

    import pyarrow as pa

    run = Run.open(generated)
    names = [p.name for p in run.parts("rollouts")]
    assert names and all(re.fullmatch(r"part-\d{5}\.parquet", n) for n in names)
    copy = Run.building(tmp_path / "copy")
    table = pa.table({"x": [1]})
    (tmp_path / "copy" / "forced").mkdir(parents=True)
    (tmp_path / "copy" / "forced" / "part-000007.parquet").write_bytes(b"")  # an older, six-digit part
    assert copy.append_part("forced", table).name == "part-00008.parquet"
    probes = tmp_path / ".probes.parquet.parts"
    old = probes / "probes-1733000000000000000.parquet"
    probes.mkdir()
    old.write_bytes(b"")
    new = copy.append_part("probes", table, folder=probes, prefix="probes")
    assert new.name == "probes-1733000000000000001.parquet"
    assert copy.parts("probes", folder=probes, prefix="probes") == [old, new]
    assert copy.append_part("attempts", table, folder=probes, prefix="attempts").name == "attempts-00000.parquet"
    with pytest.raises(ValueError, match="not a table of parts"):
        copy.append_part("grades", table)


def test_only_the_run_module_reads_or_writes_run_json():
    """run.json is `Run`'s: no other module reads or writes it (they go through `Run.open`, `Run.create`,
    `write_sections`, `commit`), and none indexes a manifest section by name (`record` is typed)."""
    import ast

    root = Path(e3eval.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if path.name in ("run.py", "store.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr != "write_manifest"}
        assert not names & {"write_manifest", "read_manifest"}, f"{path} reads or writes run.json itself"
        sections = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "section"]
        assert not sections, f"{path}: indexes run.json by section name; use Run.record"


def test_force_replaces_a_run_but_never_files_e3eval_did_not_write(tiny_model_dir, tmp_path):
    shards = _shards(tiny_model_dir, tmp_path)
    merge_runs(tmp_path / "m", shards)
    notes = tmp_path / "m" / "analysis.ipynb"
    notes.write_text("{}")
    with pytest.raises(UserError, match=r"holds files e3eval did not write \(analysis.ipynb\)"):
        merge_runs(tmp_path / "m", shards, force=True)
    assert notes.read_text() == "{}"
    notes.unlink()
    assert merge_runs(tmp_path / "m", shards, force=True) == 2, "a run of e3eval's files alone is replaced"
    # Forgetting --out never takes a shard for the output; an interrupted shard is not merged as if complete.
    forgot = run_cli("e3eval", "merge", str(shards[0]), str(shards[1]), "--force")
    assert forgot.returncode == 2 and "no --out" in forgot.stderr and "Traceback" not in forgot.stderr
    shard = Run.open(shards[1])
    for part in shard.parts("rollouts"):
        part.unlink()
    with pytest.raises(UserError, match=r"sample.* missing.*--allow-missing"):
        merge_runs(tmp_path / "m2", shards)
    assert merge_runs(tmp_path / "m2", shards, allow_missing=True) == 1
