"""The `score` command and the scoring flags it shares with `sweep` (`scoring_config`, `forced_flags`).

Every flag is checked before any work starts (`scoring_config` also serves `sweep`): a bound found only after the
grading (a budget that does not fit int32, a billion bootstrap resamples) would throw the grading away. Without
`--budgets`, `score` takes the budgets of the run's last scoring (`known_budgets`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from e3eval.commands import panels
from e3eval.commands.engine import ENGINE_HELP, engine_settings
from e3eval.commands.output import fail, progress, say, show_comparison, warn, warnings_shown
from e3eval.errors import UserError
from e3eval.store import MANIFEST

if TYPE_CHECKING:
    from e3eval.backends.settings import EngineSettings
    from e3eval.forced_answer import ForcedConfig
    from e3eval.score import ScoreConfig


def score(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    budgets: Annotated[
        str | None,
        typer.Option(
            help="Token budgets: 4k..40k (doubling), 4k..40k:4k, or 4096,8192. Default: the budgets of the run's "
            "last scoring (a run generated with --forcing s1: its one budget); a run never scored needs them.",
            rich_help_panel=panels.BUDGETS,
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="prefix (paper protocol) | strict | length (e3 scripts' rule) | forced (force an answer out of each "
            "unfinished prefix with --model) | s1 (a run generated with --forcing s1, at its budget). Default: s1 "
            "for such a run, else prefix.",
            rich_help_panel=panels.SCORING,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Grader processes (default: cores - 1, at most 4).", rich_help_panel=panels.SCORING),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Hard deadline in seconds per distinct answer.", rich_help_panel=panels.SCORING)
    ] = 10.0,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap resamples for CIs (0 disables).", rich_help_panel=panels.SCORING)
    ] = 1000,
    seed: Annotated[
        int, typer.Option(help="Seed for bootstrap and maj@k subset sampling.", rich_help_panel=panels.SCORING)
    ] = 0,
    tokenizer: Annotated[
        str | None, typer.Option(help="Override the tokenizer named in run.json.", rich_help_panel=panels.MODEL)
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="forced: the model that writes the forced answers (served name for openai).",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    backend: Annotated[
        str | None,
        typer.Option(
            help="forced: sglang | vllm | hf | openai (default: as for generate).", rich_help_panel=panels.MODEL
        ),
    ] = None,
    answer_cue: Annotated[
        str | None,
        typer.Option(
            help="forced: text appended after the end of thinking (default: a blank line, then Final Answer: "
            "\\boxed{); s1: s1's cue, a newline then Final Answer:, with unboxed answers read after it.",
            rich_help_panel=panels.SCORING,
        ),
    ] = None,
    answer_tokens: Annotated[
        int | None,
        typer.Option(
            help="forced: most tokens of each greedy forced answer (default: 64).", rich_help_panel=panels.SCORING
        ),
    ] = None,
    think_end: Annotated[
        str | None,
        typer.Option(
            help="forced: end-of-thinking delimiter (default: </think>, else none).", rich_help_panel=panels.SCORING
        ),
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(help="forced: model dtype: auto | bfloat16 | float16 | float32.", rich_help_panel=panels.MODEL),
    ] = None,
    batch: Annotated[
        int | None,
        typer.Option(help="forced: requests per engine call and per stored part.", rich_help_panel=panels.MODEL),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="forced, openai: server URL.", rich_help_panel=panels.MODEL)
    ] = None,
    api_key: Annotated[
        str | None,
        typer.Option(help="forced, openai: API key (default: $OPENAI_API_KEY).", rich_help_panel=panels.MODEL),
    ] = None,
    tp: Annotated[
        int | None, typer.Option("--tp", help="forced: " + ENGINE_HELP["tp"], rich_help_panel=panels.MODEL)
    ] = None,
    dp: Annotated[
        int | None, typer.Option("--dp", "--dp-size", help="forced: " + ENGINE_HELP["dp"], rich_help_panel=panels.MODEL)
    ] = None,
    gpu_memory_utilization: Annotated[
        float | None,
        typer.Option(help="forced: " + ENGINE_HELP["gpu_memory_utilization"], rich_help_panel=panels.MODEL),
    ] = None,
    max_model_len: Annotated[
        str | None,
        typer.Option(
            metavar="TOKENS",
            help="forced: vllm / sglang: context the engine reserves (default: the longest forced request).",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    engine_arg: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=VALUE", help="forced: " + ENGINE_HELP["engine_arg"], rich_help_panel=panels.MODEL),
    ] = None,
    verbose: Annotated[
        bool, typer.Option(help="forced: " + ENGINE_HELP["verbose"], rich_help_panel=panels.MODEL)
    ] = False,
) -> None:
    """Grade every sample at every budget; write grades.parquet and summary.parquet/.csv.

    Without --budgets: the budgets of the run's last scoring.
    With --policy forced, the forced answers' engine is the run's (backend,
    engine settings, dtype, as run.json records them) unless flags say otherwise.

    \b
    Examples:
      e3eval score results/qwen --budgets 1k..32k
      e3eval score results/qwen --policy forced --model Qwen/Qwen3-1.7B
    """
    from e3eval.report import comparison_of
    from e3eval.score import default_policy, s1_folder_hint, score_run

    s1_folder_hint(run_dir)
    policy = policy or default_policy(run_dir)
    if budgets is None:
        budgets = known_budgets(run_dir, policy)
    engine = engine_settings(tp, dp, gpu_memory_utilization, max_model_len, engine_arg)
    forced = forced_flags(policy, model, backend, answer_cue, answer_tokens, think_end, dtype, batch, base_url, api_key,
                          engine, verbose)  # fmt: skip
    config = scoring_config(budgets, policy, workers, timeout, bootstrap, seed, tokenizer, forced)
    with progress() as bar, warnings_shown():
        result = score_run(run_dir, config, bar, log=say)
    for warning in result.warnings:
        warn(warning)
    if result.forced is not None:
        done = result.forced
        say(
            f"forced answers: {done.wanted} (sample, budget) pairs had not ended; {done.reused} stored, "
            f"{done.generated} generated ({done.tokens:,} tokens), {done.failed} failed"
        )
    counts = ", ".join(f"{k} {v}" for k, v in result.status_counts.items())
    say(
        f"graded {result.grades.num_rows} (sample, budget) rows [{counts}] with {result.distinct_pairs} distinct "
        f"answers in {result.seconds:.1f}s (decode: {result.decode_path})"
    )
    show_comparison(comparison_of(run_dir, result.summary))
    if result.forced is not None and result.forced.failed:
        # As for generate: numbers were written, but some of what was asked for failed; a script must notice.
        fail(f"{result.forced.failed} forced answer request(s) failed: left out of their budgets' numbers (counted "
             "beside n); rescore to retry them")  # fmt: skip


def known_budgets(run_dir: Path, policy: str) -> str:
    """The budgets `score` takes when none are given, said on stdout: an s1 run's own budget, else those of the
    run's last scoring under `policy` (or its last scoring at all); a run never scored is a UserError suggesting
    some up to its generation limit."""
    from e3eval.budgets import format_budget
    from e3eval.run import Run
    from e3eval.score import s1_budget

    if not (run_dir / MANIFEST).is_file():
        raise UserError(f"{run_dir}: not a run directory (no {MANIFEST})")
    run = Run.open(run_dir)
    budget = s1_budget(run)
    if budget is not None:
        return str(budget)
    scoring = run.record.scoring
    known = (scoring.policy_record(policy).budgets or scoring.budgets) if scoring is not None else ()
    if known:
        spec = ",".join(str(b) for b in known)
        say(f"budgets {', '.join(format_budget(b) for b in known)}: those of the run's last scoring (give --budgets "
            "to change them)")  # fmt: skip
        return spec
    generation = run.record.generation
    limit = generation.sampling.max_tokens if generation is not None else None
    example = f"{format_budget(max(1, limit // 8))}..{format_budget(limit)}" if limit else "1k..32k"
    where = f" (its generation's limit is {limit:,} tokens)" if limit else ""
    raise UserError(f"Missing option '--budgets': {run_dir} was never scored, so it has no budgets of its own; give "
                    f"e.g. --budgets {example}{where}")  # fmt: skip


def forced_flags(
    policy: str,
    model: str | None,
    backend: str | None = None,
    answer_cue: str | None = None,
    answer_tokens: int | None = None,
    think_end: str | None = None,
    dtype: str | None = None,
    batch: int | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    engine: EngineSettings | None = None,
    verbose: bool = False,
) -> ForcedConfig | None:
    """The forced-answer settings of `--policy forced` (which needs --model); these flags with another policy are
    refused rather than ignored."""
    from e3eval.backends.options import BackendOptions
    from e3eval.backends.settings import FLAGS, EngineSettings
    from e3eval.forced_answer import DEFAULT_ANSWER_TOKENS, DEFAULT_CUE, forced_config

    engine = engine or EngineSettings()
    given = {"--model": model, "--backend": backend, "--answer-cue": answer_cue, "--answer-tokens": answer_tokens,
             "--think-end": think_end, "--dtype": dtype, "--batch": batch, "--base-url": base_url,
             "--api-key": api_key, "--engine-arg": engine.engine_args or None, "--verbose": verbose or None,
             **{FLAGS[name]: value for name, value in engine.given().items()}}  # fmt: skip
    if policy != "forced":
        extra = [flag for flag, value in given.items() if value is not None]
        if extra:
            raise UserError(f"{', '.join(extra)}: only for --policy forced (the forced answers' model and settings)")
        return None
    if model is None:
        raise UserError("--policy forced needs --model: the model that writes the forced answers")
    options = BackendOptions(dtype=dtype, base_url=base_url, api_key=api_key).given()
    return forced_config(model, backend, options, DEFAULT_CUE if answer_cue is None else answer_cue,
                         DEFAULT_ANSWER_TOKENS if answer_tokens is None else answer_tokens, think_end,
                         batch, engine, verbose)  # fmt: skip


def scoring_config(
    budgets: str,
    policy: str,
    workers: int | None,
    timeout: float = 10.0,
    bootstrap: int = 1000,
    seed: int = 0,
    tokenizer: str | None = None,
    forced: ForcedConfig | None = None,
) -> ScoreConfig:
    """The ScoreConfig of `score` and `sweep`, every flag checked first (all problems named in one error);
    `forced` (from `forced_flags`) is needed by, and only by, `--policy forced`."""
    from e3eval.budgets import parse_budgets
    from e3eval.grade_pool import default_workers
    from e3eval.policy import check_policy
    from e3eval.score import ScoreConfig

    parsed = tuple(parse_budgets(budgets))
    check_policy(policy)
    config = ScoreConfig(
        budgets=parsed, policy=policy, workers=default_workers() if workers is None else workers, deadline_s=timeout,
        inner_timeout_s=max(1, int(timeout // 3)) if math.isfinite(timeout) else 3, resamples=bootstrap, seed=seed,
        tokenizer=tokenizer, forced=forced,
    )  # fmt: skip
    config.check()
    return config
