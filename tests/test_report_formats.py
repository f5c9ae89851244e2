"""`e3eval report` in every format, on real scored runs: the terminal layout fits 80 columns with no number cut, the
markdown parses as a GFM table, the LaTeX is a well-formed tabular, and the warnings say where runs differ."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import warnings
from pathlib import Path

import pytest
from conftest import run_cli
from markdown_it import MarkdownIt
from rich.console import Console

from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import PoolSpec, write_pool
from e3eval.errors import UserError
from e3eval.ingest import ImportConfig, import_run
from e3eval.report import StaleSummaryWarning, compare
from e3eval.report_formats import build_report, format_ci, format_value, metric_unit, render
from e3eval.report_layout import report_renderables
from e3eval.run import Run
from e3eval.score import ScoreConfig, score_run

BUDGETS = (64, 128, 256, 512)
# Run names that LaTeX, markdown and rich markup would each read as syntax.
NAMES = ("plain", "a_b%c&d#e", "pipe|[/x]", "four", "five")


def scored_pool(root: Path, name: str, tiny_model_dir: Path, tokenizer, problems=slice(0, 6), samples: int = 4,
                seed: int = 0, budgets=BUDGETS) -> Path:  # fmt: skip
    """A synthetic pool (accuracy rising with the budget) imported as run `name` and scored (real grading)."""
    slug = re.sub(r"[^\w-]", "-", name)
    pool = root / f"{slug}.jsonl"
    spec = PoolSpec(samples=samples, min_tokens=60, max_tokens=600, truncated_fraction=0.2, seed=seed)
    write_pool(pool, demo_problems()[problems], spec, tokenizer)
    run = root / slug
    import_run(ImportConfig(pool, run, str(tiny_model_dir), token_ids_field="token_ids", sample_field="sample_idx",
                            finish_reason_field="finish_reason", name=name))  # fmt: skip
    score_run(run, ScoreConfig(budgets=budgets, workers=1, resamples=200))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, tokenizer) -> list[Path]:
    root = tmp_path_factory.mktemp("report-runs")
    return [scored_pool(root, name, tiny_model_dir, tokenizer, samples=2 if i == 2 else 4, seed=i)
            for i, name in enumerate(NAMES)]  # fmt: skip


def rendered(report, width: int = 80) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    for item in report_renderables(report, width):
        console.print(item)
    return console.export_text()


@pytest.mark.parametrize("count", [1, 3, 5])
def test_terminal_report_fits_80_columns_and_cuts_no_number(runs, count):
    comparison = compare(runs[:count])
    report = build_report(comparison)
    text = rendered(report)
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text
    tokens = set(re.split(r"[\s│┃]+", text))
    for i, run in enumerate(comparison.runs):
        for row in run.table.to_pylist():
            name = f"pass@{row['k']}" if row["metric"] == "pass@k" else (
                f"maj@{row['k']}" if row["metric"] == "maj@k" else row["metric"])  # fmt: skip
            if name not in report.metrics:
                continue
            kind = metric_unit(name)
            assert format_value(row["value"], kind) in tokens, (i, row)
            assert format_ci(row["ci_low"], row["ci_high"], kind) in tokens, (i, row)
        assert run.label in text.replace("\n", " ") or run.label[:20] in text, run.label
    if count > 1:
        assert "A = plain · prefix: n = 6 problems × 4 samples" in text
    assert set(report.metrics) >= {"pass@1", "mean_tokens", "frac_finished", "frac_answered"}


def test_labels_escape_nothing_into_markup_and_runs_are_keyed(runs):
    text = rendered(build_report(compare(runs[:3])), width=200)
    assert "pipe|[/x] · prefix" in text, "a name that looks like rich markup is shown as it is"
    assert "C = pipe|[/x] · prefix: n = 6 problems × 2 samples" in text


def test_markdown_is_a_gfm_table(runs):
    comparison = compare(runs[:3])
    report = build_report(comparison, "pass@1,pass@2,mean_tokens")
    text = render(report, "markdown")
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables = [i for i, t in enumerate(tokens) if t.type == "table_open"]
    assert len(tables) == 1
    rows: list[list[str]] = []
    for i in range(tables[0], len(tokens)):
        token = tokens[i]
        if token.type == "table_close":
            break
        if token.type == "tr_open":
            rows.append([])
        if token.type == "inline":
            rows[-1].append(token.content)
    header, *body = rows
    assert [c.replace("\\", "") for c in header] == ["run", "budget", "pass@1", "pass@2", "mean_tokens"]
    assert len(body) == 3 * len(BUDGETS) and all(len(r) == len(header) for r in body)
    rendered_cells = MarkdownIt("commonmark").enable("table").render(text)
    assert "pipe|[/x] · prefix" in rendered_cells and "a_b%c&amp;d#e · prefix" in rendered_cells
    assert "<x>" not in rendered_cells
    values = comparison.summary.query("metric == 'pass@1' and name == 'plain'").set_index("budget")["value"]
    assert [r[2].split(" ")[0] for r in body[: len(BUDGETS)]] == [f"{100 * v:.1f}" for v in values]
    assert "warning:" in text and "samples per problem" in text


def _latex_cells(row: str) -> int:
    return len(re.split(r"(?<!\\)&", row))


def test_latex_is_a_wellformed_tabular(runs, tmp_path):
    report = build_report(compare(runs[:2]), "pass@1,maj@2", train_budget=128, diff=(runs[0], runs[1]))
    text = render(report, "latex")
    assert text.count("\\begin{tabular}") == text.count("\\end{tabular}") == 3
    for block in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", text, re.S):
        spec, body = block
        rows = [line for line in body.splitlines() if line.endswith("\\\\")]
        assert rows and all(_latex_cells(row[:-2]) == len(spec) for row in rows), (spec, rows)
    assert "a\\_b\\%c\\&d\\#e $\\cdot$ prefix" in text
    # Outside comments, every % is escaped: a bare one would comment out the rest of a row.
    assert all(not re.search(r"(?<!\\)%", line) for line in text.splitlines() if not line.startswith("%"))
    if shutil.which("pdflatex"):  # where LaTeX is installed, it must also compile
        document = tmp_path / "t.tex"
        document.write_text("\\documentclass{article}\\begin{document}\n" + text + "\\end{document}\n")
        assert run_cli("pdflatex", "-interaction=nonstopmode", str(document), cwd=tmp_path).returncode == 0


def test_json_and_csv_hold_every_metric_and_the_warnings(runs):
    comparison = compare(runs[1:3])
    report = build_report(comparison, ",".join(comparison.metrics))
    document = json.loads(render(report, "json"))
    assert [r["run"] for r in document["runs"]] == comparison.labels
    assert {r["metric"] for r in document["rows"]} == set(comparison.metrics)
    assert any("samples per problem" in w for w in document["warnings"])
    defaults = build_report(comparison).warnings()
    assert any(w.startswith("pass@k: shown at k=2, the largest k every run has") for w in defaults), defaults
    assert not any("shown at k=" in w for w in report.warnings()), "all metrics shown: no k was reduced"
    rows = list(csv.DictReader(io.StringIO(render(report, "csv"))))
    assert len(rows) == len(comparison.summary) and rows[0]["run"] == comparison.labels[0]
    assert list(rows[0])[:8] == ["run", "name", "model", "dataset", "policy", "forcing", "budget", "metric"]


def test_summary_is_pandas_with_the_clis_names(runs):
    summary = compare(runs[:2]).summary
    assert {"pass@1", "maj@2", "mean_tokens"} <= set(summary["metric"]) and str(summary["k"].dtype) == "Int64"
    assert set(summary["n_per_problem"]) == {4} and set(summary["unit"]) == {"fraction", "tokens"}
    assert list(summary["name"].unique()) == ["plain", "a_b%c&d#e"]


def test_unknown_metric_lists_the_ones_there_are(runs):
    with pytest.raises(UserError, match=r"unknown metric\(s\) pass@3; these runs have pass@1, pass@2, pass@4"):
        build_report(compare(runs[:1]), "pass@1,pass@3")


def test_warnings_say_where_runs_differ(runs, tmp_path):
    edited = []
    settings = [
        {"model": "org/Model-1.7B", "dataset": "aime25", "n": 4, "limit": 4, "problems_total": 30,
         "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 600}, "forcing": {"mode": "e3eval", "wait": 2}},
        {"model": "org/Model-1.7B", "dataset": "demo", "n": 4,
         "sampling": {"temperature": 1.0, "top_p": 0.95, "max_tokens": 600}},
    ]  # fmt: skip
    for i, generation in enumerate(settings):
        copy = tmp_path / f"copy{i}"
        shutil.copytree(runs[i], copy)
        Run.open(copy).write_sections(generation=generation)
        edited.append(copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleSummaryWarning)
        comparison = compare(edited)
    assert comparison.labels == ["Model-1.7B · aime25 · wait=2 · prefix · first 4/30", "Model-1.7B · demo · prefix"]
    said = " ".join(comparison.warnings)
    for what in ("differ in dataset", "differ in sampling temperature", "differ in budget forcing"):
        assert what in said, said
    assert "top_p" not in said and "samples per problem" not in said
    assert comparison.notes == [
        "Model-1.7B · aime25 · wait=2 · prefix · first 4/30 holds part of its dataset: "
        "its numbers describe those problems only"
    ]  # fmt: skip (the subset said once)
    keyed = comparison.warnings_naming(keyed=True)
    assert any("(A: aime25; B: demo)" in line for line in keyed), keyed
    assert comparison.notes_naming(keyed=True)[0].startswith("A holds part of its dataset (first 4/30)")
    summary = comparison.summary
    assert set(summary["forcing"].dropna()) == {"wait=2"} and set(summary["dataset"]) == {"aime25", "demo"}


def test_report_cli_formats_and_out(runs, tmp_path):
    shown = run_cli("e3eval", "report", str(runs[0]), str(runs[1]), "--format", "markdown", "--metrics", "pass@1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("**e3eval report") and "| run | budget | pass@1 |" in shown.stdout
    out = tmp_path / "r.json"
    written = run_cli("e3eval", "report", str(runs[0]), "--format", "json", "--out", str(out))
    assert written.returncode == 0 and f"wrote {out}" in written.stdout, written.stderr
    assert json.loads(out.read_text())["runs"][0]["name"] == "plain"
    refused = run_cli("e3eval", "report", str(runs[0]), "--format", "yaml")
    assert refused.returncode == 2 and "choose one of table, markdown, latex, csv, json" in refused.stderr


def test_score_takes_the_budgets_the_run_knows(runs, tmp_path, tiny_model_dir, tokenizer):
    again = run_cli("e3eval", "score", str(runs[0]), "--workers", "1", "--bootstrap", "0")
    assert again.returncode == 0, again.stderr
    assert "budgets 64, 128, 256, 512: those of the run's last scoring" in again.stdout
    pool = tmp_path / "p.jsonl"
    write_pool(pool, demo_problems()[:2], PoolSpec(samples=1, min_tokens=60, max_tokens=100), tokenizer)
    import_run(ImportConfig(pool, tmp_path / "new", str(tiny_model_dir), token_ids_field="token_ids",
                            sample_field="sample_idx"))  # fmt: skip
    never = run_cli("e3eval", "score", str(tmp_path / "new"))
    assert never.returncode == 2 and "was never scored" in never.stderr and "--budgets" in never.stderr


def test_latex_escapes_pipes_and_angles(runs):
    from e3eval.report_formats import latex_escape

    assert latex_escape("a|b<c>") == r"a\textbar{}b\textless{}c\textgreater{}"
    text = render(build_report(compare(runs[:3]), "pass@1"), "latex")
    assert r"pipe\textbar{}[/x] $\cdot$ prefix" in text
    assert not any("|" in line for line in text.splitlines() if not line.startswith("%"))


def test_formats_state_their_units_and_warn_of_a_reduced_k_only_where_reduced(runs):
    comparison = compare(runs[1:3])
    for layout in ("csv", "json"):
        report = build_report(comparison, layout=layout, train_budget=128, diff=(0, 1))
        assert report.metrics == tuple(comparison.metrics)
        method = " ".join(report.footnotes())
        assert "fractions 0-1" in method and "as a difference of fractions" in method, method
        assert "percentage points" not in method and "% of" not in method
        assert not any("shown at k=" in w for w in report.warnings()), report.warnings()
    document = json.loads(render(build_report(comparison, layout="json"), "json"))
    assert "fractions 0-1" in document["method"][0] and [r["key"] for r in document["runs"]] == ["A", "B"]
    table = build_report(comparison)
    assert any("shown at k=2" in w for w in table.warnings())
    legend = " ".join(table.footnotes())
    assert "values (%; mean_tokens in tokens)" in legend and "share of samples" in legend


def test_diff_reuses_the_tables_keys_and_aligns_its_columns(runs):
    comparison = compare(runs[:3])
    frame = comparison.diff("C", "A", metrics="pass@1")
    assert (frame.attrs["key_a"], frame.attrs["key_b"]) == ("C", "A")
    assert frame.attrs["a"] == comparison.labels[2] and frame.attrs["b"] == comparison.labels[0]
    report = build_report(comparison, "pass@1", diff=("C", "A"))
    text = rendered(report)
    assert "paired difference C − A" in text and "C − A" in text
    body = [line for line in text.splitlines() if "pass@1" in line and line.startswith("│")]
    assert body and all(re.match(r"│ +\d+ │ pass@1 ", line) for line in body[-4:]), body
    markdown = render(report, "markdown")
    assert "| --: | :-- | --: | --: | --: | --: | --: |" in markdown and "**paired difference C − A**" in markdown
    assert "| :-- | --: | --: |" in markdown.splitlines()[3]  # the summary's run column left, numbers right
    assert comparison.diff(0, 1).attrs["key_a"] == "A"
    defaults = comparison.diff("A", "B")  # the table's default metrics, not every pass@k
    assert set(defaults["metric"]) == {m for m in comparison.default_metrics if not m.startswith("maj")}


def test_train_budget_at_the_largest_budget_says_there_is_nothing_above(runs):
    report = build_report(compare(runs[:1]), train_budget=max(BUDGETS))
    assert report.gain is None
    assert any(f"no scored budget above the training budget {max(BUDGETS)}" in w for w in report.warnings())


def test_gain_and_diff_tables_fit_40_columns(runs):
    report = build_report(compare(runs[:2]), "pass@1", train_budget=64, diff=(0, 1))
    text = rendered(report, width=40)
    assert max(len(line) for line in text.splitlines()) <= 40, text
    assert "…" not in text
    for row in report.gain.itertuples():
        assert f"{100 * row.gain:+.1f}" in text


def test_compare_takes_one_path_views_and_lists_and_has_a_short_repr(runs):
    from e3eval.notebook import load_run

    one = compare(str(runs[0]))
    assert one.labels == compare([runs[0]]).labels == compare(load_run(runs[0])).labels
    assert compare([load_run(runs[0]), runs[1]]).labels == compare(runs[:2]).labels
    for wrong in (3, [runs[0], 4.5], None):
        with pytest.raises(UserError, match=r"compare: .* is not a run"):
            compare(wrong)
    shown = repr(compare(runs[:2]))
    assert "A: RunSummary('plain · prefix', n=6 problems × 4" in shown and "B: " in shown
    assert "pyarrow" not in shown and "run_id" not in shown and len(shown) < 600, shown
