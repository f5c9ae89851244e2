"""What an accuracy figure says about the runs it draws: their labels, their budget forcing and their problem subset.

Labels come from `e3eval.labels` (model · dataset · forcing · policy · subset, the folder name only to break ties), so
a figure names a run as the report does. The forcing line quotes run.json: the wait text, the delimiter it replaces,
and the insertions counted at generation; a forced run in which nothing was inserted is flagged, since its curve is
that of plain sampling. A run that holds part of its dataset (`--limit`, `--shard`) gets a warning line: its numbers
are not the benchmark's. This module reads only run records already loaded; it draws nothing.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from typing import TYPE_CHECKING

from e3eval.labels import SEPARATOR, forcing_label, run_label, subset_label, unique_labels

if TYPE_CHECKING:
    from e3eval.manifest import GenerationRecord
    from e3eval.report import Comparison

WRAP = 34  # characters per legend line before a label breaks at a " · "


def run_labels(comparison: Comparison) -> dict[str, str]:
    """Series name (`RunSummary.name`) -> the run's label, unique among the runs drawn."""
    names = [run.name for run in comparison.runs]
    labels = [
        run_label(run.run.record, run.name, str(run.table["policy"][0].as_py()) if run.table.num_rows else None)
        for run in comparison.runs
    ]
    return dict(zip(names, unique_labels(labels, names), strict=True))


def wrap_label(label: str, width: int = WRAP) -> str:
    """A long `a · b · c` label on several lines, broken between its parts, each broken line ending in the
    separator's dot (`a · b ·` / `c`), so a reader sees the label goes on; a part (or a plain label) still longer
    than `width` breaks at spaces, so no legend entry outgrows the figure. Lines the label already has are kept."""
    return "\n".join(_wrap_line(line, width) for line in label.split("\n"))


def _wrap_line(line: str, width: int) -> str:
    lines: list[str] = []
    for part in line.split(SEPARATOR):
        if lines and len(lines[-1]) + len(SEPARATOR) + len(part) <= width:
            lines[-1] += SEPARATOR + part
        else:
            lines.append(part)
    lines = [piece for text in lines for piece in (textwrap.wrap(text, width) if len(text) > width else [text])]
    return (SEPARATOR.rstrip() + "\n").join(lines) if SEPARATOR in line else "\n".join(lines)


def forcing_line(generation: GenerationRecord | None) -> str | None:
    """`budget forcing wait=2: "Wait" in place of "</think>", up to 2 per sample; 8 waits inserted in 4 of 4 samples`,
    flagged when nothing was inserted (s1 runs, one per budget, without counts); None for a run sampled without
    forcing."""
    if generation is None or generation.forcing is None:
        return None
    forcing = generation.forcing
    label = forcing_label(forcing) or f"wait={forcing.wait}"
    texts = f"{_quoted(forcing.wait_text)} in place of {_quoted(forcing.think_end)}, up to {forcing.wait} per sample"
    line = f"budget forcing {label}: {texts}"
    counted = generation.fields.get("insertions")
    if not isinstance(counted, Mapping) or forcing.mode == "s1":  # s1: one run per budget, each with its own counts
        return line
    waits, forced, samples = (int(counted.get(k) or 0) for k in ("waits", "samples_forced", "samples"))
    if forcing.wait and samples and not waits:
        return f"\u26a0 {line}; NOTHING was inserted in {samples} samples: these are plain samples"
    return f"{line}; {waits} waits inserted in {forced} of {samples} samples"


def subset_line(generation: GenerationRecord | None, label: str) -> str | None:
    """`⚠ LABEL: first 4/30 of aime25's problems; not the number of the whole benchmark`, or None for a whole run."""
    subset = subset_label(generation)
    if generation is None or subset is None:
        return None
    dataset = generation.dataset or "its dataset"
    return f"\u26a0 {label}: {subset} of {dataset}'s problems; not the number of the whole benchmark"


def notes_of(comparison: Comparison, labels: Mapping[str, str]) -> list[str]:
    """One subset warning per run that holds part of its dataset (`⚠ subset: ...` when the figure draws one run)."""
    lines = []
    for run in comparison.runs:
        name = labels.get(run.name, run.name) if len(comparison.runs) > 1 else "subset"  # one run: its title says
        line = subset_line(run.run.record.generation, name)
        if line:
            lines.append(line)
    return lines


def _quoted(text: str | None) -> str:
    return json.dumps(text, ensure_ascii=False) if text is not None else "?"
