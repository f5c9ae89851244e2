"""Hostile inputs to `e3eval figures`: probe tables holding several models, dtypes, presets or attempt caps (never
averaged into one point), output folders holding a user's files (never replaced), globs that would walk the whole
disk, a single-budget accuracy figure, and a run directory's probes read with the run's current grades.

Probe tables are written in `e3eval probe`'s own schema; the run is imported and scored for real. The CLI rows run a
real `e3eval figures` process (`hostile.Case`); the rest call the families as the gallery does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hostile import Case, run_case

from e3eval.errors import UserError

pytest.importorskip("matplotlib")
pytest.importorskip("pandas")

import pandas as pd

from e3eval.figures import accuracy, readers, training
from e3eval.figures import attempt_probes as attempts
from e3eval.figures.folder import MARKER, FiguresFolder
from e3eval.figures.spec import load_spec
from e3eval.probes.table import ATTEMPT_SCHEMA, PROBE_SCHEMA

EXPERIMENTS = {"A": 0.5, "B": 1.5}  # experiment folder -> its entropy level (far apart: a blend is obvious)


def probe_rows(model: str, step: int | None, entropy: float, dtype: str = "float32", problems: int = 4,
               fingerprint: str | None = None, ref: str | None = "/models/base") -> list[dict]:  # fmt: skip
    """`probes.parquet` rows of one model: problem p's entropy is `entropy + 0.01 p` (mean over problems: +0.015)."""
    return [{"run_id": "r", "model": model, "step": step, "ref": ref, "dtype": dtype, "model_fingerprint": fingerprint,
             "problem_id": f"p{p}", "sample_idx": s, "budget": 512, "n_tokens": 512,
             "mean_entropy": entropy + 0.01 * p, "kl_exact": entropy / 10}
            for p in range(problems) for s in range(2)]  # fmt: skip


def attempt_rows(model: str, step: int | None, level: float, preset: str = "countdown", cap: int | None = None,
                 dtype: str = "float32") -> list[dict]:  # fmt: skip
    """`attempt_probes.parquet` rows of one model: every fig13 quantity is `level` at k = 2, 3."""
    return [{"run_id": "r", "model": model, "step": step, "dtype": dtype, "problem_id": f"p{p}", "sample_idx": 0,
             "preset": preset, "max_attempts": cap, "k": k, "n_attempts": 3, "tokens_k": 10, "tokens_prev": 10,
             "fig13a": level, "fig13b": level, "fig13c": level, "fig13a_per_token": level / 10,
             "fig13b_per_token": level / 10, "fig13c_per_token": level / 10}
            for p in range(6) for k in (2, 3)]  # fmt: skip


def write(path: Path, rows: list[dict], schema: pa.Schema) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def checkpoint(experiment: str, step: int) -> str:
    return f"/ckpts/proj/{experiment}/global_step_{step}/actor/huggingface"


def values(frame: pd.DataFrame, **match: object) -> dict[str, list[float]]:
    rows = frame
    for column, value in match.items():
        rows = rows[rows[column] == value]
    return {s: sorted(round(v, 6) for v in at["value"]) for s, at in rows.groupby("series")}


# 1. training: two experiments under one checkpoint folder, one model in two dtypes --------------------------------


def test_training_never_averages_two_experiments_or_dtypes(tmp_path):
    rows = [r for name, level in EXPERIMENTS.items() for step in (10, 20)
            for r in probe_rows(checkpoint(name, step), step, level)]  # fmt: skip
    write(tmp_path / "two.parquet", rows, PROBE_SCHEMA)
    frame = training.FAMILY.load({"probes": {"ours": "two.parquet"}}, tmp_path)
    entropy = values(frame, panel="probe_entropy")
    assert entropy == {"ours (A)": [0.515, 0.515], "ours (B)": [1.515, 1.515]}, "one series per experiment, no blend"

    figure = training.FAMILY.draw(frame, {"labels": {"ours": "Ours"}})
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["Ours (A)", "Ours (B)"]
    note = " ".join(figure.texts[-1].get_text().split())
    assert "Ours (A) = checkpoints of /ckpts/proj/A, float32, temperature 1, KL to /models/base" in note, note
    from e3eval.figures.style import save

    save(figure, tmp_path / "training-two-experiments")

    dtypes = probe_rows(checkpoint("A", 10), 10, 0.5) + probe_rows(checkpoint("A", 10), 10, 0.7, dtype="bfloat16")
    write(tmp_path / "dtypes.parquet", dtypes, PROBE_SCHEMA)
    frame = training.FAMILY.load({"probes": {"ours": "dtypes.parquet"}}, tmp_path)
    assert values(frame, panel="probe_entropy") == {"ours (bfloat16)": [0.715], "ours (float32)": [0.515]}


