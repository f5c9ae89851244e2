"""The `e3eval view` command: serve a read-only web app over run directories, or write a static copy of one.

It parses arguments, opens the runs (`e3eval.view.payload.Views`), then either starts the server
(`e3eval.view.server`) and prints its URL until Ctrl-C, or writes the `--static` folder
(`e3eval.view.static_export`). What the pages show is the data layer's (`e3eval/view/payload.py`); what the server
answers is `server.py`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e3eval.commands import panels
from e3eval.commands.output import say, warn
from e3eval.errors import UserError

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def view_cmd(
    run_dirs: Annotated[
        list[Path],
        typer.Argument(metavar="RUN", help="Run directories to show (one or more).", show_default=False),
    ],
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on. Anything but 127.0.0.1 / localhost lets other machines read the runs.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(help="Port to listen on (0: a free one; the URL is printed).", rich_help_panel=panels.OUTPUT),
    ] = 0,
    static: Annotated[
        Path | None,
        typer.Option(
            "--static",
            metavar="OUT",
            help="Write a self-contained static copy (open OUT/index.html in a browser) instead of serving; for "
            "runs of modest size. OUT must be new, empty, or a folder an earlier --static wrote.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = None,
) -> None:
    """Read every trace at every budget in a browser: runs, problems, samples with budget cuts, and comparisons.

    \b
    Examples:
      e3eval view results/demo/sweep
      e3eval view results/base results/e3 --port 8765
      e3eval view results/demo/sweep --static /tmp/demo-view
    """
    if not run_dirs:
        raise UserError("give at least one run directory")
    if not 0 <= port <= 65535:
        raise UserError(f"--port {port}: a port is a number from 0 to 65535 (0 picks a free one)")
    from e3eval.view.payload import Views

    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:
        first = seen.setdefault(run_dir.resolve(), run_dir)
        if first is not run_dir:
            warn(f"{run_dir} is {first} again: it is shown twice")
    views = Views(run_dirs)
    if static is not None:
        from e3eval.view.static_export import export_static

        written = export_static(views, static)
        say(f"wrote a static copy of {len(run_dirs)} run(s) ({written.files} files) to {written.folder}")
        say(f"open {written.folder / 'index.html'} in a browser")
        return
    from e3eval.view.server import make_server

    server = make_server(views, host, port)
    if host not in _LOOPBACK:
        warn(f"listening on {host}: anyone who can reach this machine on port {server.port} can read these runs")
    say(f"e3eval view: {server.url}  (Ctrl-C to stop)")
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        say("stopped")
    finally:
        server.server_close()
