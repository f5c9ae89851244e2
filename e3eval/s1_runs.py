"""The runs of one `e3eval sweep --forcing s1` folder: one run per thinking budget, read as one curve.

Under s1's forcing the sample at another budget is another generation, so a sweep makes one run per budget inside
its folder. `s1_series` finds them and checks that they are budgets of one curve (same fixed settings, sampling but
the budget, n, shard and problems); `report.py` stitches their summaries into one entry. This module reads run.json
and the problem ids; it neither scores nor reports.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from e3eval.errors import UserError
from e3eval.manifest import FIXED_SETTINGS, GenerationRecord
from e3eval.run import Run
from e3eval.store import MANIFEST


def s1_series(folder: Path) -> list[Run]:
    """The runs `e3eval sweep --forcing s1` made in `folder`, one per thinking budget and in budget order; a folder
    that holds none, or runs of other settings beside them, is a UserError (it is not one curve)."""
    from e3eval.score import s1_budget

    if not folder.is_dir():
        raise UserError(f"{folder}: not a run directory (no such folder)")
    runs = [Run.open(p.parent) for p in sorted(folder.glob(f"*/{MANIFEST}"))]
    budgets = [s1_budget(r) for r in runs]
    if not runs or None in budgets:
        held = "; it holds runs, but not only those of one `sweep --forcing s1`: name the runs" if runs else ""
        raise UserError(f"{folder}: not a run directory (no {MANIFEST}){held}")
    first, problems = runs[0].record.generation, _problem_ids(runs[0])
    for run, budget in zip(runs[1:], budgets[1:], strict=True):
        other = s1_difference(first, run.record.generation)
        if other is None and _problem_ids(run) != problems:
            other = "problems"
        if other is None and budget in budgets[: runs.index(run)]:
            other = f"nothing: both are budget {budget:,}"
        if other is not None:
            raise UserError(f"{folder}: {runs[0].path.name} and {run.path.name} differ in {other}; they are not "
                            "budgets of one s1 sweep")  # fmt: skip
    return [run for _, run in sorted(zip(budgets, runs, strict=True), key=lambda pair: pair[0] or 0)]


def s1_difference(one: GenerationRecord | None, other: GenerationRecord | None) -> str | None:
    """The first setting (fixed settings, sampling but its budget, n, shard) in which two s1 runs' generations differ,
    or None: runs that differ in none are budgets of one curve."""
    if one is None or other is None:
        return "generation"
    for key in FIXED_SETTINGS:
        if key == "sampling":
            mine, theirs = (replace(g.sampling, max_tokens=None) for g in (one, other))
            if mine != theirs:
                changed = [k for k in ("temperature", "top_p", "logprobs") if getattr(mine, k) != getattr(theirs, k)]
                return f"sampling ({', '.join(changed)})"
        elif one.differences(other, (key,)):
            return key
    if one.n != other.n:
        return "n"
    return "shard" if one.shard != other.shard else None


def _problem_ids(run: Run) -> list[str]:
    return sorted(p.problem_id for p in run.problem_records())
