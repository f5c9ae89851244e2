"""What the command line shows: the two consoles, progress bars, warnings, the failure line, comparison tables.

Library functions return results; only the commands print, through these helpers. A user mistake is not printed
here: it is a `UserError`, which `cli.main` prints as one line with exit code 2. Rich reads `[...]` as markup, so
user data (paths, run names, answers, messages that quote them) reaches the screen only through `say` (no markup
at all) or `rich.markup.escape`: a run directory named `r[/x]` is shown as such, never swallowed or a MarkupError.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from e3eval.errors import UserError

if TYPE_CHECKING:
    from e3eval.report import Comparison
    from e3eval.report_formats import Report


class _Output:
    """stdout (0) or stderr (1) as `backends.logs.terminal` names it: the process's own, or the terminal while an
    engine's output goes to its log file."""

    def __init__(self, index: int) -> None:
        self.index = index

    def __getattr__(self, name: str) -> Any:
        from e3eval.backends.logs import terminal

        return getattr(terminal(self.index), name)

    def write(self, text: str) -> int:
        from e3eval.backends.logs import terminal

        return terminal(self.index).write(text)

    def flush(self) -> None:
        from e3eval.backends.logs import terminal

        terminal(self.index).flush()


console = Console(file=_Output(0))  # type: ignore[arg-type]
err_console = Console(file=_Output(1), stderr=True)  # type: ignore[arg-type]


def progress() -> Progress:
    """Progress bars on stderr (stdout stays for results): the ETA from the average rate, so that a task updated once
    per batch of minutes shows one; a task with nothing to count (total 0) is not drawn (`bars.py`)."""
    from e3eval.commands.bars import AverageEta, Bars

    return Bars(
        TextColumn("{task.description}", style="bold", markup=False),  # descriptions name input files
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        AverageEta(),
        console=err_console,
        transient=False,
        # print() of other code (an engine's) is not taken over: while an engine runs it goes to the engine's log.
        redirect_stdout=False,
        redirect_stderr=False,
    )


def say(line: str) -> None:
    """One line of results on stdout, printed as it is (brackets in paths and names are text, not markup)."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False)


@contextmanager
def warnings_shown() -> Iterator[None]:
    """Show library warnings (the hf backend halving its batch on out-of-memory) as one `warning:` line each."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        # Notices to developers (deprecations in torch or an engine, unclosed sockets at exit): nothing to act on.
        for category in (ResourceWarning, DeprecationWarning, PendingDeprecationWarning, FutureWarning):
            warnings.simplefilter("ignore", category)
        previous = warnings.showwarning
        warnings.showwarning = lambda message, *_, **__: warn(str(message))
        try:
            yield
        finally:
            warnings.showwarning = previous


def fail(line: str, code: int = 1) -> None:
    """Work that failed (not a user mistake): one red line, a non-zero exit, no traceback."""
    err_console.print(f"[bold red]failed:[/] {escape(line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def show_comparison(comparison: Comparison, report: Report | None = None) -> None:
    """The report fitted to the terminal's width (tables stacked, never a cut number): budgets x metrics with CIs,
    each run's label, n and path, the extrapolation gain of a run with a training budget and any paired difference
    (`report`, default: `report_formats.build_report` of the comparison), then its warnings on stderr."""
    from e3eval.report_formats import build_report
    from e3eval.report_layout import report_renderables

    report = report or build_report(comparison)
    for item in report_renderables(report, console.width):
        console.print(item)
    for line in report.warnings():
        warn(line)


T = TypeVar("T")


def deprecated_alias(name: str, value: T | None, old: str, old_value: T | None) -> tuple[str, T | None]:
    """The flag given and its value, when `old` is the deprecated spelling of `name` (one glossary across commands):
    `old` still works for one release, with a warning line; both at once is a UserError."""
    if old_value is None:
        return name, value
    if value is not None:
        raise UserError(f"{old} is the old spelling of {name}: give {name} only")
    warn(f"{old} is deprecated and goes in the next release: use {name} (same meaning)")
    return old, old_value