def test_training_one_experiment_stays_one_series_and_old_tables_read(tmp_path):
    rows = [r for step in (10, 20) for r in probe_rows(checkpoint("A", step), step, 0.5)]
    table = pa.Table.from_pylist(rows, schema=PROBE_SCHEMA).drop(["dtype", "model_fingerprint", "ref_fingerprint"])
    pq.write_table(table, tmp_path / "old.parquet")  # a table from before dtype and fingerprints
    frame = training.FAMILY.load({"probes": {"ours": "old.parquet"}}, tmp_path)
    assert set(frame["series"]) == {"ours"}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (probe_rows(checkpoint("A", 10), 10, 0.5, problems=2, fingerprint="w1:aaa")
         + [{**r, "problem_id": "q" + r["problem_id"]}
            for r in probe_rows(checkpoint("A", 10), 10, 0.9, problems=2, fingerprint="w1:bbb")],
         "was probed with different weights (model_fingerprint w1:aaa, w1:bbb)"),
        (probe_rows(checkpoint("A", 10), 10, 0.5) + probe_rows("/ckpts/proj/A/global_step_10/merged", 10, 0.9),
         "step 10 of /ckpts/proj/A was probed as 2 models"),
        (probe_rows(checkpoint("A", 10), 10, 0.5) + probe_rows(checkpoint("A", 10), 10, 0.5, ref="/models/other"),
         "probed against several references (/models/base, /models/other)"),
        (probe_rows(checkpoint("A", 10), 10, 0.5) + [{**r, "run_id": "other"}
                                                     for r in probe_rows(checkpoint("A", 20), 20, 0.5)],
         "probe rows of 2 runs (other, r) under one label would be averaged as one"),
    ],
    ids=["two-sets-of-weights", "two-exports-of-one-step", "two-references", "two-runs"],
)  # fmt: skip
def test_training_refuses_rows_it_cannot_tell_apart(tmp_path, rows, message):
    write(tmp_path / "mixed.parquet", rows, PROBE_SCHEMA)
    with pytest.raises(UserError, match=r"^probes: ours: .*" + message.replace("(", r"\(").replace(")", r"\)")):
        training.FAMILY.load({"probes": {"ours": "mixed.parquet"}}, tmp_path)


# 2. attempts: presets, attempt caps, dtypes and experiments are rows of their own ---------------------------------


def test_attempts_split_presets_caps_and_dtypes(tmp_path):
    rows = []
    for preset, level in (("countdown", 1.0), ("math", -1.0), ("e3-math", 3.0)):
        for step in (None, 10, 20):
            model = checkpoint("A", step) if step is not None else "/models/base"
            rows += attempt_rows(model, step, level, preset=preset)
    rows += attempt_rows(checkpoint("A", 10), 10, 5.0, preset="countdown", cap=4)
    rows += attempt_rows(checkpoint("A", 10), 10, 7.0, preset="countdown", dtype="bfloat16")
    write(tmp_path / "attempt_probes.parquet", rows, ATTEMPT_SCHEMA)
    frame = attempts.FAMILY.load({"probes": {"x": "attempt_probes.parquet"}}, tmp_path)
    at_k2 = frame[(frame["k"] == 2) & (frame["quantity"] == "fig13a") & (frame["unit"] == "sum")]
    levels = {s: sorted(set(at["value"].round(6))) for s, at in at_k2.groupby("series")}
    assert levels == {
        "x (float32, countdown, all attempts)": [1.0],
        "x (float32, math, all attempts)": [-1.0],
        "x (float32, e3-math, all attempts)": [3.0],
        "x (float32, countdown, at most 4 attempts)": [5.0],
        "x (bfloat16, countdown, all attempts)": [7.0],
    }, "never a blend of presets, caps or dtypes"
    lines = at_k2[at_k2["series"] == "x (float32, math, all attempts)"]
    assert sorted(lines["checkpoint"]) == ["base", "step 10", "step 20"], "the base model stays a line of its row"
    figure = attempts.FAMILY.draw(frame, {"min_n": 2})
    note = " ".join(figure.texts[-1].get_text().split())
    assert "x (float32, math, all attempts) = checkpoints of /ckpts/proj/A, with /models/base (no step)" in note


