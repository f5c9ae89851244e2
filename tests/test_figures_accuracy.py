"""The accuracy and chained figure families, the shared style and the published-table figures, on real inputs.

Runs are real: synthetic pools imported with the tiny model's tokenizer and scored with math-verify (one of them with
failed requests); the published tables are the authors' CSVs under ../shared/data/e3-paper. Figures are checked
by their artists (axes, titles, lines, CI bands, legend texts) and by the files written.
"""

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import PoolSpec, write_pool
from e3eval.errors import UserError
from e3eval.figures import accuracy, chained
from e3eval.figures.paper import paper_figures
from e3eval.figures.style import budget_ticks, heatmap_cmap, line_style, new_figure, save, shade_extrapolation
from e3eval.ingest import ImportConfig, import_run
from e3eval.report import compare
from e3eval.score import ScoreConfig, score_run

BUDGETS = (128, 256, 512)


def _scored_run(root: Path, name: str, model_dir: Path, tokenizer, failed: int = 0, seed: int = 0) -> Path:
    pool = root / f"{name}.jsonl"
    write_pool(pool, demo_problems()[:4], PoolSpec(samples=4, max_tokens=600, seed=seed), tokenizer)
    records = [json.loads(line) for line in pool.read_text().splitlines()]
    for record in records[:failed]:
        record["error"] = "HTTP 500 from the server"
    pool.write_text("".join(json.dumps(r) + "\n" for r in records))
    run = root / name
    import_run(ImportConfig(pool, run, str(model_dir), token_ids_field="token_ids", sample_field="sample_idx",
                            finish_reason_field="finish_reason", name=name))  # fmt: skip
    score_run(run, ScoreConfig(budgets=BUDGETS, workers=1, resamples=100))
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, tokenizer) -> list[Path]:
    root = tmp_path_factory.mktemp("accuracy-runs")
    return [
        _scored_run(root, "clean", tiny_model_dir, tokenizer, seed=1),
        _scored_run(root, "flaky", tiny_model_dir, tokenizer, failed=2, seed=2),
    ]


@pytest.fixture(scope="module")
def paper_dir(shared_data) -> Path:
    return shared_data / "e3-paper"


def _legends(figure) -> list:
    """The figure's legends and its subfigures' (one per panel when the panels order their series differently)."""
    return [*figure.legends, *(legend for sub in figure.subfigs for legend in sub.legends)]


def _legend_texts(figure) -> list[str]:
    """The texts of the figure's first legend."""
    return [t.get_text() for t in _legends(figure)[0].get_texts()]


def test_frame_from_runs_carries_n_and_failures(runs):
    frame = accuracy.frame_from_runs(runs)
    assert set(accuracy.COLUMNS) <= set(frame.columns)
    assert list(dict.fromkeys(frame["series"])) == ["clean", "flaky"]
    assert sorted(frame["budget"].unique()) == list(BUDGETS)
    assert set(frame["metric"]) == {"pass@k", "maj@k"}
    clean, flaky = frame[frame["series"] == "clean"], frame[frame["series"] == "flaky"]
    assert set(clean["n"]) == {4} and set(clean["n_samples"]) == {16}
    assert set(flaky["n_samples"]) == {14} and set(flaky["n_failed"]) == {2}
    assert (clean["flag"] == "").all() and (flaky["flag"].str.contains("failed")).all()
    summary = compare([runs[0]]).frame()
    want = summary[summary["metric"] == "pass@1"].set_index("budget")["value"]
    got = clean[(clean["metric"] == "pass@k") & (clean["k"] == 1)].set_index("budget")["value"]
    assert got.to_dict() == want.to_dict(), "values come from the summaries, never recomputed"


