"""`e3eval sweep`: one generation at the largest budget, exact truncation to every budget, grading, table and plot.

Composes the stages (generate -> score -> report -> plot); each is resumable or cheap to redo, so rerunning a sweep
after an interruption generates only the missing samples and rescoring is seconds. The plot marks the extrapolation
region beyond `train_budget`. When some samples failed, the successful ones are still scored (the report flags what
is left out) and the outcome carries the failures so the command exits non-zero; when none succeeded, nothing is
scored. This module adds no logic of its own beyond wiring and defaults.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from e3eval.generation import GenerateConfig, GenerateResult, generate_run
from e3eval.plot import plot_sweep
from e3eval.report import load_summary, render
from e3eval.score import ScoreConfig, score_run


@dataclass(frozen=True)
class SweepConfig:
    generate: GenerateConfig
    score: ScoreConfig
    train_budget: int | None = None


@dataclass(frozen=True)
class SweepOutcome:
    run_dir: Path
    generation: GenerateResult
    scored: bool


def default_out(model: str, dataset: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{Path(model).name or model}__{Path(dataset).stem}")
    return Path("results") / name


def run_sweep(config: SweepConfig, console: Console, progress: Callable[[], Any]) -> SweepOutcome:
    generate = replace(config.generate, max_tokens=max(config.score.budgets))
    with progress() as bar:
        result = generate_run(generate, bar, log=console.print)
    if result.generated:
        console.print(
            f"generated {result.generated} samples ({result.tokens:,} tokens) in {result.seconds:.1f}s; "
            f"{result.skipped} were already there"
        )
    run_dir = result.run_dir
    if result.failed and not (result.generated or result.skipped):
        return SweepOutcome(run_dir, result, scored=False)
    with progress() as bar:
        scored = score_run(run_dir, config.score, bar)
    for warning in scored.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    render([run_dir], console)
    manifest, summary = load_summary(run_dir)
    model = Path(manifest["generation"]["model"]).name or manifest["generation"]["model"]
    title = f"{model} on {manifest['generation']['dataset']}, policy {config.score.policy}"
    paths = plot_sweep([(manifest["run_id"], summary)], run_dir / "figures" / "sweep", config.train_budget, title)
    console.print(f"plots: {', '.join(str(p) for p in paths)}")
    return SweepOutcome(run_dir, result, scored=True)
