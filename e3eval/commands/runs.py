"""Commands over run directories: `import`, `report`, `merge`, and the lookups `budgets` and `datasets`.

`score` and the flags it shares with `sweep` are `commands/scoring.py`'s. Every flag is checked before any work
starts: a refused `--out` wastes no reading of runs.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from e3eval.commands import panels
from e3eval.commands.output import console, err_console, progress, say, show_comparison, warn
from e3eval.errors import UserError
from e3eval.store import MANIFEST

if TYPE_CHECKING:
    pass


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
