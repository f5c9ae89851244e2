"""The paper's Fig. 6 protocol end to end on the stopping tiny model: `e3eval sweep --wait N` for N = 0, 2, 4 into
separate runs, `score --policy forced` beside `prefix`, and the `accuracy` figure family drawing the runs together.

The stopping model thinks exactly STOP tokens, writes `</think>The answer is \\boxed{7}` and EOS; after an inserted
"Wait" it thinks STOP more tokens. So with --wait N its answer comes (N + 1) x (STOP + 1) tokens later, and pass@1
at a budget rises only once the answer fits: the shape budget forcing gives in the paper, here exact and known.
Only demo-10 has gold 7, so pass@1 is 1/16 wherever the answer fits, 0 before.
"""

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from e3eval.dev.tiny_model import build_stopping_model

STOP = 6
BUDGETS = (8, 16, 32, 64)


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory) -> Path:
    return build_stopping_model(tmp_path_factory.mktemp("stopping-sweep"), STOP)


def pass1(run: Path, policy: str = "prefix") -> dict[int, float]:
    summary = pq.read_table(run / "summary.parquet").to_pylist()
    return {
        r["budget"]: r["value"] for r in summary if r["metric"] == "pass@k" and r["k"] == 1 and r["policy"] == policy
    }


def test_wait_sweeps_forced_answers_and_the_fig6_plot(stopping_dir, tmp_path):
    runs = {}
    for wait in (0, 2, 4):
        out = tmp_path / f"wait{wait}"
        args = [
            "sweep",
            "--model",
            str(stopping_dir),
            "--backend",
            "hf",
            "--dataset",
            "demo",
            "--n",
            "2",
            "--budgets",
            ",".join(map(str, BUDGETS)),
            "--out",
            str(out),
            "--workers",
            "1",
            "--bootstrap",
            "0",
        ]
        result = run_cli("e3eval", *args, *(["--wait", str(wait)] if wait else []))  # fmt: skip
        assert result.returncode == 0, result.stderr
        runs[wait] = out
    answer_at = {wait: (wait + 1) * (STOP + 1) + 8 for wait in runs}  # thinking, </think>, answer, EOS: an upper bound
    for wait, run in runs.items():
        curve = pass1(run)
        for budget in BUDGETS:
            if budget >= answer_at[wait]:
                assert curve[budget] == pytest.approx(1 / 16), (wait, budget, curve)
            if budget < (wait + 1) * (STOP + 1):
                assert curve[budget] == 0.0, (wait, budget, curve)
    inserted = [r["inserted"] for r in pq.read_table(next((runs[2] / "rollouts").glob("*.parquet"))).to_pylist()]
    assert all(len(spans) == 4 for spans in inserted), "two (start, end) pairs: exactly two insertions"

    # The forced answer at every budget: the cue makes the model answer even where its thinking was cut.
    forced = run_cli("e3eval", "score", str(runs[4]), "--budgets", ",".join(map(str, BUDGETS)), "--policy", "forced",
                     "--model", str(stopping_dir), "--backend", "hf", "--workers", "1", "--bootstrap", "0")  # fmt: skip
    assert forced.returncode == 0, forced.stderr
    assert all(value == pytest.approx(1 / 16) for value in pass1(runs[4], "forced").values())
    assert pass1(runs[4], "prefix")[8] == 0.0, "the prefix scoring is kept beside the forced one"
    parts = sorted((runs[4] / "forced").glob("part-*.parquet"))
    again = run_cli("e3eval", "score", str(runs[4]), "--budgets", ",".join(map(str, BUDGETS)), "--policy", "forced",
                    "--model", str(stopping_dir), "--backend", "hf", "--workers", "1", "--bootstrap", "0")  # fmt: skip
    assert again.returncode == 0 and sorted((runs[4] / "forced").glob("part-*.parquet")) == parts

    spec = tmp_path / "fig6.yaml"
    spec.write_text(
        "figures:\n"
        "  - name: fig6\n"
        "    family: accuracy\n"
        f"    runs: [{runs[0]}, {runs[2]}, {runs[4]}]\n"
        "    labels: {wait0: no forcing, wait2: wait x2, wait4: wait x4}\n"
        "    train_budget: 16\n"
        "    title: budget forcing on the stopping tiny model\n"
    )
    drawn = run_cli("e3eval", "figures", str(spec), "--out", str(tmp_path / "figs"))
    assert drawn.returncode == 0, drawn.stderr
    assert (tmp_path / "figs" / "fig6.png").stat().st_size > 10_000
    from e3eval.figures import accuracy

    figure = accuracy.draw(accuracy.frame_from_runs([runs[0], runs[2], runs[4]]), {"labels": {"wait4": "wait x4"}})
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert any(t.startswith("wait x4 (forced)") for t in legend), legend
    # Runs without a `labels` entry are labelled by what was run (`labels.run_label`), the forcing included.
    joined = [t.replace(" ·\n", " · ") for t in legend]
    assert any(t.startswith(f"{stopping_dir.name} · demo · prefix") for t in joined), legend
    # Every series shares one n, so the legend states it once, in its title, not in every entry.
    assert figure.legends[0].get_title().get_text().startswith("n=16"), figure.legends[0].get_title().get_text()
    assert not any("(n=" in t for t in legend), legend
    assert any(t.startswith(f"{stopping_dir.name} · demo · wait=2 · prefix") for t in joined), legend
