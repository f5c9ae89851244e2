"""`e3eval figures`: the spec validator (every problem at once, with its line), rendering into a gallery, the CLI."""

from __future__ import annotations

import csv
import importlib.util
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, run_cli

from e3eval.errors import UserError
from e3eval.figures.family import Family, Input
from e3eval.figures.gallery import render_spec
from e3eval.figures.spec import load_spec


def _load_tables(inputs: Mapping[str, Any], base: Path):
    import pandas as pd

    for path in inputs["tables"]:
        if path.suffix != ".csv":
            raise UserError(f"tables: {path}: not a CSV file")
    frames = [pd.read_csv(path).assign(series=path.stem) for path in inputs["tables"]]
    return pd.concat(frames, ignore_index=True)


def _draw(frame, options: Mapping[str, Any]):
    from matplotlib.figure import Figure

    from e3eval.figures.style import require_rows

    require_rows(frame, "tables")
    figure = Figure(figsize=(4, 3))
    ax = figure.subplots()
    for name, group in frame.groupby("series"):
        ax.plot(group["x"], group["y"] * options.get("scale", 1), label=name)
    ax.set(title=options.get("title", "toy"), xlabel="x (steps)", ylabel="y (%)")
    ax.legend()
    return figure


TOY = Family(
    name="toy",
    paper_figures=("99",),
    summary="A toy line plot for the spec tests.",
    inputs={"tables": Input("paths", "CSV files with x, y"), "extra": Input("path", "a file", required=False)},
    columns=("series", "x", "y"),
    load=_load_tables,
    draw=_draw,
    options={
        "title": Input("text", "title", False),
        "scale": Input("number", "y factor", False),
        "labels": Input("texts", "series names", False),
    },
    describe_n=lambda frame: f"n={frame['series'].nunique()} tables",
)


def toy_families(name: str) -> Family:
    if name != "toy":
        raise UserError(f"unknown figure family {name!r} (known: toy)")
    return TOY


def write_table(path: Path, rows: list[tuple[Any, ...]], header: tuple[str, ...] = ("x", "y")) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


@pytest.fixture
def data(tmp_path: Path) -> Path:
    for step in (2, 1, 3):
        write_table(tmp_path / "data" / f"step{step}.csv", [(i, i * step) for i in range(5)])
    return tmp_path


def test_valid_spec_resolves_globs_in_order_relative_to_root(data: Path):
    spec_path = data / "spec.yaml"
    spec_path.write_text(
        "title: toy figures\nroot: data\nfigures:\n"
        "  - name: a\n    family: toy\n    tables: step*.csv\n    scale: 2\n"
        "  - name: b\n    family: toy\n    tables: [step3.csv, step1.csv]\n    labels: one\n"
    )
    spec = load_spec(spec_path, toy_families)
    assert spec.title == "toy figures" and spec.base == (data / "data").resolve()
    a, b = spec.figures
    assert [p.name for p in a.inputs["tables"]] == ["step1.csv", "step2.csv", "step3.csv"]
    assert [p.name for p in b.inputs["tables"]] == ["step3.csv", "step1.csv"]  # the spec's order kept
    assert (a.line, b.line, a.options, b.options) == (4, 8, {"scale": 2}, {"labels": ["one"]})
    assert a.written == {"tables": "step*.csv"}


def test_every_problem_is_reported_with_its_line(data: Path):
    spec_path = data / "spec.yaml"
    spec_path.write_text(
        "figures:\n"  # 1
        "  - name: unknown-family\n"  # 2
        "    family: heatmapz\n"  # 3
        "  - name: typo\n"  # 4
        "    family: toy\n"  # 5
        "    tables: data/step1.csv\n"  # 6
        "    titel: hello\n"  # 7
        "  - name: missing-input\n"  # 8
        "    family: toy\n"  # 9
        "  - name: bad-paths\n"  # 10
        "    family: toy\n"  # 11
        "    tables: [data/nowhere.csv, data/run-*.csv]\n"  # 12
        "    extra: data/*.csv\n"  # 13
        "  - name: bad-types\n"  # 14
        "    family: toy\n"  # 15
        "    tables: data/step1.csv\n"  # 16
        "    scale: big\n"  # 17
        "    labels: [1, 2]\n"  # 18
        "  - name: typo\n"  # 19
        "    family: toy\n"  # 20
        "    tables: data/step2.csv\n"  # 21
        "colour: red\n"  # 22
    )
    with pytest.raises(UserError) as caught:
        load_spec(spec_path, toy_families)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{spec_path}: 10 problem(s):"
    expected = [
        (3, "unknown figure family 'heatmapz'"),
        (7, "unknown key 'titel' for family toy (did you mean 'title'?)"),
        (8, "missing required input 'tables'"),
        (12, "'data/nowhere.csv' does not exist"),
        (12, "glob 'data/run-*.csv' matches nothing"),
        (13, "matches 3 paths; this input takes one"),
        (17, "scale: must be a number, not 'big'"),
        (18, "labels: must be a list of strings, not [1, 2]"),
        (19, "figure name 'typo' already used on line 4"),
        (22, "unknown key 'colour'"),
    ]
    for line, text in expected:
        assert any(x.strip().startswith(f"{spec_path}:{line}: ") and text in x for x in lines), (line, text, lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("figures:\n  - &a {name: x, family: toy}\n  - *a\n", ":3: not valid YAML (alias *a: aliases are not allowed"),
        ("figures: [\n", "not valid YAML"),
        ("- just\n- a list\n", ":1: a figure spec is a mapping"),
        ("title: t\n", ":1: figures must be a non-empty list"),
    ],
)
def test_malformed_specs(tmp_path: Path, text: str, message: str):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(text)
    with pytest.raises(UserError, match=r"spec\.yaml") as caught:
        load_spec(spec_path, toy_families)
    assert message in str(caught.value)


