"""Rendering summaries for people: a rich table of budgets x metrics with CIs, runs side by side, and a combined CSV.

Reads `summary.parquet` tables (it never recomputes metrics) and formats every value with its confidence interval;
n (problems, samples) is shown under the table for each run, with the failed and missing samples the numbers leave
out beside it (in red: those runs' numbers rest on fewer samples than asked for). Plots arrive with the sweep.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.store import SUMMARY, read_manifest, read_table, write_csv

PERCENT_METRICS = {"pass@k", "maj@k", "frac_finished", "frac_answered", "frac_timeout", "frac_ungraded"}


def load_summary(run_dir: Path) -> tuple[dict, pa.Table]:
    manifest = read_manifest(run_dir)
    table = read_table(run_dir, SUMMARY, f"score it first: e3eval score {run_dir} --budgets ...")
    return manifest, table


def _columns_for(table: pa.Table) -> list[tuple[str, int | None]]:
    """The metrics shown: pass@1, the largest pass@k, the largest maj@k, tokens, finished, answered."""
    columns: list[tuple[str, int | None]] = [("pass@k", 1)]
    for metric in ("pass@k", "maj@k"):
        ks = [k for m, k in zip(table["metric"].to_pylist(), table["k"].to_pylist(), strict=True) if m == metric]
        if ks and max(ks) > 1:
            columns.append((metric, max(ks)))
    columns += [("mean_tokens", None), ("frac_finished", None), ("frac_answered", None)]
    return columns


def format_cell(metric: str, value: float, low: float, high: float) -> str:
    """Value on the first line, its CI dimmed on the second (tables stay readable in 80 columns)."""
    if math.isnan(value):
        return "-"
    scale, fmt = (100.0, "{:.1f}") if metric in PERCENT_METRICS else (1.0, "{:,.0f}")
    text = fmt.format(scale * value)
    if not math.isnan(low):
        text += f"\n[dim]{fmt.format(scale * low)}–{fmt.format(scale * high)}[/]"
    return text


def label(metric: str, k: int | None) -> str:
    if metric in ("pass@k", "maj@k"):
        return metric.replace("k", str(k))
    return {"mean_tokens": "tokens", "frac_finished": "finished %", "frac_answered": "answered %"}.get(metric, metric)


def render(run_dirs: list[Path], console: Console) -> pa.Table:
    """Print one table (budgets down, metric x run across) and return the combined summary table."""
    if not run_dirs:
        raise UserError("give at least one run directory")
    loaded = [load_summary(d) for d in run_dirs]
    names = [m["run_id"] for m, _ in loaded]
    if len(set(names)) != len(names):
        names = [str(d) for d in run_dirs]
    budgets = sorted({b for _, t in loaded for b in t["budget"].to_pylist()})
    columns = _columns_for(loaded[0][1])
    policies = {t["policy"][0].as_py() for _, t in loaded if t.num_rows}
    table = Table(title=f"e3eval report (policy: {', '.join(sorted(policies))}; % with 95% bootstrap CI)")
    table.add_column("budget", justify="right", style="bold")
    for metric, k in columns:
        for name in names:
            header = label(metric, k) if len(names) == 1 else f"{label(metric, k)}\n{name}"
            table.add_column(header, justify="right")
    index = [
        {
            (r["budget"], r["metric"], r["k"]): r
            for r in t.select(["budget", "metric", "k", "value", "ci_low", "ci_high"]).to_pylist()
        }
        for _, t in loaded
    ]
    for budget in budgets:
        cells = [format_budget(budget)]
        for metric, k in columns:
            for rows in index:
                row = rows.get((budget, metric, k))
                cells.append(format_cell(metric, row["value"], row["ci_low"], row["ci_high"]) if row else "-")
        table.add_row(*cells)
    console.print(table)
    for name, (manifest, t) in zip(names, loaded, strict=True):
        if not t.num_rows:
            continue
        first = t.filter(pc.equal(t["budget"], budgets[0]))
        n_problems, n_samples = first["n_problems"][0].as_py(), first["n_samples"][0].as_py()
        flags = {f for f in t["flag"].to_pylist() if f}
        note = f"{name}: n = {n_problems} problems, {n_samples} samples per budget"
        # Summaries written before failures were counted lack these columns.
        failed = first["n_failed"][0].as_py() if "n_failed" in t.column_names else 0
        missing = first["n_missing"][0].as_py() if "n_missing" in t.column_names else 0
        if failed or missing:
            note += f" [bold red](+{failed} failed, {missing} missing: not in these numbers)[/]"
        skipped = manifest.get("source", {}).get("skipped_lines", 0)
        if skipped:
            flags.add(f"{skipped} bad input line(s) were skipped at import (see run.json)")
        console.print(note + ("" if not flags else f"  [yellow]warning: {'; '.join(sorted(flags))}[/]"))
    return pa.concat_tables([t for _, t in loaded], promote_options="default")


def write_combined_csv(path: Path, combined: pa.Table) -> None:
    write_csv(Path(path), combined)
