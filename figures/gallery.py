"""The figures folder: render a validated spec's figures into it, then write its gallery (index.html, README.md).

`render_spec` first checks that figures may write every file it will write (`folder.py`: a folder it owns, and never
a file it did not write), then loads every figure's frame and reports all load problems at once (each naming
`SPEC:LINE`, the figure and its input files), then draws and saves each figure as NAME.pdf and NAME.png.
`write_gallery` writes a self-contained DIR/index.html (inline CSS, PNGs referenced relatively, every user-provided
text escaped) and DIR/README.md with, per figure: title, paper figure numbers, inputs, n, caption and the exact
command that made it. This module does not validate specs (`spec.py`) or know how any family draws.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from e3eval.errors import UserError
from e3eval.figures.folder import FiguresFolder
from e3eval.figures.spec import FigureSpec, check_frame

if TYPE_CHECKING:
    from e3eval.figures.family import Family

GALLERY_FILES = ("index.html", "README.md")


@dataclass(frozen=True)
class Entry:
    """One figure of a gallery; `files` are names inside the gallery folder (PNG first for the picture)."""

    name: str
    title: str
    paper_figures: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]
    n: str
    caption: str
    command: str
    files: tuple[str, ...]


def render_spec(
    spec: FigureSpec,
    out_dir: Path,
    command: str,
    progress: Any = None,
    families: Callable[[str], Family] | None = None,
    force: bool = False,
) -> list[Entry]:
    """Draw every figure of `spec` into `out_dir` (PDF + PNG each) and write the gallery; returns its entries.

    `out_dir` must be a folder figures may write into (`folder.py`; `force`: also a non-empty one it did not make);
    every file name is checked before any data is read. A figure whose drawing fails with a UserError is left out, the
    others are still written, and one UserError then lists the failures. `progress` is an optional rich Progress.
    """
    if families is None:
        from e3eval.figures.registry import get_family

        families = get_family
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window, also on machines with a display

    folder = FiguresFolder.open(out_dir, force)
    folder.check([*(f"{r.name}.{suffix}" for r in spec.figures for suffix in ("png", "pdf")), *GALLERY_FILES])
    frames, errors = {}, []
    task = progress.add_task("load figure data", total=len(spec.figures)) if progress else None
    for request in spec.figures:
        family = families(request.family)
        try:
            frame = family.load(request.inputs, spec.base)
        except UserError as exc:
            # Loaders name the input at fault first (`metrics: ...`): point at that key's line.
            key = str(exc).partition(":")[0]
            errors.append(f"{spec.where(request, key)}: figure {request.name!r}: {exc}")
        else:
            problems = check_frame(spec, request, family, frame)
            errors += problems
            frames[request.name] = frame
        if progress:
            progress.advance(task)
    if errors:
        listed = "\n  ".join(errors)
        raise UserError(f"{spec.path}: {len(errors)} problem(s) with the figures' data:\n  {listed}{spec.hint()}")
    entries, failed = [], []
    task = progress.add_task("draw figures", total=len(spec.figures)) if progress else None
    for request in spec.figures:
        family = families(request.family)
        frame = frames[request.name]
        if progress:
            progress.update(task, description=f"draw {request.name}")
        try:
            paths = folder.save(family.draw(frame, request.options), request.name)
        except UserError as exc:
            failed.append(f"{spec.where(request)}: figure {request.name!r}: {exc}")
        else:
            title = request.options.get("title") or family.summary
            inputs = tuple((key, _shown(value, request.inputs.get(key))) for key, value in request.written.items())
            caption = request.caption or family.summary
            files = _ordered(paths, out_dir)
            entries.append(Entry(request.name, str(title), _own_figures(request.name, family.paper_figures), inputs,
                                 family.describe_n(frame), caption, command, files))  # fmt: skip
        if progress:
            progress.advance(task)
    if progress:
        progress.update(task, description="draw figures")
    note = f"From {spec.path}; inputs relative to {_display(spec.base)}."
    write_gallery(folder, entries, spec.title or f"Figures from {spec.path.name}", note)
    if failed:
        raise UserError(f"{spec.path}: {len(failed)} figure(s) not drawn:\n  " + "\n  ".join(failed))
    return entries


def _own_figures(name: str, drawn: tuple[str, ...]) -> tuple[str, ...]:
    """The paper figures an entry shows: those its name gives (`fig04a-...`: 4a; `fig02-...`: 2, 2a, 2b, ...) when
    its family draws them, else every figure the family draws."""
    found = re.match(r"(?i)fig(?:ure)?[ ._-]*0*(\d+)([a-z]?)", name)
    if not found:
        return drawn
    number, letter = found.groups()
    own = tuple(f for f in drawn if f == number + letter or (not letter and re.fullmatch(rf"{number}[a-z]?", f)))
    return own or drawn


def paper_entries(rendered: Sequence[Sequence[Any]], out_dir: Path, command: str) -> list[Entry]:
    """Gallery entries for `figures.paper.paper_figures`' (name, paths, caption, inputs, n[, title]) records."""
    entries = []
    for name, paths, caption, inputs, n, *rest in rendered:
        found = re.match(r"(?i)fig(?:ure)?[ ._-]*0*(\d+[a-z]?)[ ._-]*(.*)", name)
        numbers = (found.group(1),) if found else ()
        described = rest[0] if rest and rest[0] else (found.group(2).replace("-", " ") if found else "")
        title = f"Paper Fig. {numbers[0]}: {described}" if found else name
        shown = inputs.items() if isinstance(inputs, Mapping) else [("input", inputs)]
        entries.append(Entry(name, title, numbers, tuple((str(k), _shown(v)) for k, v in shown), str(n),
                             caption, command, _ordered(paths, out_dir)))  # fmt: skip
    return entries


