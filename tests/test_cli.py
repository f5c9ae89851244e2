"""The `e3eval` command as a user runs it: real processes, exit codes, one-line errors, the full flow."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run_cli, write_jsonl

E3EVAL = str(Path(sys.executable).parent / "e3eval")


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return run_cli("e3eval", *args, cwd=cwd)


def assert_user_error(proc: subprocess.CompletedProcess, text: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert text in proc.stderr


def test_budgets_command():
    proc = run("budgets", "4k..40k")
    assert proc.returncode == 0
    assert proc.stdout.split() == ["4096", "8192", "16384", "32768", "40960"]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("budgets", "4m"), "is not a token count"),
        (("score", "nowhere", "--budgets", "4k"), "not a run directory"),
        (("report", "nowhere"), "not a run directory"),
        (("probe", "nowhere"), "not a run directory"),  # --model may be left out: run.json names the model
    ],
)
def test_user_errors_exit_2_without_traceback(args, text):
    assert_user_error(run(*args), text)


def test_full_flow(tmp_path, tiny_model_dir):
    pool = tmp_path / "pool.jsonl"
    proc = run(
        "dev",
        "example-pool",
        str(pool),
        "--tokenizer",
        str(tiny_model_dir),
        "--samples",
        "4",
        "--max-tokens",
        "400",
        "--min-tokens",
        "50",
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("a", "b"):
        proc = run(
            "import",
            str(pool),
            "--out",
            str(tmp_path / name),
            "--tokenizer",
            str(tiny_model_dir),
            "--token-ids-field",
            "token_ids",
            "--sample-field",
            "sample_idx",
            "--finish-reason-field",
            "finish_reason",
            "--name",
            name,
        )
        assert proc.returncode == 0, proc.stderr
        assert "imported 64 rollouts of 16 problems" in proc.stdout
    proc = run("score", str(tmp_path / "a"), "--budgets", "100..400", "--workers", "1", "--bootstrap", "100")
    assert proc.returncode == 0, proc.stderr
    assert "pass@1" in proc.stdout and "n = 16 problems × 4 samples" in proc.stdout
    proc = run("score", str(tmp_path / "b"), "--budgets", "100..400", "--policy", "strict", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run("report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "both.csv"))
    assert proc.returncode == 0, proc.stderr
    assert "prefix, strict" in proc.stdout
    proc = run("report", str(tmp_path / "a"), str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode == 0 and "wrote" not in proc.stdout, "report writes a file only with --out"
    assert not (tmp_path / "summary.csv").exists()
    rows = list(csv.DictReader((tmp_path / "both.csv").open()))
    assert {r["name"] for r in rows} == {"a", "b"}, "runs are named by name; run_id is a uuid"
    assert {r["run"] for r in rows} == {"a · prefix", "b · strict"}, "an import names no model: its name stands in"
    assert {r["budget"] for r in rows} == {"100", "200", "400"}


def test_import_errors_name_the_line(tmp_path, tiny_model_dir):
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "p", "response": "x", "answer": "1"}])
    with src.open("a") as handle:
        handle.write("{broken\n")
    proc = run("import", str(src), "--out", str(tmp_path / "run"), "--tokenizer", str(tiny_model_dir))
    assert_user_error(proc, "r.jsonl:2: invalid JSON")
    proc = run(
        "import", str(src), "--out", str(tmp_path / "run"), "--tokenizer", str(tiny_model_dir), "--skip-bad-lines"
    )
    assert proc.returncode == 0
    assert "skipped 1 bad line" in proc.stderr


def test_report_before_score(tmp_path, tiny_model_dir):
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "p", "response": "x", "answer": "1"}])
    assert run("import", str(src), "--out", str(tmp_path / "run"), "--tokenizer", str(tiny_model_dir)).returncode == 0
    assert_user_error(run("report", str(tmp_path / "run")), "score it first")


def test_sweep_generates_scores_and_plots(tmp_path, tiny_model_dir):
    out = tmp_path / "sweep"
    proc = run(
        "sweep",
        "--model",
        str(tiny_model_dir),
        "--dataset",
        "demo",
        "--budgets",
        "16..64",
        "--n",
        "2",
        "--limit",
        "3",
        "--backend",
        "hf",
        "--train-budget",
        "32",
        "--out",
        str(out),
        "--workers",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "backend: hf (asked for)" in proc.stdout
    assert "n = 3 problems × 2 samples" in proc.stdout
    assert (out / "figures" / "sweep.png").stat().st_size > 10_000
    assert (out / "figures" / "sweep.pdf").is_file()
    assert (out / "summary.csv").is_file()
    again = run("sweep", "--model", str(tiny_model_dir), "--dataset", "demo", "--budgets", "16..64", "--n", "2",
                "--limit", "3", "--backend", "hf", "--out", str(out), "--workers", "1")  # fmt: skip
    assert again.returncode == 0 and "generated" not in again.stdout, "a rerun generates nothing"
    mixed = run("sweep", "--model", str(tiny_model_dir), "--dataset", "demo", "--budgets", "16..128", "--n", "2",
                "--limit", "3", "--backend", "hf", "--out", str(out))  # fmt: skip
    assert_user_error(mixed, "refusing to mix sampling settings")


def test_datasets_command(shared_data):
    proc = subprocess.run([E3EVAL, "datasets"], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "250", "E3EVAL_DATA_DIR": str(shared_data / "benchmarks")})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for name, size in (("aime25", "30"), ("math500", "500"), ("amc23", "40")):
        assert any(line.split("│")[1].strip() == name and line.split("│")[2].strip() == size
                   for line in proc.stdout.splitlines() if line.count("│") > 3), proc.stdout  # fmt: skip


def test_demo_is_the_readme_main_job(tmp_path):
    proc = run("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "n = 16 problems × 4 samples" in proc.stdout
    assert (tmp_path / "demo" / "sweep" / "figures" / "sweep.png").is_file()
