"""Commands over reasoning traces: `count-asymmetries` and `unique-attempts` (the counting lives in `analysis/`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from e3eval.commands.output import console, deprecated_alias, err_console, progress, say, warn
from e3eval.errors import UserError


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
    workers: Annotated[int | None, typer.Option(help="Worker processes for JSONL input (default: all cores).")] = None,
    jobs: Annotated[int | None, typer.Option(hidden=True, help="Deprecated spelling of --workers.")] = None,
    force: Annotated[bool, typer.Option(help="Let --out replace a file e3eval did not write.")] = False,
) -> None:
    """Count verification and attempt steps (and chained asymmetries) in traces, by correctness and budget."""
    from rich.table import Table

    from e3eval.analysis.asymmetries import (
        CountConfig,
        check_rows_target,
        count_asymmetries,
        summarize_steps,
        write_rows,
    )
    from e3eval.analysis.traces import TraceFields
    from e3eval.budgets import format_budget, parse_budgets

    if by not in ("correct", "none"):
        raise UserError("--by must be correct or none")
    if out is not None:
        check_rows_target(out, force)
    flag, jobs = deprecated_alias("--workers", workers, "--jobs", jobs)
    cores = os.cpu_count() or 1
    if jobs is not None and not 1 <= jobs <= max(16, 4 * cores):
        raise UserError(f"{flag} must be between 1 and {max(16, 4 * cores)} on this machine ({cores} cores)")
    fields = TraceFields(response_field, id_field, correct_field, token_ids_field, finish_reason_field, target_field)
    config = CountConfig(source, preset, fields, tuple(parse_budgets(budgets)) if budgets else None, tokenizer,
                         lexicon, skip_bad_lines)  # fmt: skip
    with progress() as bar:
        result = count_asymmetries(config, bar, jobs=jobs or os.cpu_count() or 1)
    table = Table(title=f"{escape(source.name)}: steps per trace, preset {escape(preset)} (mean / median)")
    for column in ("budget", "group", "n", "verify", "attempts", "chained", "repeating %", "tokens"):
        table.add_column(column, justify="right")
    for row in summarize_steps(result.table, by_correct=by == "correct"):
        cells = [format_budget(row.budget) if row.budget else "full", escape(row.group), str(row.n)]
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
        example = escape(result.skipped.examples[0])
        err_console.print(f"[yellow]skipped {result.skipped.count} bad line(s)[/], e.g. {example}", highlight=False)
    if source.is_dir():
        from e3eval.run import Run

        samples = Run.open(source).samples()
        if not samples.complete:
            warn(f"{samples.describe()}: not counted as traces")
    if out is not None:
        write_rows(out, result.table, force)
        say(f"wrote {out}")


def unique_attempts_cmd(
    dumps: Annotated[list[Path], typer.Argument(help="Rollout dumps in training-step order (verl {step}.jsonl).")],
    max_solve_rate: Annotated[float, typer.Option(help="Keep problems solved less often than this.")] = 0.5,
    response_field: Annotated[str, typer.Option(help="JSONL: the trace text field.")] = "response",
    group_field: Annotated[str | None, typer.Option(help="JSONL: the problem field.")] = None,
    correct_field: Annotated[str | None, typer.Option(help="JSONL: correctness field.")] = None,
    target_field: Annotated[str | None, typer.Option(help="JSONL: Countdown target field.")] = None,
) -> None:
    """Cumulative unique Countdown attempts per problem over training steps (incorrect traces, hard problems)."""
    from rich.table import Table

    from e3eval.analysis.traces import TraceFields
    from e3eval.analysis.unique_attempts import unique_attempts

    fields = TraceFields(response_field, None, correct_field, None, None, target_field, group_field)
    table = Table(title="cumulative unique attempts per problem (incorrect traces)")
    for column in ("step", "mean unique attempts", "problems", "traces in dump"):
        table.add_column(column, justify="right")
    for point in unique_attempts(dumps, fields, max_solve_rate):
        table.add_row(escape(point.step), f"{point.mean_unique:.2f}", str(point.n_problems), str(point.n_traces))
    console.print(table)
