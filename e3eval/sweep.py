"""`e3eval sweep`: one generation at the largest budget, exact truncation to every budget, grading, table and plot.

Composes the stages (generate -> score -> compare -> plot); each is resumable or cheap to redo, so rerunning a sweep
after an interruption generates only the missing samples and rescoring is seconds. The plot marks the extrapolation
region beyond `train_budget`. When some samples failed, the successful ones are still scored (the report flags what
is left out) and the outcome carries the failures so the command exits non-zero; when none succeeded, nothing is
scored. Returns what happened; printing it is the caller's business. This module adds no logic of its own beyond
wiring and defaults.

Plots are titled with the run's label (`labels.run_label`: model · dataset · forcing · policy · subset); the
training budget is recorded in run.json, so a rerun without `--train-budget` still marks it. Ctrl-C while scoring
ends with `generation.Interrupted` too (the samples are stored; a rerun only scores).

With `--forcing s1` the sample at budget B is its own generation (`budget_forcing.py`): the sweep makes one run per
budget, `OUT/s1-<B>` (4k, 8k, ...), each generated at thinking budget B and scored with `--policy s1` at B, and draws
the runs as one curve (`report.s1_series`; `e3eval report OUT` shows them the same way).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from e3eval.budget_forcing import DEFAULT_S1_ANSWER_TOKENS, Insertions
from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.generation import GenerateConfig, GenerateResult, Interrupted, generate_run
from e3eval.labels import run_label
from e3eval.manifest import ForcingRecord, GenerationRecord
from e3eval.report import Comparison, compare, comparison_of, s1_series
from e3eval.samples import Failures
from e3eval.score import ScoreConfig, ScoreResult, score_run
from e3eval.store import MANIFEST

# Draws a sweep's curves: (comparison, file stem, training budget, title) -> the files written. The CLI passes
# `e3eval.figures.accuracy.draw_sweep`; the core never imports the figures layer itself.
PlotSweep = Callable[[Comparison, Path, int | None, str], list[Path]]


@dataclass(frozen=True)
class SweepConfig:
    generate: GenerateConfig
    score: ScoreConfig
    train_budget: int | None = None
    plot: PlotSweep | None = None  # None: no plot (a notebook draws `outcome.comparison` itself)


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
    if config.generate.forcing_mode == "s1":
        return _run_s1_sweep(config, progress, log)
    generate = replace(config.generate, max_tokens=max(config.score.budgets),
                       train_budget=config.train_budget or config.generate.train_budget)  # fmt: skip
    generated = generate_run(generate, progress, log)
    run_dir = generated.run_dir
    if generated.failed and not (generated.generated or generated.skipped):
        return SweepOutcome(run_dir, generated)
    with _after(generated):
        scored = score_run(run_dir, config.score, progress)
        comparison = comparison_of(run_dir, scored.summary)
        run = comparison.runs[0]
        title = run_label(run.run.record, run.run.name, config.score.policy)
        plots = _plot(config, comparison, run_dir, title)
    return SweepOutcome(run_dir, generated, scored, comparison, tuple(plots))


@contextmanager
def _after(generated: GenerateResult) -> Iterator[None]:
    """The work after generating (scoring, plotting), a Ctrl-C in it reported with the samples the run holds."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if isinstance(stop, Interrupted):
            raise
        stored = generated.skipped + generated.generated
        raise Interrupted(generated.run_dir, generated.generated, stored, generated.total, "scoring") from None


def _plot(config: SweepConfig, comparison: Comparison, out: Path, title: str) -> list[Path]:
    """The sweep's figure, its training budget the flag's or else the one run.json records."""
    if config.plot is None:
        return []
    generation = comparison.runs[0].run.record.generation or GenerationRecord()
    return config.plot(comparison, out / "figures" / "sweep", config.train_budget or generation.train_budget, title)


def s1_run_dir(out: Path, budget: int) -> Path:
    """Where `sweep --forcing s1` keeps its run for thinking budget `budget`."""
    return out / f"s1-{format_budget(budget)}"


