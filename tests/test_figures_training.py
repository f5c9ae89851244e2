"""The training-side figure families (training, lengths, exploration, attempts, bigram), verl's metrics read back,
and `e3train run` writing those metrics to the stage folder. Inputs are real files made here: verl-format metrics
JSONL and console logs, verl rollout dumps counted by the real `count-asymmetries` code, probe Parquet tables, a run
imported with the tiny model's tokenizer, and a real bigram run."""

from __future__ import annotations

import json
import random
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from e3eval.errors import UserError

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

from e3eval.figures import attempt_probes as attempts
from e3eval.figures import bigram_curves as bigram
from e3eval.figures import exploration, lengths, readers, training
from e3eval.figures.metrics_log import read_metrics

TARGET = 24


# Inputs ----------------------------------------------------------------------------------------------------------


def verl_metrics(path: Path, steps: int, grows: bool, seed: int = 0, console: bool = False) -> Path:
    """A run's metrics as verl's file logger (JSONL) or console logger (with Ray's prefix) writes them."""
    rng = np.random.default_rng(seed)
    lines = []
    for step in range(1, steps + 1):
        t = step / steps
        data = {
            "critic/score/mean": float(0.2 + (0.4 if grows else 0.25) * t + rng.normal(0, 0.03)),
            "response_length/mean": float(600 + (500 if grows else -100) * t + rng.normal(0, 20)),
            "actor/entropy": float(0.5 + (0.15 if grows else -0.2) * t + rng.normal(0, 0.01)),
            "actor/kl_loss": float((0.01 if grows else 0.03) * t),
            "timing_s/gen": 12.5,
        }
        if step % 5 == 0:
            data["val-core/countdown/reward/mean@1"] = float(0.15 + (0.35 if grows else 0.2) * t)
        if console:
            pairs = " - ".join(
                f"{k}:np.float64({v!r})" if isinstance(v, float) else f"{k}:{v}" for k, v in data.items()
            )
            lines.append(f"\x1b[36m(TaskRunner pid=4242)\x1b[0m step:{step} - {pairs}")
            lines.append("Training Progress:  50%|#####     | 1/2 [00:10<00:10]")
        else:
            lines.append(json.dumps({"step": step, "data": data}))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def countdown_trace(rng: random.Random, attempts: int, solved: bool, repeats: bool) -> str:
    """A Countdown trace: paragraphs of equations (attempts), each checked against the target."""
    paragraphs = []
    for _ in range(attempts):
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        paragraphs.append(f"{a} + {b} = {a + b}, {a + b} * 2 = {2 * (a + b)}\n{2 * (a + b)} is not {TARGET}")
    if solved:
        paragraphs.append(f"4 * 6 = {TARGET}, that is the target.")
    text = "<think>" + "\n\n".join(paragraphs)
    if repeats and not solved:
        return text + " so the answer is" * 40  # a loop to the generation limit: no answer after it
    return text + "</think>" + ("<answer>4 * 6</answer>" if solved else "<answer>none</answer>")


def rollout_dump(path: Path, step: int, problems: int = 3, samples: int = 4, explore: float = 1.0) -> Path:
    """A verl rollout dump (`{step}.jsonl`: input, output, score, gts) whose traces lengthen with the step."""
    rng = random.Random(step * 1000 + int(explore * 10))
    records = []
    for problem in range(problems):
        for _ in range(samples):
            solved = rng.random() < (0.6 if problem == 0 else 0.15)
            attempts = 1 + int(explore * step / 10) + rng.randint(0, 2)
            text = countdown_trace(rng, attempts, solved, repeats=rng.random() < 0.5 / (1 + explore))
            gts = json.dumps({"target": TARGET, "numbers": [4, 6, 2, 30]})
            records.append({"input": f"Make {TARGET} (problem {problem})", "output": text,
                            "score": float(solved), "gts": gts, "step": step})  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_jsonl(path, records)


def count_table(dump: Path, out: Path) -> Path:
    """`e3eval count-asymmetries DUMP --preset countdown --out OUT`, through the library."""
    from e3eval.analysis.asymmetries import CountConfig, count_asymmetries, write_rows

    out.parent.mkdir(parents=True, exist_ok=True)
    write_rows(out, count_asymmetries(CountConfig(dump, "countdown")).table)
    return out


