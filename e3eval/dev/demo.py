"""The embedded default job: everything `e3eval demo` does, on bundled data, without GPU or network.

`run_demo` builds the tiny model once and runs a real sweep with the `hf` backend on the 16 bundled problems:
4 samples each, generated once at 256 tokens, scored at 32..256, table and plot (training budget 128 marks the
extrapolation region). The tiny model has random weights, so its accuracy is zero: the demo exercises the whole
pipeline, it does not measure a model. `run_synthetic_demo` scores a synthetic pool of reasoning traces
(`dev/synthetic.py`) instead, where accuracy does rise with the budget, to show what a real curve looks like. Both
return what they did; the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.budgets import parse_budgets
from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import PoolSpec, write_pool
from e3eval.generation import GenerateConfig
from e3eval.grade_pool import default_workers
from e3eval.ingest import ImportConfig, import_run
from e3eval.outputs import FOLDER_MARKER, claim_folder, write_output
from e3eval.report import Comparison, comparison_of
from e3eval.score import ScoreConfig, ScoreResult, score_run
from e3eval.sweep import PlotSweep, SweepConfig, SweepOutcome, run_sweep
from e3eval.tokenizers import load_tokenizer

DEMO_BUDGETS = "32..256"
SYNTHETIC_BUDGETS = "256..2k"


@dataclass(frozen=True)
class SyntheticOutcome:
    run_dir: Path
    rollouts: int
    scoring: ScoreResult
    comparison: Comparison
    plots: tuple[Path, ...]


# What the demo writes in its folder (`--out`): a folder holding anything else is not the demo's.
DEMO_LAYOUT = frozenset({"tiny-model", "sweep", "synthetic", "pool.jsonl", ".pool.jsonl.e3eval", FOLDER_MARKER})


def tiny_model(out: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """The demo's tiny model under `out`, built once (the folder is claimed first: see `outputs.claim_folder`)."""
    claim_folder(out, "--out", DEMO_LAYOUT)
    model_dir = out / "tiny-model"
    if not (model_dir / "tokenizer.json").is_file():
        from e3eval.dev.tiny_model import build_tiny_model

        log(f"building the tiny model in {model_dir}")
        build_tiny_model(model_dir)
    return model_dir


def run_demo(
    out: Path,
    progress: Any = None,
    workers: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    plot: PlotSweep | None = None,
) -> SweepOutcome:
    """A real sweep of the tiny model on the bundled problems; `plot` draws it
    (`e3eval.figures.accuracy.draw_sweep`)."""
    model_dir = tiny_model(out, log)
    budgets = tuple(parse_budgets(DEMO_BUDGETS))
    generation = GenerateConfig(
        model=str(model_dir), dataset="demo", out=out / "sweep", n=4, max_tokens=max(budgets), backend="hf",
        backend_options={"batch_size": 16, "dtype": "float32"}, batch_samples=16,
    )  # fmt: skip
    score = ScoreConfig(budgets=budgets, workers=workers or default_workers())
    return run_sweep(SweepConfig(generation, score, train_budget=128, plot=plot), progress, log)


def run_synthetic_demo(
    out: Path,
    progress: Any = None,
    workers: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    plot: PlotSweep | None = None,
) -> SyntheticOutcome:
    """Import and score a synthetic pool whose accuracy rises with the budget."""
    model_dir = tiny_model(out, log)
    pool = out / "pool.jsonl"
    counts: list[int] = []
    tokenizer, spec = load_tokenizer(str(model_dir)), PoolSpec(samples=8, max_tokens=2048)
    # The folder is the demo's (claimed above): its pool is replaced like the rest of it.
    write_output(pool, lambda temp: counts.append(write_pool(temp, demo_problems(), spec, tokenizer)), force=True)
    count = counts[0]
    log(f"wrote {count} synthetic rollouts to {pool}")
    run_dir = out / "synthetic"
    import_run(
        ImportConfig(
            source=pool, out=run_dir, tokenizer=str(model_dir), token_ids_field="token_ids",
            sample_field="sample_idx", finish_reason_field="finish_reason", force=True, name="synthetic",
        ),
        progress,
    )  # fmt: skip
    config = ScoreConfig(budgets=tuple(parse_budgets(SYNTHETIC_BUDGETS)), workers=workers or default_workers())
    scored = score_run(run_dir, config, progress)
    comparison = comparison_of(run_dir, scored.summary)
    plots = plot(comparison, run_dir / "figures" / "sweep", 1024, "synthetic pool (demo)") if plot else []
    return SyntheticOutcome(run_dir, count, scored, comparison, tuple(plots))
