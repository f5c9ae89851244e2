"""`e3eval figures`: paper figures from a YAML spec (`figures/spec.py`) or from the published tables, plus a gallery.

The drawing lives in `figures/` (one module per family); this command only picks the mode, finds the published
tables' folder and prints progress and what it wrote. It writes only into a folder figures owns (`figures/folder.py`).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from e3eval.commands import panels
from e3eval.commands.output import console, progress, say, warnings_shown
from e3eval.errors import UserError

PAPER_DATA_ENV = "E3EVAL_PAPER_DATA"


def figures_cmd(
    spec: Annotated[
        Path | None, typer.Argument(metavar="SPEC", help="Figure spec (YAML); --examples DIR writes one per family.")
    ] = None,
    paper_data: Annotated[
        bool,
        typer.Option(
            "--paper-data",
            help=f"Draw what the published tables support (${PAPER_DATA_ENV}).",
            rich_help_panel=panels.DATA,
        ),
    ] = False,
    list_families: Annotated[
        bool, typer.Option("--list", help="List the figure families and their inputs.", rich_help_panel=panels.DATA)
    ] = False,
    examples: Annotated[
        Path | None,
        typer.Option(
            "--examples",
            metavar="DIR",
            help="Write example data for every family, and the example specs beside it, into DIR.",
            rich_help_panel=panels.DATA,
        ),
    ] = None,
    root: Annotated[
        Path | None,
        typer.Option(
            "--root",
            metavar="DIR",
            help="Read the spec's inputs relative to DIR (in place of the spec's own root).",
            rich_help_panel=panels.DATA,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for NAME.pdf/.png and index.html.", rich_help_panel=panels.OUTPUT),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Also write into a non-empty folder figures did not make (its files are never replaced).",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
) -> None:
    """Draw paper figures (PDF + PNG) and a gallery (index.html, README.md) from a spec or the published tables.

    A spec names runs and tables per figure, relative to its folder
    (or --root DIR); --list shows what each figure family reads.

    Examples:
      e3eval figures --examples ex            # example data + specs
      e3eval figures ex/all.yaml --out figs
      e3eval figures --paper-data --out paper-figs
    """  # fmt: skip
    modes = sum([spec is not None, paper_data, list_families, examples is not None])
    if modes != 1:
        raise UserError("give exactly one of: a SPEC.yaml, --paper-data, --list, --examples DIR")
    if root is not None and spec is None:
        raise UserError("--root DIR goes with a SPEC.yaml: it is the folder the spec's inputs are read from")
    if list_families:
        show_families()
        return
    if examples is not None:
        if out is not None:
            raise UserError("--examples DIR writes data and specs, no figures: draw them next with "
                            f"`e3eval figures {examples / 'all.yaml'} --out {out}`")  # fmt: skip
        _check_folder_path(examples, "--examples")
        _examples(examples)
        return
    if out is None:
        raise UserError("--out DIR is required: the folder for the figures and their gallery")
    command = shlex.join(["e3eval", *sys.argv[1:]])
    from e3eval.outputs import check_outside_runs
    from e3eval.store import output_lock

    _check_folder_path(out, "--out")
    check_outside_runs(out)
    # Two galleries never interleave in one folder; library warnings (a run that grew after scoring) are one line each.
    with output_lock(out, "figures", what="this figures folder"), warnings_shown():
        if paper_data:
            entries = _paper(out, command, force)
        else:
            from e3eval.figures.gallery import render_spec
            from e3eval.figures.spec import load_spec

            figure_spec = load_spec(spec, root=root)
            with progress() as bar:
                entries = render_spec(figure_spec, out, command, bar, force=force)
    for entry in entries:
        say(f"{entry.name}: {', '.join(entry.files)}  ({entry.n})")
    say(f"wrote {len(entries)} figure(s) to {out}; gallery: {out / 'index.html'}")


def _check_folder_path(path: Path, flag: str) -> None:
    """Refuse a folder path under a file (`afile/sub`): it could never be made."""
    for parent in Path(path).absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {path}: {parent} is a file, not a folder")
            return


def _examples(folder: Path) -> None:
    from e3eval.commands.example_data import write_examples
    from e3eval.store import output_lock

    writing = f"writing example data into {escape(str(folder))} (about 20 s)"
    with output_lock(folder, "figures", what="this examples folder"), console.status(writing):
        write_examples(folder, say=lambda line: say(escape(line)))
    say(
        f"next: e3eval figures {escape(shlex.quote(str(folder / 'all.yaml')))} --out "
        f"{escape(shlex.quote(str(folder.parent / (folder.name + '-figures'))))}"
    )


def paper_data_dir() -> Path:
    """The published tables' folder: $E3EVAL_PAPER_DATA, else shared/data/e3-paper beside the checkout or the cwd."""
    value = os.environ.get(PAPER_DATA_ENV)
    if value:
        if not Path(value).is_dir():
            raise UserError(f"${PAPER_DATA_ENV}={value}: not a folder")
        return Path(value)
    checkout = Path(__file__).resolve().parents[2]  # e3eval/commands/figures.py -> the repository
    tried = []
    for root in (checkout, Path.cwd()):
        candidate = root.parent / "shared" / "data" / "e3-paper"
        if candidate.is_dir():
            return candidate
        tried.append(str(candidate))
    raise UserError(f"no published tables: set ${PAPER_DATA_ENV} to the folder with aime_budget_table.csv "
                    f"(looked in {' and '.join(dict.fromkeys(tried))})")  # fmt: skip


def _paper(out: Path, command: str, force: bool) -> list:
    from e3eval.figures.folder import FiguresFolder
    from e3eval.figures.gallery import GALLERY_FILES, paper_entries, write_gallery
    from e3eval.figures.paper import paper_figures

    folder = FiguresFolder.open(out, force)
    folder.check(GALLERY_FILES)  # the figures' own names are checked by paper_figures, before it draws
    data_dir = paper_data_dir()
    with console.status(f"drawing the published-table figures from {escape(str(data_dir))}"):
        rendered = paper_figures(folder, data_dir)
    entries = paper_entries(rendered, out, command)
    write_gallery(
        folder, entries, "e3 paper figures from the published tables", f"Drawn from the tables in {data_dir}."
    )
    return entries


def show_families() -> None:
    from rich.table import Table

    from e3eval.figures.registry import all_families

    table = Table(title="figure families (e3eval figures SPEC.yaml): * = required input")
    for column in ("family", "paper figures", "inputs", "options", "what it draws"):
        table.add_column(column, overflow="fold")
    for family in all_families().values():
        inputs = ", ".join(f"{k}{'*' if v.required else ''} ({v.kind})" for k, v in family.inputs.items())
        options = ", ".join(f"{k} ({v.kind})" for k, v in family.options.items())
        table.add_row(family.name, ", ".join(family.paper_figures), inputs, options or "-", family.summary)
    console.print(table)
