"""Commands over reasoning traces: `count-asymmetries` and `unique-attempts` (the counting lives in `analysis/`).

`count-asymmetries` prints one table (budget x correctness group, mean / median counts per trace) and a legend under
it that says what every column counts under the chosen preset, what a group of "unknown" correctness means and which
flag gives one, and why a cell is "-". A preset that counts one thing as both verification and attempt (the e3 rule)
shows that counter once. What a preset counts is `analysis/steps.py`'s `COUNTERS`; this module only lays it out.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from e3eval.commands import panels
from e3eval.commands.output import console, deprecated_alias, err_console, say, warn
from e3eval.errors import UserError

if TYPE_CHECKING:
    from rich.progress import Progress

    from e3eval.analysis.asymmetries import CountResult, SummaryRow
    from e3eval.analysis.steps import PresetCounters

_PER_TRACE = "per trace, mean / median"


def count_asymmetries_cmd(
    source: Annotated[
        Path,
        typer.Argument(metavar="TRACES", help="Traces: a JSONL file, a verl rollout dump, or a run directory."),
    ],
    response_field: Annotated[
        str,
        typer.Option(
            metavar="FIELD",
            help="JSONL: the field counted (a reasoning-only field, e.g. thinking, is best).",
            rich_help_panel=panels.DATA,
        ),
    ] = "response",
    correct_field: Annotated[
        str | None,
        typer.Option(
            metavar="FIELD", help="JSONL: correctness (bool, or a score > 0 = correct).", rich_help_panel=panels.DATA
        ),
    ] = None,
    id_field: Annotated[
        str | None,
        typer.Option(metavar="FIELD", help="JSONL: id field (default: the line number).", rich_help_panel=panels.DATA),
    ] = None,
    token_ids_field: Annotated[
        str | None,
        typer.Option(metavar="FIELD", help="JSONL: token ids of the trace.", rich_help_panel=panels.DATA),
    ] = None,
    target_field: Annotated[
        str | None,
        typer.Option(metavar="FIELD", help="countdown: target number (or {target: ...}).", rich_help_panel=panels.DATA),
    ] = None,
    finish_reason_field: Annotated[
        str | None,
        typer.Option(metavar="FIELD", help="JSONL: stop | length, for lengths.", rich_help_panel=panels.DATA),
    ] = None,
    skip_bad_lines: Annotated[
        bool,
        typer.Option(
            "--skip-bad-lines", help="Skip and count malformed lines instead of stopping.", rich_help_panel=panels.DATA
        ),
    ] = False,
    preset: Annotated[
        str,
        typer.Option(
            help="What a step is: math | e3-math | countdown | mult (the legend says).", rich_help_panel=panels.SCORING
        ),
    ] = "math",
    lexicon: Annotated[
        Path | None,
        typer.Option(help="math preset: JSON file with `verify` and `attempt` lists.", rich_help_panel=panels.SCORING),
    ] = None,
    by: Annotated[
        str, typer.Option(help="correct | none: split the summary by correctness.", rich_help_panel=panels.SCORING)
    ] = "correct",
    budgets: Annotated[
        str | None,
        typer.Option(
            metavar="SPEC", help="Count within each budget's prefix, e.g. 4k..32k.", rich_help_panel=panels.BUDGETS
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Tokenizer for budgets/lengths (run dirs: from run.json).", rich_help_panel=panels.BUDGETS),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Per-trace table (.csv or .parquet), in input order.", rich_help_panel=panels.OUTPUT),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Let --out replace a file e3eval did not write.", rich_help_panel=panels.OUTPUT),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Worker processes for JSONL input (default: all cores).")] = None,
    jobs: Annotated[int | None, typer.Option(hidden=True, help="Deprecated spelling of --workers.")] = None,
) -> None:
    """Count verification and attempt steps (and chained asymmetries) in traces, by correctness and budget.

    A legend under the table says what each column counts under the preset.

    Examples:
      e3eval count-asymmetries traces.jsonl --response-field thinking
      e3eval count-asymmetries runs/aime25 --preset e3-math --budgets 4k..32k
    """  # fmt: skip
    from e3eval.analysis.asymmetries import CountConfig, check_rows_target, count_asymmetries, write_rows
    from e3eval.analysis.traces import TraceFields
    from e3eval.budgets import parse_budgets

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
    with _reading_progress() as bar:
        result = count_asymmetries(config, bar, jobs=jobs or os.cpu_count() or 1)
    for line in result.warnings:
        warn(line)
    _show_counts(result, source, preset, by == "correct", response_field)
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


def _show_counts(result: CountResult, source: Path, preset: str, by_correct: bool, response_field: str) -> None:
    """The table, its legend, and one line of totals."""
    from rich import box
    from rich.table import Table

    from e3eval.analysis.asymmetries import summarize_steps
    from e3eval.analysis.steps import COUNTERS
    from e3eval.budgets import format_budget

    counters = COUNTERS[preset]
    # The e3 rule flags a line once and counts it as both kinds: one column, not the same number twice.
    metrics = {"n_verify": counters.verify} if counters.shared else {"n_verify": "verify", "n_attempts": "attempts"}
    metrics["n_chained"] = "chained"
    # No vertical rules: eight columns of "mean / median" fit 80 columns without wrapping a number.
    table = Table(
        title=f"{escape(source.name)}: steps per trace, preset {escape(preset)}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for column in ("budget", "group", "n", *metrics.values(), "repeat %", "tokens"):
        table.add_column(column, justify="right")
    rows = summarize_steps(result.table, by_correct=by_correct)
    for row in rows:
        cells = [format_budget(row.budget) if row.budget else "full", escape(row.group), f"{row.n:,}"]
        cells += [f"{row.stats[m][0]:.2f} / {row.stats[m][1]:g}" for m in metrics]
        cells.append("-" if row.repeat_rate is None else f"{100 * row.repeat_rate:.1f}")
        cells.append("-" if row.mean_tokens is None else f"{row.mean_tokens:,.0f}")
        table.add_row(*cells)
    console.print(table)
    console.print()
    console.print(
        _legend(rows, counters, source.is_dir(), "response" if source.is_dir() else f"'{response_field}' field")
    )
    empty = sum(result.table.column("empty").to_pylist())
    console.print(
        f"{result.traces:,} traces ({result.table.num_rows:,} rows); {empty:,} empty; "
        f"{result.skipped.count:,} bad lines skipped",
        highlight=False,
    )


def _legend(rows: list[SummaryRow], counters: PresetCounters, run_dir: bool, counted: str = "response") -> object:
    """Two columns, name and meaning, for exactly what the table shows (a "-" is explained only where one is)."""
    from rich.table import Table

    from e3eval.budgets import format_budget

    groups = {row.group for row in rows}
    if any(row.budget for row in rows):
        budget = min(row.budget for row in rows if row.budget)
        lines = [("budget", f"{format_budget(budget)} = the first {budget:,} tokens of each response (--budgets)")]
    else:
        lines = [("budget", f"full = the whole {counted} (--budgets 4k..32k counts within each budget's prefix)")]
    meanings = []
    if groups & {"correct", "incorrect"}:
        meanings.append("correct / incorrect: " + ("the run's grade at that budget" if run_dir else
                                                   "from --correct-field"))  # fmt: skip
    if "unknown" in groups:
        meanings.append("unknown = " + ("not graded: the run is not scored at that budget (e3eval score)" if run_dir
                                        else "the traces carry no correctness field: give --correct-field NAME (a "
                                        "bool, or a score > 0 = correct)"))  # fmt: skip
    if "all" in groups:
        meanings.append("all = every trace (--by none)")
    lines += [("group" if i == 0 else "", text) for i, text in enumerate(meanings)]
    lines.append(("n", "traces in the row"))
    if counters.shared:
        lines.append((counters.verify, f"{_PER_TRACE}: {counters.shared}"))
    else:
        lines.append(("verify", f"{_PER_TRACE}: {counters.verify}"))
        lines.append(("attempts", f"{_PER_TRACE}: {counters.attempts}"))
    lines.append(("chained", f"{_PER_TRACE}: verifications right after a generation step (chained asymmetries)"))
    over = "all traces" if "all" in groups else "incorrect traces"
    repeat = f"share of {over} that end in a loop (the last 100 characters occur more than 5 times: e3 rule)"
    no_rate = [group for group in ("correct", "unknown") if group in groups]
    if no_rate:
        repeat += f"; - for {' and '.join(no_rate)}: the share is taken over incorrect traces"
    lines.append(("repeat %", repeat))
    tokens = "mean tokens per trace, within the budget"
    if any(row.mean_tokens is None for row in rows):
        tokens += "; - = no token ids: give --token-ids-field or --tokenizer"
    lines.append(("tokens", tokens))
    legend = Table.grid(padding=(0, 2))
    legend.add_column(no_wrap=True, style="dim")
    legend.add_column()
    for name, text in lines:
        legend.add_row(escape(name), escape(text))
    return legend


def _reading_progress() -> Progress:
    """A progress bar on stderr in the unit the input is read in: "1.2 MB of 2.1 MB, 300 traces" for JSONL files,
    "120/300 traces" for run directories and e3 files."""
    from rich import filesize
    from rich.progress import (
        BarColumn,
        Progress,
        ProgressColumn,
        Task,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class ReadColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            traces = f"{task.fields.get('traces', 0):,} traces"
            if task.fields.get("unit") == "bytes":
                total = int(task.total or task.completed)
                unit, suffix = filesize.pick_unit_and_suffix(total, ["B", "kB", "MB", "GB", "TB"], 1000)
                digits = 0 if unit == 1 else 1
                return Text(f"{task.completed / unit:,.{digits}f}/{total / unit:,.{digits}f} {suffix}, {traces}")
            return Text(traces if task.total is None else f"{int(task.completed):,}/{int(task.total):,} traces")

    return Progress(
        TextColumn("{task.description}", style="bold", markup=False),  # the input file's name: text, not markup
        BarColumn(bar_width=16),
        ReadColumn(),
        TimeRemainingColumn(elapsed_when_finished=True),
        console=err_console,
        transient=False,
        redirect_stdout=False,
        redirect_stderr=False,
    )


def unique_attempts_cmd(
    dumps: Annotated[
        list[Path],
        typer.Argument(metavar="DUMPS", help="Rollout dumps in training-step order (verl {step}.jsonl)."),
    ],
    max_solve_rate: Annotated[
        float, typer.Option(help="Keep problems solved less often than this.", rich_help_panel=panels.SCORING)
    ] = 0.5,
    response_field: Annotated[
        str, typer.Option(metavar="FIELD", help="JSONL: the trace text field.", rich_help_panel=panels.DATA)
    ] = "response",
    group_field: Annotated[
        str | None, typer.Option(metavar="FIELD", help="JSONL: the problem field.", rich_help_panel=panels.DATA)
    ] = None,
    correct_field: Annotated[
        str | None, typer.Option(metavar="FIELD", help="JSONL: correctness field.", rich_help_panel=panels.DATA)
    ] = None,
    target_field: Annotated[
        str | None,
        typer.Option(metavar="FIELD", help="JSONL: Countdown target field.", rich_help_panel=panels.DATA),
    ] = None,
) -> None:
    """Cumulative unique Countdown attempts per problem over training steps (incorrect traces, hard problems).

    An attempt is a paragraph of the thinking, keyed by its equations (paper Fig. 12 left).

    Examples:
      e3eval unique-attempts rollouts/0.jsonl rollouts/30.jsonl rollouts/60.jsonl
      e3eval unique-attempts $(ls rollouts/*.jsonl | sort -V) --max-solve-rate 0.3
    """
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
