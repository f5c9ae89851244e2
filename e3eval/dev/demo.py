"""The embedded default job: everything `e3eval demo` does, on bundled data, without GPU or network.

`run_demo` builds a hand-set tiny model once (`dev/explorer_model.py`: weights set by hand, not trained, so that its
chance of writing a correct `\\boxed{}` answer grows with the tokens it spends) and runs a real sweep with the `hf`
backend on the 16 bundled problems: 4 samples each, generated once at 128 tokens at temperature 1 and top-p 1 (the
sampling its logits are set for, recorded in run.json), cut exactly to 8..128 tokens, graded by math-verify, with
bootstrap CIs, a table and a plot (training budget 32 marks the extrapolation region). pass@1 rises with the budget
and flattens, pass@4 lies above it, and the problems differ: the model's design seen through the real pipeline, not a
measurement of a model. It takes seconds: the model has under half a million weights and runs on one torch thread.
`run_synthetic_demo` scores a synthetic pool of reasoning traces (`dev/synthetic.py`) instead, with no generation.
Both return what they did and log what they build; the CLI prints them.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from e3eval.store import MANIFEST
from e3eval.sweep import PlotSweep, SweepConfig, SweepOutcome, run_sweep
from e3eval.tokenizers import load_tokenizer

DEMO_BUDGETS = "8..128"
DEMO_TRAIN_BUDGET = 32
SYNTHETIC_BUDGETS = "256..2k"
HAND_SET_MODEL = "hand-set-tiny-model"  # its folder's name is the model's name in the table, the labels and the plot
# What the demo says about its model (logged as it starts; the plot's title carries the first half).
DEMO_NOTE = (
    "hand-set tiny model (not trained): its chance of a boxed answer grows with the tokens it spends; "
    "sampled at temperature 1, top-p 1, the sampling its logits are set for"
)


@dataclass(frozen=True)
class SyntheticOutcome:
    run_dir: Path
    rollouts: int
    scoring: ScoreResult
    comparison: Comparison
    plots: tuple[Path, ...]


# What the demo writes in its folder (`--out`): a folder holding anything else is not the demo's.
DEMO_LAYOUT = frozenset({"tiny-model", HAND_SET_MODEL, "sweep", "synthetic", "pool.jsonl", ".pool.jsonl.e3eval",
                         FOLDER_MARKER})  # fmt: skip


def tiny_model(out: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """The demo's tiny model under `out`, built once (the folder is claimed first: see `outputs.claim_folder`)."""
    claim_folder(out, "--out", DEMO_LAYOUT)
    model_dir = out / "tiny-model"
    if not (model_dir / "tokenizer.json").is_file():
        from e3eval.dev.tiny_model import build_tiny_model

        log(f"building the tiny model in {model_dir}")
        build_tiny_model(model_dir)
    return model_dir


def hand_set_model(out: Path, log: Callable[[str], None] = lambda _: None) -> Path:
    """The demo's hand-set model under `out`, built once; a model another version built is rebuilt, and then the
    sweep made with it (`out/sweep`, the demo's own) is removed, since its samples came from other weights."""
    from e3eval.dev.explorer_model import EXPLORER_BUILDER, build_explorer_model

    claim_folder(out, "--out", DEMO_LAYOUT)
    model_dir, sweep = out / HAND_SET_MODEL, out / "sweep"
    if _built_by(model_dir) != EXPLORER_BUILDER:
        log(f"building the {DEMO_NOTE.split(':')[0]} in {model_dir}")
        shutil.rmtree(model_dir, ignore_errors=True)
        shutil.rmtree(sweep, ignore_errors=True)
        build_explorer_model(model_dir)
    elif (recorded := _sweep_model(sweep)) and Path(recorded).resolve() != model_dir.resolve():
        shutil.rmtree(sweep)  # a sweep of another model: the random one an older demo used
    return model_dir


def _built_by(model_dir: Path) -> str | None:
    meta = model_dir / "e3eval_tiny.json"
    if not (model_dir / "tokenizer.json").is_file() or not meta.is_file():
        return None
    return json.loads(meta.read_text()).get("builder")


def _sweep_model(sweep: Path) -> str | None:
    manifest = sweep / MANIFEST
    if not manifest.is_file():
        return None
    return (json.loads(manifest.read_text()).get("generation") or {}).get("model")


def run_demo(
    out: Path,
    progress: Any = None,
    workers: int | None = None,
    log: Callable[[str], None] = lambda _: None,
    plot: PlotSweep | None = None,
) -> SweepOutcome:
    """A real sweep of the hand-set model on the bundled problems; `plot` draws it
    (`e3eval.figures.accuracy.draw_sweep`), titled as the sweep titles it plus what the model is."""
    from e3eval.dev.explorer_model import TEMPERATURE, TOP_P

    model_dir = hand_set_model(out, log)
    log(DEMO_NOTE)
    budgets = tuple(parse_budgets(DEMO_BUDGETS))
    generation = GenerateConfig(
        model=str(model_dir), dataset="demo", out=out / "sweep", n=4, max_tokens=max(budgets), backend="hf",
        temperature=TEMPERATURE, top_p=TOP_P, backend_options={"batch_size": 16, "dtype": "float32"},
        batch_samples=16,
    )  # fmt: skip
    score = ScoreConfig(budgets=budgets, workers=workers or default_workers())
    titled = _titled(plot) if plot else None
    with _one_torch_thread():
        return run_sweep(SweepConfig(generation, score, train_budget=DEMO_TRAIN_BUDGET, plot=titled), progress, log)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """torch on one thread while the demo runs: the model's matrices are so small that a second thread's
    synchronisation costs more than it saves, and on a busy 2-core machine it made generation ten times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _titled(plot: PlotSweep) -> PlotSweep:
    """`plot` with the model's nature under the sweep's title."""

    def draw(comparison: Comparison, stem: Path, train_budget: int | None, title: str) -> list[Path]:
        return plot(comparison, stem, train_budget, f"{title}\n{DEMO_NOTE.split(';')[0]}")

    return draw


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