def test_attempts_split_experiments_and_keep_the_base_model_in_each(tmp_path):
    rows = attempt_rows("/models/base", None, 0.0)
    for name, level in EXPERIMENTS.items():
        rows += [r for step in (10, 20) for r in attempt_rows(checkpoint(name, step), step, level)]
    write(tmp_path / "attempt_probes.parquet", rows, ATTEMPT_SCHEMA)
    frame = attempts.FAMILY.load({"probes": {"x": "attempt_probes.parquet"}}, tmp_path)
    at_k2 = frame[(frame["k"] == 2) & (frame["quantity"] == "fig13b") & (frame["unit"] == "sum")]
    by_line = {(s, c): float(v) for s, c, v in zip(at_k2["series"], at_k2["checkpoint"], at_k2["value"], strict=True)}
    assert by_line == {("x (A)", "base"): 0.0, ("x (A)", "step 10"): 0.5, ("x (A)", "step 20"): 0.5,
                       ("x (B)", "base"): 0.0, ("x (B)", "step 10"): 1.5, ("x (B)", "step 20"): 1.5}  # fmt: skip
    figure = attempts.FAMILY.draw(frame, {"min_n": 2, "labels": {"x": "GRPO"}})
    titles = [ax.get_title() for ax in figure.axes if ax.get_visible()]
    assert titles[0].startswith("GRPO (A): ") and titles[3].startswith("GRPO (B): ")
    from e3eval.figures.style import save

    save(figure, tmp_path / "attempts-two-experiments")


# 3. the output folder: figures writes only into a folder it owns, never over a file it did not write ------------


SPEC = "figures:\n  - name: grid\n    family: chained\n    table: grid.csv\n"


def _grid(tmp: Path, _model: Path) -> None:
    rows = [f"{step},{c},{k},{0.1 * c + 0.05 * k + step / 100}" for step in (0, 10) for c in (1, 2) for k in (1, 2)]
    (tmp / "grid.csv").write_text("train_step,chained_asymmetries,k,pass_at_k\n" + "\n".join(rows) + "\n")
    (tmp / "spec.yaml").write_text(SPEC)


def _with_user_files(folder: str, names: tuple[str, ...] = ("README.md", "index.html")):
    def setup(tmp: Path, model: Path) -> None:
        _grid(tmp, model)
        (tmp / folder).mkdir(exist_ok=True)
        for name in names:
            (tmp / folder / name).write_text(f"the user's own {name}\n")

    return setup


def _untouched(folder: str, names: tuple[str, ...] = ("README.md", "index.html")):
    def check(tmp: Path) -> None:
        for name in names:
            assert (tmp / folder / name).read_text() == f"the user's own {name}\n", name
        assert not (tmp / folder / "grid.png").exists(), "nothing drawn into a refused folder"

    return check


