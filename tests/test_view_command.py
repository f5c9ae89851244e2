"""The `e3eval view` command as a user runs it: it prints the URL of a server on 127.0.0.1 and a free port, serves
the runs until Ctrl-C, writes a `--static` copy, and refuses a folder that is not a run with one line (exit 2)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import run_cli


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = run_cli("e3eval", "demo", "--out", str(out / "demo"), cwd=out)
    assert result.returncode == 0, result.stderr
    return out / "demo" / "sweep"


def test_view_prints_its_url_serves_the_run_and_stops_on_ctrl_c(demo_run):
    program = Path(sys.executable).parent / "e3eval"
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([str(program), "view", str(demo_run), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        line = proc.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, line + proc.stderr.read() if proc.poll() is not None else line
        assert int(found.group(1)) > 0
        with urllib.request.urlopen(found.group(0) + "api/runs", timeout=30) as response:
            runs = json.loads(response.read())["runs"]
        assert [r["path_name"] for r in runs] == ["sweep"]
        assert str(demo_run) not in json.dumps(runs)  # folder names only, never absolute paths
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err


def test_view_static_writes_a_copy_and_refuses_a_foreign_folder(demo_run, tmp_path):
    result = run_cli("e3eval", "view", str(demo_run), "--static", str(tmp_path / "copy"))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "copy" / "index.html").is_file() and (tmp_path / "copy" / "data" / "runs.js").is_file()
    assert "index.html" in result.stdout
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep")
    result = run_cli("e3eval", "view", str(demo_run), "--static", str(mine))
    assert result.returncode == 2 and "did not create" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{tmp}"], "not a run directory"),
        (["{tmp}/nothing"], "{tmp}/nothing"),
        (["{run}", "--port", "70000"], "--port 70000"),
        (["{run}", "--host", "0.0.0.0"], "not a wildcard"),
    ],
)
def test_view_refuses_mistakes_with_one_line(demo_run, tmp_path, args, says):
    fill = {"{tmp}": str(tmp_path), "{run}": str(demo_run)}
    argv = [fill.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    result = run_cli("e3eval", "view", *argv)
    assert result.returncode == 2, result.stdout + result.stderr
    assert says.replace("{tmp}", str(tmp_path)) in result.stderr
    assert "Traceback" not in result.stderr
