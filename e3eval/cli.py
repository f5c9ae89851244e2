"""The `e3eval` command line: one typer app assembled from the command modules in `e3eval/commands/`.

Each command parses arguments, builds a config, calls one library function and prints the outcome. User mistakes
raise `UserError` anywhere below; `main()` prints them as one `error:` line and exits with code 2. Work that failed
(failed samples, an engine that did not start: `EngineFailure`) exits with code 1 and one `failed:` line.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from e3eval.commands import dev, figures, probes, runs, sampling, trace_analysis
from e3eval.commands.output import err_console
from e3eval.errors import EngineFailure, UserError

app = typer.Typer(
    help="Measure whether reasoning LLMs extrapolate: exact budget sweeps, grading, pass@k with CIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dev_app = typer.Typer(help="Developer tools: the tiny test model and synthetic rollout pools.", no_args_is_help=True)
app.add_typer(dev_app, name="dev")

app.command("import")(runs.import_cmd)
app.command()(runs.score)
app.command()(runs.report)
app.command("budgets")(runs.budgets_cmd)
app.command()(sampling.generate)
app.command()(sampling.sweep)
app.command()(runs.merge)
app.command("datasets")(runs.datasets_cmd)
app.command()(sampling.demo)
app.command("count-asymmetries")(trace_analysis.count_asymmetries_cmd)
app.command("unique-attempts")(trace_analysis.unique_attempts_cmd)
app.command("figures")(figures.figures_cmd)
app.command()(probes.probe)
dev_app.command("tiny-model")(dev.tiny_model)
dev_app.command("example-pool")(dev.example_pool)


def main() -> None:
    try:
        app()
    except UserError as exc:
        # The message quotes paths and values the user typed: print it as text, never as markup.
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except EngineFailure as exc:
        err_console.print(f"[bold red]failed:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
