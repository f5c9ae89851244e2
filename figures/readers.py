"""Readers shared by the training-side figure families (training, lengths, exploration, attempts).

A series input is a mapping from a run's label to its files (a path, a glob, a folder or a list of them), resolved
against the spec's folder; the step of a per-step file is the last number in its name (`40.parquet`, verl's
`{step}.jsonl`). Also here: `count-asymmetries --out` tables, `e3eval probe` tables, and the bootstrap mean with a
95% CI that every per-step point uses. This module reads and checks files; it draws nothing.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from e3eval.errors import UserError
from e3eval.figures.globs import expand, is_glob

RESAMPLES = 1000
SEED = 0
TRACE_COLUMNS = ("correct", "n_verify", "n_attempts", "n_chained", "n_tokens", "repeats_e3", "budget")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def resolve_series(value: Any, base: Path, key: str) -> dict[str, list[Path]]:
    """A spec mapping `{label: path, glob or list of them}` -> `{label: [paths]}`, resolved against `base`; globs
    expand in sorted order. A UserError names the input, the label and the path that does not exist."""
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not value:
        raise UserError(f"{key}: give a mapping from a series label to its files, e.g. {{GRPO: runs/grpo/...}}")
    resolved: dict[str, list[Path]] = {}
    for label, written in value.items():
        items = written if isinstance(written, (list, tuple)) else [written]
        if not items or not all(isinstance(item, (str, Path)) and str(item) for item in items):
            raise UserError(f"{key}: {label}: give a path, a glob or a list of them")
        paths: list[Path] = []
        for item in items:
            full = base / os.path.expanduser(str(item))
            if full.exists():
                paths.append(full)
                continue
            if not is_glob(str(item)):
                raise UserError(f"{key}: {label}: {item!r} does not exist (looked for {full})")
            try:
                matches = expand(str(item), base)
            except UserError as exc:
                raise UserError(f"{key}: {label}: {exc}") from None
            if not matches:
                raise UserError(f"{key}: {label}: {item!r} matches nothing (looked for {full})")
            paths += matches
        resolved[str(label)] = paths
    return resolved


def step_of(path: Path) -> int:
    """The training step a per-step file is named after: the last number in its name (`40.jsonl`, `step_40.csv`)."""
    match = _LAST_NUMBER.search(Path(path).name.split(".")[0])
    if match is None:
        raise UserError(
            f"{path}: cannot tell the training step from the file name; name per-step files after the step "
            "(verl dumps rollouts as STEP.jsonl; e.g. count-asymmetries 40.jsonl --out 40.parquet)"
        )
    return int(match.group(1))


def read_trace_table(path: Path, needed: Sequence[str] = TRACE_COLUMNS) -> pd.DataFrame:
    """A `count-asymmetries --out` table (Parquet or CSV), whole-trace rows only: rows counted without `--budgets`,
    or at its one budget. A UserError names the file when it cannot be read, lacks columns or mixes budgets."""
    path = Path(path)
    try:
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"{path}: cannot read as a count-asymmetries table ({first})") from None
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: no column(s) {', '.join(missing)}; expected a table written by "
                        "`e3eval count-asymmetries --out`")  # fmt: skip
    budgets = frame["budget"].dropna().unique() if "budget" in frame.columns else []
    if len(budgets) > 1:
        raise UserError(f"{path}: counted at several budgets ({', '.join(str(int(b)) for b in sorted(budgets))}); "
                        "per-step figures take whole traces: count without --budgets")  # fmt: skip
    if "correct" in frame.columns:
        # CSV keeps booleans as text; a null is "not known", never "incorrect".
        frame["correct"] = frame["correct"].map(_as_bool).astype("object")
    return frame


def _as_bool(value: Any) -> bool | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, str):
        return {"true": True, "false": False}.get(value.strip().lower())
    return bool(value)


def read_step_tables(paths: Sequence[Path], needed: Sequence[str] = TRACE_COLUMNS) -> pd.DataFrame:
    """Per-step count-asymmetries tables stacked with a `step` column (from the file name, or the table's own); a
    folder stands for the tables in it."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".parquet", ".csv") and p.is_file())
            if not found:
                raise UserError(f"{path}: a folder without .parquet or .csv tables (count-asymmetries --out)")
            files += found
        else:
            files.append(path)
    parts = []
    for path in files:
        table = read_trace_table(path, needed)
        if "step" not in table.columns:
            table["step"] = step_of(path)
        parts.append(table)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*needed, "step"])


def count_range(counts: pd.Series) -> str:
    """`12`, or `9-55` when the counts differ: the n of a set of points."""
    low, high = int(counts.min()), int(counts.max())
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def bootstrap_means(matrix: np.ndarray) -> list[tuple[float, float, float]]:
    """(mean, low, high) per row of a (quantities x units) matrix: a 95% percentile bootstrap over units (seeded,
    the same resamples for every row)."""
    from e3eval.metrics import bootstrap

    return [(i.value, i.low, i.high) for i in bootstrap(matrix, RESAMPLES, SEED)]


# Loading ---------------------------------------------------------------------------------------------------------


def read_probe_table(path: Path, kind: str) -> pd.DataFrame:
    """`probes` or `attempt_probes` rows from a run directory, or from a table `e3eval probe --out FILE` wrote.

    A run directory's table (the folder, or its `probes.parquet` / `attempt_probes.parquet` named directly) is read
    through `Run.frame`, which checks that the table belongs to the run's recorded probe and joins the run's
    current grades; a standalone table (or a folder holding one, without run.json) is read as it is.
    """
    from e3eval.run import Run
    from e3eval.store import MANIFEST

    path = Path(path)
    run_dir = path if path.is_dir() else path.parent if path.name == f"{kind}.parquet" else None
    if run_dir is not None and (run_dir / MANIFEST).is_file():
        table = Run.open(run_dir).frame(kind)
        where = run_dir / f"{kind}.parquet"
    else:
        where = path / f"{kind}.parquet" if path.is_dir() else path
        if not where.is_file():
            raise UserError(f"{path}: no {kind}.parquet (run `e3eval probe {path} --model ...`"
                            + (" --attempts PRESET" if kind == "attempt_probes" else "") + ")")  # fmt: skip
        try:
            table = pd.read_parquet(where)
        except (OSError, ValueError) as exc:
            raise UserError(f"{where}: not a readable Parquet table ({str(exc).splitlines()[0]})") from None
    needed = ["model", "step", "problem_id", "sample_idx", *(("budget", "mean_entropy", "kl_exact") if kind == "probes"
                                                            else ("k", "fig13a", "fig13b", "fig13c"))]  # fmt: skip
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise UserError(f"{where}: no column(s) {', '.join(missing)}; expected `e3eval probe` output ({kind})")
    return table
