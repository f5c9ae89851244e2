"""The option panels of every command's `--help`, one vocabulary across commands (`rich_help_panel=`).

An option belongs to the panel a user looks in first: what runs (model and engine), on what (data and prompt), how
far (budgets and sampling), forced how (forcing), graded and summarised how (scoring), and where results go
(output). Options left without a panel fall under typer's own "Options" (help, and flags of rare use).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any, get_args

from typer.core import TyperCommand, TyperGroup

MODEL = "Model and engine"
DATA = "Data and prompt"
BUDGETS = "Budgets and sampling"
FORCING = "Forcing"
SCORING = "Scoring"
OUTPUT = "Output"


def _untyped_flags(command: TyperCommand | TyperGroup, ctx: Any) -> None:
    """Show no type for on/off flags: typer 0.29 prints `<bool>` beside every one, which tells a reader nothing; and
    an argument taking several values as `<path>...`, not as the Python annotation `<list[Path]>`.
    (typer's options come from its own copy of click, so flags are found by their `is_flag`, not by class.)"""
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        described = getattr(param, "type_descriptor", None)
        if getattr(param, "param_type_name", "") == "argument" and described is not None and described.is_list:
            (element,) = get_args(described.annotation)
            path = isinstance(element, type) and issubclass(element, PurePath)
            label = "path" if path else getattr(element, "__name__", str(element)).lower()
            param.display_type_rich = lambda ctx, label=label: f"<{label}>..."


class Command(TyperCommand):
    """A command whose help shows no `<bool>` for flags (the class every e3eval and e3train command is made with)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untyped_flags(self, ctx)
        super().format_help(ctx, formatter)


class Group(TyperGroup):
    """A command group whose own help shows no `<bool>` for flags (`e3eval --help`, `e3train --help`)."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _untyped_flags(self, ctx)
        super().format_help(ctx, formatter)