CASES = [
    Case("out-holds-user-files", ("figures", "spec.yaml", "--out", "docs"),
         says="--out docs: a folder with other files in it that e3eval figures did not make",
         setup=_with_user_files("docs"), check=_untouched("docs")),
    Case("out-dot-at-a-repository-root", ("figures", "spec.yaml", "--out", "."),
         says="--out .: a folder with other files in it", setup=_with_user_files("."), check=_untouched(".")),
    Case("force-still-never-replaces", ("figures", "spec.yaml", "--out", "docs", "--force"),
         says="index.html, README.md already there and not written by e3eval figures",
         setup=_with_user_files("docs"), check=_untouched("docs")),
    Case("paper-data-into-user-files", ("figures", "--paper-data", "--out", "docs"),
         says="--out docs: a folder with other files in it", setup=_with_user_files("docs"), check=_untouched("docs")),
    Case("out-is-a-file", ("figures", "spec.yaml", "--out", "spec.yaml"), says="exists and is not a folder",
         setup=_grid),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_output_folder_cases(case: Case, tmp_path: Path):
    run_case(case, tmp_path, tmp_path)


def test_force_adds_beside_user_files_and_reruns_replace_only_own_files(tmp_path: Path):
    _with_user_files("docs", ("notes.txt",))(tmp_path, tmp_path)
    run_case(Case("force", ("figures", "spec.yaml", "--out", "docs", "--force"), code=0), tmp_path, tmp_path)
    assert (tmp_path / "docs" / "notes.txt").read_text() == "the user's own notes.txt\n"
    written = set(FiguresFolder.open(tmp_path / "docs").written)
    assert written == {"grid.png", "grid.pdf", "index.html", "README.md"}, "the marker lists what figures wrote"
    again = ("figures", "spec.yaml", "--out", "docs")
    run_case(Case("rerun", again, code=0), tmp_path, tmp_path)  # a marked folder: no --force needed
    (tmp_path / "spec.yaml").write_text(SPEC + SPEC.split("\n", 1)[1].replace("name: grid", "name: notes"))
    (tmp_path / "docs" / "notes.png").write_text("the user's picture\n")
    run_case(Case("clash", again, says="notes.png already there and not written by e3eval figures"), tmp_path,
             tmp_path)  # fmt: skip
    assert (tmp_path / "docs" / "notes.png").read_text() == "the user's picture\n"


def test_folder_marker_rules(tmp_path: Path):
    folder = FiguresFolder.open(tmp_path / "new")
    assert not (tmp_path / "new").exists(), "nothing is written before the first file"
    folder.write_text("README.md", "gallery\n")
    assert (tmp_path / "new" / MARKER).is_file() and set(FiguresFolder.open(tmp_path / "new").written) == {"README.md"}
    (tmp_path / "new" / "index.html").write_text("mine\n")
    with pytest.raises(UserError, match=r"index\.html already there and not written by e3eval figures"):
        FiguresFolder.open(tmp_path / "new").write_text("index.html", "gallery\n")
    (tmp_path / "fake").mkdir()
    (tmp_path / "fake" / MARKER).write_text("[]\n")
    with pytest.raises(UserError, match="not a marker written by e3eval figures"):
        FiguresFolder.open(tmp_path / "fake")


# 4. an accuracy figure of one budget -----------------------------------------------------------------------------


def _one_budget(budget: int) -> pd.DataFrame:
    return pd.DataFrame([{"series": name, "budget": budget, "metric": "pass@k", "k": 1, "value": value,
                          "ci_low": value - 0.05, "ci_high": value + 0.05, "n": 30, "n_samples": 480, "flag": ""}
                         for name, value in (("a", 0.4), ("b", 0.3))])  # fmt: skip


def test_single_budget_extrapolation_label_stays_inside_the_axes(tmp_path: Path):
    from e3eval.figures.style import save

    past = accuracy.draw(_one_budget(32768), {"train_budget": 16384})
    (ax,) = [a for a in past.axes if a.get_title()]
    past.draw_without_rendering()
    (label,) = [t for t in ax.texts if "extrapolation" in t.get_text()]
    box, inside = label.get_window_extent(), ax.get_window_extent()
    assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
    assert "train budget 16k" in label.get_text() and len(ax.patches) == 1, "every budget is past the training budget"
    save(past, tmp_path / "one-budget-past")

    within = accuracy.draw(_one_budget(32768), {"train_budget": 65536})
    (ax,) = [a for a in within.axes if a.get_title()]
    assert not ax.patches and not ax.texts, "no budget past the training budget: nothing to mark"
    assert ax.get_xlim()[1] < 65536, "the axis is not stretched to an empty region"
    save(within, tmp_path / "one-budget-within")


# 5. globs are bounded to the spec's root -------------------------------------------------------------------------


def test_a_glob_of_the_whole_disk_is_refused_at_once(tmp_path: Path):
    (tmp_path / "spec.yaml").write_text('figures:\n  - name: a\n    family: accuracy\n    runs: "/**/"\n')
    spec = str(tmp_path / "spec.yaml")
    code = ("from e3eval.figures.spec import load_spec\nfrom e3eval.errors import UserError\n"
            f"try:\n    load_spec({spec!r})\nexcept UserError as exc:\n    print(exc)\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "spec.yaml:4: figure 'a': runs: glob '/**/' walks the whole file system" in done.stdout, done


def test_globs_stay_inside_the_root_and_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from e3eval.figures import globs

    (tmp_path / "root").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.csv").write_text("x\n")
    spec = tmp_path / "root" / "spec.yaml"
    spec.write_text("figures:\n  - name: a\n    family: chained\n    table: ../elsewhere/*.csv\n")
    with pytest.raises(UserError, match=r"glob '\.\./elsewhere/\*\.csv' reaches outside the spec's root folder"):
        load_spec(spec)
    with pytest.raises(UserError, match=r"probes: x: glob '/\*\*/probes.parquet' walks the whole file system"):
        readers.resolve_series({"x": "/**/probes.parquet"}, tmp_path, "probes")
    for i in range(30):
        (tmp_path / "root" / f"d{i}" / "e").mkdir(parents=True)
    monkeypatch.setattr(globs, "MAX_FOLDERS", 20)
    with pytest.raises(UserError, match=r"glob '\*\*/\*\.csv' walked more than 20 folders"):
        globs.expand("**/*.csv", tmp_path / "root")
    monkeypatch.setattr(globs, "MAX_FOLDERS", 1000)
    assert len(globs.expand("d1*/e", tmp_path / "root")) == 11, "d1, d10 ... d19"
    monkeypatch.setattr(globs, "MAX_MATCHES", 10)
    with pytest.raises(UserError, match=r"glob 'd1\*/e' matches more than 10 paths"):
        globs.expand("d1*/e", tmp_path / "root")


# 6. a run directory's probes carry the run's current grades ------------------------------------------------------


@pytest.fixture(scope="module")
def scored_run(tmp_path_factory, tiny_model_dir, tokenizer) -> Path:
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, write_pool
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run

    root = tmp_path_factory.mktemp("probed-run")
    write_pool(root / "pool.jsonl", demo_problems()[:3], PoolSpec(samples=2, max_tokens=300, seed=3), tokenizer)
    run = root / "run"
    import_run(ImportConfig(root / "pool.jsonl", run, str(tiny_model_dir), token_ids_field="token_ids",
                            sample_field="sample_idx", finish_reason_field="finish_reason"))  # fmt: skip
    score_run(run, ScoreConfig(budgets=(256,), workers=1, resamples=10))
    return run


def test_run_probes_are_read_with_current_grades(scored_run: Path):
    from e3eval.run import Run

    run = Run.open(scored_run)
    grades = {(g.problem_id, g.sample_idx): g.correct for g in run.frame("grades").itertuples()}
    stale = [{"run_id": run.run_id, "model": checkpoint("A", 10), "step": 10, "dtype": "float32", "problem_id": p,
              "sample_idx": s, "budget": 256, "n_tokens": 10, "mean_entropy": 0.5, "kl_exact": None,
              "correct": ok is not True} for (p, s), ok in grades.items()]  # fmt: skip
    run.commit("probes", {"models": [checkpoint("A", 10)]}, {"probes": pa.Table.from_pylist(stale, PROBE_SCHEMA)})
    for given in (scored_run, scored_run / "probes.parquet"):
        table = readers.read_probe_table(given, "probes")
        read = {(p, s): c for p, s, c in zip(table["problem_id"], table["sample_idx"], table["correct"], strict=True)}
        assert read == grades, "the grades as they are now, not as the probe stored them"
    run.write_sections(probes={**run.section("probes"), "unit": "another"})
    with pytest.raises(UserError, match="written by another `probes` run"):
        readers.read_probe_table(scored_run, "probes")


def test_two_galleries_never_write_one_folder_at_once(tmp_path: Path):
    from e3eval.store import output_lock

    _grid(tmp_path, tmp_path)
    with output_lock(tmp_path / "docs", "figures"):
        run_case(Case("locked", ("figures", "spec.yaml", "--out", "docs"), says="another e3eval command is writing"),
                 tmp_path, tmp_path)  # fmt: skip
    assert not (tmp_path / "docs" / "grid.png").exists()


def test_a_file_edited_after_figures_wrote_it_is_never_replaced(tmp_path: Path):
    _grid(tmp_path, tmp_path)
    run_case(Case("first", ("figures", "spec.yaml", "--out", "docs"), code=0), tmp_path, tmp_path)
    (tmp_path / "docs" / "index.html").write_text("my edited gallery\n")
    run_case(Case("edited", ("figures", "spec.yaml", "--out", "docs"), says="index.html already there"), tmp_path,
             tmp_path)  # fmt: skip
    assert (tmp_path / "docs" / "index.html").read_text() == "my edited gallery\n"