def test_accuracy_figure_from_runs(runs, tmp_path):
    frame = accuracy.FAMILY.load({"runs": runs}, tmp_path)
    figure = accuracy.draw(frame, {"metrics": ["pass@1", "pass@2"], "train_budget": 256, "title": "two runs",
                                   "labels": {"clean": "clean run"}})  # fmt: skip
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["pass@1", "pass@2 (unbiased estimator)"]
    assert figure.get_suptitle() == "two runs"
    for ax in panels:
        assert len(ax.get_lines()) == 2 + 1  # two series and the training-budget line
        assert len(ax.collections) == 2  # one CI band per series
        assert ax.get_xlabel() == "test-time budget (tokens)" and ax.get_ylabel().endswith("(%)")
        assert [t.get_text() for t in ax.get_xticklabels()] == ["128", "256", "512"]
        assert any("extrapolation" in t.get_text() for t in ax.texts)
        assert len(ax.patches) == 1  # the shaded region
    legend = _legend_texts(figure)
    assert len(legend) == 2
    assert any(t.startswith("clean run (n=4\u00d74)") for t in legend)
    # Without a `labels` entry a run is labelled as everywhere (`labels.run_label`): an imported run by its name.
    assert any("flaky · prefix (n=4 problems, 14 samples)" in t and "2 failed left out" in t for t in legend), legend
    assert any("flaky" in t.get_text() and "failed" in t.get_text() for t in figure.texts), "flag in the footnote"
    # The flaky run has 3 samples for some problems: its pass@4 is refused in the summary, so no curve is drawn.
    refused = accuracy.draw(frame, {"metrics": ["pass@4"]})
    (ax,) = [ax for ax in refused.axes if ax.get_title()]
    assert len(ax.get_lines()) == 1 and len(_legend_texts(refused)) == 1
    paths = save(figure, tmp_path / "fig" / "accuracy.v1")
    assert [p.name for p in paths] == ["accuracy.v1.png", "accuracy.v1.pdf"]
    assert paths[0].read_bytes()[:4] == b"\x89PNG" and paths[0].stat().st_size > 20_000
    assert paths[1].read_bytes()[:4] == b"%PDF"
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["accuracy.v1.pdf", "accuracy.v1.png"]


def test_draw_sweep_writes_the_run_plot(runs, tmp_path):
    comparison = compare([runs[1]])
    paths = accuracy.draw_sweep(comparison, tmp_path / "figures" / "sweep", 256, "flaky run")
    assert [p.name for p in paths] == ["sweep.png", "sweep.pdf"] and all(p.stat().st_size > 5_000 for p in paths)
    pairs = accuracy.draw_sweep([(r.name, r.table) for r in comparison.runs], tmp_path / "pairs", None, "")
    assert pairs[0].is_file()


def test_paper_table_frame(paper_dir):
    frame = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv", ["2025"])
    assert frame["series"].nunique() == 10
    assert sorted(frame["budget"].unique()) == [4096, 8192, 16384, 32768]
    assert sorted(frame["k"].unique()) == [1, 8]
    assert set(frame["n"]) == {30} and set(frame["n_samples"]) == {480}
    pass1 = frame[frame["k"] == 1]["value"].to_numpy()
    # 30 problems x 16 samples: every pass@1 is a whole number of correct samples out of 480.
    assert np.allclose(pass1 * 480, np.round(pass1 * 480), atol=1e-4)
    assert (frame["ci_low"] <= frame["value"] + 1e-9).all() and (frame["value"] <= frame["ci_high"] + 1e-9).all()
    assert "25% of the value" in frame.attrs["note"]
    both = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv")
    assert both["series"].nunique() == 20 and any(s.endswith("(AIME 2023/24)") for s in both["series"])
    assert set(both.loc[both["series"].str.endswith("(AIME 2023/24)"), "n"]) == {60}


def test_paper_table_figure_draws_ci_columns(paper_dir, tmp_path):
    frame = accuracy.FAMILY.load({"table": paper_dir / "aime_budget_table.csv", "years": ["2025"]}, tmp_path)
    figure = accuracy.draw(frame, {"metrics": ["pass@8"]})
    (ax,) = [ax for ax in figure.axes if ax.get_title()]
    assert ax.get_title() == "pass@8 (unbiased estimator)"
    assert len(ax.containers) == 10  # one error-bar set per model: ten bands would be unreadable
    bars = ax.containers[0]
    assert len(bars.lines[2][0].get_segments()) == 4  # an interval at each budget
    assert len(_legend_texts(figure)) == 10
    assert any("_err_ columns are 25% of the value" in " ".join(t.get_text().split()) for t in figure.texts)
    banded = accuracy.draw(frame, {"metrics": ["pass@1"], "ci": "band"})
    assert len(next(ax for ax in banded.axes if ax.get_title()).collections) == 10


