"""A published accuracy table, shaped like the authors' `aime_budget_table.csv`, as the accuracy family's tidy frame.

Columns `pass_at_{k}_{B}` with `_CI_low_` / `_CI_high_` become one row per model, budget and k, with n from the
paper's protocol (App. D: 16 samples per problem; 30 problems for AIME 2025, 60 for 2023/24). The table's `_err_`
columns are a fixed share of the value (a band the authors drew, not a measured uncertainty): they are measured and
named in a note, never drawn. This module reads tables; `accuracy` draws them and `paper` writes the paper's figures.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from e3eval.errors import UserError

# The accuracy family's tidy frame (`accuracy.COLUMNS`): a published table and scored runs load to the same one.
COLUMNS = ("series", "budget", "metric", "k", "value", "ci_low", "ci_high", "n", "n_samples", "flag")
# The paper's App. D protocol behind aime_budget_table.csv: 16 samples per problem; AIME 2025 has 30 problems
# (I and II), 2023/24 has 60. Every pass@1 in the table is a multiple of 1 / (problems x 16), which checks this.
AIME_PROBLEMS = {"2025": 30, "2023/24": 60}
PAPER_SAMPLES = 16
_TABLE_COLUMN = re.compile(r"pass_at_(\d+)_(?:(err|CI_low|CI_high)_)?(\d+)")


def frame_from_paper_table(path: Path | str, years: Sequence[str] | None = None) -> pd.DataFrame:
    """A published accuracy table (`aime_budget_table.csv`: one row per model and AIME years, columns
    `pass_at_{k}_{B}` with `_CI_low_`/`_CI_high_`) as the tidy frame; `years` keeps those rows ("2025")."""
    path = Path(path)
    table = _read_table(path)
    for column in ("model", "years"):
        if column not in table.columns:
            raise UserError(f"{path}: no {column!r} column (a published accuracy table has model, years, "
                            "pass_at_{k}_{budget} ...)")  # fmt: skip
    table["years"] = table["years"].astype(str)
    if years:
        wanted = [str(y) for y in years]
        available = sorted(set(table["years"]))
        table = table[table["years"].isin(wanted)]
        if table.empty:
            raise UserError(f"{path}: no rows for years {', '.join(wanted)} (the table has {', '.join(available)})")
    values = {}
    for column in table.columns:
        match = _TABLE_COLUMN.fullmatch(column)
        if match:
            k, kind, budget = match.groups()
            values[(int(k), int(budget), kind)] = column
    curves = sorted((k, b) for k, b, kind in values if kind is None)
    if not curves:
        raise UserError(f"{path}: no pass_at_{{k}}_{{budget}} columns")
    several_years = table["years"].nunique() > 1
    rows = []
    for _, row in table.iterrows():
        year = row["years"]
        if year not in AIME_PROBLEMS:
            raise UserError(f"{path}: years {year!r} has no known problem count (known: {', '.join(AIME_PROBLEMS)})")
        name = str(row["model"]).rsplit("/", 1)[-1]
        series = f"{name} (AIME {year})" if several_years else name
        for k, budget in curves:
            low, high = values.get((k, budget, "CI_low")), values.get((k, budget, "CI_high"))
            rows.append({
                "series": series, "budget": budget, "metric": "pass@k", "k": k, "value": row[values[(k, budget, None)]],
                "ci_low": row[low] if low else float("nan"), "ci_high": row[high] if high else float("nan"),
                "n": AIME_PROBLEMS[year], "n_samples": AIME_PROBLEMS[year] * PAPER_SAMPLES, "flag": "",
            })  # fmt: skip
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame = frame.dropna(subset=["value"]).reset_index(drop=True)
    frame.attrs["bands"] = "bands: the table's bootstrap CI columns (_CI_low_, _CI_high_)"
    frame.attrs["note"] = _err_note(table, values)
    return frame


def _err_note(table: pd.DataFrame, columns: Mapping[tuple[int, int, str | None], str]) -> str:
    """Say what the table's `_err_` columns are, measured rather than assumed."""
    ratios = []
    for (k, budget, kind), column in columns.items():
        if kind == "err":
            value = table[columns[(k, budget, None)]]
            ratios += list((table[column] / value)[value > 0])
    if not ratios:
        return ""
    low, high = min(ratios), max(ratios)
    share = f"{low:.0%} of the value" if high - low < 1e-6 else f"{low:.0%}-{high:.0%} of the value"
    return (f"The table's _err_ columns are {share} (a fixed band the authors drew, not a measured uncertainty); "
            "they are not drawn.")  # fmt: skip


def _read_table(path: Path) -> pd.DataFrame:
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: cannot read as a {'Parquet' if path.suffix == '.parquet' else 'CSV'} table "
                        f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None  # fmt: skip
