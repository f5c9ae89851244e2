"""`e3eval sweep`: one generation at the largest budget, exact truncation to every budget, grading, table and plot.

Composes the stages (generate -> score -> compare -> plot); each is resumable or cheap to redo, so rerunning a sweep
after an interruption generates only the missing samples and rescoring is seconds. The plot marks the extrapolation
region beyond `train_budget`. When some samples failed, the successful ones are still scored (the report flags what
is left out) and the outcome carries the failures so the command exits non-zero; when none succeeded, nothing is
scored. Returns what happened; printing it is the caller's business. This module adds no logic of its own beyond
wiring and defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from e3eval.generation import GenerateConfig, GenerateResult, generate_run
from e3eval.report import Comparison, comparison_of
from e3eval.score import ScoreConfig, ScoreResult, score_run
from figures.accuracy import draw_sweep


@dataclass(frozen=True)
class SweepConfig:
    generate: GenerateConfig
    score: ScoreConfig
    train_budget: int | None = None


@dataclass(frozen=True)
class SweepOutcome:
    run_dir: Path
    generation: GenerateResult
    scoring: ScoreResult | None = None  # None when no sample succeeded
    comparison: Comparison | None = None
    plots: tuple[Path, ...] = ()


def default_out(model: str, dataset: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{Path(model).name or model}__{Path(dataset).stem}")
    return Path("results") / name


def run_sweep(config: SweepConfig, progress: Any = None, log: Callable[[str], None] = lambda _: None) -> SweepOutcome:
    """Generate what is missing, score every budget, plot; `progress` is an optional rich Progress, `log` gets
    the generation's notes (the backend chosen) as they happen."""
    generate = replace(config.generate, max_tokens=max(config.score.budgets))
    generated = generate_run(generate, progress, log)
    run_dir = generated.run_dir
    if generated.failed and not (generated.generated or generated.skipped):
        return SweepOutcome(run_dir, generated)
    scored = score_run(run_dir, config.score, progress)
    comparison = comparison_of(run_dir, scored.summary)
    run = comparison.runs[0]
    generation = run.run.section("generation") or {}
    model = Path(generation.get("model", "")).name or generation.get("model", "?")
    title = f"{model} on {generation.get('dataset', '?')}, policy {config.score.policy}"
    plots = draw_sweep(comparison, run_dir / "figures" / "sweep", config.train_budget, title)
    return SweepOutcome(run_dir, generated, scored, comparison, tuple(plots))
