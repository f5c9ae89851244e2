"""Outputs outside a run never replace a file e3eval did not write (`e3eval/outputs.py`): count-asymmetries --out,
dev example-pool, dev tiny-model. Real commands as a user runs them."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import run_cli, write_jsonl

from e3eval.errors import UserError
from e3eval.outputs import check_replaceable, claim_folder, write_output


def test_count_asymmetries_out_never_replaces_a_users_file(tmp_path):
    traces = write_jsonl(tmp_path / "t.jsonl", [{"response": "Let me check. Wait, verify: 2+2=4."}] * 3)
    mine = tmp_path / "rows.csv"
    mine.write_text("my own notes\n")
    args = ("count-asymmetries", str(traces), "--out", str(mine))
    refused = run_cli("e3eval", *args)
    assert refused.returncode == 2 and "was not written by e3eval" in refused.stderr
    assert mine.read_text() == "my own notes\n", "nothing touched"
    assert run_cli("e3eval", *args, "--force").returncode == 0
    assert run_cli("e3eval", *args).returncode == 0, "its own output it may rewrite"
    mine.write_text(mine.read_text() + "an edit\n")
    again = run_cli("e3eval", *args)
    assert again.returncode == 2 and "changed since" in again.stderr and mine.read_text().endswith("an edit\n")


def test_single_file_outputs_are_refused_inside_runs_and_folders(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.raises(UserError, match="which is a run directory"):
        check_replaceable(run / "rollouts" / "part-00009.parquet")
    with pytest.raises(UserError, match="a folder"):
        check_replaceable(tmp_path)
    target = tmp_path / "new" / "out.txt"
    write_output(target, lambda temp: temp.write_text("one"))
    assert target.read_text() == "one" and not list(target.parent.glob(".out.txt.tmp-*"))
    write_output(target, lambda temp: temp.write_text("two"))
    assert target.read_text() == "two"


def test_dev_commands_claim_only_what_they_own(tmp_path):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    refused = run_cli("e3eval", "dev", "tiny-model", str(model_dir))
    assert refused.returncode == 2 and "did not create" in refused.stderr
    assert (model_dir / "config.json").read_text() == "{}"
    pool = tmp_path / "pool.jsonl"
    pool.write_text("keep me\n")
    done = run_cli("e3eval", "dev", "example-pool", str(pool), "--tokenizer", str(tmp_path / "missing"))
    assert done.returncode == 2 and "was not written by e3eval" in done.stderr and pool.read_text() == "keep me\n"
    fresh = tmp_path / "fresh"
    claim_folder(fresh, "OUT_DIR")
    claim_folder(fresh, "OUT_DIR")  # its own folder again
    assert (fresh / ".e3eval-output").is_file()
    with pytest.raises(UserError, match="not a folder"):
        claim_folder(pool, "OUT_DIR")
    assert Path(pool).read_text() == "keep me\n"


def test_the_demo_writes_only_into_its_own_folder(tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "pool.jsonl").write_text("my data\n")
    (mine / "thesis.tex").write_text("\\begin{document}\n")
    refused = run_cli("e3eval", "demo", "--synthetic", "--out", str(mine))
    assert refused.returncode == 2 and "did not create" in refused.stderr
    assert (mine / "pool.jsonl").read_text() == "my data\n"


def test_records_and_locks_are_never_written_through_links_or_over_foreign_files(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("MY PRECIOUS\n")
    (tmp_path / ".out.csv.e3eval").symlink_to(precious)
    with pytest.raises(UserError, match=r"has the name of out\.csv's record"):
        write_output(tmp_path / "out.csv", lambda temp: temp.write_text("x"))
    (tmp_path / ".out.csv.e3eval").unlink()
    (tmp_path / ".out.csv.e3eval-lock").symlink_to(precious)
    with pytest.raises(UserError, match="cannot be used as e3eval's lock file"):
        write_output(tmp_path / "out.csv", lambda temp: temp.write_text("x"))
    (tmp_path / ".out.csv.e3eval-lock").unlink()
    (tmp_path / ".out.csv.e3eval-lock").write_text("my notes\n")
    with pytest.raises(UserError, match="has the name of its lock file"):
        write_output(tmp_path / "out.csv", lambda temp: temp.write_text("x"))
    assert precious.read_text() == "MY PRECIOUS\n" and not (tmp_path / "out.csv").exists()
    (tmp_path / "dangling.csv").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UserError, match="a link to nothing"):
        check_replaceable(tmp_path / "dangling.csv")


def test_folders_inside_runs_are_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    for args in (("dev", "tiny-model", str(run / "tm")), ("figures", "--paper-data", "--out", str(run / "figures"))):
        done = run_cli("e3eval", *args)
        assert done.returncode == 2 and "which is a run directory" in done.stderr, done.stderr
    assert sorted(p.name for p in run.iterdir()) == ["run.json"]


def test_probe_parts_folder_holding_other_files_is_refused(tmp_path):
    from e3eval.probes.table import part_files

    folder = tmp_path / ".t.parquet.parts"
    folder.mkdir()
    (folder / "mydata.parquet").write_text("mine")
    with pytest.raises(UserError, match="which no probe wrote"):
        part_files(folder)
    assert (folder / "mydata.parquet").read_text() == "mine"
