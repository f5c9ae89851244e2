"""Figure specs: the YAML file `e3eval figures SPEC.yaml` reads, validated into a list of figure requests.

A spec is a mapping with an optional `title` (the gallery's), an optional `root` (the folder inputs are relative to,
itself relative to the spec's folder; default: the spec's folder; `e3eval figures --root DIR` overrides it), an optional
`prepare` (the command that makes the spec's data, shown when inputs are missing) and `figures`, a list of mappings with
`name` (the output file stem), `family` (see `registry.py`), an optional `caption`, and the family's inputs and options.
Every problem of a spec is collected and reported at once, each as `SPEC:LINE: ...`: unknown families and keys, missing
required inputs, values of the wrong kind, paths that do not exist, and globs that match nothing, reach outside `root`
or walk too far (`globs.py`). `check_frame` does the one check left for after loading (the frame has the family's
columns and rows). The reader refuses YAML aliases and files over 256 KiB, so a spec cannot expand into billions of
nodes. This module reads no data and draws nothing.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e3eval.errors import UserError
from e3eval.figures.globs import expand, is_glob
from e3eval.specfile import read_spec

if TYPE_CHECKING:
    import pandas as pd

    from e3eval.figures.family import Family, Input

MAX_SPEC_BYTES = 256 * 1024
SPEC_KEYS = ("title", "root", "prepare", "figures")
FIGURE_KEYS = ("name", "family", "caption")  # every figure's keys besides its family's inputs and options
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
_KIND_TEXT = {
    "paths": "a path or a list of paths (globs allowed)",
    "path": "one path",
    "number": "a number",
    "text": "a string",
    "numbers": "a list of numbers",
    "texts": "a list of strings",
    "mapping": "a mapping",
}


@dataclass(frozen=True)
class FigureRequest:
    """One validated figure of a spec. `inputs` hold resolved values (paths absolute, globs expanded in sorted
    order); `written` keeps the input values as the spec wrote them, for the gallery."""

    name: str
    family: str
    line: int
    caption: str
    inputs: Mapping[str, Any]
    options: Mapping[str, Any]
    written: Mapping[str, Any]
    key_lines: Mapping[str, int]  # each key of the figure -> its line


@dataclass(frozen=True)
class FigureSpec:
    path: Path
    title: str
    base: Path  # the folder the inputs were resolved against, handed to each family's loader
    figures: tuple[FigureRequest, ...]
    prepare: str = ""  # the command that makes the spec's data

    def hint(self) -> str:
        return f"\n  (this spec's data is made by: {self.prepare})" if self.prepare else ""

    def where(self, request: FigureRequest, key: str | None = None) -> str:
        """`SPEC:LINE` of the figure, or of one of its keys."""
        return f"{self.path}:{request.key_lines.get(key, request.line) if key else request.line}"


def load_spec(path: Path, families: Callable[[str], Family] | None = None, root: Path | None = None) -> FigureSpec:
    """Read and validate a figure spec; one UserError lists every problem, each naming `SPEC:LINE`.

    `families` maps a family name to its Family (raising UserError for an unknown one); default: the registry.
    `root` (`e3eval figures --root DIR`) is the folder inputs are relative to, in place of the spec's own `root`.
    """
    if families is None:
        from e3eval.figures.registry import get_family

        families = get_family
    data, lines = read_spec(Path(path), "figure spec", MAX_SPEC_BYTES)
    return validate_spec(data, Path(path), lines, families, root)


def validate_spec(
    data: Any, path: Path, lines: Mapping[str, int], families: Callable[[str], Family], root: Path | None = None
) -> FigureSpec:
    """Check a parsed spec against the families it names; see the module docstring for the format. `root`, when
    given, replaces the spec's `root` key (see `load_spec`)."""
    errors: list[str] = []

    def error(key: str, message: str) -> None:
        errors.append(f"{path}:{_line(lines, key)}: {message}")

    if not isinstance(data, dict):
        raise UserError(f"{path}:1: a figure spec is a mapping with a `figures` list (and optional title, root)")
    for key in data:
        if key not in SPEC_KEYS:
            error(str(key), f"unknown key {key!r} ({_hint(key, SPEC_KEYS)})")
    title = data.get("title", "")
    if not isinstance(title, str):
        error("title", "title must be a string")
        title = ""
    prepare = data.get("prepare", "")
    if not isinstance(prepare, str):
        error("prepare", "prepare must be a string (the command that makes this spec's data)")
        prepare = ""
    hint = f"\n  (this spec's data is made by: {prepare})" if prepare else ""
    base = path.resolve().parent
    if root is not None:
        if not Path(root).is_dir():
            raise UserError(f"--root {root}: not a folder{hint}")
        base = Path(root).resolve()
    elif (written := data.get("root")) is not None:
        folder = Path(os.path.normpath(base / os.path.expanduser(written))) if isinstance(written, str) else base
        if not isinstance(written, str) or not written:
            error("root", "root must be a folder path")
        elif not folder.is_dir():
            # Every input below would be missing too: one line says it all.
            error("root", f"root {written!r} is not a folder (looked for {folder})")
            raise UserError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(errors) + hint)
        else:
            base = folder
    raw_figures = data.get("figures")
    if not isinstance(raw_figures, list) or not raw_figures:
        error("figures", "figures must be a non-empty list of figures (mappings with name, family, inputs)")
        raw_figures = []
    requests: list[FigureRequest] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_figures):
        name = raw.get("name") if isinstance(raw, dict) else None
        if isinstance(name, str) and name in seen:
            error(f"figures[{i}].name", f"figure name {name!r} already used on line {seen[name]}")
            continue
        if isinstance(name, str):
            seen[name] = _line(lines, f"figures[{i}]")
        request = _figure(raw, f"figures[{i}]", base, lines, families, error)
        if request is not None:
            requests.append(request)
    if errors:
        missing = any("does not exist" in e or "matches nothing" in e for e in errors)
        raise UserError(f"{path}: {len(errors)} problem(s):\n  " + "\n  ".join(errors) + (hint if missing else ""))
    return FigureSpec(path, title, base, tuple(requests), prepare)


