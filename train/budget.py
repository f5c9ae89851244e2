"""Training-budget selection (paper Sec. 4, Eq. 3): the smallest budget whose doubling still pays off.

Given a sweep of the current model on the stage's data (an e3eval run directory scored at B and 2B for every
candidate B), pick the smallest candidate B with J(2B) >= kappa * J(B) (in-context exploration is still rewarded at
B) and B >= the mean response length (the budget accommodates most responses). J is pass@1 from the run's summary;
the mean length is over the run's full responses (its samples: failed requests are not). The decision table is
returned so the caller can print it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e3eval.errors import UserError
from e3eval.run import Run


@dataclass(frozen=True)
class Candidate:
    budget: int
    j: float
    j_double: float
    mean_length: float
    kappa: float

    @property
    def explores(self) -> bool:
        return self.j_double >= self.kappa * self.j

    @property
    def fits(self) -> bool:
        return self.budget >= self.mean_length

    @property
    def ok(self) -> bool:
        return self.explores and self.fits


def mean_response_length(run_dir: Path) -> float:
    """Mean length of the run's samples (failed requests, which have no tokens, are not samples)."""
    run = Run.open(run_dir)
    lengths = np.concatenate([b.column(0).to_numpy() for b in run.rollout_batches(["num_tokens"])])
    return float(np.mean(lengths[run.samples().keep]))


def select_budget(
    run_dir: Path, candidates: list[int], kappa: float = 1.2, policy: str = "prefix"
) -> tuple[int | None, list[Candidate]]:
    """The chosen budget (None if no candidate qualifies) and the table it was decided from, read from the run's
    scoring under `policy` (a run keeps one summary per policy; J(B) and J(2B) must come from the same one)."""
    if not (math.isfinite(kappa) and kappa > 0):
        # J(2B) >= kappa * J(B), J in [0, 1]: NaN or inf make the test meaningless (NaN is never >=; inf * 0 is NaN)
        raise UserError(f"--kappa {kappa:g}: must be a finite positive number (the paper uses 1.2)")
    summary = Run.open(run_dir).table("summary")
    rows = [r for r in summary.to_pylist() if r["metric"] == "pass@k" and r["k"] == 1 and r["policy"] == policy]
    pass1 = {r["budget"]: r["value"] for r in rows}
    missing = sorted({b for c in candidates for b in (c, 2 * c)} - set(pass1))
    if missing:
        raise UserError(
            f"{run_dir}: the sweep has no pass@1 under policy {policy} at budget(s) {', '.join(map(str, missing))}; "
            f"score it with --policy {policy} --budgets {','.join(str(b) for b in sorted(set(pass1) | set(missing)))}"
        )
    if not any(pass1[b] for c in candidates for b in (c, 2 * c)):
        raise UserError(
            f"{run_dir}: pass@1 is 0 at every candidate budget and its double, so J(2B) >= kappa * J(B) holds for "
            "every B without telling anything; select a budget on data the model solves some of the time"
        )
    length = mean_response_length(run_dir)
    table = [Candidate(b, pass1[b], pass1[2 * b], length, kappa) for b in sorted(candidates)]
    chosen = next((c.budget for c in table if c.ok), None)
    return chosen, table
