"""What a generation records and says, with the real hf backend on the tiny models: run.json's problem subset and
training budget (kept across resumes and merges), budget forcing's counts on the console and in the sweep plot, the
line a Ctrl-C prints, the progress bars' ETA and empty tasks, and the option panels of `--help`.

The stopping tiny model thinks exactly STOP tokens, then writes `</think>`, an answer and EOS, so what forcing inserts
at a budget is known: with --wait 2 it needs 3 x (STOP + 1) positions before its answer.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import ctrl_c_deliverable, run_cli

from e3eval.budget_forcing import Insertions
from e3eval.commands.bars import AverageEta, Bars
from e3eval.dev.tiny_model import build_stopping_model
from e3eval.generation import GenerateConfig, done_samples, generate_run
from e3eval.labels import run_label, subset_label
from e3eval.merge import merge_runs
from e3eval.run import Run
from e3eval.score import ScoreConfig, score_run
from e3eval.store import MANIFEST, rollout_shards

STOP = 5
E3EVAL = str(Path(sys.executable).parent / "e3eval")


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stopping_model(tmp_path_factory.mktemp("stopping-records"), STOP)


def config(model: Path, out: Path, **kw) -> GenerateConfig:
    base = dict(model=str(model), dataset="demo", out=out, n=2, max_tokens=12, backend="hf", limit=3,
                batch_samples=4, backend_options={"batch_size": 4, "dtype": "float32"})  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def generation(run: Path) -> dict:
    return json.loads((run / MANIFEST).read_text())["generation"]


# 1. run.json records the subset and the training budget ---------------------------------------------------------------


def test_run_json_records_limit_total_and_train_budget_across_resumes(tiny_model_dir, tmp_path):
    out = tmp_path / "r"
    generate_run(config(tiny_model_dir, out, limit=3, train_budget=8))
    recorded = generation(out)
    assert (recorded["limit"], recorded["problems_total"], recorded["train_budget"]) == (3, 16, 8)
    assert "first 3/16" in subset_label(Run.open(out).record.generation)
    generate_run(config(tiny_model_dir, out, limit=2))  # a smaller limit: the run still holds 3 problems
    assert (generation(out)["limit"], generation(out)["train_budget"]) == (3, 8), "kept, not shrunk or forgotten"
    generate_run(config(tiny_model_dir, out, limit=5, train_budget=16))
    assert (generation(out)["limit"], generation(out)["train_budget"]) == (5, 16)
    assert len(pq.read_table(out / "problems.parquet")) == 5
    generate_run(config(tiny_model_dir, out, limit=None))
    assert generation(out)["limit"] is None and len(done_samples(out)) == 32, "the whole dataset: no limit"
    generate_run(config(tiny_model_dir, out, limit=2))
    assert generation(out)["limit"] is None, "a run that holds every problem stays whole"
    assert "first" not in (subset_label(Run.open(out).record.generation) or "")


def test_a_run_made_before_the_limit_was_recorded_is_measured_by_its_problems(tiny_model_dir, tmp_path):
    out = tmp_path / "old"
    generate_run(config(tiny_model_dir, out, limit=4))
    manifest = json.loads((out / MANIFEST).read_text())
    for key in ("limit", "problems_total", "train_budget"):
        del manifest["generation"][key]
    (out / MANIFEST).write_text(json.dumps(manifest))
    assert Run.open(out).record.generation.limit is None
    generate_run(config(tiny_model_dir, out, limit=2))  # nothing to generate: the 4 stored problems decide
    assert (generation(out)["limit"], generation(out)["problems_total"]) == (4, 16)


def test_shards_with_a_limit_merge_and_keep_what_they_record(tiny_model_dir, tmp_path):
    for i in range(2):
        generate_run(config(tiny_model_dir, tmp_path / f"s{i}", shard=(i, 2), limit=4, train_budget=8))
    assert merge_runs(tmp_path / "merged", [tmp_path / "s0", tmp_path / "s1"]) == 8
    merged = generation(tmp_path / "merged")
    assert (merged["limit"], merged["problems_total"], merged["train_budget"]) == (4, 16, 8)
    assert len(pq.read_table(tmp_path / "merged" / "problems.parquet")) == 4


# 2. budget forcing on the console and in the plot -------------------------------------------------------------------


def test_forcing_is_described_with_its_texts_and_how_far_it_went(stopping_dir, tmp_path):
    full = generate_run(config(stopping_dir, tmp_path / "full", wait=2, max_tokens=40))
    assert full.insertions == Insertions(12, 6, 6, 6, 6), "every sample: two waits, then its answer and EOS"
    assert full.insertions.describe(full.forcing) == (
        'budget forcing (wait=2, "Wait" for "</think>"): inserted 12 waits in 6 of 6 samples; 6 used all 2 waits; '
        "0 of all 6 ran to the budget without ending"
    )
    assert full.shape == "3 problems x 2 samples"
    # At 12 tokens the second delimiter comes at position 11: no room after a wait, so one wait and the budget.
    cut = generate_run(config(stopping_dir, tmp_path / "cut", wait=2, max_tokens=12))
    assert cut.insertions == Insertions(6, 6, 6, 0, 0)
    assert cut.insertions.describe(cut.forcing).endswith("inserted 6 waits in 6 of 6 samples; 0 used all 2 waits; "
                                                         "6 of all 6 ran to the budget without ending")  # fmt: skip
    never = generate_run(config(stopping_dir, tmp_path / "never", wait=2, max_tokens=40, think_end="zzqq"))
    assert never.insertions.describe(never.forcing).startswith(
        'budget forcing (wait=2, "Wait" for "zzqq"): inserted 0 waits in 0 of 6 samples'
    )
    assert "inserted nothing" in never.forcing_warning()


def test_sweep_plot_names_the_run_its_forcing_and_its_subset(stopping_dir, tmp_path):
    from e3eval.figures.accuracy import draw_sweep, sweep_figure
    from e3eval.report import compare

    out = tmp_path / "forced"
    generate_run(config(stopping_dir, out, wait=2, max_tokens=40, limit=3))
    score_run(out, ScoreConfig(budgets=(12, 40), workers=1, resamples=20))
    comparison = compare([out])
    label = run_label(Run.open(out).record, "forced", "prefix")
    assert f"{stopping_dir.name} · demo · wait=2 · prefix · first 3/16" in label
    paths = draw_sweep(comparison, out / "figures" / "sweep", 16, "")
    assert paths[0].stat().st_size > 10_000
    figure = sweep_figure(comparison, 16)
    title = figure.get_suptitle()
    assert title.startswith(label + "\n")
    assert (  # the title wraps to the figure's width
        'budget forcing wait=2: "Wait" in place of "</think>", up to 2 per sample; 12 waits inserted in 6 of 6'
        in " ".join(title.split())
    )
    legend = [t.get_text() for legend in figure.legends for t in legend.get_texts()]
    assert [t.replace(" ·\n", " · ") for t in legend] == [f"{label} (n=3\u00d72)"], "the label, broken between parts"
    notes = " ".join(t.get_text() for t in figure.texts)
    assert "\u26a0 subset: first 3/16" in " ".join(notes.split()) and "demo's problems" in notes
    labels = [t.get_text() for ax in figure.axes for t in ax.texts]
    assert any("train budget 16" in t for t in labels), labels


# 3. Ctrl-C ----------------------------------------------------------------------------------------------------------


def test_ctrl_c_says_how_many_samples_are_stored_and_a_rerun_resumes(tiny_model_dir, tmp_path):
    out = tmp_path / "interrupted"
    args = [E3EVAL, "generate", "--model", str(tiny_model_dir), "--dataset", "demo", "--max-tokens", "48", "--n", "6",
            "--limit", "4", "--batch", "2", "--backend", "hf", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=ctrl_c_deliverable)  # fmt: skip
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "rollouts").exists() and len(rollout_shards(out)) >= 2:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    stored = len(done_samples(out))
    assert 0 < stored < 24, "the interrupt should land mid-run"
    line = " ".join(stderr.split())
    expected = f"interrupted after {stored} samples ({stored} of 24 stored in {out}); rerun the same command to resume"
    assert expected in line, line
    assert "Traceback" not in stderr
    assert generation(out)["status"] == "partial"
    again = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{24 - stored} new samples" in again.stdout and "(4 problems x 6 samples)" in again.stdout
    assert len(done_samples(out)) == 24


# 4. progress bars ---------------------------------------------------------------------------------------------------


def test_bars_show_an_eta_after_one_update_and_no_empty_task():
    bars = Bars(AverageEta())
    empty = bars.add_task("grade", total=0)
    work = bars.add_task("generate", total=10)
    assert not bars.tasks[empty].visible and bars.tasks[work].visible, "no `grade 0/0` bar"
    assert AverageEta().render(bars.tasks[work]).plain == "-:--:--", "no rate before the first update"
    time.sleep(0.05)
    bars.update(work, completed=1)  # one batch done: rich's own column has no rate until a second update
    eta = AverageEta().render(bars.tasks[work]).plain
    assert eta != "-:--:--" and eta.count(":") == 2, eta
    bars.update(empty, total=3)
    assert bars.tasks[empty].visible, "a task that gets work is shown"
    assert bars.add_task("import", total=None) is not None and bars.tasks[-1].visible, "unknown totals are shown"


# 5. help ------------------------------------------------------------------------------------------------------------


def test_sweep_help_reads_in_80_columns_with_panels_and_examples():
    env = {"COLUMNS": "80", "PATH": str(Path(sys.executable).parent)}
    for command, first in (("sweep", "--model"), ("generate", "--model"), ("demo", "--synthetic")):
        result = subprocess.run([E3EVAL, command, "--help"], capture_output=True, text=True, env=env, timeout=60)
        assert result.returncode == 0, result.stderr
        text = result.stdout
        assert "Examples" in text and f"e3eval {command}" in text.split("Examples")[1]
        assert all(len(line) <= 80 for line in text.splitlines())
        panels = [p for p in ("Model and engine", "Data and prompt", "Budgets and sampling", "Forcing", "Scoring",
                              "Output") if f"─ {p} ─" in text]  # fmt: skip
        assert panels == sorted(panels, key=text.index) and len(panels) >= 3, panels
        assert text.index(first) < text.index("--out")
        if command == "sweep":
            assert "--max-tokens" not in text and panels[0] == "Model and engine"
            assert text.index("─ Forcing ─") < text.index("│ --wait ") < text.index("─ Scoring ─")


def test_sweep_prints_the_forcing_and_the_runs_label(stopping_dir, tmp_path):
    def sweep(*extra: str):
        return run_cli("e3eval", "sweep", "--model", str(stopping_dir), "--backend", "hf", "--dataset", "demo",
                       "--limit", "2", "--n", "1", "--budgets", "20,40", "--out", str(tmp_path / "sw"), "--workers",
                       "1", "--bootstrap", "0", "--wait", "2", *extra)  # fmt: skip

    result = sweep("--train-budget", "20")
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert 'budget forcing (wait=2, "Wait" for "</think>"): inserted 4 waits in 2 of 2 samples' in out
    assert f"{stopping_dir.name} · demo · wait=2 · prefix · first 2/16" in out, "the report labels the run"
    assert generation(tmp_path / "sw")["train_budget"] == 20
    again = sweep()  # nothing to generate: the run's totals are said, and its training budget kept
    assert again.returncode == 0, again.stderr
    out = " ".join(again.stdout.split())
    assert "nothing to generate: all 2 problems x 1 samples are in" in out
    assert (
        'budget forcing (wait=2, "Wait" for "</think>"), the run\'s 2 samples: inserted 4 waits in 2 of 2 samples'
        in out
    )
    assert generation(tmp_path / "sw")["train_budget"] == 20