def probes_table(path: Path, steps: list[int | None], problems: int = 6, samples: int = 3,
                 budgets: tuple[int, ...] = (512, 1024), seed: int = 0) -> Path:  # fmt: skip
    """`probes.parquet` rows as `e3eval probe --ref` writes them (the columns the figures read)."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in steps:
        for problem in range(problems):
            for sample in range(samples):
                for budget in budgets:
                    t = (step or 0) / 100
                    rows.append({"run_id": "eval", "model": f"ckpt/global_step_{step}" if step is not None else "base",
                                 "step": step, "ref": "base", "problem_id": f"p{problem}", "sample_idx": sample,
                                 "budget": budget, "n_tokens": budget, "mean_logprob": -0.4,
                                 "mean_entropy": 0.5 + t + rng.normal(0, 0.05),
                                 "kl_exact": 0.02 * t + abs(rng.normal(0, 0.002)),
                                 "correct": bool(rng.random() < 0.5)})  # fmt: skip
    schema = pa.schema([("run_id", pa.string()), ("model", pa.string()), ("step", pa.int64()), ("ref", pa.string()),
                        ("problem_id", pa.string()), ("sample_idx", pa.int32()), ("budget", pa.int32()),
                        ("n_tokens", pa.int32()), ("mean_logprob", pa.float64()), ("mean_entropy", pa.float64()),
                        ("kl_exact", pa.float64()), ("correct", pa.bool_())])  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def attempt_probes_table(path: Path, steps: list[int | None], problems: int = 8, samples: int = 2,
                         max_k: int = 6, seed: int = 0) -> Path:  # fmt: skip
    """`attempt_probes.parquet` rows: k >= 2 per response, and a null-k row for a response with one attempt."""
    rng = np.random.default_rng(seed)
    rows = []
    for step in steps:
        t = (step or 0) / 100
        for problem in range(problems):
            for sample in range(samples):
                base = {"run_id": "eval", "model": f"ckpt/global_step_{step}" if step is not None else "models/base",
                        "step": step, "ref": None, "problem_id": f"p{problem}", "sample_idx": sample,
                        "preset": "countdown", "correct": False}  # fmt: skip
                n_attempts = int(rng.integers(2, max_k + 1)) if sample else 1
                if n_attempts < 2:
                    rows.append({**base, "k": None, "n_attempts": 1})
                    continue
                for k in range(2, n_attempts + 1):
                    tokens = int(rng.integers(10, 40))
                    given, skip = -20.0 + t * k, -21.0 - t * k
                    prev, repeat = -22.0 + 0.5 * k * t, -5.0 - 10 * t
                    rows.append({**base, "k": k, "n_attempts": n_attempts, "tokens_k": tokens, "tokens_prev": tokens,
                                 "lp_k_given_prev": given, "lp_k_skip_prev": skip, "lp_prev_given_before": prev,
                                 "lp_repeat_prev": repeat, "fig13a": given - skip + rng.normal(0, 0.3),
                                 "fig13b": given - prev + rng.normal(0, 0.3), "fig13c": repeat + rng.normal(0, 0.3),
                                 "fig13a_per_token": (given - skip) / tokens,
                                 "fig13b_per_token": (given - prev) / tokens,
                                 "fig13c_per_token": repeat / tokens})  # fmt: skip
    from e3eval.probes.table import ATTEMPT_SCHEMA

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=ATTEMPT_SCHEMA), path)
    return path


def imported_run(root: Path, model_dir: Path, tokenizer, max_tokens: int, seed: int, failed: int = 0) -> Path:
    """A run imported from a synthetic pool (real token ids), with `failed` failed requests recorded."""
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, generate_pool
    from e3eval.ingest import ImportConfig, import_run

    spec = PoolSpec(samples=4, min_tokens=40, max_tokens=max_tokens, truncated_fraction=0.25, seed=seed)
    records = list(generate_pool(demo_problems()[:5], spec, tokenizer))
    records += [{"id": records[0]["id"], "sample_idx": 10 + i, "response": "", "token_ids": [], "error": "timeout",
                 "answer": records[0]["answer"]} for i in range(failed)]  # fmt: skip
    root.mkdir(parents=True, exist_ok=True)
    pool = write_jsonl(root / f"pool-{seed}.jsonl", records)
    run = root / f"run-{seed}"
    import_run(ImportConfig(pool, run, str(model_dir), token_ids_field="token_ids", sample_field="sample_idx",
                            finish_reason_field="finish_reason"))  # fmt: skip
    return run


# Checks on figures -------------------------------------------------------------------------------------------------


def visible_axes(figure):
    """The panels: axes that draw data (not a grid cell kept for the legend, nor a colour bar)."""
    return [ax for ax in figure.axes if ax.get_visible() and ax.axison and ax.get_label() != "<colorbar>"]


def title(ax) -> str:
    """A panel's title as one line (titles are wrapped to the panel's width)."""
    return " ".join(ax.get_title().split())


def legend_texts(figure) -> list[str]:
    """The entries of the figure's one legend, in the figure or in a grid cell of its own."""
    (legend,) = [*figure.legends, *(ax.get_legend() for ax in figure.axes if ax.get_legend() is not None)]
    return [t.get_text() for t in legend.get_texts()]


def drawn_lines(ax):
    """Data lines, not reference lines such as a zero line (those are drawn in axes coordinates along x)."""
    return [line for line in ax.get_lines() if line.get_transform() == ax.transData]


