"""The embedded default job: everything `e3eval demo` does, on bundled data, without GPU or network.

`run_demo` builds the tiny model once and runs a real sweep with the `hf` backend on the 16 bundled problems:
4 samples each, generated once at 256 tokens, scored at 32..256, table and plot (training budget 128 marks the
extrapolation region). The tiny model has random weights, so its accuracy is zero: the demo exercises the whole
pipeline, it does not measure a model. `run_synthetic_demo` scores a synthetic pool of reasoning traces
(`synthetic.py`) instead, where accuracy does rise with the budget, to show what a real curve looks like.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from e3eval.budgets import parse_budgets
from e3eval.generation import GenerateConfig
from e3eval.grade_pool import default_workers
from e3eval.ingest import ImportConfig, import_run
from e3eval.plot import plot_sweep
from e3eval.report import load_summary, render
from e3eval.score import ScoreConfig, score_run
from e3eval.sweep import SweepConfig, run_sweep
from e3eval.synthetic import PoolSpec, demo_problems, write_pool
from e3eval.truncate import load_tokenizer

DEMO_BUDGETS = "32..256"
SYNTHETIC_BUDGETS = "256..2k"


def _tiny_model(out: Path, console: Console) -> Path:
    model_dir = out / "tiny-model"
    if not (model_dir / "tokenizer.json").is_file():
        from e3eval.tiny_model import build_tiny_model

        console.print(f"building the tiny model in {model_dir}")
        build_tiny_model(model_dir)
    return model_dir


def run_demo(out: Path, console: Console, progress: Callable[[], Progress], workers: int | None = None) -> Path:
    model_dir = _tiny_model(out, console)
    budgets = tuple(parse_budgets(DEMO_BUDGETS))
    generation = GenerateConfig(
        model=str(model_dir), dataset="demo", out=out / "sweep", n=4, max_tokens=max(budgets), backend="hf",
        backend_options={"batch_size": 16, "dtype": "float32"}, batch_samples=16,
    )  # fmt: skip
    score = ScoreConfig(budgets=budgets, workers=workers or default_workers())
    run_dir = run_sweep(SweepConfig(generation, score, train_budget=128), console, progress).run_dir
    console.print(
        "[dim]The tiny model has random weights: zero accuracy is the expected result. "
        "`e3eval demo --synthetic` scores a synthetic pool whose accuracy rises with the budget.[/]"
    )
    return run_dir


def run_synthetic_demo(
    out: Path, console: Console, progress: Callable[[], Progress], workers: int | None = None
) -> Path:
    model_dir = _tiny_model(out, console)
    pool = out / "pool.jsonl"
    count = write_pool(pool, demo_problems(), PoolSpec(samples=8, max_tokens=2048), load_tokenizer(str(model_dir)))
    console.print(f"wrote {count} synthetic rollouts to {pool}")
    run_dir = out / "synthetic"
    with progress() as bar:
        import_run(
            ImportConfig(
                source=pool, out=run_dir, tokenizer=str(model_dir), token_ids_field="token_ids",
                sample_field="sample_idx", finish_reason_field="finish_reason", force=True, run_id="synthetic",
            ),
            bar,
        )  # fmt: skip
        config = ScoreConfig(budgets=tuple(parse_budgets(SYNTHETIC_BUDGETS)), workers=workers or default_workers())
        result = score_run(run_dir, config, bar)
    console.print(
        f"scored {result.grades.num_rows} (sample, budget) rows, {result.distinct_pairs} distinct answers, "
        f"in {result.seconds:.1f}s"
    )
    render([run_dir], console)
    _, summary = load_summary(run_dir)
    paths = plot_sweep([("synthetic", summary)], run_dir / "figures" / "sweep", 1024, "synthetic pool (demo)")
    console.print(f"plots: {', '.join(str(p) for p in paths)}")
    return run_dir