def test_wrong_columns_and_empty_data_name_the_line_and_file(tmp_path: Path):
    write_table(tmp_path / "wrong.csv", [(1, 2)], header=("x", "value"))
    write_table(tmp_path / "empty.csv", [])
    (tmp_path / "table.txt").write_text("x y\n")
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(
        "figures:\n  - name: w\n    family: toy\n    tables: wrong.csv\n"
        "  - name: e\n    family: toy\n    tables: [empty.csv]\n"
        "  - name: t\n    family: toy\n    title: text\n    tables: table.txt\n"
    )
    spec = load_spec(spec_path, toy_families)
    with pytest.raises(UserError) as caught:
        render_spec(spec, tmp_path / "out", "e3eval figures spec.yaml --out out", families=toy_families)
    message = str(caught.value)
    assert (
        f"{spec_path}:2: figure 'w': the data read from tables: {tmp_path / 'wrong.csv'} has no column(s) y" in message
    )
    assert f"{spec_path}:5: figure 'e': no rows in the data read from tables: {tmp_path / 'empty.csv'}" in message
    # A loader's error that names an input points at that input's line.
    assert f"{spec_path}:11: figure 't': tables: {tmp_path / 'table.txt'}: not a CSV file" in message
    assert not (tmp_path / "out").exists()  # nothing drawn before the data is all there


def test_render_writes_figures_and_an_escaped_gallery(data: Path):
    spec_path = data / "spec.yaml"
    spec_path.write_text(
        "title: 'Toy <b>gallery</b>'\nfigures:\n"
        "  - name: lines\n    family: toy\n    tables: data/step*.csv\n    title: 'x < y & <script>alert(1)</script>'\n"
        "    caption: 'Caption with <img src=x onerror=alert(1)> and *stars*'\n"
        "  - name: second\n    family: toy\n    tables: data/step1.csv\n"
    )
    out = data / "out dir"
    command = "e3eval figures spec.yaml --out 'out dir'"
    entries = render_spec(load_spec(spec_path, toy_families), out, command, families=toy_families)
    assert [e.name for e in entries] == ["lines", "second"]
    assert entries[0].n == "n=3 tables" and entries[0].paper_figures == ("99",)
    for name in ("lines.png", "lines.pdf", "second.png", "second.pdf", "index.html", "README.md"):
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    assert "<script>" not in page and "<img src=x" not in page and "<b>gallery" not in page
    assert "x &lt; y &amp; &lt;script&gt;" in page and '<img src="lines.png"' in page
    assert "Fig. 99" in page and "n=3 tables" in page and "data/step*.csv" in page
    assert "e3eval figures spec.yaml --out &#x27;out dir&#x27;" in page
    readme = (out / "README.md").read_text()
    assert "![x &lt; y &amp; &lt;script&gt;alert(1)&lt;/script&gt;](lines.png)" in readme
    assert "\\*stars\\*" in readme and f"```\n{command}\n```" in readme