def save_and_check(figure, stem: Path) -> None:
    from e3eval.figures.style import save

    png, pdf = save(figure, stem)
    assert png.stat().st_size > 10_000 and pdf.stat().st_size > 5_000


# verl metrics -------------------------------------------------------------------------------------------------------


def test_file_logger_and_console_log_read_the_same(tmp_path):
    jsonl = read_metrics(verl_metrics(tmp_path / "m.jsonl", 6, grows=True))
    console = read_metrics(verl_metrics(tmp_path / "console.log", 6, grows=True, console=True))
    assert list(jsonl.columns) == ["step", "metric", "value"]
    assert jsonl.equals(console), "np.float64(...) values, Ray's prefix and colour codes are read back exactly"
    assert set(jsonl["step"]) == set(range(1, 7))
    assert jsonl[jsonl["metric"] == "val-core/countdown/reward/mean@1"]["step"].tolist() == [5]


def test_a_stage_folder_reads_earlier_attempts_first(tmp_path):
    stage = tmp_path / "stage"
    verl_metrics(stage / "metrics-1.jsonl", 4, grows=True, seed=1)
    (stage / "metrics.jsonl").write_text(json.dumps({"step": 3, "data": {"critic/score/mean": 0.9}}) + "\n")
    frame = read_metrics(stage)
    score = frame[frame["metric"] == "critic/score/mean"].set_index("step")["value"]
    assert list(score.index) == [1, 2, 3, 4] and score[3] == 0.9, "the resumed attempt's step 3 wins"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("m.jsonl", '{"step": 1, "data": {"a": 1}}\n{"step": 2, "data": {"a": \n', "m.jsonl:2: not a JSON line"),
        ("m.jsonl", '{"step": 1, "data": {"a": 1}}\n["x"]\n', "m.jsonl:2: not a verl metrics record"),
        ("m.jsonl", '{"step": "1", "data": {}}\n', "m.jsonl:1: not a verl metrics record"),
        ("run.log", "hello\nstep:3 - a:1 - b:oops\n", "run.log:2: cannot read 'b:oops'"),
        ("run.log", "nothing logged here\n", "run.log: no training metrics"),
    ],
)
def test_bad_metrics_lines_name_the_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(UserError, match=message):
        read_metrics(tmp_path / name)


# training ---------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training_inputs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("training")
    for label, grows in (("grpo", True), ("mask", False)):
        verl_metrics(root / label / "metrics.jsonl", 20, grows=grows, seed=int(grows))
        for step in (0, 10, 20):
            dump = rollout_dump(root / label / "rollouts" / f"{step}.jsonl", step, explore=1.0 if grows else 0.2)
            count_table(dump, root / label / "asym" / f"{step}.parquet")
        probes_table(root / label / "eval" / "probes.parquet", [0, 10, 20], seed=int(grows))
    return root


