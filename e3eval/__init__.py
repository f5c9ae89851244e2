"""e3eval: measure whether reasoning LLMs extrapolate test-time compute.

Importing the package is cheap: heavy dependencies (torch, transformers, math-verify) load inside the functions that
need them. `e3eval.load_run(path)` opens a run directory (tables as pyarrow or pandas, see `e3eval/run.py`);
`e3eval.compare(paths)` puts scored runs' summaries side by side (`e3eval/report.py`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from e3eval.report import compare
    from e3eval.run import Run, load_run

__version__ = "0.1.0"
__all__ = ["Run", "compare", "load_run"]


def __getattr__(name: str) -> Any:
    # The notebook API, loaded on first use so that `import e3eval` stays light.
    if name in ("Run", "load_run"):
        from e3eval import run

        return getattr(run, name)
    if name == "compare":
        from e3eval.report import compare

        return compare
    raise AttributeError(f"module 'e3eval' has no attribute {name!r}")
