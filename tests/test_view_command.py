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
from conftest import ctrl_c_deliverable, run_cli


def test_view_prints_its_url_serves_the_run_and_stops_on_ctrl_c(demo_run):
    program = Path(sys.executable).parent / "e3eval"
    env = {**os.environ, "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([str(program), "view", str(demo_run), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, preexec_fn=ctrl_c_deliverable)  # fmt: skip
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
        (["{run}", "--static", "{tmp}/afile/out"], "cannot make this folder"),
        (["{parent}"], "such as the ones below it: {parent}/sweep"),
    ],
)
def test_view_refuses_mistakes_with_one_line(demo_run, tmp_path, args, says):
    (tmp_path / "afile").write_text("a file, not a folder")
    fill = {"{tmp}": str(tmp_path), "{run}": str(demo_run), "{parent}": str(demo_run.parent)}
    argv = [fill.get(a, a.replace("{tmp}", str(tmp_path))) for a in args]
    result = run_cli("e3eval", "view", *argv)
    assert result.returncode == 2, result.stdout + result.stderr
    said = " ".join(result.stderr.split())
    assert says.replace("{tmp}", str(tmp_path)).replace("{parent}", str(demo_run.parent)) in said
    assert "Traceback" not in result.stderr


def test_view_serves_ipv6_loopback_when_the_machine_has_it(demo_run):
    """`--host ::1` is a loopback address the command accepts: it must bind it (IPv6), not fail on the family."""
    import socket

    from e3eval.view.payload import Views
    from e3eval.view.server import make_server

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.fail("this machine has no IPv6 loopback: the test cannot check --host ::1", pytrace=False)
    server = make_server(Views([demo_run]), "::1", 0)
    try:
        import threading

        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        assert server.url == f"http://[::1]:{server.port}/"
        with urllib.request.urlopen(server.url + "api/runs", timeout=30) as response:
            assert json.loads(response.read())["runs"][0]["path_name"] == "sweep"
    finally:
        server.shutdown()
        server.server_close()