def test_training_draws_every_panel_from_all_three_sources(training_inputs, tmp_path):
    inputs = {
        "metrics": {"GRPO": "grpo/metrics.jsonl", "GRPOMask": "mask"},  # a file, and a stage folder
        "asymmetries": {
            "GRPO": "grpo/asym/*.parquet",
            "GRPOMask": ["mask/asym/0.parquet", "mask/asym/1*.parquet", "mask/asym/20.parquet"],
        },
        "probes": {"GRPO": "grpo/eval", "GRPOMask": "mask/eval/probes.parquet"},
    }
    frame = training.FAMILY.load(inputs, training_inputs)
    assert set(training.COLUMNS) <= set(frame.columns)
    asym = frame[(frame["source"] == "count-asymmetries") & (frame["series"] == "GRPO")]
    assert sorted(set(asym["step"])) == [0, 10, 20]
    assert set(asym["split"]) == {"all", "correct", "incorrect"} and (asym["n"] > 0).all()
    assert (asym["ci_low"] <= asym["value"]).all() and (asym["value"] <= asym["ci_high"]).all()
    verify = asym[(asym["panel"] == "attempts") & (asym["split"] == "incorrect")].sort_values("step")["value"]
    assert verify.is_monotonic_increasing, "the dumps lengthen with the step: more attempts"
    probes = frame[frame["source"] == "probes"]
    assert set(probes["budget"]) == {512, 1024} and (probes["n"] == 6).all(), "n = problems (6), not samples"

    figure = training.FAMILY.draw(frame, {"title": "GRPO vs GRPOMask", "smooth": 3})
    axes = visible_axes(figure)
    titles = [title(ax) for ax in axes]
    assert titles == ["training reward", "validation accuracy: countdown", "response length", "verification steps",
                      "attempts", "equations per attempt", "chained asymmetries", "entropy (training batch, verl)",
                      "entropy (probe)", "KL loss to the reference (verl)",
                      "token KL to the base model (probe, exact)"]  # fmt: skip
    assert all(ax.get_xlabel() == "gradient step" and ax.get_ylabel() for ax in axes)
    accuracy_ax = axes[titles.index("validation accuracy: countdown")]
    assert accuracy_ax.get_ylabel() == "accuracy (%)", "accuracy in % as in every other figure"
    shares = frame.loc[frame["panel"] == "accuracy:countdown", "value"]
    drawn = np.concatenate([line.get_ydata() for line in drawn_lines(accuracy_ax)])
    assert np.nanmax(drawn) == pytest.approx(100 * shares.max())
    # 11 panels, three across for a 7-inch page: four rows, the legend in the twelfth cell (no empty one).
    assert figure.get_figwidth() == pytest.approx(7.0) and len(figure.axes) == 12
    (slot,) = [ax for ax in figure.axes if ax not in axes]
    assert slot.get_visible() and slot.get_legend() is not None and not figure.legends
    attempts_ax = axes[titles.index("attempts")]
    assert len(drawn_lines(attempts_ax)) == 4, "2 runs x (correct, incorrect): every response is not a third line"
    assert {line.get_linestyle() for line in drawn_lines(attempts_ax)} == {"-", "--"}
    assert len(attempts_ax.collections) == 4, "a CI band per line"
    reward_ax = axes[0]
    assert len(drawn_lines(reward_ax)) == 4, "2 runs x (faint raw, 3-step moving average)"
    legend = legend_texts(figure)
    assert legend[:2] == ["GRPO", "GRPOMask"] and "incorrect responses" in legend
    assert "all responses" not in legend, "no panel draws all responses beside a split (the dumps have no token ids)"
    assert figure.get_suptitle() == "GRPO vs GRPOMask"
    note = figure.texts[-1].get_text()
    assert re.search(r"n=\d+-\d+ \(GRPO\), \d+-\d+ \(GRPOMask\) traces per point", note.replace("\n", " "))
    assert "first 1,024 response tokens" in note.replace("\n", " ")
    save_and_check(figure, tmp_path / "training")

    chosen = training.FAMILY.draw(frame, {"panels": ["verify", "probe_kl"], "probe_budget": 512})
    assert [title(ax) for ax in visible_axes(chosen)] == ["verification steps",
                                                          "token KL to the base model (probe, exact)"]  # fmt: skip
    with pytest.raises(UserError, match="probe_budget 2048 was not probed"):
        training.FAMILY.draw(frame, {"probe_budget": 2048})
    with pytest.raises(UserError, match="no data for panel"):
        training.FAMILY.draw(frame, {"panels": ["verfy"]})


def test_training_stages_continue_and_metric_keys(training_inputs):
    inputs = {"metrics": {"curriculum": ["grpo/metrics.jsonl", "mask/metrics.jsonl"]},
              "metric_keys": {"accuracy": "val-core/countdown/reward/mean@1", "timing": "timing_s/gen"}}  # fmt: skip
    frame = training.FAMILY.load(inputs, training_inputs)
    reward = frame[frame["panel"] == "reward"]
    assert sorted(reward["step"]) == list(range(1, 41)), "stage 2's steps follow stage 1's"
    assert set(frame["panel"]) == {"reward", "accuracy", "length", "entropy", "kl", "timing"}
    with pytest.raises(UserError, match=r"metric_keys: kl: no metric 'actor/kl_los'.*close: actor/kl_loss"):
        training.FAMILY.load({"metrics": {"r": "grpo"}, "metric_keys": {"kl": "actor/kl_los"}}, training_inputs)


def test_training_refuses_empty_or_unnamed_inputs(training_inputs, tmp_path):
    with pytest.raises(UserError, match="give at least one of metrics, asymmetries, probes"):
        training.FAMILY.load({}, training_inputs)
    with pytest.raises(UserError, match=r"asymmetries: GRPO: 'grpo/nothing/\*.parquet' matches nothing"):
        training.FAMILY.load({"asymmetries": {"GRPO": "grpo/nothing/*.parquet"}}, training_inputs)
    with pytest.raises(UserError, match=r"metrics: GRPO: 'nope\.jsonl' does not exist"):
        training.FAMILY.load({"metrics": {"GRPO": "nope.jsonl"}}, training_inputs)
    empty = tmp_path / "empty" / "5.csv"
    empty.parent.mkdir()
    empty.write_text(",".join(["index", "id", *readers.TRACE_COLUMNS]) + "\n")
    with pytest.raises(UserError, match="asymmetries: no traces in"):
        training.FAMILY.load({"asymmetries": {"x": str(empty)}}, tmp_path)
    unnamed = count_table(training_inputs / "grpo/rollouts/10.jsonl", tmp_path / "final.parquet")
    with pytest.raises(UserError, match=r"final\.parquet: cannot tell the training step"):
        training.FAMILY.load({"asymmetries": {"x": str(unnamed)}}, tmp_path)
    with pytest.raises(UserError, match="no rows to draw from the training inputs"):
        training.FAMILY.draw(training.FAMILY.load({"metrics": {"x": "grpo"}}, training_inputs).iloc[:0], {})