def test_accuracy_refuses_empty_and_unknown(runs, paper_dir, tmp_path):
    csv = paper_dir / "aime_budget_table.csv"
    with pytest.raises(UserError, match="no rows for years 1999"):
        accuracy.frame_from_paper_table(csv, ["1999"])
    with pytest.raises(UserError, match="no rows to draw"):
        accuracy.draw(accuracy.frame_from_summaries([]), {})
    with pytest.raises(UserError, match="at least one run"):
        accuracy.frame_from_runs([])
    with pytest.raises(UserError, match=r"either runs .* or table"):
        accuracy.FAMILY.load({"runs": runs, "table": csv}, tmp_path)
    frame = accuracy.frame_from_runs(runs[:1])
    with pytest.raises(UserError, match=r"no pass@16 rows to draw \(the data has .*pass@1"):
        accuracy.draw(frame, {"metrics": ["pass@16"]})
    with pytest.raises(UserError, match="not pass@K or maj@K"):
        accuracy.draw(frame, {"metrics": ["accuracy"]})
    bad = tmp_path / "bad.csv"
    bad.write_text("model,pass_at_1_4096\nm,0.5\n")
    with pytest.raises(UserError, match=r"bad.csv: no 'years' column"):
        accuracy.frame_from_paper_table(bad)


def test_chained_heatmaps(paper_dir, tmp_path):
    frame = chained.FAMILY.load({"table": [paper_dir / "chained_asymmetry_grids.csv"]}, tmp_path)
    assert list(frame.columns) == list(chained.COLUMNS) and len(frame) == 60
    figure = chained.draw(frame, {})
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["step 0", "step 30", "step 60"]
    for ax in panels:
        (image,) = ax.get_images()
        assert image.get_array().shape == (4, 5)
        assert list(ax.get_yticks()) == [0, 1, 2, 3]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "8", "16"]
        assert len(ax.texts) == 20
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["16", "8", "4", "2"]  # C rises to the top
    top_right = panels[2].get_images()[0].get_array()[0, -1]
    assert top_right == pytest.approx(69.4978, abs=1e-3)  # step 60, C=16, k=16
    assert any(ax.get_ylabel() == "pass@k (%)" for ax in figure.axes)  # the shared colour bar
    # The same grid under the tidy names, as Parquet, with an n column, draws the same way and shows n.
    tidy = frame.assign(n=64)
    pq.write_table(pa.Table.from_pandas(tidy), tmp_path / "grid.parquet")
    again = chained.draw(chained.frame_from_table(tmp_path / "grid.parquet"), {"title": "mine"})
    assert next(ax.get_title() for ax in again.axes if ax.get_title()) == "step 0 (n=64)"
    assert again.get_suptitle() == "mine"


def test_chained_refuses_bad_tables(paper_dir, tmp_path):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("step,k,value\n0,1,0.5\n")
    with pytest.raises(UserError, match=r"wrong.csv: no column\(s\) chained"):
        chained.frame_from_table(wrong)
    empty = tmp_path / "empty.csv"
    empty.write_text("train_step,chained_asymmetries,k,pass_at_k\n")
    with pytest.raises(UserError, match=r"empty\.csv: no rows"):
        chained.frame_from_table(empty)
    csv = paper_dir / "chained_asymmetry_grids.csv"
    with pytest.raises(UserError, match="more than one row for step 0"):
        chained.frame_from_table([csv, csv])
    with pytest.raises(UserError, match="no rows to draw from the chained"):
        chained.draw(pd.DataFrame(columns=list(chained.COLUMNS)), {})


def test_style_budget_axis_and_extrapolation(tmp_path):
    figure, axes = new_figure()
    ax = axes[0][0]
    ax.plot([4096, 8192, 16384, 40960], [1, 2, 3, 4])
    budget_ticks(ax, [4096, 8192, 16384, 40960])
    shade_extrapolation(ax, 16384)
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["4k", "8k", "16k", "40k"]
    assert ax.get_xlim()[1] > 40960 and len(ax.patches) == 1
    with pytest.raises(UserError, match="cannot write"):
        (tmp_path / "file").write_text("x")
        save(figure, tmp_path / "file" / "fig")


