"""The `e3eval` command line: parse arguments, build a config, call one library function, print the outcome.

User mistakes raise `UserError` anywhere below; `main()` prints them as one `error:` line and exits with code 2.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from e3eval.errors import UserError

app = typer.Typer(
    help="Measure whether reasoning LLMs extrapolate: exact budget sweeps, grading, pass@k with CIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dev_app = typer.Typer(help="Developer tools: the tiny test model and synthetic rollout pools.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")
console = Console()
err_console = Console(stderr=True)


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    )


@app.command("import")
def import_cmd(
    source: Annotated[Path, typer.Argument(help="Rollouts file: generic JSONL, a verl dump, or e3 rollouts JSON.")],
    out: Annotated[Path, typer.Option("--out", help="Run directory to create.")],
    tokenizer: Annotated[str, typer.Option(help="Tokenizer path (or hub name when online) for token ids.")],
    format: Annotated[str, typer.Option(help="auto | jsonl | verl | e3")] = "auto",
    id_field: Annotated[str, typer.Option(help="JSONL: problem id field.")] = "id",
    response_field: Annotated[str, typer.Option(help="JSONL: response text field.")] = "response",
    answer_field: Annotated[str, typer.Option(help="JSONL: gold answer field (unless --dataset).")] = "answer",
    problem_field: Annotated[str, typer.Option(help="JSONL: problem text field (optional).")] = "problem",
    token_ids_field: Annotated[str | None, typer.Option(help="JSONL: response token ids field.")] = None,
    sample_field: Annotated[str | None, typer.Option(help="JSONL: sample index field.")] = None,
    finish_reason_field: Annotated[str | None, typer.Option(help="JSONL: stop | length | error field.")] = None,
    error_field: Annotated[
        str | None, typer.Option(help="JSONL: field whose value, when set, marks a failed request (not a sample).")
    ] = "error",
    dataset: Annotated[Path | None, typer.Option(help="JSONL/Parquet with id, problem, answer: gold answers.")] = None,
    max_tokens: Annotated[
        int | None, typer.Option(help="Generation limit: responses this long are marked finish_reason=length.")
    ] = None,
    skip_bad_lines: Annotated[bool, typer.Option(help="Skip and count malformed lines instead of stopping.")] = False,
    run_id: Annotated[str | None, typer.Option(help="Run id (default: the directory name).")] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing run directory.")] = False,
) -> None:
    """Build a run directory from another tool's rollouts."""
    from e3eval.ingest import ImportConfig, import_run

    config = ImportConfig(
        source=source, out=out, tokenizer=tokenizer, format=format, id_field=id_field,
        response_field=response_field, answer_field=answer_field, problem_field=problem_field,
        token_ids_field=token_ids_field, sample_field=sample_field, finish_reason_field=finish_reason_field,
        error_field=error_field, dataset=dataset, max_tokens=max_tokens, skip_bad_lines=skip_bad_lines,
        run_id=run_id, force=force,
    )  # fmt: skip
    with _progress() as progress:
        result = import_run(config, progress)
    console.print(
        f"imported {result.rollouts} rollouts of {result.problems} problems ({result.format} format, "
        f"token ids {result.token_ids_source}) into {result.run_dir}"
    )
    if result.skipped.count:
        err_console.print(f"[yellow]skipped {result.skipped.count} bad line(s)[/], e.g. {result.skipped.examples[0]}")