def test_training_from_a_console_log_and_csv_tables(training_inputs, tmp_path):
    log = verl_metrics(tmp_path / "train.log", 12, grows=True, console=True)
    table = count_table(training_inputs / "grpo/rollouts/10.jsonl", tmp_path / "asym" / "step_10.csv")
    frame = training.FAMILY.load({"metrics": {"run": str(log)}, "asymmetries": {"run": str(table)}}, tmp_path)
    counts = frame[frame["source"] == "count-asymmetries"]
    assert set(counts["step"]) == {10} and set(counts["split"]) == {"all", "correct", "incorrect"}, "CSV booleans"
    figure = training.FAMILY.draw(frame, {})
    assert len(visible_axes(figure)) == 9


def equations_dump(path: Path, step: int, rng: random.Random) -> list[tuple[float | None, bool]]:
    """A verl rollout dump of Countdown traces with a known number of equations in each attempt (paragraph); returns
    each trace's equations per attempt, worked out here from what was written (None: no attempt), and correctness."""
    records, expected = [], []
    for i in range(12):
        per_attempt = [rng.randint(0, 1 + step // 10) for _ in range(rng.randint(1, 4) if i else 0)]
        paragraphs = [", ".join(f"{a} + 1 = {a + 1}" for a in range(2, 2 + n)) or "Let me think." for n in per_attempt]
        solved = rng.random() < 0.4
        # The prompt opens the thinking (verl's dumps hold the response only): no paragraph, no attempt.
        output = "\n\n".join(paragraphs) + f"</think><answer>{'4 * 6' if solved else 'none'}</answer>"
        records.append({"input": f"Make {TARGET}", "output": output, "score": float(solved), "step": step,
                        "gts": json.dumps({"target": TARGET, "numbers": [4, 6]})})  # fmt: skip
        expected.append((sum(per_attempt) / len(per_attempt) if per_attempt else None, solved))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(path, records)
    return expected


def test_equations_per_attempt_from_count_asymmetries_tables(tmp_path):
    """Fig. 17's second panel from real count-asymmetries tables: per step, the mean over traces of equations /
    attempts (traces without an attempt left out) with its n and CI, equal to the counts written into the traces."""
    rng = random.Random(17)
    expected = {}
    for label in ("coupled", "data"):
        for step in (0, 30):
            dump = tmp_path / label / f"{step}.jsonl"
            expected[(label, step)] = equations_dump(dump, step, rng)
            count_table(dump, tmp_path / label / "asym" / f"{step}.parquet")
    inputs = {"asymmetries": {"coupled": "coupled/asym/*.parquet", "data": "data/asym"}}
    frame = training.FAMILY.load(inputs, tmp_path)
    equations = frame[frame["panel"] == "equations"].set_index(["series", "step", "split"])
    assert len(equations) == 2 * 2 * 3, "2 runs x 2 steps x (all, correct, incorrect)"
    for (label, step), traces in expected.items():
        assert traces[0][0] is None, "the first trace has no attempt: it is left out of the mean and of n"
        for split in ("all", "correct", "incorrect"):
            values = [v for v, ok in traces if v is not None and (split == "all" or ok == (split == "correct"))]
            row = equations.loc[(label, step, split)]
            assert row["n"] == len(values) and row["value"] == pytest.approx(np.mean(values)), (label, step, split)
            assert row["ci_low"] <= row["value"] <= row["ci_high"]
            if np.std(values) > 0:
                half = 1.96 * np.std(values) / np.sqrt(len(values))  # the bootstrap's band is about the normal one
                assert 0.5 * half < (row["ci_high"] - row["ci_low"]) / 2 < 1.5 * half

    figure = training.FAMILY.draw(frame, {"panels": ["equations"], "responses": "all"})
    (ax,) = visible_axes(figure)
    assert (title(ax), ax.get_xlabel()) == ("equations per attempt", "gradient step")
    lines = drawn_lines(ax)
    assert len(lines) == 2 and len(ax.collections) == 2, "one line and one CI band per run, over every response"
    for line, label in zip(lines, ("coupled", "data"), strict=True):
        assert list(line.get_ydata()) == pytest.approx([equations.loc[(label, s, "all"), "value"] for s in (0, 30)])
    assert legend_texts(figure) == ["coupled", "data"]
    note = " ".join(figure.texts[-1].get_text().split())
    alls = equations.xs("all", level="split")
    ranges = {label: readers.count_range(alls.loc[label, "n"]) for label in ("coupled", "data")}
    said = (f"n={ranges['coupled']} traces per point in every run" if len(set(ranges.values())) == 1
            else f"n={ranges['coupled']} (coupled), {ranges['data']} (data) traces per point")  # fmt: skip
    assert said in note, "n once when every run has the same, else per run"
    assert "averaged over the responses with an attempt" in note
    save_and_check(figure, tmp_path / "equations")
    split = training.FAMILY.draw(frame, {"panels": ["equations"]})
    assert len(drawn_lines(visible_axes(split)[0])) == 4, "2 runs x (correct, incorrect)"
    with pytest.raises(UserError, match="responses must be 'split'"):
        training.FAMILY.draw(frame, {"responses": "every"})

    from e3eval.analysis.asymmetries import CountConfig, count_asymmetries, write_rows

    math_table = tmp_path / "math" / "30.parquet"  # the math preset counts no equations: no panel, and a hint
    math_table.parent.mkdir()
    write_rows(math_table, count_asymmetries(CountConfig(tmp_path / "data" / "30.jsonl", "math")).table)
    math_frame = training.FAMILY.load({"asymmetries": {"math": str(math_table)}}, tmp_path)
    assert "equations" not in set(math_frame["panel"])
    with pytest.raises(UserError, match="equations needs count-asymmetries --preset countdown"):
        training.FAMILY.draw(math_frame, {"panels": ["equations"]})


# lengths ----------------------------------------------------------------------------------------------------------


def test_lengths_from_runs_leave_failed_requests_out(tmp_path, tiny_model_dir, tokenizer, training_inputs):
    from e3eval.run import Run

    short = imported_run(tmp_path, tiny_model_dir, tokenizer, max_tokens=200, seed=1, failed=2)
    long = imported_run(tmp_path, tiny_model_dir, tokenizer, max_tokens=400, seed=2)
    assert Run.open(short).samples().failures.count == 2
    table = count_table(training_inputs / "grpo/rollouts/20.jsonl", tmp_path / "t.parquet")
    frame = lengths.FAMILY.load({"runs": {"B=200": str(short), "B=400": str(long)}}, tmp_path)
    assert (frame.groupby("series").size() == 20).all(), "5 problems x 4 samples; the 2 failed requests are not samples"
    assert frame.loc[frame["series"] == "B=200", "length"].max() <= 200
    assert frame["truncated"].any()
    figure = lengths.FAMILY.draw(frame, {"panels": {"(a) short": ["B=200"], "(b) both": ["B=200", "B=400"]},
                                         "train_budget": 200, "bins": 20})  # fmt: skip
    axes = visible_axes(figure)
    assert [title(ax) for ax in axes] == ["(a) short", "(b) both"]
    assert axes[0].get_xlabel() == "response length (tokens)" and axes[0].get_ylabel() == "share of responses (%)"
    from matplotlib.patches import Rectangle

    bars = [p for p in axes[0].patches if isinstance(p, Rectangle) and p.get_alpha() == 0.12]  # not the shading
    heights = [p.get_height() for p in bars]
    assert sum(heights) == pytest.approx(100.0), "a histogram sums to 100% of its series"
    legend = legend_texts(figure)
    assert legend[0].startswith("B=200\n") and "% at the generation limit" in legend[0]
    assert "n=20 responses per series" in figure.texts[-1].get_text(), "the same n for both: said once"
    save_and_check(figure, tmp_path / "lengths")
    with pytest.raises(UserError, match=r"traces: dumps: .* has no token counts"):
        lengths.FAMILY.load({"traces": {"dumps": str(table)}}, tmp_path)
    with pytest.raises(UserError, match="unknown series B=800"):
        lengths.FAMILY.draw(frame, {"panels": {"x": ["B=800"]}})
    with pytest.raises(UserError, match="give runs"):
        lengths.FAMILY.load({}, tmp_path)


def test_lengths_from_count_tables_with_token_counts(tmp_path, tiny_model_dir):
    from e3eval.analysis.asymmetries import CountConfig, count_asymmetries, write_rows

    dump = rollout_dump(tmp_path / "10.jsonl", 10)
    write_rows(
        tmp_path / "t.csv", count_asymmetries(CountConfig(dump, "countdown", tokenizer=str(tiny_model_dir))).table
    )
    frame = lengths.FAMILY.load({"traces": {"step 10": "t.csv"}}, tmp_path)
    assert len(frame) == 12 and (frame["length"] > 0).all() and frame["truncated"].isna().all()
    figure = lengths.FAMILY.draw(frame, {})
    assert legend_texts(figure) == ["step 10"] and "n=12 responses per series" in figure.texts[-1].get_text()


# exploration ------------------------------------------------------------------------------------------------------


def test_exploration_orders_dumps_by_step_and_draws_both_panels(training_inputs, tmp_path):
    for step in (2, 10):  # "10.jsonl" sorts before "2.jsonl" as text
        rollout_dump(tmp_path / "grpo" / f"{step}.jsonl", step)
    shutil.copytree(training_inputs / "grpo/asym", tmp_path / "grpo-asym")  # globs stay inside the spec's root
    repetition = {"GRPO": "grpo-asym/*.parquet", "GRPOMask": str(training_inputs / "mask/asym")}
    inputs = {"dumps": {"GRPO": "grpo/*.jsonl"}, "repetition": repetition}
    frame = exploration.FAMILY.load(inputs, tmp_path)  # a glob of tables, and a folder of them
    unique = frame[frame["panel"] == "unique_attempts"]
    assert unique["step"].tolist() == [2, 10]
    assert unique["value"].is_monotonic_increasing, "a running total"
    repeating = frame[frame["panel"] == "repeating"]
    assert set(repeating["series"]) == {"GRPO", "GRPOMask"} and set(repeating["split"]) == {"incorrect"}
    assert ((repeating["value"] >= 0) & (repeating["value"] <= 1)).all() and repeating["value"].max() > 0
    figure = exploration.FAMILY.draw(frame, {"labels": {"GRPOMask": "GRPOMask (no negative gradient)"}})
    axes = visible_axes(figure)
    assert [title(ax).split(" (")[0] for ax in axes] == ["cumulative unique attempts",
                                                         "responses ending in a repeating stream"]  # fmt: skip
    assert axes[1].get_ylabel() == "share of responses (%)"
    assert len(drawn_lines(axes[0])) == 1 and len(drawn_lines(axes[1])) == 2
    assert legend_texts(figure) == ["GRPO", "GRPOMask (no negative gradient)"]
    save_and_check(figure, tmp_path / "exploration")
    rollout_dump(tmp_path / "twice" / "step_2.jsonl", 2)
    rollout_dump(tmp_path / "twice" / "2.jsonl", 2)
    with pytest.raises(UserError, match="two dumps of one step"):
        exploration.FAMILY.load({"dumps": {"x": "twice/*.jsonl"}}, tmp_path)


# attempts ---------------------------------------------------------------------------------------------------------


def test_attempts_one_line_per_checkpoint(tmp_path):
    attempt_probes_table(tmp_path / "run" / "attempt_probes.parquet", [None, 20, 60])
    frame = attempts.FAMILY.load({"probes": {"GRPO": "run"}}, tmp_path)
    assert set(frame["checkpoint"]) == {"base", "step 20", "step 60"}
    assert set(frame["quantity"]) == {"fig13a", "fig13b", "fig13c"} and set(frame["unit"]) == {"sum", "per-token"}
    assert frame["n"].max() == 8, "n = problems"
    figure = attempts.FAMILY.draw(frame, {"min_n": 2})
    axes = visible_axes(figure)
    assert [ax.get_title() for ax in axes] == [f"{t}\n{formula}" for t, formula in attempts.QUANTITIES.values()]
    assert all(ax.get_xlabel() == "attempt index k" and "nats" in ax.get_ylabel() for ax in axes)
    assert len(drawn_lines(axes[2])) == 3, "one line per checkpoint"
    assert [t.split(" (")[0] for t in legend_texts(figure)] == ["base", "step 20", "step 60"]
    assert figure.get_suptitle() == "GRPO"
    save_and_check(figure, tmp_path / "attempts")
    per_token = attempts.FAMILY.draw(frame, {"unit": "per-token", "max_k": 3, "min_n": 2})
    assert all(max(line.get_xdata()) <= 3 for line in drawn_lines(visible_axes(per_token)[0]))
    assert "per token" in visible_axes(per_token)[0].get_ylabel()
    with pytest.raises(UserError, match="no point rests on 50 problems"):
        attempts.FAMILY.draw(frame, {"min_n": 50})
    with pytest.raises(UserError, match=r"no attempt_probes\.parquet"):
        attempts.FAMILY.load({"probes": {"x": str(tmp_path)}}, tmp_path)


def test_attempts_of_several_labels_take_a_row_each_under_one_legend(tmp_path):
    attempt_probes_table(tmp_path / "a" / "attempt_probes.parquet", [20, 60])
    attempt_probes_table(tmp_path / "b" / "attempt_probes.parquet", [20, 60])
    frame = attempts.FAMILY.load({"probes": {"GRPO": "a", "GRPOMask": "b"}}, tmp_path)
    figure = attempts.FAMILY.draw(frame, {"min_n": 2})
    axes = visible_axes(figure)
    assert len(axes) == 6 and len(figure.axes) == 6, "(a)-(c) per label, no empty cell"
    rows = [ax.get_subplotspec().rowspan.start for ax in axes]
    assert rows == [0, 0, 0, 1, 1, 1]
    assert [title(ax).split(" (")[0] for ax in axes[::3]] == ["GRPO:", "GRPOMask:"]
    assert figure.get_figwidth() == pytest.approx(7.0) and figure.legends, "one legend, under the panels"
    assert [t.split(" (")[0] for t in legend_texts(figure)] == ["step 20", "step 60"]
    from test_figures_layout import layout_problems

    assert not layout_problems(figure), "three formulas a row fit 7 inches without running into each other"
    save_and_check(figure, tmp_path / "attempts-rows")


# bigram -----------------------------------------------------------------------------------------------------------


def test_bigram_from_the_csvs_of_a_real_run(tmp_path):
    from e3eval.train.bigram_sim import BigramConfig, train, write_history

    paths = []
    for algo in ("grpo", "grpo_mask"):
        config = BigramConfig(algo=algo, iterations=6, groups=4, group_size=8, seed=1)
        paths.append(tmp_path / f"b-{algo}.csv")
        write_history(train(config), paths[-1], config)
    frame = bigram.FAMILY.load({"histories": paths}, tmp_path)
    assert set(frame["series"]) == {"GRPO", "GRPOMask"} and (frame["n"] == 32).all()
    length = frame[frame["panel"] == "mean_length"]
    assert (length["ci_low"] < length["value"]).all(), "the length CI comes from the CSV's length_std"
    figure = bigram.FAMILY.draw(frame, {"title": "p^k bigram"})
    axes = visible_axes(figure)
    assert [title(ax) for ax in axes] == [t for t, _, _ in bigram.PANELS.values()]
    assert axes[3].get_yscale() == "log" and all(len(ax.get_lines()) == 2 for ax in axes)
    width, height = figure.get_size_inches()
    assert width == pytest.approx(7.0) and width / height <= 3, "five panels fit a page: no 6:1 strip"
    assert legend_texts(figure) == ["GRPO", "GRPOMask"], "the same n for both runs: said once, in the footnote"
    assert figure.texts[-1].get_text().startswith("n=32 rollouts per iteration.")
    save_and_check(figure, tmp_path / "bigram")
    paths[0].with_name(paths[0].name + ".json").unlink()
    bare = bigram.FAMILY.load({"histories": paths[:1]}, tmp_path)
    assert set(bare["series"]) == {"b-grpo"} and bare["ci_low"].isna().all(), "no provenance: no n, no CI"
    (tmp_path / "bad.csv").write_text("iteration,reward\n0,0.1\n")
    with pytest.raises(UserError, match=r"bad\.csv: no column"):
        bigram.FAMILY.load({"histories": [tmp_path / "bad.csv"]}, tmp_path)


# e3train run writes verl's metrics to the stage folder ----------------------------------------------------------------


def test_stage_commands_send_verl_metrics_to_the_stage_folder(tmp_path):
    from e3eval.train.curriculum import load_spec, metrics_path, stage_steps

    spec_file = tmp_path / "spec.yaml"
    stage = "  - name: s1\n    data: {train: [t.parquet], val: [v.parquet]}\n    budget: 64\n    steps: 2\n"
    spec_file.write_text("name: x\nmodel: m\noutput_dir: out dir\nstages:\n" + stage)
    spec = load_spec(spec_file)
    [step] = stage_steps(spec)
    expected = str(Path("out dir/s1/metrics.jsonl").absolute())
    assert metrics_path(spec, spec.stages[0]) == expected == step.metrics
    assert "trainer.logger=[console,file]" in step.command
    assert f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH='{expected}'" in step.command


def test_a_rerun_keeps_the_interrupted_attempts_metrics(tmp_path):
    from e3eval.train.curriculum import Step
    from e3eval.train.launch import run_steps

    metrics = tmp_path / "stage" / "metrics.jsonl"
    done = tmp_path / "stage" / "done"
    # What verl's file logger does: open the file afresh ("wb") and log the steps it runs.
    code = (f"import json, pathlib, sys; p = pathlib.Path({str(metrics)!r}); p.parent.mkdir(exist_ok=True); "
            "p.write_text(json.dumps({'step': int(sys.argv[1]), 'data': {'critic/score/mean': 0.5}}) + '\\n'); "
            f"pathlib.Path({str(done)!r}).write_text('') if sys.argv[1] == '2' else sys.exit(1)")  # fmt: skip
    with pytest.raises(UserError, match="train step failed"):
        run_steps(
            [Step("stage", "train", [sys.executable, "-c", code, "1"], str(done), str(metrics))], log=lambda _: None
        )
    said = []
    run_steps([Step("stage", "train", [sys.executable, "-c", code, "2"], str(done), str(metrics))], log=said.append)
    assert (tmp_path / "stage" / "metrics-1.jsonl").is_file() and any("metrics-1.jsonl" in s for s in said)
    assert sorted(read_metrics(tmp_path / "stage")["step"]) == [1, 2], "both attempts' steps, oldest first"