def test_paper_figures_match_the_paper(paper_dir, tmp_path):
    made = paper_figures(tmp_path, paper_dir.parent)
    assert [f.name for f in made] == ["fig07-aime2025-accuracy", "fig09-aime2025-pass1", "fig10-chained-asymmetries"]
    for figure in made:
        assert all(p.is_file() and p.stat().st_size > 20_000 for p in figure.paths)
        assert figure.inputs[0].parent == paper_dir and figure.n
    fig7, fig9, fig10 = made
    assert "25% of the value" in fig7.caption and "25% of the value" in fig9.caption
    # The flattening the captions of Fig. 7 and 9 describe: the median gain 16k->32k is well below 8k->16k.
    gains = [float(g) for g in re.findall(r"\u2192\d+k ([+-]\d+\.\d)", fig9.caption)]
    assert len(gains) == 3
    assert gains[2] < 1.0 < gains[1] < gains[0]
    assert "MiniMath-R1-1.5B" in fig9.caption
    assert "step 60: C=16 x k=1: 46.7%" in fig10.caption
    with pytest.raises(UserError, match="published tables"):
        paper_figures(tmp_path, tmp_path)


def test_paper_legend_order_follows_the_last_budget(paper_dir):
    frame = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv", ["2025"])
    legend = [t.split(" (n=")[0] for t in _legend_texts(accuracy.draw(frame, {"metrics": ["pass@1"]}))]
    last = frame[(frame["k"] == 1) & (frame["budget"] == 32768)].sort_values("value", ascending=False)
    assert legend == list(last["series"])
    assert legend[0] == "DeepSeek-R1-Distill-Qwen-32B" and legend[-1] == "MiniMath-R1-1.5B"


# The look a paper needs: extrapolation under the bands, one y range, identifiable series, n once ----------------


def _data_points(ax) -> np.ndarray:
    """Every drawn point of the curves and CI bands, in display coordinates."""
    points = [line.get_xydata() for line in ax.get_lines() if line.get_transform() is ax.transData]
    points += [path.vertices for c in ax.collections for path in c.get_paths()]
    return ax.transData.transform(np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in points]))


def test_extrapolation_region_lies_under_the_bands_and_its_label_clear_of_the_curves(runs):
    frame = accuracy.frame_from_runs(runs)
    figure = accuracy.draw(frame, {"metrics": ["pass@1", "pass@4"], "train_budget": 256, "ci": "band"})
    figure.draw_without_rendering()
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert len(panels) == 2
    assert panels[0].get_ylim() == panels[1].get_ylim(), "panels of one quantity (accuracy, %) share a y range"
    for ax in panels:
        (region,) = ax.patches
        assert region.get_zorder() < min(c.get_zorder() for c in ax.collections), "the grey region is under the bands"
        assert region.get_zorder() < min(g.get_zorder() for g in ax.get_xgridlines())
        (label,) = [t for t in ax.texts if "extrapolation" in t.get_text()]
        assert "train budget 256" in label.get_text(), "the label names the training budget"
        box = label.get_window_extent()
        inside = ax.get_window_extent()
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
        hits = [(x, y) for x, y in _data_points(ax) if box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1]
        assert not hits, f"the extrapolation label covers drawn data at {hits[:3]}"


def test_many_series_are_identifiable_in_greyscale_with_n_once_and_a_legend_per_panel(paper_dir, tmp_path):
    frame = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv", ["2025"])
    figure = accuracy.draw(frame, {"metrics": ["pass@1", "pass@8"], "title": "Fig. 7"})
    panels = [ax for ax in figure.axes if ax.get_title()]
    assert panels[0].get_ylim() == panels[1].get_ylim()
    legends = _legends(figure)
    assert len(legends) == 2, "pass@1 and pass@8 end in different orders: a legend per panel"
    for legend, k in zip(legends, (1, 8), strict=True):
        names = [t.get_text() for t in legend.get_texts()]
        last = frame[(frame["k"] == k) & (frame["budget"] == 32768)].sort_values("value", ascending=False)
        assert names == list(last["series"]), f"legend of pass@{k} in that panel's final order"
        styles = [(h.get_color(), h.get_marker(), h.get_linestyle()) for h in legend.legend_handles]
        assert len(set(styles)) == 10 and len({c for c, _, _ in styles}) == 10, "ten colours"
        assert len({(m, ls) for _, m, ls in styles}) == 10, "marker + line style tell them apart in greyscale"
    # n is the same for all ten (30 problems x 16 samples): said once, not in every entry.
    texts = [t.get_text() for legend in legends for t in legend.get_texts()]
    assert not any("n=" in t for t in texts)
    notes = " ".join(t.get_text() for t in figure.texts)
    assert notes.count("n=30 problems \u00d7 16 samples per point") == 1
    paths = save(figure, tmp_path / "fig7")
    assert paths[0].stat().st_size > 20_000
    # Saving pins each legend where the layout put it: above the footnote, not stretched down onto it.
    figure.draw_without_rendering()
    footnote_box = figure.texts[-1].get_window_extent()
    assert all(legend.get_window_extent().y0 > footnote_box.y1 for legend in legends)
    assert len({line_style(i, 12)["marker"] + line_style(i, 12)["linestyle"] for i in range(12)}) == 12


