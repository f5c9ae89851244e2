"""What a figure family is: the contract between the spec (`e3eval figures SPEC.yaml`), the loaders and the drawing.

A family is one kind of paper figure (accuracy against budget, training dynamics, ...). Its module exposes one
`FAMILY = Family(...)`: the spec keys it takes, the tidy columns its frame must have, a loader from validated spec
inputs to that frame, and a pure drawing function from the frame to a matplotlib Figure. Loaders read e3eval's files
(through `e3eval.load_run` / `e3eval.compare` for runs); `draw` reads nothing but its frame. This module does not
validate specs (`spec.py`), register families (`registry.py`) or write files (`style.save`, `gallery.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Input:
    """One spec key of a family: what it holds and whether it is required.

    kind: "paths" (a list of files/directories; globs allowed, expanded in sorted order relative to the spec's
    folder), "path" (one file/directory), "number", "text", "numbers" (list), "texts" (list), "mapping".
    """

    kind: str
    help: str
    required: bool = True


@dataclass(frozen=True)
class Family:
    name: str
    paper_figures: tuple[str, ...]  # paper numbering, e.g. ("4a", "5")
    summary: str  # one line for the gallery and `e3eval figures --list`
    inputs: Mapping[str, Input]
    columns: tuple[str, ...]  # the tidy frame's required columns (checked before drawing)
    # load(inputs, base): inputs are the spec's validated values (paths resolved against `base`, the spec's folder);
    # raises e3eval.errors.UserError naming the file at fault.
    load: Callable[[Mapping[str, Any], Path], pd.DataFrame]
    # draw(frame, options) -> Figure; options are the spec's non-input keys (title, train_budget, ...).
    draw: Callable[[pd.DataFrame, Mapping[str, Any]], Figure]
    options: Mapping[str, Input] = field(default_factory=dict)
    # n shown in the gallery: a short text such as "n=30 problems x 8 samples each, per series and budget".
    describe_n: Callable[[pd.DataFrame], str] = lambda frame: f"{len(frame)} rows"
