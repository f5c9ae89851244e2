"""e3eval: measure whether reasoning LLMs extrapolate test-time compute.

The notebook API (docs/notebook.md): `e3eval.load_run(path)` opens a run directory as a read-only `RunView` (what was
run, its tables as pandas, `summary` and `curve` with the CLI's metric names; `e3eval/notebook.py`);
`e3eval.compare(paths)` puts scored runs side by side (`e3eval/report.py`). Importing the package is cheap: nothing
heavy (pandas, pyarrow, torch, transformers, math-verify) loads until one of these is used. `e3eval.Run` (`run.py`)
is the handle e3eval's own stages and plugins write runs through; it is not the notebook's.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e3eval.notebook import RunView, load_run
    from e3eval.report import compare
    from e3eval.run import Run  # noqa: F401  (e3eval.Run for type checkers; importable, not listed)

__version__ = "0.1.0"
__all__ = ["RunView", "__version__", "compare", "load_run"]

# Where each lazily loaded name lives: loaded on first use so that `import e3eval` stays light.
_LAZY = {"load_run": "e3eval.notebook", "RunView": "e3eval.notebook", "compare": "e3eval.report", "Run": "e3eval.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'e3eval' has no attribute {name!r}")


def __dir__() -> list[str]:
    # The documented API, dunders and the submodules loaded so far; typing helpers are not API, and `Run` stays
    # importable without being listed.
    shown = {n for n, v in globals().items() if n.startswith("__") or isinstance(v, ModuleType)}
    return sorted(shown | set(__all__))