def check_frame(spec: FigureSpec, request: FigureRequest, family: Family, frame: pd.DataFrame) -> list[str]:
    """Problems with a loaded frame, each naming the figure's line and its input files: missing columns, no rows."""
    missing = [c for c in family.columns if c not in frame.columns]
    where = f"{spec.where(request)}: figure {request.name!r}"
    if missing:
        return [f"{where}: the data read from {describe_inputs(request)} has no column(s) {', '.join(missing)} "
                f"(family {family.name} needs {', '.join(family.columns)})"]  # fmt: skip
    if frame.empty:
        return [f"{where}: no rows in the data read from {describe_inputs(request)}"]
    return []


def describe_inputs(request: FigureRequest, limit: int = 3) -> str:
    """The figure's input files as the spec wrote them (globs) and as they resolved, shortened for one line."""
    shown = []
    for key, value in request.inputs.items():
        if isinstance(value, Path):
            shown.append(f"{key}: {value}")
        elif isinstance(value, list) and value and all(isinstance(v, Path) for v in value):
            more = f" and {len(value) - limit} more" if len(value) > limit else ""
            shown.append(f"{key}: {', '.join(str(v) for v in value[:limit])}{more}")
    return "; ".join(shown) or "the spec's values"


def _figure(
    raw: Any,
    prefix: str,
    base: Path,
    lines: Mapping[str, int],
    families: Callable[[str], Family],
    error: Callable[[str, str], None],
) -> FigureRequest | None:
    """Validate one figure mapping; report problems through `error` and return None when there were any."""
    count = 0

    def fail(key: str, message: str) -> None:
        nonlocal count
        count += 1
        error(key, message)

    if not isinstance(raw, dict):
        fail(prefix, "each figure is a mapping with name, family and the family's inputs")
        return None
    name = raw.get("name")
    label = f"figure {name!r}" if isinstance(name, str) else prefix
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        fail(f"{prefix}.name" if "name" in raw else prefix,
             f"{label}: name is required: letters, digits, `_`, `.`, `-` (it names the output files)")  # fmt: skip
    caption = raw.get("caption", "")
    if not isinstance(caption, str):
        fail(f"{prefix}.caption", f"{label}: caption must be a string")
    family_name = raw.get("family")
    if not isinstance(family_name, str):
        fail(f"{prefix}.family" if "family" in raw else prefix, f"{label}: family is required (a family name)")
        return None
    try:
        family = families(family_name)
    except UserError as exc:
        fail(f"{prefix}.family", f"{label}: {exc}")
        return None
    keys = {**family.inputs, **family.options}
    for key in raw:
        if key not in keys and key not in FIGURE_KEYS:
            known = (*FIGURE_KEYS, *keys)
            fail(f"{prefix}.{key}", f"{label}: unknown key {key!r} for family {family.name} ({_hint(key, known)})")
    values: dict[str, dict[str, Any]] = {"inputs": {}, "options": {}}
    for group, declared in (("inputs", family.inputs), ("options", family.options)):
        for key, spec_input in declared.items():
            if key not in raw:
                if spec_input.required:
                    fail(prefix, f"{label}: missing required input {key!r} ({spec_input.help})")
                continue
            value, problems = _value(raw[key], spec_input, base)
            for problem in problems:
                fail(f"{prefix}.{key}", f"{label}: {key}: {problem}")
            values[group][key] = value
    if count:
        return None
    written = {key: raw[key] for key in family.inputs if key in raw}
    key_lines = {str(key): _line(lines, f"{prefix}.{key}") for key in raw}
    return FigureRequest(name, family.name, _line(lines, prefix), caption, values["inputs"], values["options"],
                         written, key_lines)  # fmt: skip


