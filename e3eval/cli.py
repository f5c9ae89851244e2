"""The `e3eval` command line: one typer app assembled from the command modules in `e3eval/commands/`.

Each command parses arguments, builds a config, calls one library function and prints the outcome. User mistakes
raise `UserError` anywhere below; `main()` prints them as one `error:` line and exits with code 2. Work that failed
(failed samples, an engine that did not start: `EngineFailure`) exits with code 1 and one `failed:` line. Ctrl-C
ends a command with one line that says what the interrupted command kept and how to go on (exit code 130).

Commands are listed in the order of the work (typer keeps registration order), under three panels: run and score,
analyse, look up. Panels rather than one flat list because the first screen a newcomer reads should say which
commands make numbers and which inspect them.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape

from e3eval.commands import dev, figures, panels, probes, runs, sampling, scoring, trace_analysis, view
from e3eval.commands.output import err_console
from e3eval.errors import EngineFailure, UserError

app = typer.Typer(
    help="Measure whether reasoning LLMs extrapolate: exact budget sweeps, grading, pass@k with CIs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=panels.Group,
)
dev_app = typer.Typer(
    help="Developer tools: the tiny test model and synthetic rollout pools.", no_args_is_help=True, cls=panels.Group
)

RUN_PANEL = "Run and score"
ANALYSE_PANEL = "Analyse"
LOOK_UP_PANEL = "Look up"

# What an interrupted command leaves behind, true of each: every file e3eval writes appears whole (temp file +
# rename), so no command leaves a half-written output; generation and probes also keep their finished work in parts.
_KEPT_PARTS = "the samples finished so far are saved: rerun the same command to resume"
_INTERRUPTED = {
    "demo": _KEPT_PARTS,
    "sweep": _KEPT_PARTS,
    "generate": _KEPT_PARTS,
    "score": "the run's grades and summary are as they were (with --policy forced, the answers generated so far "
    "are kept): rerun the same command",
    "import": "the target is as it was (a run is swapped in only when complete): rerun the same command",
    "merge": "the target is as it was (a run is swapped in only when complete): rerun the same command",
    "probe": "the samples probed so far are saved as parts (every 64 samples or minute): rerun the same command to "
    "resume from them",
}
_NOTHING_HALF_WRITTEN = "no output was left half-written: rerun the same command"


def _version(value: bool) -> None:
    if value:
        from e3eval import __version__

        print(f"e3eval {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    pass


def interruptible(name: str, command: Callable[..., Any]) -> Callable[..., Any]:
    """`command` with Ctrl-C turned into one line saying what was kept (typer itself exits 130 silently)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt:
            kept = _INTERRUPTED.get(name, _NOTHING_HALF_WRITTEN)
            err_console.print(f"[yellow]interrupted:[/] {escape(kept)}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return run


def _add(target: typer.Typer, name: str, command: Callable[..., Any], panel: str | None = None) -> None:
    target.command(name, rich_help_panel=panel, cls=panels.Command)(interruptible(name, command))


# The order of the work: try it, run it, look at it; then the analyses; then the look-ups.
_add(app, "demo", sampling.demo, RUN_PANEL)
_add(app, "sweep", sampling.sweep, RUN_PANEL)
_add(app, "generate", sampling.generate, RUN_PANEL)
_add(app, "score", scoring.score, RUN_PANEL)
_add(app, "report", runs.report, RUN_PANEL)
_add(app, "view", view.view_cmd, RUN_PANEL)
_add(app, "import", runs.import_cmd, RUN_PANEL)
_add(app, "merge", runs.merge, RUN_PANEL)
_add(app, "probe", probes.probe, ANALYSE_PANEL)
_add(app, "count-asymmetries", trace_analysis.count_asymmetries_cmd, ANALYSE_PANEL)
_add(app, "unique-attempts", trace_analysis.unique_attempts_cmd, ANALYSE_PANEL)
_add(app, "figures", figures.figures_cmd, ANALYSE_PANEL)
_add(app, "datasets", runs.datasets_cmd, LOOK_UP_PANEL)
_add(app, "budgets", runs.budgets_cmd, LOOK_UP_PANEL)
_add(dev_app, "tiny-model", dev.tiny_model)
_add(dev_app, "example-pool", dev.example_pool)
app.add_typer(dev_app, name="dev", rich_help_panel=LOOK_UP_PANEL)


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


if __name__ == "__main__":
    main()
