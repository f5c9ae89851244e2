"""Failures are data, never samples: failed requests through real processes and real HTTP servers on 127.0.0.1.

The partial-failure server is a small stdlib OpenAI-compatible `/v1/completions` endpoint run in this process: it is a
stand-in for a real server that fails some requests (HTTP 400 for chosen seeds), which cannot be provoked on demand in
vLLM. Everything on e3eval's side is real: the CLI as a process, the openai backend, Parquet shards, the tokenizer,
math-verify.
"""

import json
import os
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli, send_json, write_jsonl

from e3eval.backends.openai import OpenAIBackend
from e3eval.datasets import demo_problems
from e3eval.errors import UserError
from e3eval.generation import sample_seed
from e3eval.ingest import ImportConfig, import_run
from e3eval.records import GenerationRequest, SamplingSpec
from e3eval.score import ScoreConfig, score_run
from e3eval.store import read_manifest, rollout_shards, run_lock


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _FlakyHandler(BaseHTTPRequestHandler):
    """Answers `\\boxed{1}` with token ids, except HTTP 400 for even seeds while `server.failing` is set."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.server.failing and body["seed"] % 2 == 0:
            status, payload = 400, {"error": {"message": f"seed {body['seed']} rejected"}}
        else:
            choice = {"text": self.server.text, "token_ids": self.server.ids, "finish_reason": "stop"}
            status, payload = 200, {"choices": [choice]}
        send_json(self, status, payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_server(tokenizer):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyHandler)
    server.failing = True
    server.text = "so \\boxed{1}"
    server.ids = tokenizer(server.text, add_special_tokens=False)["input_ids"]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _generate_args(model: Path, base_url: str, out: Path, *extra: str) -> list[str]:
    return ["generate", "--model", "m", "--tokenizer", str(model), "--dataset", "demo", "--max-tokens", "16",
            "--backend", "openai", "--base-url", base_url, "--out", str(out), *extra]  # fmt: skip


def test_partial_failures_are_counted_never_scored_and_retried(flaky_server, tiny_model_dir, tmp_path):
    base = f"http://127.0.0.1:{flaky_server.server_address[1]}/v1"
    run = tmp_path / "run"
    args = _generate_args(tiny_model_dir, base, run, "--limit", "3", "--n", "4", "--batch", "4")
    failing = sum(sample_seed(0, p.problem_id, s) % 2 == 0 for p in demo_problems()[:3] for s in range(4))
    assert 0 < failing < 12

    first = run_cli("e3eval", *args)
    assert first.returncode == 1, first.stderr
    assert f"{failing} sample(s) failed (HTTP 400" in first.stderr and "rerun the same command" in first.stderr
    assert "Traceback" not in first.stderr

    scored = run_cli("e3eval", "score", str(run), "--budgets", "8,16", "--workers", "1", "--bootstrap", "50")
    assert scored.returncode == 0, scored.stderr
    assert f"{failing} sample(s) failed" in scored.stderr
    assert f"+{failing} failed, 0 missing" in scored.stdout
    summary = pq.read_table(run / "summary.parquet").to_pylist()
    assert {(r["n_samples"], r["n_failed"], r["n_missing"]) for r in summary} == {(12 - failing, failing, 0)}
    pass1 = [r["value"] for r in summary if r["metric"] == "pass@k" and r["k"] == 1]
    # Golds of the first demo problems are not 1; what matters is that only graded samples are in the grades table.
    grades = pq.read_table(run / "grades.parquet")
    assert grades.num_rows == 2 * (12 - failing) and len(pass1) == 2

    report = run_cli("e3eval", "report", str(run))
    assert report.returncode == 0 and f"+{failing} failed" in report.stdout

    flaky_server.failing = False
    second = run_cli("e3eval", *args)
    assert second.returncode == 0, second.stderr
    assert f"{failing} new samples" in second.stdout and f"{12 - failing} already there" in second.stdout
    rescored = run_cli("e3eval", "score", str(run), "--budgets", "8,16", "--workers", "1", "--bootstrap", "50")
    assert rescored.returncode == 0, rescored.stderr
    summary = pq.read_table(run / "summary.parquet").to_pylist()
    assert {(r["n_samples"], r["n_failed"], r["n_missing"], r["flag"]) for r in summary} == {(12, 0, 0, None)}
    samples = read_manifest(run)["scoring"]["samples"]
    assert samples["superseded_failures"] == failing and samples["failed"] == 0


def test_dead_server_stops_after_one_batch_and_nothing_is_already_there(tiny_model_dir, tmp_path):
    base = f"http://127.0.0.1:{_closed_port()}/v1"
    run = tmp_path / "dead"
    args = _generate_args(tiny_model_dir, base, run, "--limit", "2", "--n", "2", "--batch", "2",
                          "--request-timeout", "2")  # fmt: skip
    for _ in range(2):
        result = run_cli("e3eval", *args)
        assert result.returncode == 1
        assert "0 already there" in result.stdout, "a failed request never counts as generated"
        assert "2 sample(s) failed" in result.stderr and "ConnectError" in result.stderr
        assert "stopped after a batch in which every sample failed (2 not attempted)" in result.stderr
    scored = run_cli("e3eval", "score", str(run), "--budgets", "16")
    assert scored.returncode == 2 and "no successful sample to score" in scored.stderr
    assert not (run / "grades.parquet").exists() and not (run / "summary.parquet").exists()


def test_dead_server_fails_queued_requests_at_once(tokenizer):
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{_closed_port()}/v1", concurrency=1, retries=2,
                            backoff_s=0.05, timeout_s=2)  # fmt: skip
    prompt = tuple(tokenizer("1+1=", add_special_tokens=False)["input_ids"])
    started = time.monotonic()
    [completions] = backend.generate([GenerationRequest("q", "1+1=", prompt, tuple(range(20)))], SamplingSpec(4))
    assert time.monotonic() - started < 5
    assert all(c.finish_reason == "error" and c.token_ids == () for c in completions)
    assert "gave up after 3 attempts" in completions[0].error
    assert all(c.error.startswith("not sent: server") and "unreachable" in c.error for c in completions[1:])


def _import(tmp_path: Path, model: Path, records: list[dict]) -> Path:
    src = write_jsonl(tmp_path / "in.jsonl", records)
    run = tmp_path / "imported"
    import_run(ImportConfig(src, run, str(model), sample_field="s"))
    return run


def test_imported_rows_with_an_error_are_not_samples(tmp_path, tiny_model_dir):
    records = [
        {"id": "a", "s": 0, "response": "\\boxed{7}", "answer": "7"},
        {"id": "a", "s": 1, "response": None, "answer": "7", "error": "HTTP 500: upstream timeout"},
        {"id": "b", "s": 0, "response": "\\boxed{3}", "answer": "3", "error": None},
    ]
    run = _import(tmp_path, tiny_model_dir, records)
    result = score_run(run, ScoreConfig(budgets=(32,), workers=1, resamples=0))
    pass1 = next(r for r in result.summary.to_pylist() if r["metric"] == "pass@k" and r["k"] == 1)
    assert pass1["value"] == 1.0, "the failed row is not averaged in as incorrect"
    assert pass1["n_samples"] == 2 and pass1["n_failed"] == 1
    assert "HTTP 500: upstream timeout" in pass1["flag"]


def test_duplicate_samples_are_refused(tmp_path, tiny_model_dir):
    run = _import(tmp_path, tiny_model_dir, [{"id": "a", "s": 0, "response": "\\boxed{7}", "answer": "7"}])
    [shard] = rollout_shards(run)
    shutil.copy(shard, shard.with_name("part-00001.parquet"))
    with pytest.raises(UserError, match=r"stored twice \(part-00000.parquet and part-00001.parquet\)"):
        score_run(run, ScoreConfig(budgets=(32,), workers=1, resamples=0))


def test_damaged_shard_is_named_with_what_to_do(tmp_path, tiny_model_dir):
    run = _import(tmp_path, tiny_model_dir, [{"id": "a", "s": 0, "response": "\\boxed{7}", "answer": "7"}])
    [shard] = rollout_shards(run)
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    result = run_cli("e3eval", "score", str(run), "--budgets", "32")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "part-00000.parquet: not a readable Parquet shard" in result.stderr
    assert "Remove it and rerun" in result.stderr


def test_a_second_writer_is_refused_with_the_holder(tmp_path, tiny_model_dir):
    run = _import(tmp_path, tiny_model_dir, [{"id": "a", "s": 0, "response": "\\boxed{7}", "answer": "7"}])
    with run_lock(run, "test"):
        result = run_cli("e3eval", "score", str(run), "--budgets", "32")
        with pytest.raises(UserError, match="another e3eval command is writing"):
            score_run(run, ScoreConfig(budgets=(32,), workers=1, resamples=0))
    assert result.returncode == 2
    assert f"pid {os.getpid()}, e3eval test" in result.stderr
    assert run_cli("e3eval", "score", str(run), "--budgets", "32").returncode == 0, "released on exit"


def test_count_asymmetries_leaves_failed_requests_out_and_says_so(tmp_path, tiny_model_dir):
    records = [
        {"id": "a", "s": 0, "response": "Wait, let me verify. \\boxed{7}", "answer": "7"},
        {"id": "a", "s": 1, "response": "", "answer": "7", "error": "HTTP 500"},
    ]
    run = _import(tmp_path, tiny_model_dir, records)
    result = run_cli("e3eval", "count-asymmetries", str(run), "--out", str(tmp_path / "steps.csv"))
    assert result.returncode == 0, result.stderr
    assert "1 sample(s) failed (HTTP 500): not counted as traces" in result.stderr
    assert (tmp_path / "steps.csv").read_text().count("\n") == 2, "header + the one real trace"


def test_sweep_scores_what_succeeded_flags_the_rest_and_exits_1(flaky_server, tiny_model_dir, tmp_path):
    base = f"http://127.0.0.1:{flaky_server.server_address[1]}/v1"
    run = tmp_path / "sweep"
    result = run_cli("e3eval", "sweep", "--model", "m", "--tokenizer", str(tiny_model_dir), "--dataset", "demo",
                     "--budgets", "8..16", "--n", "4", "--limit", "3", "--backend", "openai", "--base-url", base,
                     "--out", str(run), "--workers", "1", "--bootstrap", "50")  # fmt: skip
    failing = sum(sample_seed(0, p.problem_id, s) % 2 == 0 for p in demo_problems()[:3] for s in range(4))
    assert result.returncode == 1, result.stderr
    assert f"+{failing} failed, 0 missing" in result.stdout, "the table is printed, with the failures beside n"
    assert (run / "figures" / "sweep.png").is_file()
    assert f"failed: {failing} sample(s) failed (HTTP 400" in result.stderr
