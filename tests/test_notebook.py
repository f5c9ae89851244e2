"""The notebook API (`e3eval.load_run`, `RunView`): the CLI's metric names and one unit, curves equal to the summary,
nothing but reading, no pyarrow, a light `import e3eval`, and docs/notebook.md executed cell by cell against real
imported and scored runs."""

from __future__ import annotations

import ast
import dataclasses
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import e3eval
from e3eval.errors import UserError
from e3eval.notebook import CURVE_COLUMNS, RunView

DOC = Path(__file__).resolve().parent.parent / "docs" / "notebook.md"
# The paths the doc's cells name, replaced by the test's runs (quotes included: one is a prefix of the other).
DOC_RUNS = ('"results/Qwen3-1.7B__aime25"', '"results/Qwen3-1.7B__aime25__wait2"')
BUDGETS = (256, 512, 1024)


def _imported(root: Path, name: str, seed: int, tiny_model_dir: Path, tokenizer, score: bool = True) -> Path:
    """Four demo problems x four synthetic samples (accuracy rises with the budget), imported and scored for real."""
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, write_pool
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run

    pool = root / f"{name}.jsonl"
    write_pool(pool, demo_problems()[:4], PoolSpec(samples=4, max_tokens=max(BUDGETS), seed=seed), tokenizer)
    run = root / name
    import_run(ImportConfig(pool, run, str(tiny_model_dir), token_ids_field="token_ids", sample_field="sample_idx",
                            finish_reason_field="finish_reason"))  # fmt: skip
    if score:
        score_run(run, ScoreConfig(budgets=BUDGETS, workers=1, resamples=100))
    return run


