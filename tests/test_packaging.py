"""How e3eval is installed and layered: the sibling folders `train/`, `analysis/` and `figures/` are the packages
`e3eval.train`, `e3eval.analysis` and `e3eval.figures`, so a research folder holding its own `train.py`, `analysis.py`
or `figures.py` (the working directory comes first on `sys.path`) changes nothing; and the core imports one way.
"""

import ast
import subprocess
import sys
from pathlib import Path

import conftest

ROOT = Path(__file__).resolve().parent.parent
E3EVAL = str(Path(sys.executable).parent / "e3eval")


def _shadowing_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "research"
    folder.mkdir()
    for name in ("train", "analysis", "figures"):
        (folder / f"{name}.py").write_text(f"raise SystemExit('the user\\'s {name}.py was imported')\n")
    return folder


def test_user_files_named_like_the_siblings_change_nothing(tmp_path):
    folder = _shadowing_folder(tmp_path)
    code = (
        "import e3eval, e3eval.figures.accuracy, e3eval.analysis.steps, e3eval.commands.e3train\n"
        "from e3eval.figures.registry import all_families\n"
        "print(len(all_families()), e3eval.figures.accuracy.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[1] == "e3eval.figures.accuracy"
    # A sweep plot from there: the synthetic demo scores a pool and draws it.
    demo = conftest.run_cli(E3EVAL, "demo", "--synthetic", "--out", str(tmp_path / "demo"), "--workers", "1",
                            cwd=folder)  # fmt: skip
    assert demo.returncode == 0, demo.stderr
    assert (tmp_path / "demo" / "synthetic" / "figures" / "sweep.png").stat().st_size > 5_000
    # Package data is read from the subpackages too (the math preset's lexicon is e3eval.analysis's).
    traces = folder / "traces.jsonl"
    traces.write_text('{"id": "a", "response": "Let me try x = 2. Wait, let me verify: 2 + 2 = 4.", "correct": true}\n')
    counted = conftest.run_cli(E3EVAL, "count-asymmetries", str(traces), "--workers", "1", cwd=folder)
    assert counted.returncode == 0, counted.stderr


def _imports(path: Path) -> set[str]:
    """The modules `path` imports (absolute names), at any depth of the file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_imports_run_one_way():
    """The core never imports the figures or training layers (the CLI, `e3eval/commands/`, composes them), and
    the analysis layer only through its declared seam (`e3eval/segmentation.py`); figures and training never import
    each other; no module imports the siblings under their bare folder names."""
    for path in sorted((ROOT / "e3eval").rglob("*.py")):
        imported = _imports(path)
        bare = {m for m in imported if m.split(".")[0] in ("train", "analysis", "figures")}
        assert not bare, f"{path}: bare sibling imports {bare}"
        if "commands" not in path.parts and path.name != "cli.py":
            upward = {m for m in imported if m.startswith(("e3eval.figures", "e3eval.train"))}
            assert not upward, f"{path}: the core imports {upward}"
            if path.name != "segmentation.py":
                beside = {m for m in imported if m.startswith("e3eval.analysis")}
                assert not beside, f"{path}: the core imports {beside} outside e3eval/segmentation.py"
    for folder, other in (("figures", "e3eval.train"), ("train", "e3eval.figures")):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "examples" in path.parts:
                continue
            assert not {m for m in _imports(path) if m.startswith(other)}, f"{path} imports {other}"
    for folder in ("train", "analysis", "figures", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            bare = {m for m in _imports(path) if m.split(".")[0] in ("train", "analysis", "figures")}
            assert not bare, f"{path}: bare sibling imports {bare}"


def test_no_two_modules_share_a_file_name():
    """Inside the one installed package (`e3eval` with its siblings) a file name says which module it is."""
    seen: dict[str, Path] = {}
    for folder in ("e3eval", "train", "analysis", "figures"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "__init__.py" or "examples" in path.parts:
                continue
            assert path.name not in seen, f"{path} and {seen[path.name]} share a file name"
            seen[path.name] = path