def test_draw_errors_leave_the_other_figures(data: Path):
    write_table(data / "header-only.csv", [(1, 2)])
    spec_path = data / "spec.yaml"
    # labels=[] is refused by the validator; a draw-time UserError comes from scale=0 here instead.
    spec_path.write_text(
        "figures:\n  - name: good\n    family: toy\n    tables: data/step1.csv\n"
        "  - name: bad\n    family: toy\n    tables: data/step2.csv\n    scale: 0\n"
    )

    def draw(frame, options):
        if options.get("scale") == 0:
            raise UserError("scale 0 leaves nothing to see")
        return _draw(frame, options)

    family = Family(**{**TOY.__dict__, "draw": draw})
    with pytest.raises(UserError, match=r"spec.yaml:5: figure 'bad': scale 0 leaves nothing to see"):
        render_spec(load_spec(spec_path, toy_families), data / "out", "cmd", families=lambda _: family)
    assert (data / "out" / "good.png").is_file() and not (data / "out" / "bad.png").exists()
    assert "good" in (data / "out" / "index.html").read_text()


def _has_module(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def test_cli_renders_a_spec_end_to_end(tmp_path: Path):
    if not _has_module("e3eval.figures.bigram_curves"):
        pytest.skip("figures.bigram not written yet")
    from e3eval.figures.registry import get_family
    from e3eval.train.bigram_sim import BigramConfig, train, write_history

    inputs = get_family("bigram").inputs
    key = next(k for k, v in inputs.items() if v.required)
    for algo in ("grpo", "grpo_mask"):
        config = BigramConfig(algo=algo, iterations=5, group_size=8, groups=8)
        write_history(train(config), tmp_path / f"{algo}.csv", config)
    (tmp_path / "spec.yaml").write_text(f"figures:\n  - name: bigram\n    family: bigram\n    {key}: '*.csv'\n")
    proc = run_cli("e3eval", "figures", "spec.yaml", "--out", "figs", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for name in ("bigram.png", "bigram.pdf", "index.html", "README.md"):
        assert (tmp_path / "figs" / name).stat().st_size > 0
    assert "e3eval figures spec.yaml --out figs" in (tmp_path / "figs" / "index.html").read_text()


def test_cli_errors_exit_2_naming_the_line(tmp_path: Path):
    (tmp_path / "spec.yaml").write_text("figures:\n  - name: a\n    family: nope\n")
    proc = run_cli("e3eval", "figures", "spec.yaml", "--out", "figs", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "spec.yaml:3: figure 'a': unknown figure family 'nope' (known: training, accuracy" in proc.stderr
    proc = run_cli("e3eval", "figures", "--out", "figs", cwd=tmp_path)
    assert proc.returncode == 2 and "exactly one of" in proc.stderr


def test_cli_list_names_every_family():
    from e3eval.figures.registry import FAMILY_MODULES

    missing = [name for name, module in FAMILY_MODULES.items() if not _has_module(module)]
    if missing:
        pytest.skip(f"families not written yet: {', '.join(missing)}")
    proc = run_cli("e3eval", "figures", "--list")
    assert proc.returncode == 0, proc.stderr
    for name in FAMILY_MODULES:
        assert name in proc.stdout


def test_paper_data(tmp_path: Path, shared_data: Path):
    if not _has_module("e3eval.figures.paper"):
        pytest.skip("figures.paper not written yet")
    bin_dir = Path(sys.executable).parent
    env = {"COLUMNS": "200", "PATH": str(bin_dir), "E3EVAL_PAPER_DATA": str(shared_data / "e3-paper")}
    proc = subprocess.run([str(bin_dir / "e3eval"), "figures", "--paper-data", "--out", str(tmp_path / "paper")],
                          capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "paper" / "index.html").read_text()
    for number in ("7", "9", "10"):
        assert f"Fig. {number}" in page
    assert len(list((tmp_path / "paper").glob("*.png"))) >= 3


def test_paper_data_folder_is_found_beside_the_checkout(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from e3eval.commands.figures import paper_data_dir

    monkeypatch.setenv("E3EVAL_PAPER_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"E3EVAL_PAPER_DATA=.*nowhere: not a folder"):
        paper_data_dir()
    monkeypatch.delenv("E3EVAL_PAPER_DATA")
    beside = REPO.parent / "shared" / "data" / "e3-paper"
    if beside.is_dir():
        assert paper_data_dir() == beside
    else:
        monkeypatch.chdir(tmp_path)
        with pytest.raises(UserError, match="no published tables"):
            paper_data_dir()


def _example_figures(name: str) -> list[dict[str, Any]]:
    from e3eval.specfile import read_spec

    data, _ = read_spec(REPO / "figures" / "examples" / f"{name}.yaml", "figure spec", 256 * 1024)
    return data["figures"]


def test_example_specs_give_every_paper_figure_a_layout():
    """Each family's example spec has a figure named after every paper figure the family lists (`fig04a-...` for
    "4a"), and all.yaml holds exactly the per-family specs' figures, so rendering those renders all.yaml's."""
    from e3eval.figures.registry import all_families

    examples = REPO / "figures" / "examples"
    union = []
    for name, family in all_families().items():
        figures = _example_figures(name)
        assert {f["family"] for f in figures} == {name}, name
        numbered = {m.group(1) for f in figures if (m := re.fullmatch(r"fig0*(\d+[a-z]?)-[\w.-]+", f["name"]))}
        missing = [number for number in family.paper_figures if number not in numbered]
        assert not missing, f"{name}.yaml has no figure for paper Fig. {', '.join(missing)}"
        text = (examples / f"{name}.yaml").read_text()
        assert all(f"# Fig. {number[:-1] if number[-1].isalpha() else number}" in text for number in numbered), name
        union += figures
    assert sorted(map(repr, _example_figures("all"))) == sorted(map(repr, union))
    assert not (examples / "make_data.py").exists(), "the example data is made by `e3eval figures --examples`"


@pytest.mark.slow
def test_example_specs_render_on_the_example_data(tmp_path: Path):
    """The README's recipe: `e3eval figures --examples DIR` writes the data and the specs beside it, and every
    per-family spec renders every figure; the repository's specs draw the same data with `--root DIR`; all.yaml (the
    same figures, checked above) resolves every input without drawing them twice."""
    data = tmp_path / "data"
    made = run_cli("e3eval", "figures", "--examples", str(data))
    assert made.returncode == 0, made.stderr
    assert f"next: e3eval figures {data / 'all.yaml'} --out" in " ".join(made.stdout.split())
    assert sorted(p.name for p in data.glob("*.yaml")) == sorted(
        p.name for p in (REPO / "figures/examples").glob("*.yaml")
    )
    again = run_cli("e3eval", "figures", "--examples", str(data))  # a folder it wrote: made again, nothing refused
    assert again.returncode == 0, again.stderr
    # A file the user edited since is never overwritten: the rerun refuses and names it; others' files are kept.
    (data / "mine.txt").write_text("mine")
    edited = (data / "accuracy.yaml").read_text() + "# my edit\n"
    (data / "accuracy.yaml").write_text(edited)
    kept = run_cli("e3eval", "figures", "--examples", str(data))
    assert kept.returncode == 2 and "accuracy.yaml changed since e3eval wrote" in kept.stderr, kept.stderr
    assert (data / "accuracy.yaml").read_text() == edited and (data / "mine.txt").read_text() == "mine"
    for spec in sorted(data.glob("*.yaml")):
        assert "root:" not in spec.read_text() and f"--examples {data}" in spec.read_text()
        loaded = load_spec(spec)
        repository = load_spec(REPO / "figures" / "examples" / spec.name, root=data)
        assert [f.inputs for f in loaded.figures] == [f.inputs for f in repository.figures]
        if spec.name == "all.yaml":
            assert len(loaded.figures) == len(_example_figures("all"))
            continue
        entries = render_spec(loaded, tmp_path / "out" / spec.stem, f"e3eval figures {spec}")
        assert [e.name for e in entries] == [f["name"] for f in _example_figures(spec.stem)]
        assert all((tmp_path / "out" / spec.stem / f"{e.name}.png").is_file() for e in entries)


def test_examples_and_root_refuse_what_they_should(tmp_path: Path):
    """--examples never writes into a folder e3eval did not make; --root needs a spec and a folder."""
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    refused = run_cli("e3eval", "figures", "--examples", str(foreign))
    assert refused.returncode == 2 and "--examples did not write" in refused.stderr, refused.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    under_file = run_cli("e3eval", "figures", "--examples", str(foreign / "notes.txt" / "sub"))
    assert under_file.returncode == 2 and "is a file, not a folder" in under_file.stderr, under_file.stderr
    assert "Traceback" not in under_file.stderr
    alone = run_cli("e3eval", "figures", "--root", str(tmp_path), "--paper-data", "--out", str(tmp_path / "f"))
    assert alone.returncode == 2 and "--root DIR goes with a SPEC.yaml" in alone.stderr, alone.stderr
    missing = run_cli("e3eval", "figures", str(REPO / "figures/examples/chained.yaml"), "--root",
                      str(tmp_path / "nowhere"), "--out", str(tmp_path / "f"))  # fmt: skip
    assert missing.returncode == 2 and "--root" in missing.stderr and "not a folder" in missing.stderr
    assert "e3eval figures --examples" in missing.stderr, "says which command makes the data"
    both = run_cli("e3eval", "figures", "--examples", str(tmp_path / "ex"), "--out", str(tmp_path / "f"))
    assert both.returncode == 2 and "--examples DIR writes data and specs, no figures" in both.stderr
    assert not (tmp_path / "ex").exists()