@pytest.fixture(scope="module")
def runs(tiny_model_dir, tokenizer, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("notebook")
    return (_imported(root, "plain", 1, tiny_model_dir, tokenizer),
            _imported(root, "other", 2, tiny_model_dir, tokenizer))  # fmt: skip


def test_import_e3eval_is_light_and_lists_its_api():
    heavy = ("pandas", "pyarrow", "torch", "numpy")
    code = (f"import sys, e3eval\nnames = dir(e3eval)\nprint(e3eval.__version__)\n"
            f"print(sorted(m for m in {heavy!r} if m in sys.modules))\nprint(names)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    version, heavy, names = out.stdout.splitlines()
    assert version == e3eval.__version__ and heavy == "[]", "import e3eval (and dir) loads nothing heavy"
    assert {"load_run", "compare", "RunView", "__version__"} <= set(ast.literal_eval(names))
    assert "TYPE_CHECKING" not in names, "typing helpers are not API"
    from e3eval.run import Run

    assert e3eval.Run is Run and e3eval.RunView is RunView, "the stages' handle stays importable"


def test_summary_has_the_cli_names_integer_k_and_a_unit(runs):
    run = e3eval.load_run(runs[0])
    summary = run.summary
    assert isinstance(summary, pd.DataFrame) and str(summary["k"].dtype) == "Int64"
    pass1 = summary[summary["metric"] == "pass@1"]
    assert sorted(pass1["budget"]) == list(BUDGETS) and set(pass1["k"]) == {1}
    assert "pass@k" not in set(summary["metric"]) and "maj@4" in set(summary["metric"])
    assert summary.loc[summary["metric"] == "mean_tokens", "k"].isna().all()
    assert dict(zip(summary["metric"], summary["unit"], strict=True)) == {
        m: ("tokens" if m == "mean_tokens" else "fraction") for m in summary["metric"]
    }
    fractions = summary[summary["unit"] == "fraction"]
    assert fractions[["value", "ci_low", "ci_high"]].stack().between(0, 1).all(), "fractions 0-1, never percent"
    assert pass1["value"].iloc[-1] > 0, "the synthetic pool answers some problems at the largest budget"
    assert set(summary["run"]) == {run.label} == {"plain · prefix"}


def test_curve_is_the_summary_rows_of_one_metric(runs):
    run = e3eval.load_run(runs[0])
    summary = run.summary
    assert run.metrics[0] == "pass@1" and "mean_tokens" in run.metrics
    for metric in run.metrics:
        curve = run.curve(metric)
        assert tuple(curve.columns) == CURVE_COLUMNS and curve["budget"].tolist() == list(BUDGETS)
        rows = summary[summary["metric"] == metric].sort_values("budget")[list(CURVE_COLUMNS)]
        pd.testing.assert_frame_equal(curve, rows.reset_index(drop=True))
    assert run.curve().equals(run.curve("pass@1"))


def test_curve_names_what_there_is_when_asked_for_what_is_not(runs, tmp_path):
    run = e3eval.load_run(runs[0])
    with pytest.raises(UserError, match=r"no metric 'pass@64'; available: pass@1, pass@2, pass@4, maj@2"):
        run.curve("pass@64")
    with pytest.raises(UserError, match="no metric 'pass@k'"):
        run.curve("pass@k")
    with pytest.raises(UserError, match="not scored under policy 'strict'; it has prefix"):
        run.curve(policy="strict")
    from e3eval.score import ScoreConfig, score_run

    twice = Path(shutil.copytree(runs[0], tmp_path / "twice"))
    score_run(twice, ScoreConfig(budgets=BUDGETS, policy="strict", workers=1, resamples=0))
    run = e3eval.load_run(twice)
    assert set(run.policies) == {"prefix", "strict"} and run.label == "twice"
    with pytest.raises(UserError, match=r"several policies \((prefix, strict|strict, prefix)\); pass policy="):
        run.curve("pass@1")
    strict = run.curve("pass@1", policy="strict")
    rows = run.summary.query("metric == 'pass@1' and policy == 'strict'")
    assert strict["value"].tolist() == rows.sort_values("budget")["value"].tolist()
    assert set(run.summary["run"]) == {"twice · prefix", "twice · strict"}


def test_the_view_only_reads(runs):
    run = e3eval.load_run(runs[0])
    writers = ("commit", "lock", "write_sections", "write_manifest", "append_part", "rollout_writer", "create",
               "building", "ensure_identity")  # fmt: skip
    for writer in (*writers, "table", "frame", "rollout_batches", "section", "manifest"):  # no pyarrow either
        assert not hasattr(run, writer), writer
    with pytest.raises(AttributeError):
        run.path = Path("elsewhere")  # type: ignore[misc]
    with pytest.raises(AttributeError):
        run._run_handle = None  # type: ignore[attr-defined]
    with pytest.raises(UserError, match=r"run\.json"):
        e3eval.load_run(runs[0].parent)


def _plain(value: object, where: str) -> None:
    """Fail when `value` holds a pyarrow object (or anything but pandas, numpy scalars and plain Python)."""
    kind = type(value)
    assert not kind.__module__.startswith("pyarrow"), f"{where}: {kind}"
    if isinstance(value, pd.DataFrame):
        for column in value.columns:
            assert not isinstance(value[column].dtype, pd.ArrowDtype), f"{where}[{column}]: {value[column].dtype}"
            for cell in value[column].head(3):
                _plain(cell, f"{where}[{column}]")
    elif dataclasses.is_dataclass(value):
        assert kind.__module__ == "e3eval.manifest", f"{where}: {kind}"
        for f in dataclasses.fields(value):
            _plain(getattr(value, f.name), f"{where}.{f.name}")
    elif isinstance(value, dict | list | tuple):
        for item in value.values() if isinstance(value, dict) else value:
            _plain(item, where)
    else:
        assert kind.__module__ in ("builtins", "pathlib", "numpy") or value is None, f"{where}: {kind}"


def test_nothing_the_view_gives_is_pyarrow(runs):
    run = e3eval.load_run(runs[0])
    public = [n for n in dir(run) if not n.startswith("_")]
    assert {"summary", "curve", "rollouts_frame", "record", "label", "n_problems"} <= set(public)
    for name in public:
        try:
            value = getattr(run, name)
        except UserError as exc:  # a table the run does not have yet
            assert name in ("probes", "attempt_probes") and "probe it first" in str(exc)
            continue
        if callable(value):
            value = value()
        _plain(value, name)
    assert (run.model, run.dataset, run.forcing, run.subset) == (None, None, None, None), "an import names neither"
    assert (run.n_problems, run.n_per_problem, run.budgets, run.policies) == (4, 4, BUDGETS, ("prefix",))
    assert isinstance(run.rollouts_frame(token_ids=True)["token_ids"].iloc[0].tolist()[0], int)
    assert "token_ids" not in run.rollouts.columns and len(run.rollouts) == 16 and len(run.grades) == 48


def test_a_generated_run_names_its_model_and_dataset(tiny_model_dir, tmp_path):
    from e3eval.generation import GenerateConfig, generate_run
    from e3eval.score import ScoreConfig, score_run

    out = tmp_path / "generated"
    generate_run(GenerateConfig(model=str(tiny_model_dir), dataset="demo", out=out, n=3, max_tokens=8, backend="hf",
                                limit=2, backend_options={"dtype": "float32"}))  # fmt: skip
    score_run(out, ScoreConfig(budgets=(4, 8), workers=1, resamples=0))
    run = e3eval.load_run(out)
    assert (run.model, run.dataset, run.forcing) == (str(tiny_model_dir), "demo", None)
    assert (run.n_problems, run.n_per_problem, run.budgets) == (2, 3, (4, 8))
    assert run.label.startswith(f"{tiny_model_dir.name} · demo · prefix"), run.label
    assert run.curve("pass@1")["n_samples"].tolist() == [6, 6]


def test_repr_says_what_was_run_and_html_is_escaped(runs, tiny_model_dir, tokenizer, tmp_path):
    run = e3eval.load_run(runs[0])
    assert repr(run) == (f"<e3eval run: plain · prefix\n  path: {runs[0]}\n  n: 4 problems x 4 samples\n"
                         "  budgets: 256, 512, 1024>")  # fmt: skip
    hostile = Path(shutil.copytree(runs[0], tmp_path / "hostile"))
    manifest = json.loads((hostile / "run.json").read_text())
    (hostile / "run.json").write_text(json.dumps({**manifest, "name": "<script>alert(1)</script> & co"}))
    shown = e3eval.load_run(hostile)._repr_html_()
    assert "<script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; co · prefix" in shown
    unscored = e3eval.load_run(_imported(tmp_path, "fresh", 3, tiny_model_dir, tokenizer, score=False))
    assert unscored.budgets == () and unscored.policies == () and "budgets: not scored" in repr(unscored)
    with pytest.raises(UserError, match="score it first"):
        _ = unscored.summary
    (hostile / "run.json").unlink()
    gone = RunView(hostile)
    assert repr(gone).startswith(f"<e3eval run at {hostile}: ") and "<script>" not in gone._repr_html_()


def _cells() -> list[str]:
    """The doc's ```python cells, in order."""
    text = DOC.read_text(encoding="utf-8")
    for path in DOC_RUNS:
        assert path in text, f"the doc no longer names {path}: update DOC_RUNS"
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def _run_cells(cells: list[str], runs: tuple[Path, Path]) -> dict:
    """Run the cells one after another in one namespace, as a notebook does: each cell's last expression is shown
    (and kept as `_`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {}
    for code in cells:
        for path, run in zip(DOC_RUNS, runs, strict=True):
            code = code.replace(path, repr(str(run)))
        tree = ast.parse(code)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, str(DOC), "exec"), namespace)
        if last is not None:
            shown = namespace["_"] = eval(compile(ast.Expression(last.value), str(DOC), "eval"), namespace)
            assert repr(shown)
            if hasattr(shown, "_repr_html_"):
                assert shown._repr_html_()
    plt.close("all")
    return namespace


def test_the_notebook_doc_runs(runs):
    cells = _cells()
    assert len(cells) == 7
    namespace = _run_cells(cells, runs)
    assert isinstance(namespace["run"], RunView) and namespace["run"].path == runs[0]
    assert namespace["curve"].equals(e3eval.load_run(runs[0]).curve("pass@1"))
    summary = namespace["both"].summary
    assert isinstance(summary, pd.DataFrame) and set(summary["n_problems"]) == {4}
    diff = namespace["_"]  # the last cell: the second run minus the first, paired over their problems
    assert {"budget", "metric", "diff", "ci_low", "ci_high", "n_problems"} <= set(diff.columns)
    assert sorted(set(diff["budget"])) == list(BUDGETS) and "pass@1" in set(diff["metric"])


def test_gain_is_compares_and_insertions_are_none_without_forcing(runs):
    run = e3eval.load_run(runs[0])
    assert run.gain().empty, "an import records no training budget"
    mine, theirs = run.gain(train_budget=BUDGETS[0]), e3eval.compare([runs[0]]).gain(BUDGETS[0])
    assert list(mine["budget"]) == list(BUDGETS[1:]) and mine.equals(theirs)
    assert run.insertions is None