def write_gallery(folder: FiguresFolder, entries: Sequence[Entry], title: str, note: str = "") -> list[Path]:
    """Write index.html and README.md describing `entries` into the folder (`note`: a line under the title)."""
    return [
        folder.write_text("index.html", _html(entries, title, note, folder.path)),
        folder.write_text("README.md", _markdown(entries, title, note)),
    ]


def _ordered(paths: Sequence[Path], out_dir: Path) -> tuple[str, ...]:
    names = [os.path.relpath(p, out_dir) for p in paths]
    return tuple(sorted(names, key=lambda n: (not n.endswith(".png"), n)))


def _shown(written: Any, resolved: Any = None) -> str:
    """An input as the spec wrote it; a glob also says how many paths it matched."""
    if isinstance(written, Mapping):
        return "; ".join(f"{k}: {_shown(v)}" for k, v in written.items())
    text = ", ".join(_display(v) for v in written) if isinstance(written, list) else _display(written)
    if isinstance(resolved, list) and any(c in text for c in "*?["):
        text += f" ({len(resolved)} path{'' if len(resolved) == 1 else 's'})"
    return text


def _display(value: Any) -> str:
    """Paths relative to the working directory where they are inside it (shorter, and what the user typed)."""
    if isinstance(value, Path) and value.is_absolute():
        try:
            return str(value.relative_to(Path.cwd()))
        except ValueError:
            return str(value)
    return str(value)


def _figure_numbers(entry: Entry) -> str:
    return f"Fig. {', '.join(entry.paper_figures)}" if entry.paper_figures else "not a paper figure"