def _value(value: Any, spec_input: Input, base: Path) -> tuple[Any, list[str]]:
    """The checked (and for paths: resolved) value of one key, or the problems with it."""
    kind = spec_input.kind
    wrong = [f"must be {_KIND_TEXT.get(kind, kind)}, not {_show(value)}"]
    if kind in ("paths", "numbers", "texts") and not isinstance(value, list):
        value = [value]  # one value where a list is expected is the list of it
    if kind == "paths":
        if not value or not all(isinstance(v, str) and v for v in value):
            return None, wrong
        resolved: list[Path] = []
        problems: list[str] = []
        for written in value:
            paths, problem = _resolve(written, base, many=True)
            resolved += paths
            problems += [problem] if problem else []
        return resolved, problems
    if kind == "path":
        if not isinstance(value, str) or not value:
            return None, wrong
        paths, problem = _resolve(value, base, many=False)
        return (paths[0] if paths else None), [problem] if problem else []
    if kind == "number":
        return value, [] if _is_number(value) else wrong
    if kind == "numbers":
        return value, [] if value and all(_is_number(v) for v in value) else wrong
    if kind == "text":
        return value, [] if isinstance(value, str) else wrong
    if kind == "texts":
        if value and all(_is_number(v) for v in value):  # YAML reads `[2025]` as numbers
            return value, [f"{wrong[0]} (quote them: {', '.join(repr(str(v)) for v in value)})"]
        return value, [] if value and all(isinstance(v, str) for v in value) else wrong
    if kind == "mapping":
        return value, [] if isinstance(value, dict) and all(isinstance(k, str) for k in value) else wrong
    raise ValueError(f"figure family input kind {kind!r} is not one of {', '.join(_KIND_TEXT)}")


def _resolve(written: str, base: Path, many: bool) -> tuple[list[Path], str | None]:
    """A spec path against `base`: a glob expands to its sorted matches; anything else must exist."""
    full = base / os.path.expanduser(written)
    if full.exists():
        return [full], None
    if not is_glob(written):
        return [], f"{written!r} does not exist (looked for {full})"
    try:
        matches = expand(written, base)
    except UserError as exc:
        return [], str(exc)
    if not matches:
        return [], f"glob {written!r} matches nothing (in {full.parent})"
    if not many and len(matches) > 1:
        return [], f"glob {written!r} matches {len(matches)} paths; this input takes one"
    return matches, None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _hint(key: Any, known: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"


def _line(lines: Mapping[str, int], key: str) -> int:
    """The line of `key` (`figures[2].runs`), or of the nearest enclosing key the YAML has."""
    while key and key not in lines:
        key = key.rpartition(".")[0] if "." in key else key.rpartition("[")[0]
    return lines.get(key, 1)