def _run_s1_sweep(config: SweepConfig, progress: Any, log: Callable[[str], None]) -> SweepOutcome:
    """One generation and one `s1` scoring per budget, then the runs as one curve."""
    out = config.generate.out
    if (out / MANIFEST).is_file():
        raise UserError(f"{out} is a run directory: --forcing s1 makes one run per budget inside --out, so give a "
                        "folder that is not a run")  # fmt: skip
    _check_s1_folder(out, config.generate)
    generations: list[GenerateResult] = []
    scorings: list[tuple[int, ScoreResult]] = []
    trained = config.train_budget or config.generate.train_budget
    for budget in sorted(set(config.score.budgets)):
        run_dir = s1_run_dir(out, budget)
        log(f"budget {format_budget(budget)}: {run_dir}")
        try:
            generated = generate_run(replace(config.generate, max_tokens=budget, out=run_dir, train_budget=trained),
                                     progress, log)  # fmt: skip
        except Interrupted as stop:  # the count of the whole sweep: earlier budgets' runs are stored too
            before = _together(out, generations) if generations else None
            done = (before.generated, before.skipped + before.generated, before.total) if before else (0, 0, 0)
            raise Interrupted(out, done[0] + stop.generated, done[1] + stop.stored, done[2] + stop.wanted) from None
        generations.append(generated)
        if generated.failed and not (generated.generated or generated.skipped):
            continue
        with _after(generated):
            scorings.append((budget, score_run(run_dir, replace(config.score, budgets=(budget,), policy="s1"),
                                                progress)))  # fmt: skip
    generated = _together(out, generations)
    if not scorings:
        return SweepOutcome(out, generated)
    warnings = [f"budget {format_budget(budget)}: {w}" for budget, result in scorings for w in result.warnings]
    scored = replace(scorings[-1][1], warnings=warnings)
    with _after(generated):
        comparison = compare([out])
        run = comparison.runs[0]
        title = (f"{run_label(run.run.record, run.name, 's1')}: thinking budget (the answer phase comes on top), one "
                 "run per budget")  # fmt: skip
        plots = _plot(config, comparison, out, title)
    return SweepOutcome(out, generated, scored, comparison, tuple(plots))


def _check_s1_folder(out: Path, config: GenerateConfig) -> None:
    """Before any generation: the runs already in `out` are one s1 curve (`s1_series`) made with this sweep's flags,
    so a new budget cannot join a curve it does not belong to (each run's own settings are checked as it grows)."""
    if not any(out.glob(f"*/{MANIFEST}")):
        return
    recorded = s1_series(out)[0].record.generation or GenerationRecord()
    sampling, forcing = recorded.sampling, recorded.forcing or ForcingRecord()
    asked = {
        "--dataset": (recorded.dataset, config.dataset),
        "--temperature": (sampling.temperature, config.temperature),
        "--top-p": (sampling.top_p, config.top_p),
        "--logprobs": (sampling.logprobs, config.logprobs),
        "--seed": (recorded.seed, config.seed),
        "--wait": (forcing.wait, config.wait),
        "--wait-text": (forcing.wait_text, config.wait_text),
        "--answer-tokens": (forcing.answer_tokens, config.answer_tokens or DEFAULT_S1_ANSWER_TOKENS),
        "--answer-temperature": (forcing.answer_temperature, config.answer_temperature),
    }
    for flag, (then, now) in asked.items():
        if then != now:
            raise UserError(f"{out} holds the runs of an s1 sweep made with {flag} {then}; this one asks for {now}: "
                            "one folder is one curve, so use a new --out")  # fmt: skip


def _together(out: Path, results: list[GenerateResult]) -> GenerateResult:
    """The generations of an s1 sweep's runs as one: counts and failures added, forcing's insertions too."""
    first = results[0]
    examples = tuple(e for r in results for e in r.failures.examples)[:3]
    insertions = sum((r.insertions or Insertions() for r in results), Insertions())
    stopped = "; ".join(r.stopped for r in results if r.stopped) or None
    return GenerateResult(out, sum(r.generated for r in results), sum(r.skipped for r in results),
                          sum(r.total for r in results), sum(r.seconds for r in results),
                          sum(r.tokens for r in results), first.backend, first.backend_reason,
                          Failures(sum(r.failed for r in results), examples), stopped, first.forcing,
                          insertions, first.problems, first.n)  # fmt: skip
