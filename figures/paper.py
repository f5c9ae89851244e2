"""The paper's figures that the authors' published tables support, drawn with no other input (Fig. 7, 9 and 10).

`paper_figures(out, data_dir)` reads `aime_budget_table.csv` and `chained_asymmetry_grids.csv` from `data_dir`
(the shared `e3-paper` folder) and writes, through the accuracy and chained families:
Fig. 7 (App. B: accuracy on AIME 2025 of ten open-source models against the test-time budget; the caption names no
metric, so pass@1 and the table's pass@8 side by side), Fig. 9 (App. D: pass@1 on AIME 2025, the same models) and
Fig. 10 (App. E.2: pass@k after C chained asymmetries on CDOWN per training step). Both AIME figures use only the
2025 rows, as both captions say; the table's 2023/24 rows stay available to specs (`years`). Captions carry numbers
read off the tables (the gain per budget doubling, the chained-versus-parallel comparison) so a reader can check
them against the paper's text. This module does not validate specs or write the gallery (`e3eval figures` does).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.figures import accuracy, chained
from e3eval.figures.folder import FiguresFolder

AIME_TABLE = "aime_budget_table.csv"
CHAINED_TABLE = "chained_asymmetry_grids.csv"
AIME_YEARS = ("2025",)
# Ten series on one axis rather than small multiples: the figure is there to compare the models with each other.
SERIES_STYLE = ("Each model has its own colour, marker and line style, so each of the ten stays identifiable in "
                "greyscale print while all are compared on one axis.")  # fmt: skip
PANEL_ORDER = "Each panel's legend is ordered by that panel's value at the largest budget, best first."
NAMES = ("fig07-aime2025-accuracy", "fig09-aime2025-pass1", "fig10-chained-asymmetries")  # output file stems


class PaperFigure(NamedTuple):
    name: str
    paths: list[Path]
    caption: str
    inputs: list[Path]
    n: str
    title: str = ""


def paper_data_dir(data_dir: Path | str) -> Path:
    """The folder holding the published tables: `data_dir` itself or its `e3-paper` subfolder."""
    data_dir = Path(data_dir)
    for folder in (data_dir, data_dir / "e3-paper"):
        if all((folder / name).is_file() for name in (AIME_TABLE, CHAINED_TABLE)):
            return folder
    raise UserError(f"{data_dir}: the published tables {AIME_TABLE} and {CHAINED_TABLE} are not there "
                    "(nor in its e3-paper folder)")  # fmt: skip


def paper_figures(out: FiguresFolder | Path | str, data_dir: Path | str) -> list[PaperFigure]:
    """Draw Fig. 7, 9 and 10 from the published tables into the folder `out` (PNG + PDF each; `folder.py` says
    which folders figures may write into)."""
    data_dir = paper_data_dir(data_dir)
    folder = out if isinstance(out, FiguresFolder) else FiguresFolder.open(out)
    folder.check(f"{name}.{suffix}" for name in NAMES for suffix in ("png", "pdf"))
    aime_csv, chained_csv = data_dir / AIME_TABLE, data_dir / CHAINED_TABLE
    aime = accuracy.frame_from_paper_table(aime_csv, AIME_YEARS)
    n_aime = accuracy.describe_n(aime)
    note = aime.attrs["note"]
    trend = _doubling_gains(aime, k=1)
    order = "Legend ordered by pass@1 at the largest budget, best first."  # Fig. 9: one panel
    figures = []

    fig7 = accuracy.draw(aime, {"metrics": ["pass@1", "pass@8"], "note": note,
                                "title": "Accuracy on AIME 2025 of open-source models (paper Fig. 7)"})  # fmt: skip
    caption7 = (f"Paper Fig. 7 (App. B) from {AIME_TABLE}, AIME 2025 rows: pass@1 and pass@8 against the test-time "
                f"budget, on one y range. {trend} {_doubling_gains(aime, k=8)} {SERIES_STYLE} {PANEL_ORDER} "
                f"{note}")  # fmt: skip
    figures.append(PaperFigure("fig07-aime2025-accuracy", folder.save(fig7, "fig07-aime2025-accuracy"), caption7,
                               [aime_csv], n_aime,
                               "AIME 2025 accuracy of open-source models, pass@1 and pass@8"))  # fmt: skip

    fig9 = accuracy.draw(aime, {"metrics": ["pass@1"], "note": note,
                                "title": "pass@1 on AIME 2025 across open-source models (paper Fig. 9)"})  # fmt: skip
    caption9 = (f"Paper Fig. 9 (App. D) from {AIME_TABLE}, AIME 2025 rows: pass@1 of the ten open models, 1.5B-32B, "
                f"trained with SFT or RL (the paper's grouping; the model names in the legend say which). {trend} "
                f"{_flat_models(aime)} {order} {note}")  # fmt: skip
    figures.append(PaperFigure("fig09-aime2025-pass1", folder.save(fig9, "fig09-aime2025-pass1"), caption9,
                               [aime_csv], n_aime, "AIME 2025 pass@1 across model sizes and training"))  # fmt: skip

    grid = chained.frame_from_table(chained_csv)
    fig10 = chained.draw(grid, {"title": "pass@k after C chained asymmetries on Countdown (paper Fig. 10)"})
    caption10 = (f"Paper Fig. 10 (App. E.2) from {CHAINED_TABLE}: pass@k of the model after C chained asymmetries, "
                 f"per training step. {_diagonal(grid)}")  # fmt: skip
    figures.append(PaperFigure("fig10-chained-asymmetries", folder.save(fig10, "fig10-chained-asymmetries"),
                               caption10, [chained_csv], chained.describe_n(grid),
                               "pass@k after C chained asymmetries on Countdown"))  # fmt: skip
    return figures


def _doubling_gains(frame: pd.DataFrame, k: int) -> str:
    """The median gain (percentage points) over the models from each budget to the next: the flattening."""
    rows = frame[(frame["metric"] == "pass@k") & (frame["k"] == k)]
    wide = rows.pivot(index="series", columns="budget", values="value").sort_index(axis=1)
    budgets = list(wide.columns)
    steps = [
        f"{format_budget(a)}\u2192{format_budget(b)} {100 * (wide[b] - wide[a]).median():+.1f}"
        for a, b in itertools.pairwise(budgets)
    ]
    return f"Median pass@{k} gain over the models, in points: {', '.join(steps)}."


def _flat_models(frame: pd.DataFrame) -> str:
    """Models whose pass@1 does not move across the budgets (the paper singles out MiniMath-R1-1.5B)."""
    rows = frame[(frame["metric"] == "pass@k") & (frame["k"] == 1)]
    spread = rows.groupby("series")["value"].agg(lambda v: v.max() - v.min())
    flat = sorted(spread[spread < 0.01].index)
    return f"Flat at every budget: {', '.join(flat)}." if flat else ""


def _diagonal(grid: pd.DataFrame) -> str:
    """Chained versus parallel at one attempt budget C x k, first and last step (App. E.2's reading)."""
    budget = int(grid["chained"].max() * grid["k"].min())  # the paper's example: 16 chained x 1 pass, 8 x 2, ...
    cells = grid[grid["chained"] * grid["k"] == budget]
    if cells.empty:
        return ""
    parts = []
    for step in (grid["step"].min(), grid["step"].max()):
        at = cells[cells["step"] == step].sort_values("chained", ascending=False)
        pairs = ", ".join(f"C={c} x k={k}: {100 * v:.1f}%" for c, k, v in zip(at["chained"], at["k"], at["value"],
                                                                           strict=True))  # fmt: skip
        parts.append(f"step {step}: {pairs}")
    return f"At a fixed budget C x k = {budget}: {'; '.join(parts)}. n is not given in the table."
