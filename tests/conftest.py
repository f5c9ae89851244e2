"""Shared fixtures: the tiny model built once per session, the shared benchmark data, run helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("E3EVAL_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from e3eval.tiny_model import build_tiny_model

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


def run_cli(program: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run an installed command (`e3eval`, `e3train`) as a user would: a real process, offline, wide output."""
    bin_dir = Path(sys.executable).parent
    env = {"COLUMNS": "200", "PATH": str(bin_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [str(bin_dir / program), *args], capture_output=True, text=True, cwd=cwd, timeout=300, env=env
    )


def send_json(handler, status: int, payload: dict) -> None:
    """Answer a stdlib `BaseHTTPRequestHandler` request with a JSON body (the test servers on 127.0.0.1)."""
    data = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)
