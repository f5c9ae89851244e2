"""The CLI reference pages of the documentation site, generated from the typer apps so they cannot drift from `--help`.

Walks the command tree of `e3eval` (`e3eval.cli.app`) and `e3train` (`e3eval.commands.e3train.app`) as typer builds
it for `--help`, and writes one Markdown page per program: every visible command with its usage line, its help text,
and its arguments and options grouped by help panel, each with the help line `--help` prints (defaults and
`[required]` included, taken from the parameter's own help record). `make docs` runs it before `mkdocs build`; the
pages are build output (ignored by git), never edited by hand. It does not document hidden commands or options
(old spellings kept for one release), and it renders no rich markup: the help texts are plain text.

Run: `python -m e3eval.dev.cli_reference docs/reference`.
"""

from __future__ import annotations

import html
import itertools
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer


@dataclass(frozen=True)
class Program:
    """One console script: its name, the page it gets and the typer app behind it."""

    name: str
    page: str
    title: str
    app: typer.Typer


@dataclass(frozen=True)
class CommandEntry:
    """One node of a command tree: its path from the program name, the typer command and its context."""

    path: tuple[str, ...]
    command: Any
    context: Any

    @property
    def anchor(self) -> str:
        return "-".join(self.path)

    @property
    def is_group(self) -> bool:
        return hasattr(self.command, "list_commands")


def programs() -> list[Program]:
    """Both console scripts, imported only when asked for (importing the CLI loads no model, but it is not free)."""
    from e3eval.cli import app as e3eval_app
    from e3eval.commands.e3train import app as e3train_app

    return [
        Program("e3eval", "cli.md", "e3eval command reference", e3eval_app),
        Program("e3train", "e3train.md", "e3train command reference", e3train_app),
    ]


def walk(program: Program) -> Iterator[CommandEntry]:
    """Every visible command of `program`, depth first in the order `--help` lists them, the program itself first."""
    root = typer.main.get_command(program.app)
    yield from _walk(root, (program.name,), None)


def _walk(command: Any, path: tuple[str, ...], parent: Any) -> Iterator[CommandEntry]:
    context = command.context_class(command, info_name=path[-1], parent=parent)
    yield CommandEntry(path, command, context)
    if hasattr(command, "list_commands"):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                yield from _walk(sub, (*path, name), context)


def command_paths(program: Program) -> list[str]:
    """The space-joined path of every visible command, as `render` documents them."""
    return [" ".join(entry.path) for entry in walk(program)]


def _escape_text(text: str) -> str:
    """Markdown-safe text: code spans kept as written, HTML and table/emphasis characters escaped outside them.

    Help texts say `</think>` and `RUN/logs/engine-<time>.log`; unescaped, Markdown would swallow them as HTML tags.
    """
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts lie outside code spans
        parts[i] = re.sub(r"([*_|\[\]])", r"\\\1", html.escape(parts[i], quote=False))
    if len(parts) % 2 == 0:  # an unmatched backtick: keep it literal
        parts[-2] = parts[-2] + "\\`" + parts.pop()
    return "`".join(parts)


def _help_blocks(text: str) -> list[str]:
    """The command's help text as Markdown blocks: indented paragraphs (the examples) become shell code blocks."""
    blocks: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text.replace("\b", "").strip()):
        # A paragraph may open with a line of prose ("Example:") followed by indented command lines.
        for indented, group in itertools.groupby(paragraph.splitlines(), key=lambda line: line.startswith("  ")):
            lines = list(group)
            if indented:
                code = "\n".join(line[2:] for line in lines)
                if blocks and blocks[-1].startswith("```bash"):  # consecutive examples share one block
                    blocks[-1] = blocks[-1].removesuffix("\n```") + "\n" + code + "\n```"
                else:
                    blocks.append("```bash\n" + code + "\n```")
            else:
                blocks.append(_escape_text(" ".join(line.strip() for line in lines)))
    return blocks


def _usage(entry: CommandEntry) -> str:
    pieces = " ".join(entry.command.collect_usage_pieces(entry.context))
    return f"```text\n{' '.join(entry.path)} {pieces}\n```"


def _parameters(entry: CommandEntry) -> list[str]:
    """The parameters as one table per help panel, in the order `--help` shows them."""
    panels: dict[str, list[tuple[str, str]]] = {}
    for param in entry.command.params:
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(entry.context)
        if record is None:
            continue
        names, help_text = record
        default_panel = "Arguments" if param.param_type_name == "argument" else "Options"
        panel = getattr(param, "rich_help_panel", None) or default_panel
        panels.setdefault(panel, []).append((names, help_text))
    lines: list[str] = []
    for panel, rows in panels.items():
        column = "argument" if panel == "Arguments" else "option"
        lines += ["", f"**{_escape_text(panel)}**", "", f"| {column} | description |", "| --- | --- |"]
        for names, help_text in rows:
            lines.append(f"| `{names}` | {_escape_text(help_text)} |")
    return lines


def _subcommands(entry: CommandEntry, program: Program) -> list[str]:
    """A group's commands as a table of links, grouped by help panel like `--help` lists them."""
    panels: dict[str, list[str]] = {}
    for name in entry.command.list_commands(entry.context):
        sub = entry.command.get_command(entry.context, name)
        if sub is None or sub.hidden:
            continue
        panel = getattr(sub, "rich_help_panel", None) or "Commands"
        anchor = "-".join((*entry.path, name))
        short = _escape_text(sub.get_short_help_str(limit=200))
        panels.setdefault(panel, []).append(f"| [`{' '.join((*entry.path, name))}`](#{anchor}) | {short} |")
    lines: list[str] = []
    for panel, rows in panels.items():
        lines += ["", f"**{_escape_text(panel)}**", "", "| command | what it does |", "| --- | --- |", *rows]
    return lines


def render(program: Program) -> str:
    """The whole reference page of one program, as Markdown."""
    out = [
        f"# {program.title}",
        "",
        f"Generated from `{program.name} --help` by `python -m e3eval.dev.cli_reference` (`make docs`): every "
        "command, its usage, its help and every option with its default. Do not edit this page by hand.",
    ]
    for entry in walk(program):
        level = "#" * min(len(entry.path) + 1, 4)
        out += ["", f"{level} `{' '.join(entry.path)}` {{#{entry.anchor}}}", "", _usage(entry)]
        for block in _help_blocks(entry.command.help or ""):
            out += ["", block]
        out += _parameters(entry)
        if entry.is_group:
            out += _subcommands(entry, program)
    return "\n".join(out) + "\n"


def write_pages(out_dir: Path) -> list[Path]:
    """Write every program's page into `out_dir` (created if missing); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for program in programs():
        path = out_dir / program.page
        path.write_text(render(program), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python -m e3eval.dev.cli_reference OUT_DIR")
    for path in write_pages(Path(args[0])):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
