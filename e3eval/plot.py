"""Plots of a sweep: pass@1 and pass@k against the token budget, with CI bands and the extrapolation region shaded.

Reads summary tables (never recomputes metrics). The x axis is the budget on a log2 scale labelled in k tokens; each
curve carries its 95% bootstrap band; the legend gives n (problems x samples); the region beyond the training budget,
when given, is shaded and labelled "extrapolation". matplotlib is imported here only (Agg backend, no display).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from e3eval.budgets import format_budget


def plot_sweep(
    summaries: list[tuple[str, pa.Table]], out_base: Path, train_budget: int | None = None, title: str = ""
) -> list[Path]:
    """Write `out_base`.png and .pdf; `summaries` are (label, summary table) pairs, one curve set per run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    budgets_seen: set[int] = set()
    for panel, (axis, metric_k) in enumerate(zip(axes, ("pass@1", "pass@k"), strict=True)):
        for color, (label, table) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], summaries, strict=False):
            rows = [r for r in table.to_pylist() if r["metric"] == "pass@k"]
            if not rows:
                continue
            k = 1 if metric_k == "pass@1" else max(r["k"] for r in rows)
            points = sorted((r for r in rows if r["k"] == k), key=lambda r: r["budget"])
            xs = [r["budget"] for r in points]
            budgets_seen.update(xs)
            ys = [100 * r["value"] for r in points]
            lows = [100 * (r["ci_low"] if r["ci_low"] == r["ci_low"] else r["value"]) for r in points]
            highs = [100 * (r["ci_high"] if r["ci_high"] == r["ci_high"] else r["value"]) for r in points]
            n = f"n={points[0]['n_problems']}x{points[0]['n_samples'] // max(points[0]['n_problems'], 1)}"
            left_out = [f"{points[0].get(c) or 0} {c[2:]}" for c in ("n_failed", "n_missing") if points[0].get(c)]
            if left_out:
                n += f", {' + '.join(left_out)} left out"
            axis.plot(xs, ys, marker="o", color=color, label=f"{label} ({n})")
            axis.fill_between(xs, lows, highs, color=color, alpha=0.2, linewidth=0)
            axis.set_title(f"pass@{k} vs budget" + ("" if panel == 0 else " (unbiased)"))
        axis.set_xscale("log", base=2)
        axis.set_xlabel("token budget")
        axis.set_ylabel("accuracy (%)")
        axis.grid(True, alpha=0.3)
        if train_budget:
            right = max([*budgets_seen, train_budget]) * 1.15
            axis.axvspan(train_budget, right, color="0.85", alpha=0.5, zorder=0, label="extrapolation")
            axis.axvline(train_budget, color="0.4", linestyle="--", linewidth=1)
    ticks = sorted(budgets_seen)
    for axis in axes:
        axis.set_xticks(ticks, [format_budget(b) for b in ticks])
        axis.minorticks_off()
        top = min(102.0, max(5.0, axis.get_ylim()[1]))
        axis.set_ylim(-0.03 * top, top)  # a margin below 0 keeps a flat zero curve visible
        axis.legend(fontsize=8, loc="best")
    if title:
        figure.suptitle(title + " — shaded bands: 95% bootstrap CI over problems")
    out_base.parent.mkdir(parents=True, exist_ok=True)
    paths = [out_base.with_suffix(".png"), out_base.with_suffix(".pdf")]
    for path in paths:
        figure.savefig(path, dpi=150)
    plt.close(figure)
    return paths
