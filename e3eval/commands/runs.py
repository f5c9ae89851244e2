"""Commands over run directories: `import`, `score`, `report`, `merge`, and the lookups `budgets` and `datasets`.

Every flag is checked before any work starts (`scoring_config` also serves `sweep`): a bound found only after the
grading (a budget that does not fit int32, a billion bootstrap resamples) would throw the grading away.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from e3eval.commands import panels
from e3eval.commands.engine import ENGINE_HELP, engine_settings
from e3eval.commands.output import console, err_console, fail, progress, say, show_comparison, warn, warnings_shown
from e3eval.errors import UserError
from e3eval.store import MANIFEST

if TYPE_CHECKING:
    from e3eval.backends.settings import EngineSettings
    from e3eval.forced_answer import ForcedConfig
    from e3eval.score import ScoreConfig


def import_cmd(
    source: Annotated[Path, typer.Argument(help="Rollouts file: generic JSONL, a verl dump, or e3 rollouts JSON.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory to create.", rich_help_panel=panels.OUTPUT)],
    tokenizer: Annotated[
        str, typer.Option(help="Tokenizer path (or hub name when online) for token ids.", rich_help_panel=panels.MODEL)
    ],
    format: Annotated[str, typer.Option(help="auto | jsonl | verl | e3", rich_help_panel=panels.DATA)] = "auto",
    id_field: Annotated[str, typer.Option(help="JSONL: problem id field.", rich_help_panel=panels.DATA)] = "id",
    response_field: Annotated[
        str, typer.Option(help="JSONL: response text field.", rich_help_panel=panels.DATA)
    ] = "response",
    answer_field: Annotated[
        str, typer.Option(help="JSONL: gold answer field (unless --dataset).", rich_help_panel=panels.DATA)
    ] = "answer",
    problem_field: Annotated[
        str, typer.Option(help="JSONL: problem text field (optional).", rich_help_panel=panels.DATA)
    ] = "problem",
    token_ids_field: Annotated[
        str | None, typer.Option(help="JSONL: response token ids field.", rich_help_panel=panels.DATA)
    ] = None,
    sample_field: Annotated[
        str | None, typer.Option(help="JSONL: sample index field.", rich_help_panel=panels.DATA)
    ] = None,
    finish_reason_field: Annotated[
        str | None, typer.Option(help="JSONL: stop | length | error field.", rich_help_panel=panels.DATA)
    ] = None,
    error_field: Annotated[
        str | None,
        typer.Option(
            help="JSONL: field whose value, when set, marks a failed request (not a sample).",
            rich_help_panel=panels.DATA,
        ),
    ] = "error",
    dataset: Annotated[
        Path | None,
        typer.Option(help="JSONL/Parquet with id, problem, answer: gold answers.", rich_help_panel=panels.DATA),
    ] = None,
    max_tokens: Annotated[
        int | None,
        typer.Option(
            help="Generation limit: responses this long are marked finish_reason=length.",
            rich_help_panel=panels.BUDGETS,
        ),
    ] = None,
    skip_bad_lines: Annotated[
        bool, typer.Option(help="Skip and count malformed lines instead of stopping.", rich_help_panel=panels.DATA)
    ] = False,
    name: Annotated[
        str | None,
        typer.Option(
            help="The run's label in reports (default: the directory name); its id is a uuid.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace an existing run holding only e3eval's files (never anything else).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
) -> None:
    """Build a run directory from another tool's rollouts (generic JSONL, a verl dump, e3 rollouts JSON).

    \b
    Examples:
      e3eval import out.jsonl --out results/mine --tokenizer Qwen/Qwen3-1.7B
      e3eval import dump.jsonl --out results/verl --tokenizer ./m --format verl
    """
    from e3eval.ingest import ImportConfig, import_run

    config = ImportConfig(
        source=source, out=out, tokenizer=tokenizer, format=format, id_field=id_field,
        response_field=response_field, answer_field=answer_field, problem_field=problem_field,
        token_ids_field=token_ids_field, sample_field=sample_field, finish_reason_field=finish_reason_field,
        error_field=error_field, dataset=dataset, max_tokens=max_tokens, skip_bad_lines=skip_bad_lines,
        name=name, force=force,
    )  # fmt: skip
    with progress() as bar:
        result = import_run(config, bar)
    say(
        f"imported {result.rollouts} rollouts of {result.problems} problems ({result.format} format, "
        f"token ids {result.token_ids_source}) into {result.run_dir}"
    )
    if result.skipped.count:
        example = escape(result.skipped.examples[0])
        err_console.print(f"[yellow]skipped {result.skipped.count} bad line(s)[/], e.g. {example}", highlight=False)


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


def report(
    run_dirs: Annotated[
        list[Path] | None,
        typer.Argument(help="Scored run directories (or the folder of a `sweep --forcing s1`).", show_default=False),
    ] = None,
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="table (fitted to the terminal) | markdown (a GFM table) | latex (a tabular) | csv | json.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = "table",
    metrics: Annotated[
        str | None,
        typer.Option(
            help="Metrics to show, named as printed: pass@1,pass@8,maj@4,mean_tokens,frac_finished,... (default: "
            "pass@1, the largest pass@k and maj@k every run has, tokens, finished, answered; csv and json: all).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    train_budget: Annotated[
        str | None,
        typer.Option(
            metavar="TOKENS",
            help="The training budget (default: the one run.json records): the extrapolation gain pass@1(B) - "
            "pass@1(TOKENS) at every scored B above it, with a paired bootstrap CI. Must be a scored budget.",
            rich_help_panel=panels.BUDGETS,
        ),
    ] = None,
    diff: Annotated[
        tuple[str, str] | None,
        typer.Option(
            metavar="A B",
            help="Paired differences A - B at each budget both scored, problems resampled jointly: two run "
            "directories (added to those compared) or the keys, labels or names the table shows.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="For a run scored under several policies: show (and --diff) only this policy's rows.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write the report to this file instead of stdout (for --format table: the summary rows as CSV, "
            "beside the table). Nothing is written without it: `e3eval score` writes each RUN/summary.csv.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace an --out file that e3eval did not write (or that was changed since).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
) -> None:
    """Show scored runs side by side: budgets x metrics with 95% CIs, labelled by model, dataset, forcing, policy.

    Warns where the runs differ (dataset, problems, n, sampling, forcing) or pass@k is cut to a common k.

    \b
    Examples:
      e3eval report results/qwen results/wait2
      e3eval report results/qwen --format latex --train-budget 4k
      e3eval report results/* --format markdown --metrics pass@1,pass@8
      e3eval report results/qwen results/wait2 --diff B A
    """
    from e3eval.budgets import parse_size
    from e3eval.report import StaleSummaryWarning, compare
    from e3eval.report_formats import FORMATS, build_report, check_out_target, render, to_csv, write_report

    if format not in FORMATS:
        raise UserError(f"--format {format}: choose one of {', '.join(FORMATS)}")
    if out is not None:
        check_out_target(out, force)  # before reading the runs: a refused --out wastes nothing
    paths = list(run_dirs or [])
    sides: list[str | Path] = []
    for side in diff or ():  # a directory is compared too; other text is a key, label or name of the table
        path = Path(side)
        if path.is_dir():
            if not any(p.resolve() == path.resolve() for p in paths):
                paths.append(path)
            sides.append(path)
        else:
            sides.append(side)
    if not paths:
        raise UserError("give at least one run directory, e.g. e3eval report results/run")
    base = parse_size(train_budget, "--train-budget") if train_budget is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", StaleSummaryWarning)  # shown below the table, where it is seen
        comparison = compare(paths, policy)
    built = build_report(comparison, metrics, base, (sides[0], sides[1]) if diff else None, format)
    if format == "table":
        show_comparison(comparison, built)
        if out is not None:  # the summary rows of every metric, unless --metrics names some
            write_report(out, to_csv(replace(built, metrics=tuple(comparison.metrics)) if metrics is None else built),
                         force)  # fmt: skip
            say(f"wrote {out}")
        return
    text = render(built, format)
    if out is None:
        console.out(text, highlight=False, end="")
    else:
        write_report(out, text, force)
        say(f"wrote {out}")
    for line in built.warnings():
        warn(line)


def budgets_cmd(spec: Annotated[str, typer.Argument(help="Budget spec, e.g. 4k..40k")]) -> None:
    """Show how a budget spec expands.

    \b
    Examples:
      e3eval budgets 4k..32k        (doubling: 4096 8192 16384 32768)
      e3eval budgets 4k..16k:4k     (steps of 4k)
    """
    from e3eval.budgets import parse_budgets

    say(" ".join(str(b) for b in parse_budgets(spec)))


def merge(
    runs: Annotated[list[Path], typer.Argument(help="Shard run directories with identical settings.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run directory to create (it used to be the first argument: still taken, with a warning).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            help="Replace an existing run holding only e3eval's files (never anything else).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
    allow_missing: Annotated[
        bool,
        typer.Option(
            help="Merge although shards of the --shard i/N split are missing (their problems are left out).",
            rich_help_panel=panels.DATA,
        ),
    ] = False,
) -> None:
    """Join shard runs (`--shard i/N`) into one run (--out); every shard of the split must be there.

    \b
    Example:
      e3eval merge results/qwen-1of2 results/qwen-2of2 --out results/qwen
    """
    from e3eval.merge import merge_runs

    if out is None:  # the old order, `merge OUT RUN...`: the run directories come first in every command now
        if len(runs) < 2:
            raise UserError("give the shard run directories and --out DIR, the run directory to create")
        if (runs[0] / MANIFEST).is_file():  # a shard, not the old order's target: never take it for the output
            raise UserError(f"no --out: give the run directory to create, e.g. `e3eval merge {' '.join(map(str, runs))}"
                            " --out DIR`")  # fmt: skip
        out, runs = runs[0], runs[1:]
        warn(f"`e3eval merge OUT RUN...` is deprecated and goes in the next release: use `e3eval merge RUN... --out "
             f"{out}` (run directories first, as in score, report and probe)")  # fmt: skip

    count = merge_runs(out, runs, force, allow_missing)
    say(f"merged {count} samples from {len(runs)} runs into {out}")


def datasets_cmd() -> None:
    """List the named benchmarks with sizes and sources.

    \b
    Example:
      E3EVAL_DATA_DIR=/data/benchmarks e3eval datasets
    """
    from rich.table import Table

    from e3eval.datasets import BENCHMARKS, data_dir, load_problems, mirror_path

    table = Table(title=f"benchmarks (offline mirrors: E3EVAL_DATA_DIR={escape(str(data_dir() or 'unset'))})")
    for column in ("name", "problems", "description", "hub id", "offline mirror"):
        table.add_column(column)
    for spec in BENCHMARKS.values():
        mirror = mirror_path(spec)
        size = str(len(load_problems(mirror))) if mirror else "?"
        table.add_row(spec.name, size, spec.description, f"{spec.hub_id} ({spec.hub_split})",
                      escape(str(mirror)) if mirror else "-")  # fmt: skip
    table.add_row("demo", "16", "small problems bundled with e3eval", "-", "package data")
    console.print(table)