_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f6f4; color: #222; }
header, main { max-width: 1320px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
nav { margin: 8px 0 16px; line-height: 1.8; }
nav a { margin-right: 14px; color: #4477AA; text-decoration: none; white-space: nowrap; }
section { background: #fff; border: 1px solid #ddd; border-radius: 6px; margin: 0 0 24px; padding: 16px 20px; }
h2 { font-size: 1.25em; margin: 0 0 4px; }
.meta { color: #666; font-size: 0.9em; margin-bottom: 10px; }
.meta span + span::before { content: " · "; }
img { max-width: 100%; height: auto; display: block; margin: 8px auto; }
.caption { margin: 8px 0; line-height: 1.45; }
dl { display: grid; grid-template-columns: max-content 1fr; align-items: baseline; gap: 4px 12px; font-size: 0.9em;
     margin: 8px 0 0; }
dt { color: #666; } dd { margin: 0; font-family: ui-monospace, monospace; overflow-wrap: anywhere; }
dd.command { background: #f0f0ee; padding: 4px 8px; border-radius: 4px; }
dd a { color: #4477AA; margin-right: 10px; }
"""


def _png_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from a PNG's header, or None for a file that is not a readable PNG."""
    try:
        with path.open("rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")


def _html(entries: Sequence[Entry], title: str, note: str, out_dir: Path) -> str:
    e = html.escape
    nav = "".join(f'<a href="#{e(quote(x.name))}">{e(x.name)}</a>' for x in entries)
    count = f"{len(entries)} figure{'' if len(entries) == 1 else 's'}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title><style>{_CSS}</style></head><body>",
        f"<header><h1>{e(title)}</h1><div class='meta'><span>{count}</span>{f'<span>{e(note)}</span>' if note else ''}"
        f"</div><nav>{nav}</nav></header>",
        "<main>",
    ]
    for x in entries:
        png = next((f for f in x.files if f.endswith(".png")), None)
        size = _png_size(out_dir / png) if png else None
        # Shown at half its pixels (the PNGs are 200 dpi): every figure's text then has the same size on the page.
        width = f' width="{size[0] // 2}"' if size else ""
        picture = f'<a href="{e(quote(png))}"><img src="{e(quote(png))}"{width} alt="{e(x.title)}"></a>' if png else ""
        links = "".join(f'<a href="{e(quote(f))}">{e(Path(f).suffix[1:].upper())}</a>' for f in x.files)
        rows = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in x.inputs)
        rows += f"<dt>command</dt><dd class='command'>{e(x.command)}</dd><dt>files</dt><dd>{links}</dd>"
        parts += [
            f'<section id="{e(quote(x.name))}">',
            f"<h2>{e(x.title)}</h2>",
            "<div class='meta'>"
            + "".join(f"<span>{e(t)}</span>" for t in (x.name, _figure_numbers(x), x.n))
            + "</div>",
            picture,
            f"<p class='caption'>{e(x.caption)}</p>" if x.caption else "",
            f"<dl>{rows}</dl>",
            "</section>",
        ]
    parts += ["</main></body></html>", ""]
    return "\n".join(parts)


def _md_text(text: str) -> str:
    """Plain text for markdown: no raw HTML from user text, no accidental emphasis, one line."""
    text = html.escape(" ".join(text.split()), quote=False)
    return re.sub(r"([\\`*_\[\]|#])", r"\\\1", text)


def _markdown(entries: Sequence[Entry], title: str, note: str) -> str:
    lines = [f"# {_md_text(title)}", ""] + ([_md_text(note), ""] if note else [])
    for x in entries:
        png = next((f for f in x.files if f.endswith(".png")), None)
        fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", x.command)), default=0))
        lines += [f"## {_md_text(x.title)}", ""]
        lines += [f"`{x.name}` · {_md_text(_figure_numbers(x))} · {_md_text(x.n)}", ""]
        if png:
            lines += [f"![{_md_text(x.title)}]({quote(png)})", ""]
        if x.caption:
            lines += [_md_text(x.caption), ""]
        lines += [f"- {_md_text(k)}: {_md_text(v)}" for k, v in x.inputs]
        files = " · ".join(f"[{Path(f).suffix[1:].upper()}]({quote(f)})" for f in x.files)
        lines += [f"- files: {files}", "", "Made by:", "", fence, x.command, fence, ""]
    return "\n".join(lines)
