"""The notebook's view of summaries: metric names as the command line prints them, integer k, one unit per row.

`summary.parquet` stores `metric="pass@k"` with `k` beside it (one schema for every k); people and the report say
`pass@1`, `maj@4`. `summary_frame` turns stored summary rows into the pandas DataFrame a notebook user reads: the
metric named as the CLI names it, `k` an integer (`<NA>` for metrics without one), and a `unit` column saying what
`value`, `ci_low` and `ci_high` are in: `fraction` (0-1; the CLI prints these as percent) or `tokens`. It converts;
it reads no files (`run.py` does) and computes no metric (`metrics.py` does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# Metrics stored with a k: the name printed is the metric with its k (`pass@k`, k=1 -> `pass@1`).
K_METRICS = ("pass@k", "maj@k")
TOKEN_METRICS = frozenset({"mean_tokens"})


def metric_name(metric: str, k: int | None) -> str:
    """`pass@k`, 1 -> `pass@1`; a metric without k keeps its stored name (`mean_tokens`, `frac_finished`)."""
    if metric in K_METRICS and k is not None:
        return f"{metric[:-1]}{k}"
    return metric


def split_metric(name: str) -> tuple[str, int | None]:
    """The inverse of `metric_name`: `pass@8` -> (`pass@k`, 8); `mean_tokens` -> (`mean_tokens`, None). A name of
    neither form is returned as it is (the caller says whether it exists)."""
    head, _, tail = name.partition("@")
    if tail.isdigit() and f"{head}@k" in K_METRICS:
        return f"{head}@k", int(tail)
    return name, None


def unit(metric: str) -> str:
    """What a stored metric's value is in: `tokens` for lengths, `fraction` (0-1) for every rate and pass@k."""
    return "tokens" if metric in TOKEN_METRICS else "fraction"


def summary_frame(table: pa.Table) -> pd.DataFrame:
    """Stored summary rows as a DataFrame: `metric` as printed (`pass@1`), `k` as pandas `Int64`, `unit` after
    `ci_high`; every other column as stored."""
    import pandas as pd

    frame = table.to_pandas()
    if frame.empty:
        frame["unit"] = pd.Series(dtype="string")
        frame["k"] = frame["k"].astype("Int64") if "k" in frame else pd.Series(dtype="Int64")
        return frame
    stored = frame["metric"].tolist()
    ks = [None if pd.isna(k) else int(k) for k in frame["k"].tolist()]
    frame["metric"] = [metric_name(m, k) for m, k in zip(stored, ks, strict=True)]
    frame["k"] = pd.array([k if m in K_METRICS else None for m, k in zip(stored, ks, strict=True)], dtype="Int64")
    position = frame.columns.get_loc("ci_high") + 1 if "ci_high" in frame else len(frame.columns)
    frame.insert(position, "unit", [unit(m) for m in stored])
    return frame