def test_one_shared_legend_says_n_in_its_title(runs, paper_dir):
    frame = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv", ["2025"])
    (legend,) = _legends(accuracy.draw(frame, {"metrics": ["pass@1"]}))
    assert legend.get_title().get_text() == "n=30 problems \u00d7 16 samples per point"
    assert not any("n=" in t.get_text() for t in legend.get_texts())
    # One series says its n in its own entry (once either way); two panels fit a paper's width.
    figure = accuracy.draw(accuracy.frame_from_runs(runs[:1]), {"metrics": ["pass@1", "pass@2"]})
    (legend,) = _legends(figure)
    assert legend.get_title().get_text() == "" and legend.get_texts()[0].get_text().endswith("(n=4\u00d74)")
    assert figure.get_figwidth() <= 7.0 + 1e-9, "a two-panel figure is laid out for a paper's width"


def test_a_figure_titled_by_its_metric_has_no_second_title(paper_dir):
    frame = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv", ["2025"])
    figure = accuracy.draw(frame, {"metrics": ["pass@1"], "title": "pass@1 on AIME 2025 (paper Fig. 9)"})
    (ax,) = figure.axes
    assert ax.get_title() == "" and ax.get_ylabel() == "pass@1 (%)"
    untitled = accuracy.draw(frame, {"metrics": ["pass@1"], "title": "AIME 2025"})
    assert untitled.axes[0].get_title() == "pass@1"


def test_heatmap_colours_have_no_near_white_level(paper_dir, tmp_path):
    from matplotlib.colors import to_rgb

    from e3eval.figures.attempt_probes import _colors

    def lightness(colour) -> float:
        r, g, b = to_rgb(colour)
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    assert lightness(heatmap_cmap()(0.0)) < 0.9, "the lowest heat-map level must not vanish into the page"
    assert max(lightness(c) for c in _colors(6)) < 0.75, "the lightest checkpoint line must show on white"
    frame = chained.FAMILY.load({"table": [paper_dir / "chained_asymmetry_grids.csv"]}, tmp_path)
    image = next(ax for ax in chained.draw(frame, {}).axes if ax.get_title()).get_images()[0]
    assert lightness(image.get_cmap()(0.0)) < 0.9


def test_hostile_specs_stay_laid_out_for_a_paper(paper_dir, runs):
    """Five metrics go in rows of three (not one 16-inch row), a long label wraps instead of widening the figure,
    twelve series keep distinct colour-marker pairs, and a `labels` key naming no run is an error."""
    from test_figures_layout import layout_problems

    from e3eval.figures.style import line_style

    frame = accuracy.frame_from_paper_table(paper_dir / "aime_budget_table.csv", ["2025"])
    grid = accuracy.draw(frame, {"metrics": ["pass@1", "pass@8", "pass@1", "pass@8", "pass@1"]})
    assert not layout_problems(grid), layout_problems(grid)
    assert len({round(ax.get_position().y0, 2) for ax in grid.axes if ax.axison}) == 2, "two rows"
    long = "a label with many words that is long enough that it must wrap somewhere in a seven inch legend"
    runs_frame = accuracy.frame_from_runs(runs[:1])
    one = accuracy.draw(runs_frame, {"labels": {runs[0].name: long}})
    assert not layout_problems(one), layout_problems(one)
    assert any("\n" in t for t in _legend_texts(one)), "the long label wraps"
    pairs = {(style["color"], style["marker"]) for style in (line_style(i, 12) for i in range(12))}
    assert len(pairs) == 12
    with pytest.raises(UserError, match=r"'no-such-run' name\(s\) no run drawn"):
        accuracy.draw(runs_frame, {"labels": {"no-such-run": "x"}})
