"""The command line's own surface, as a user meets it: `--version`, commands in workflow order, option panels, help
examples whose flags exist, readable at 80 columns, and what Ctrl-C says."""

import importlib.metadata
import os
import re
import signal
import subprocess
import sys
import time
from functools import cache
from pathlib import Path

import pytest
from conftest import ctrl_c_deliverable

import e3eval

BIN = Path(sys.executable).parent
WORKFLOW = ["demo", "sweep", "generate", "score", "report", "view", "import", "merge", "probe", "count-asymmetries",
            "unique-attempts", "figures", "datasets", "budgets", "dev"]  # fmt: skip
# The commands whose help this suite holds to examples and panels: (program, command words, panels it must show).
COMMANDS = [
    ("e3eval", ("probe",), ("Model and engine", "Budgets and sampling", "Scoring", "Output")),
    ("e3eval", ("count-asymmetries",), ("Data and prompt", "Budgets and sampling", "Scoring", "Output")),
    ("e3eval", ("unique-attempts",), ("Data and prompt", "Scoring")),
    ("e3eval", ("figures",), ("Data and prompt", "Output")),
    ("e3eval", ("view",), ("Output",)),
    ("e3eval", ("dev", "tiny-model"), ("Model and engine",)),
    ("e3eval", ("dev", "example-pool"), ("Model and engine", "Budgets and sampling", "Output")),
    ("e3train", ("select-budget",), ("Budgets and sampling", "Scoring")),
    ("e3train", ("run",), ()),
    ("e3train", ("presets",), ()),
    ("e3train", ("bigram",), ("Training", "Output")),
    ("e3train", ("prepare", "countdown"), ()),
    ("e3train", ("prepare", "mult"), ()),
    ("e3train", ("prepare", "math"), ()),
]


def run(program: str, *args: str, columns: int = 80) -> subprocess.CompletedProcess:
    env = {"COLUMNS": str(columns), "PATH": str(BIN), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(BIN / program), *args], capture_output=True, text=True, env=env, timeout=120)


@cache
def help_text(program: str, words: tuple[str, ...]) -> str:
    proc = run(program, *words, "--help")
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_version_of_both_programs():
    installed = importlib.metadata.version("e3eval")
    assert e3eval.__version__ == installed
    proc = run("e3eval", "--version")
    assert (proc.returncode, proc.stdout) == (0, f"e3eval {installed}\n")
    proc = run("e3train", "--version")
    assert proc.returncode == 0 and proc.stdout == f"e3train (e3eval {installed})\n"


def test_commands_are_listed_in_workflow_order_under_panels():
    text = help_text("e3eval", ())
    listed = re.findall(r"^│ ([a-z][a-z-]+) ", text, flags=re.MULTILINE)
    assert listed == WORKFLOW
    panels = re.findall(r"^╭─ ([A-Za-z ]+?) ─", text, flags=re.MULTILINE)
    assert panels == ["Options", "Run and score", "Analyse", "Look up"]


@pytest.mark.parametrize(("program", "words", "panels"), COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple)
                         else v)  # fmt: skip
def test_help_has_panels_and_examples_whose_flags_exist(program, words, panels):
    text = help_text(program, words)
    assert "…" not in text, "nothing is cut at 80 columns"
    assert "<bool>" not in text and "<bool>" not in help_text(program, words[:-1]), "a flag needs no type"
    assert "<list[" not in text, "several values read as <path>..., not as a Python annotation"
    assert all(len(line) <= 80 for line in text.splitlines())
    for panel in panels:
        assert f"╭─ {panel} ─" in text, panel
    after = text.split("Examples:", 1)[1].splitlines()[1:]
    examples = [line.strip() for line in after[: [line.strip() for line in after].index("")]]
    assert 1 <= len(examples) <= 3
    for example in examples:
        line = example.strip().split("#", 1)[0].split()
        assert line[0] in ("e3eval", "e3train"), example
        # The command an example runs: one word, or two for a group (`dev tiny-model`, `prepare math`).
        command = tuple(line[1:3]) if line[1] in ("dev", "prepare") else (line[1],)
        target = help_text(line[0], command)
        for flag in (word for word in line if word.startswith("--")):
            assert re.search(rf"{re.escape(flag)}\b", target), f"{example!r}: {flag} is not an option of {command}"


def test_probe_no_longer_requires_model():
    text = help_text("e3eval", ("probe",))
    assert re.search(r"│ \* +--model", text) is None, "--model is optional: run.json names the model"
    assert "default: the model run.json" in text


def test_ctrl_c_says_what_was_kept(tmp_path):
    """Interrupted while reading its spec (a FIFO nobody writes), `figures` says so on one line and exits 130."""
    spec = tmp_path / "spec.yaml"
    os.mkfifo(spec)
    env = {"COLUMNS": "200", "PATH": str(BIN)}
    proc = subprocess.Popen([str(BIN / "e3eval"), "figures", str(spec), "--out", str(tmp_path / "figs")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ctrl_c_deliverable)  # fmt: skip
    writer = None
    deadline = time.monotonic() + 60
    while writer is None and time.monotonic() < deadline and proc.poll() is None:
        try:  # succeeds once the command has the spec open for reading: it is then inside the command
            writer = os.open(spec, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.05)
    assert writer is not None, proc.communicate()
    try:
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "interrupted: no output was left half-written: rerun the same command"