@app.command()
def score(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    budgets: Annotated[str, typer.Option(help="Token budgets: 4k..40k (doubling), 4k..40k:4k, or 4096,8192.")],
    policy: Annotated[
        str, typer.Option(help="prefix (paper protocol) | strict | length (e3 scripts' rule).")
    ] = "prefix",
    workers: Annotated[int | None, typer.Option(help="Grader processes (default: cores - 1, at most 4).")] = None,
    timeout: Annotated[float, typer.Option(help="Hard deadline in seconds per distinct answer.")] = 10.0,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples for CIs (0 disables).")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed for bootstrap and maj@k subset sampling.")] = 0,
    tokenizer: Annotated[str | None, typer.Option(help="Override the tokenizer named in run.json.")] = None,
) -> None:
    """Grade every sample at every budget; write grades.parquet and summary.parquet/.csv."""
    from e3eval.budgets import parse_budgets
    from e3eval.grade_pool import default_workers
    from e3eval.report import render
    from e3eval.score import ScoreConfig, score_run

    if workers is not None and workers < 1:
        raise UserError("--workers must be at least 1")
    if timeout <= 0:
        raise UserError("--timeout must be positive")
    config = ScoreConfig(
        budgets=tuple(parse_budgets(budgets)), policy=policy, workers=workers or default_workers(),
        deadline_s=timeout, inner_timeout_s=max(1, int(timeout // 3)), resamples=bootstrap, seed=seed,
        tokenizer=tokenizer,
    )  # fmt: skip
    with _progress() as progress:
        result = score_run(run_dir, config, progress)
    for warning in result.warnings:
        err_console.print(f"[yellow]warning:[/] {warning}")
    counts = ", ".join(f"{k} {v}" for k, v in result.status_counts.items())
    console.print(
        f"graded {result.grades.num_rows} (sample, budget) rows [{counts}] with {result.distinct_pairs} distinct "
        f"answers in {result.seconds:.1f}s (decode: {result.decode_path})"
    )
    render([run_dir], console)


@app.command()
def report(
    run_dirs: Annotated[list[Path], typer.Argument(help="One or more scored run directories.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Summary CSV to write (default: RUN_DIR/summary.csv for one run, ./summary.csv for several)."
        ),
    ] = None,
) -> None:
    """Print budgets x metrics with CIs for one or more runs, side by side, and write the summary CSV."""
    from e3eval.report import render, write_combined_csv

    combined = render(run_dirs, console)
    target = out or (run_dirs[0] / "summary.csv" if len(run_dirs) == 1 else Path("summary.csv"))
    write_combined_csv(target, combined)
    console.print(f"wrote {target}")


@app.command("budgets")
def budgets_cmd(spec: Annotated[str, typer.Argument(help="Budget spec, e.g. 4k..40k")]) -> None:
    """Show how a budget spec expands."""
    from e3eval.budgets import parse_budgets

    console.print(" ".join(str(b) for b in parse_budgets(spec)))


@dev_app.command("tiny-model")
def tiny_model(
    out_dir: Annotated[Path, typer.Argument(help="Directory to write the model and tokenizer to.")],
    seed: Annotated[int, typer.Option(help="Seed for tokenizer corpus and weights.")] = 0,
) -> None:
    """Build a ~1M-parameter random Qwen3 model with a byte-level BPE tokenizer, offline."""
    from e3eval.tiny_model import build_tiny_model

    build_tiny_model(out_dir, seed)
    console.print(f"wrote tiny model and tokenizer to {out_dir}")


@dev_app.command("example-pool")
def example_pool(
    out: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    tokenizer: Annotated[str, typer.Option(help="Tokenizer for token ids (e.g. a tiny-model directory).")],
    samples: Annotated[int, typer.Option(help="Samples per problem.")] = 8,
    min_tokens: Annotated[int, typer.Option(help="Shortest finished response.")] = 200,
    max_tokens: Annotated[int, typer.Option(help="Generation limit; longer responses are cut (length).")] = 2048,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Write a synthetic rollout pool over the bundled demo problems (for demos, tests, benchmarks)."""
    from e3eval.synthetic import PoolSpec, demo_problems, write_pool
    from e3eval.truncate import load_tokenizer

    if not 0 < min_tokens <= max_tokens:
        raise UserError("need 0 < --min-tokens <= --max-tokens")
    spec = PoolSpec(samples=samples, min_tokens=min_tokens, max_tokens=max_tokens, seed=seed)
    count = write_pool(out, demo_problems(), spec, load_tokenizer(tokenizer))
    console.print(f"wrote {count} synthetic rollouts to {out}")


def _generation(
    model: str, dataset: str, out: Path | None, n: int, max_tokens: int, backend: str | None, temperature: float,
    top_p: float, seed: int, template: str, chat: bool, thinking: bool | None, system: str | None, batch: int,
    shard: str, limit: int | None, logprobs: bool, dtype: str, dp_size: int, base_url: str | None,
    api_key: str | None, concurrency: int, request_timeout: float, id_field: str, problem_field: str,
    answer_field: str, tokenizer: str | None = None,
):  # fmt: skip
    """Build a GenerateConfig from the flags `generate` and `sweep` share."""
    from e3eval.generation import GenerateConfig, parse_shard
    from e3eval.prompts import PromptSpec, check_template
    from e3eval.sweep import default_out

    if n < 1:
        raise UserError("--n must be at least 1")
    if not 0 <= temperature <= 10 or not 0 < top_p <= 1:
        raise UserError("need 0 <= --temperature <= 10 and 0 < --top-p <= 1")
    options: dict = {"dtype": dtype}
    if backend in (None, "hf"):
        options = {"dtype": dtype, "batch_size": batch}
    if backend == "sglang":
        options["dp_size"] = dp_size
    if backend == "openai" or base_url:
        options = {"base_url": base_url, "api_key": api_key, "concurrency": concurrency, "timeout_s": request_timeout,
                   "tokenizer": tokenizer}  # fmt: skip
    return GenerateConfig(
        model=model, dataset=dataset, out=out or default_out(model, dataset), n=n, max_tokens=max_tokens,
        temperature=temperature, top_p=top_p, seed=seed,
        prompt=PromptSpec(check_template(template), chat, thinking, system), backend=backend,
        backend_options=options, batch_samples=batch, shard=parse_shard(shard), limit=limit, logprobs=logprobs,
        id_field=id_field, problem_field=problem_field, answer_field=answer_field,
    )  # fmt: skip


_GEN_HELP = {
    "model": "Model path or hub name (or the served model name with --backend openai).",
    "dataset": "aime24 | aime25 | hmmt24 | hmmt25 | math500 | amc23 | demo | a JSONL/Parquet file.",
    "backend": "sglang | vllm | hf | openai (default: openai with --base-url, else sglang > vllm > hf, installed).",
    "template": "Prompt template: aime (paper) | deepscaler | raw.",
    "thinking": "Chat templates that support it: --thinking / --no-thinking (default: the template's own).",
    "shard": "i/N: generate every N-th problem only (join shard runs with `e3eval merge`).",
    "tokenizer": "openai: tokenizer path or name for rendering prompts (default: --model).",
}


@app.command()
def generate(
    model: Annotated[str, typer.Option(help=_GEN_HELP["model"])],
    dataset: Annotated[str, typer.Option(help=_GEN_HELP["dataset"])],
    max_tokens: Annotated[str, typer.Option(help="Generation limit (the largest budget), e.g. 40k.")],
    n: Annotated[int, typer.Option(help="Samples per problem (grow it later: only new samples are generated).")] = 16,
    out: Annotated[Path | None, typer.Option(help="Run directory (default: results/<model>__<dataset>).")] = None,
    backend: Annotated[str | None, typer.Option(help=_GEN_HELP["backend"])] = None,
    temperature: Annotated[float, typer.Option()] = 0.6,
    top_p: Annotated[float, typer.Option()] = 0.95,
    seed: Annotated[int, typer.Option(help="Base seed; each sample's seed derives from (seed, problem, index).")] = 0,
    template: Annotated[str, typer.Option(help=_GEN_HELP["template"])] = "aime",
    chat: Annotated[bool, typer.Option(help="Wrap the prompt in the model's chat template.")] = True,
    thinking: Annotated[bool | None, typer.Option(help=_GEN_HELP["thinking"])] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    batch: Annotated[int, typer.Option(help="Samples per engine call (and per saved shard).")] = 64,
    shard: Annotated[str, typer.Option(help=_GEN_HELP["shard"])] = "0/1",
    limit: Annotated[int | None, typer.Option(help="Only the first N problems.")] = None,
    logprobs: Annotated[bool, typer.Option(help="Store sampled-token logprobs.")] = False,
    dtype: Annotated[str, typer.Option(help="Model dtype: auto | bfloat16 | float16 | float32.")] = "auto",
    dp_size: Annotated[int, typer.Option(help="sglang: data-parallel engine replicas.")] = 1,
    base_url: Annotated[str | None, typer.Option(help="openai: server URL, e.g. http://127.0.0.1:8000/v1")] = None,
    api_key: Annotated[str | None, typer.Option(help="openai: API key (default: $OPENAI_API_KEY).")] = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight.")] = 32,
    request_timeout: Annotated[float, typer.Option(help="openai: seconds per request.")] = 3600.0,
    tokenizer: Annotated[str | None, typer.Option(help=_GEN_HELP["tokenizer"])] = None,
    id_field: Annotated[str, typer.Option(help="Local dataset file: id field.")] = "id",
    problem_field: Annotated[str, typer.Option(help="Local dataset file: problem field.")] = "problem",
    answer_field: Annotated[str, typer.Option(help="Local dataset file: answer field.")] = "answer",
) -> None:
    """Generate samples into a run directory; resumable, sharded, never mixing settings."""
    from e3eval.budgets import parse_size
    from e3eval.generation import generate_run

    config = _generation(
        model, dataset, out, n, parse_size(max_tokens), backend, temperature, top_p, seed, template, chat, thinking,
        system, batch, shard, limit, logprobs, dtype, dp_size, base_url, api_key, concurrency, request_timeout,
        id_field, problem_field, answer_field, tokenizer,
    )  # fmt: skip
    with _progress() as progress:
        result = generate_run(config, progress, log=console.print)
    console.print(
        f"{result.run_dir}: {result.generated} new samples ({result.tokens:,} tokens, {result.seconds:.1f}s), "
        f"{result.skipped} already there, {result.total} wanted"
    )
    if result.failed:
        _fail(result.failure_line())


def _fail(line: str, code: int = 1) -> None:
    """Work that failed (not a user mistake): one red line, a non-zero exit, no traceback."""
    err_console.print(f"[bold red]failed:[/] {line}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@app.command()
def sweep(
    model: Annotated[str, typer.Option(help=_GEN_HELP["model"])],
    dataset: Annotated[str, typer.Option(help=_GEN_HELP["dataset"])] = "aime25",
    budgets: Annotated[str, typer.Option(help="Token budgets; generation runs once at the largest.")] = "4k..40k",
    n: Annotated[int, typer.Option(help="Samples per problem.")] = 32,
    train_budget: Annotated[str | None, typer.Option(help="Training budget: shades the extrapolation region.")] = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default: results/<model>__<dataset>).")] = None,
    backend: Annotated[str | None, typer.Option(help=_GEN_HELP["backend"])] = None,
    policy: Annotated[str, typer.Option(help="prefix | strict | length")] = "prefix",
    temperature: Annotated[float, typer.Option()] = 0.6,
    top_p: Annotated[float, typer.Option()] = 0.95,
    seed: Annotated[int, typer.Option()] = 0,
    template: Annotated[str, typer.Option(help=_GEN_HELP["template"])] = "aime",
    chat: Annotated[bool, typer.Option(help="Wrap the prompt in the model's chat template.")] = True,
    thinking: Annotated[bool | None, typer.Option(help=_GEN_HELP["thinking"])] = None,
    system: Annotated[str | None, typer.Option(help="System prompt.")] = None,
    batch: Annotated[int, typer.Option(help="Samples per engine call.")] = 64,
    shard: Annotated[str, typer.Option(help=_GEN_HELP["shard"])] = "0/1",
    limit: Annotated[int | None, typer.Option(help="Only the first N problems.")] = None,
    dtype: Annotated[str, typer.Option()] = "auto",
    dp_size: Annotated[int, typer.Option(help="sglang: data-parallel replicas.")] = 1,
    base_url: Annotated[str | None, typer.Option(help="openai: server URL.")] = None,
    api_key: Annotated[str | None, typer.Option(help="openai: API key.")] = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight.")] = 32,
    request_timeout: Annotated[float, typer.Option(help="openai: seconds per request.")] = 3600.0,
    tokenizer: Annotated[str | None, typer.Option(help=_GEN_HELP["tokenizer"])] = None,
    workers: Annotated[int | None, typer.Option(help="Grader processes.")] = None,
    bootstrap: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 1000,
) -> None:
    """Generate once at the largest budget, score every budget, print the table and plot the curves."""
    from e3eval.budgets import parse_budgets, parse_size
    from e3eval.grade_pool import default_workers
    from e3eval.score import ScoreConfig
    from e3eval.sweep import SweepConfig, run_sweep

    parsed = tuple(parse_budgets(budgets))
    generation = _generation(
        model, dataset, out, n, max(parsed), backend, temperature, top_p, seed, template, chat, thinking, system,
        batch, shard, limit, False, dtype, dp_size, base_url, api_key, concurrency, request_timeout, "id",
        "problem", "answer", tokenizer,
    )  # fmt: skip
    score = ScoreConfig(budgets=parsed, policy=policy, workers=workers or default_workers(), resamples=bootstrap)
    trained = parse_size(train_budget) if train_budget else None
    outcome = run_sweep(SweepConfig(generation, score, trained), console, _progress)
    if outcome.generation.failed:
        _fail(outcome.generation.failure_line())


@app.command()
def merge(
    out: Annotated[Path, typer.Argument(help="Run directory to create.")],
    runs: Annotated[list[Path], typer.Argument(help="Shard run directories with identical settings.")],
    force: Annotated[bool, typer.Option(help="Replace an existing directory.")] = False,
) -> None:
    """Join shard runs (`--shard i/N`) into one run."""
    from e3eval.generation import merge_runs

    count = merge_runs(out, runs, force)
    console.print(f"merged {count} samples from {len(runs)} runs into {out}")


@app.command("datasets")
def datasets_cmd() -> None:
    """List the named benchmarks with sizes and sources."""
    from rich.table import Table

    from e3eval.datasets import BENCHMARKS, data_dir, load_problems, mirror_path

    table = Table(title=f"benchmarks (offline mirrors: E3EVAL_DATA_DIR={data_dir() or 'unset'})")
    for column in ("name", "problems", "description", "hub id", "offline mirror"):
        table.add_column(column)
    for spec in BENCHMARKS.values():
        mirror = mirror_path(spec)
        size = str(len(load_problems(mirror))) if mirror else "?"
        table.add_row(spec.name, size, spec.description, f"{spec.hub_id} ({spec.hub_split})",
                      str(mirror) if mirror else "-")  # fmt: skip
    table.add_row("demo", "16", "small problems bundled with e3eval", "-", "package data")
    console.print(table)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its model and runs.")] = Path("results/demo"),
    synthetic: Annotated[bool, typer.Option(help="Score a synthetic pool instead of generating.")] = False,
    workers: Annotated[int | None, typer.Option(help="Grader processes.")] = None,
) -> None:
    """The embedded default: a real sweep of the tiny model on the bundled problems, CPU only, no network."""
    from e3eval.demo import run_demo, run_synthetic_demo

    if synthetic:
        run_synthetic_demo(out, console, _progress, workers)
    else:
        run_demo(out, console, _progress, workers)


@app.command("count-asymmetries")
def count_asymmetries_cmd(
    source: Annotated[Path, typer.Argument(help="Traces: a JSONL file, a verl rollout dump, or a run directory.")],
    preset: Annotated[str, typer.Option(help="math | e3-math | countdown | mult (see analysis/steps.py).")] = "math",
    response_field: Annotated[str, typer.Option(help="JSONL: the trace text field.")] = "response",
    id_field: Annotated[str | None, typer.Option(help="JSONL: id field (default: the line number).")] = None,
    correct_field: Annotated[str | None, typer.Option(help="JSONL: correctness (bool or score > 0).")] = None,
    token_ids_field: Annotated[str | None, typer.Option(help="JSONL: token ids of the trace.")] = None,
    target_field: Annotated[str | None, typer.Option(help="countdown: target number (or {target: ...}).")] = None,
    finish_reason_field: Annotated[str | None, typer.Option(help="JSONL: stop | length, for lengths.")] = None,
    budgets: Annotated[str | None, typer.Option(help="Count within each budget's prefix, e.g. 4k..32k.")] = None,
    tokenizer: Annotated[
        str | None, typer.Option(help="Tokenizer for budgets/lengths (run dirs: from run.json).")
    ] = None,
    lexicon: Annotated[
        Path | None, typer.Option(help="math preset: JSON file with `verify` and `attempt` lists.")
    ] = None,
    by: Annotated[str, typer.Option(help="correct | none: split the summary by correctness.")] = "correct",
    out: Annotated[Path | None, typer.Option(help="Per-trace table (.csv or .parquet), in input order.")] = None,
    skip_bad_lines: Annotated[bool, typer.Option(help="Skip and count malformed lines instead of stopping.")] = False,
    jobs: Annotated[int | None, typer.Option(help="Worker processes for JSONL input (default: all cores).")] = None,
) -> None:
    """Count verification and attempt steps (and chained asymmetries) in traces, by correctness and budget."""
    from analysis.asymmetries import CountConfig, count_asymmetries, summarize, write_rows
    from analysis.traces import TraceFields
    from e3eval.budgets import format_budget, parse_budgets

    if by not in ("correct", "none"):
        raise UserError("--by must be correct or none")
    fields = TraceFields(response_field, id_field, correct_field, token_ids_field, finish_reason_field, target_field)
    config = CountConfig(source, preset, fields, tuple(parse_budgets(budgets)) if budgets else None, tokenizer,
                         lexicon, skip_bad_lines)  # fmt: skip
    with _progress() as progress:
        result = count_asymmetries(config, progress, jobs=jobs or os.cpu_count() or 1)
    from rich.table import Table

    table = Table(title=f"{source.name}: steps per trace, preset {preset} (mean / median)")
    for column in ("budget", "group", "n", "verify", "attempts", "chained", "repeating %", "tokens"):
        table.add_column(column, justify="right")
    for row in summarize(result.table, by_correct=by == "correct"):
        cells = [format_budget(row.budget) if row.budget else "full", row.group, str(row.n)]
        cells += [f"{row.stats[m][0]:.2f} / {row.stats[m][1]:g}" for m in ("n_verify", "n_attempts", "n_chained")]
        cells.append("-" if row.repeat_rate is None else f"{100 * row.repeat_rate:.1f}")
        cells.append("-" if row.mean_tokens is None else f"{row.mean_tokens:,.0f}")
        table.add_row(*cells)
    console.print(table)
    empty = sum(result.table.column("empty").to_pylist())
    console.print(
        f"{result.traces} traces ({result.table.num_rows} rows); {empty} empty; "
        f"{result.skipped.count} bad lines skipped; repeating % is among incorrect traces (e3 rule)"
    )
    if result.skipped.count:
        err_console.print(f"[yellow]skipped {result.skipped.count} bad line(s)[/], e.g. {result.skipped.examples[0]}")
    if source.is_dir():
        from e3eval.samples import ledger
        from e3eval.store import read_manifest, read_problems

        samples = ledger(source, read_manifest(source), [p.problem_id for p in read_problems(source)])
        if not samples.complete:
            err_console.print(f"[yellow]warning:[/] {samples.describe()}: not counted as traces")
    if out is not None:
        write_rows(out, result.table)
        console.print(f"wrote {out}")


@app.command("unique-attempts")
def unique_attempts_cmd(
    dumps: Annotated[list[Path], typer.Argument(help="Rollout dumps in training-step order (verl {step}.jsonl).")],
    max_solve_rate: Annotated[float, typer.Option(help="Keep problems solved less often than this.")] = 0.5,
    response_field: Annotated[str, typer.Option(help="JSONL: the trace text field.")] = "response",
    group_field: Annotated[str | None, typer.Option(help="JSONL: the problem field.")] = None,
    correct_field: Annotated[str | None, typer.Option(help="JSONL: correctness field.")] = None,
    target_field: Annotated[str | None, typer.Option(help="JSONL: Countdown target field.")] = None,
) -> None:
    """Cumulative unique Countdown attempts per problem over training steps (incorrect traces, hard problems)."""
    from analysis.attempts import unique_attempts
    from analysis.traces import TraceFields

    fields = TraceFields(response_field, None, correct_field, None, None, target_field, group_field)
    from rich.table import Table

    table = Table(title="cumulative unique attempts per problem (incorrect traces)")
    for column in ("step", "mean unique attempts", "problems", "traces in dump"):
        table.add_column(column, justify="right")
    for point in unique_attempts(dumps, fields, max_solve_rate):
        table.add_row(point.step, f"{point.mean_unique:.2f}", str(point.n_problems), str(point.n_traces))
    console.print(table)


def main() -> None:
    try:
        app()
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
