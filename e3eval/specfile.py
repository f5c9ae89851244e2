"""Reading a small YAML spec safely (figure specs, curriculum specs), with the line of every key.

A spec is a short UTF-8 YAML file written by a user: it is read with yaml's safe loader, without aliases (`*name`
repeats a node without bound: a few lines of aliases expand to billions of nodes, and no spec needs one), within a
size limit, and every problem is one UserError naming `FILE:LINE`. Alongside the data comes a map from each key path
(`stages[0].budget`, `figures[1].runs`) to the line where it starts, so validators can point at the line at fault.
This module reads; what the keys mean is the business of each spec's validator.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from e3eval.errors import UserError


def read_spec(path: Path, kind: str, max_bytes: int) -> tuple[Any, dict[str, int]]:
    """The data of a YAML spec (`kind` names it in messages: "figure spec") and its key path -> line map."""
    import yaml

    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) > max_bytes:
        raise UserError(f"{path}: larger than {max_bytes // 1024} KiB; a {kind} is a short YAML file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not a UTF-8 text file (byte {exc.start}); a {kind} is YAML text") from None
    try:
        loader = _no_alias_loader(kind)(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise UserError(f"{path}:{line}: not valid YAML ({exc.problem or exc.context})") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deeply to be a {kind}") from None
    return data, key_lines(node) if node is not None else {}


def _no_alias_loader(kind: str) -> type:
    import yaml
    from yaml.composer import ComposerError

    class SpecLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise ComposerError(
                    problem=f"alias *{event.anchor}: aliases are not allowed in a {kind}; write the value out",
                    problem_mark=event.start_mark,
                )
            return super().compose_node(parent, index)

    return SpecLoader


def key_lines(node: Any, prefix: str = "", lines: dict[str, int] | None = None) -> dict[str, int]:
    """Each key path (`figures[0].runs`) of a composed YAML node -> the 1-based line where it starts."""
    import yaml

    lines = {} if lines is None else lines
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = f"{prefix}.{key.value}" if prefix else str(key.value)
            lines[path] = key.start_mark.line + 1
            key_lines(value, path, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[f"{prefix}[{i}]"] = item.start_mark.line + 1
            key_lines(item, f"{prefix}[{i}]", lines)
    return lines
