"""Hostile input at the command line and from servers (issue 11, items 4 and 5): flags out of bounds refused before
any work, user data with rich markup in it shown as text, reports over runs scored at different budgets, grader
failures visible in the table, and OpenAI-compatible servers that answer 200 with something that is not a completion.

Every row of `CASES` runs a real `e3eval` process (`tests/hostile.py`); the servers are stdlib HTTP servers on
127.0.0.1. Nothing is mocked.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, send_json, write_jsonl
from hostile import Case, run_case

from e3eval.generation import GenerateConfig, generate_run
from e3eval.ingest import ImportConfig, import_run
from e3eval.score import ScoreConfig, score_run

RECORDS = [{"id": "a", "s": i, "response": f"so \\boxed{{{i}}}", "answer": "1"} for i in range(3)]


def _imported(tmp: Path, model: Path, name: str = "run", records: list[dict] = RECORDS) -> Path:
    src = write_jsonl(tmp / f"{name}.jsonl", records)
    import_run(ImportConfig(src, tmp / name, str(model), sample_field="s"))
    return tmp / name


def _scored(tmp: Path, model: Path, name: str = "run", budgets: tuple[int, ...] = (4, 8)) -> Path:
    run = _imported(tmp, model, name)
    score_run(run, ScoreConfig(budgets=budgets, workers=1, resamples=0))
    return run


def _no_temp_files(tmp: Path) -> None:
    left = [p for p in tmp.rglob("*") if ".tmp-" in p.name]
    assert not left, left


def _generated(dtype: str):
    def setup(tmp: Path, model: Path) -> None:
        generate_run(GenerateConfig(model=str(model), dataset="demo", out=tmp / "gen", n=1, max_tokens=8,
                                    backend="hf", limit=1, backend_options={"dtype": dtype}))  # fmt: skip

    return setup


def _not_created(name: str, lock: bool = False):
    """The run directory was not made (nor its lock file, unless `lock`: the model is checked under the lock)."""

    def check(tmp: Path) -> None:
        assert not (tmp / name).exists()
        assert lock or not list(tmp.glob(f".{name}*"))

    return check


GEN = ("generate", "--model", "{model}", "--backend", "hf", "--dataset", "demo", "--max-tokens", "8", "--limit", "1",
       "--n", "1", "--out", "{tmp}/gen")  # fmt: skip

# One row per case; the table reads best with one case per line or two.
# fmt: off
CASES = [
    # Budgets: int32 columns, and a spec cannot name billions of budgets (MemoryError after 44 s before).
    Case("budgets-count", ("budgets", "1..2000000000:1"), says="names 2,000,000,000 budgets; at most 10,000"),
    Case("budgets-int32", ("score", "{tmp}/run", "--budgets", "2097152k", "--workers", "1"),
         says="budget '2097152k' is too large", setup=_imported),
    Case("budgets-digits", ("budgets", "9" * 5000), says="is too large"),
    # Scoring flags, checked before any grading (ArrowInvalid / a 119 GiB allocation / a traceback after it before).
    Case("bootstrap-huge", ("score", "{tmp}/run", "--budgets", "8", "--bootstrap", "1000000000"),
         says="--bootstrap must be between 0 (no CIs) and 100,000", setup=_imported),
    Case("bootstrap-negative", ("score", "{tmp}/run", "--budgets", "8", "--bootstrap", "-5"),
         says="--bootstrap must be between", setup=_imported),
    Case("timeout-nan", ("score", "{tmp}/run", "--budgets", "8", "--timeout", "nan"),
         says="--timeout must be a positive number", setup=_imported),
    Case("timeout-inf", ("score", "{tmp}/run", "--budgets", "8", "--timeout", "inf"),
         says="--timeout must be a positive number", setup=_imported),
    Case("seed-negative", ("score", "{tmp}/run", "--budgets", "8", "--seed", "-1"),
         says="--seed must be between 0", setup=_imported),
    Case("workers-huge", ("score", "{tmp}/run", "--budgets", "8", "--workers", "100000"),
         says="--workers must be between 1 and", setup=_imported),
    Case("jobs-huge", ("count-asymmetries", "{tmp}/run.jsonl", "--jobs", "100000"), says="--jobs must be between 1",
         setup=lambda tmp, model: _imported(tmp, model, "run")),
    Case("sweep-bootstrap", ("sweep", "--model", "{model}", "--dataset", "demo", "--budgets", "8", "--bootstrap", "-1",
                             "--out", "{tmp}/sw"), says="--bootstrap must be between", check=_not_created("sw")),
    # Generation flags, checked before the model loads or the run directory exists.
    Case("model-missing-path", ("generate", "--model", "/nonexistent", "--dataset", "demo", "--max-tokens", "8",
                                "--out", "{tmp}/gen"), says="--model /nonexistent: no such file or directory",
         check=_not_created("gen", lock=True)),
    Case("model-missing-relative", (*GEN[:2], "./nope", *GEN[3:]), says="--model ./nope: no such file or directory"),
    Case("model-hub-offline", (*GEN[:2], "Qwen/not-a-model-e3eval", *GEN[3:]),
         says="--model Qwen/not-a-model-e3eval: no such local folder, and the hub is unreachable (offline",
         check=_not_created("gen", lock=True)),
    Case("model-hub-invalid", (*GEN[:2], "bad name!!", *GEN[3:]), says="--model bad name!!: no such file or directory"),
    Case("batch-zero", (*GEN, "--batch", "0"), says="--batch must be at least 1", check=_not_created("gen")),
    Case("batch-negative", (*GEN, "--batch", "-5"), says="--batch must be at least 1"),
    Case("limit-negative", (*GEN, "--limit", "-1"), says="--limit must be at least 1", check=_not_created("gen")),
    Case("n-huge", (*GEN, "--n", "1000000"), says="--n must be between 1 and 100,000"),
    Case("max-tokens-negative", (*GEN, "--max-tokens", "-5"), says="--max-tokens '-5' is not a token count"),
    Case("max-tokens-int32", (*GEN, "--max-tokens", "3000000000"), says="--max-tokens '3000000000' is too large"),
    Case("dtype-unknown", (*GEN, "--dtype", "float8"), says="--dtype 'float8': choose one of auto, bfloat16"),
    Case("out-is-file", GEN, says="a file, not a run directory",
         setup=lambda tmp, model: (tmp / "gen").write_text("mine"),
         check=lambda tmp: (tmp / "gen").read_text() == "mine" or pytest.fail("--out file changed")),
    Case("dtype-is-fixed", (*GEN, "--dtype", "bfloat16", "--n", "2"), setup=_generated("float32"),
         says="refusing to mix sampling settings in one run (dtype: run has 'float32', now 'bfloat16')"),
    # report --out: a missing folder is created, a directory is refused; no temp file either way.
    Case("report-out-new-folder", ("report", "{tmp}/run", "--out", "{tmp}/new/deeper/s.csv"), code=0,
         says="wrote ", setup=_scored,
         check=lambda tmp: ((tmp / "new/deeper/s.csv").is_file() or pytest.fail("no csv"), _no_temp_files(tmp))),
    Case("report-out-directory", ("report", "{tmp}/run", "--out", "{tmp}/adir"), says="adir: a directory",
         setup=lambda tmp, model: (_scored(tmp, model), (tmp / "adir").mkdir()),
         check=lambda tmp: _no_temp_files(tmp)),
    Case("report-out-under-file", ("report", "{tmp}/run", "--out", "{tmp}/run.jsonl/s.csv"),
         says="is a file, not a folder", setup=_scored),
    # User data with rich markup in it is text (MarkupError tracebacks, or text swallowed, before).
    Case("markup-in-error", ("score", "{tmp}/no[/x]where", "--budgets", "8"), says="no[/x]where"),
    Case("markup-in-field", ("import", "{tmp}/run.jsonl", "--out", "{tmp}/o", "--tokenizer", "{model}",
                             "--id-field", "i[/x]d"), says="i[/x]d",
         setup=lambda tmp, model: _imported(tmp, model, "run")),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_cli(case, tmp_path, tiny_model_dir):
    run_case(case, tmp_path, tiny_model_dir)


def test_run_names_paths_and_answers_with_markup_are_shown_as_text(tmp_path, tiny_model_dir):
    records = [{"id": "p[/x]", "s": 0, "response": "\\boxed{[/x]}", "answer": "[/x]"},
               {"id": "q", "s": 0, "response": "\\boxed{1}", "answer": "1"}]  # fmt: skip
    src = write_jsonl(tmp_path / "in.jsonl", records)
    with src.open("a") as f:
        f.write('{"id": "bad", "response": [/x] not json\n')
    run = tmp_path / "r[" / "x]"  # the user typed r[/x]
    imported = run_cli("e3eval", "import", str(src), "--out", f"{tmp_path}/r[/x]", "--tokenizer", str(tiny_model_dir),
                       "--sample-field", "s", "--skip-bad-lines")  # fmt: skip
    output = imported.stdout + imported.stderr
    assert imported.returncode == 0 and "Traceback" not in output, output
    assert f"into {tmp_path}/r[/x]" in imported.stdout and "in.jsonl:3" in imported.stderr

    scored = run_cli("e3eval", "score", str(run), "--budgets", "4,8", "--workers", "1", "--bootstrap", "10")
    assert scored.returncode == 0 and "Traceback" not in scored.stderr, scored.stderr
    # The status counts were swallowed as a markup tag before; timeouts and errors are among them.
    assert "rows [ok 2, no_answer 2, timeout 0, error 0] with" in scored.stdout, scored.stdout
    assert "x] · prefix: n = 2 problems" in scored.stdout
    assert {r["answer"] for r in pq.read_table(run / "grades.parquet").to_pylist()} == {"[/x]", "1", None}

    report = run_cli("e3eval", "report", str(run))
    assert report.returncode == 0 and "Traceback" not in report.stderr, report.stderr
    assert "wrote" not in report.stdout and "1 bad input line(s) were skipped" in report.stdout


def test_report_of_runs_scored_at_different_budgets_shows_dashes(tmp_path, tiny_model_dir):
    _scored(tmp_path, tiny_model_dir, "a", budgets=(4, 8))
    _scored(tmp_path, tiny_model_dir, "b", budgets=(6, 8))
    result = run_cli("e3eval", "report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c.csv"))
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in result.stdout.splitlines() if line.startswith("│") and line.split("│")[1].strip()}  # fmt: skip
    assert set(rows) == {"4", "6", "8"}
    # Columns alternate a, b for each metric: a has no budget 6, b no budget 4, both have 8.
    assert rows["4"][1::2] == ["-"] * (len(rows["4"]) // 2) and "-" not in rows["4"][0::2]
    assert rows["6"][0::2] == ["-"] * (len(rows["6"]) // 2) and "-" not in rows["6"][1::2]
    assert "-" not in rows["8"]


def test_grader_timeouts_and_errors_get_columns_when_any_run_has_them(tmp_path, tiny_model_dir):
    from rich.console import Console

    from e3eval.report import comparison_of
    from e3eval.report_formats import build_report
    from e3eval.report_layout import report_renderables

    run = _scored(tmp_path, tiny_model_dir, budgets=(4, 8))
    summary = pq.read_table(run / "summary.parquet")

    def rendered(table: pa.Table) -> str:
        console = Console(width=250, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
        for item in report_renderables(build_report(comparison_of(run, table)), 250):
            console.print(item)
        return console.export_text()

    clean = rendered(summary)
    assert "frac_timeout" not in clean and "frac_ungraded" not in clean
    # A real grader timeout needs a stuck math-verify call; the summary rows are what the table reads.
    rows = summary.to_pylist()
    for row in rows:
        if row["metric"] == "frac_timeout" and row["budget"] == 8:
            row["value"] = 1 / 3
    with_timeouts = rendered(pa.Table.from_pylist(rows, schema=summary.schema))
    assert "frac_timeout" in with_timeouts and "33.3" in with_timeouts and "frac_ungraded" not in with_timeouts


def test_a_run_made_before_dtype_was_recorded_still_grows(tmp_path, tiny_model_dir):
    out = tmp_path / "gen"
    config = GenerateConfig(model=str(tiny_model_dir), dataset="demo", out=out, n=1, max_tokens=4, backend="hf",
                            limit=1, backend_options={"dtype": "float32"})  # fmt: skip
    generate_run(config)
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["generation"]["dtype"] == "float32"
    del manifest["generation"]["dtype"]
    (out / "run.json").write_text(json.dumps(manifest))
    grown = generate_run(GenerateConfig(**{**config.__dict__, "n": 2}))
    assert grown.generated == 1 and grown.skipped == 1


# --- OpenAI-compatible servers that answer 200 with something that is not a completion -------------------------


class _OddServer(BaseHTTPRequestHandler):
    """Answers every completion request with 200 and the body `server.answer` names."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.max_tokens = body["max_tokens"]
        answer = self.server.answer
        if answer == "html":
            data = b"<!doctype html><html><body>Welcome to nginx!</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        choice = {"text": "so \\boxed{1}", "finish_reason": "stop", "token_ids": [5, 6, 7]}
        payload = {
            "no-choices": {"object": "error", "message": "model not loaded"},
            "float-ids": {"choices": [{**choice, "token_ids": [5.5, 6, 7]}]},
            "string-ids": {"choices": [{**choice, "token_ids": ["5", "6"]}]},
            "negative-ids": {"choices": [{**choice, "token_ids": [-1, 6]}]},
            "too-many-ids": {"choices": [{**choice, "token_ids": list(range(body["max_tokens"] + 5))}]},
            "bad-logprobs": {"choices": [{**choice, "logprobs": {"token_logprobs": [None, "x", -0.5]}}]},
        }[answer]
        send_json(self, 200, payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def odd_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OddServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        ("html", "HTTP 200 but not JSON (text/html)"),
        ("no-choices", "no 'choices' list in {'object': 'error'"),
        ("float-ids", "'token_ids' holds 5.5, not a token id"),
        ("string-ids", "'token_ids' holds '5', not a token id"),
        ("negative-ids", "'token_ids' holds -1, not a token id"),
        ("too-many-ids", "21 token ids for max_tokens 16 (the server ignored the limit)"),
        ("bad-logprobs", "'logprobs.token_logprobs' is not a list of numbers"),
    ],
)
def test_malformed_server_answers_are_failed_samples(odd_server, answer, says, tmp_path, tiny_model_dir):
    odd_server.answer = answer
    base = f"http://127.0.0.1:{odd_server.server_address[1]}/v1"
    out = tmp_path / "served"
    extra = ["--logprobs"] if answer == "bad-logprobs" else []
    result = run_cli("e3eval", "generate", "--model", "m", "--tokenizer", str(tiny_model_dir), "--dataset", "demo",
                     "--max-tokens", "16", "--backend", "openai", "--base-url", base, "--out", str(out), "--limit", "2",
                     "--n", "2", *extra)  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.returncode == 1, result.stderr
    assert "4 sample(s) failed (malformed answer from" in result.stderr and says in result.stderr, result.stderr
    rows = pq.read_table(out / "rollouts").to_pylist()
    assert len(rows) == 4 and {r["finish_reason"] for r in rows} == {"error"}
    assert all(r["token_ids"] == [] and says in r["error"] for r in rows)
