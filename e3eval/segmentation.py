"""The core's one door into the analysis layer (`e3eval.analysis`): how a response splits into attempts.

The core (data, generation, scoring, probes, reports) does not import `e3eval.analysis`; it imports this module,
which names the things it borrows from there: the step presets, the steps a preset sees (as spans, for the viewer)
and the attempt spans a preset cuts. The
analysis layer is imported when one of these is first called, so `import e3eval` stays light and a change inside
`analysis/` that keeps these two signatures cannot reach the core. (`tests/test_packaging.py` checks the rule.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e3eval.analysis.steps import Step


def step_presets() -> tuple[str, ...]:
    """The names of the step presets (`--preset` of count-asymmetries, `--attempts` of probe)."""
    from e3eval.analysis.steps import PRESETS

    return tuple(PRESETS)


def step_spans(text: str, preset: str) -> list[Step]:
    """The steps of `text` under step preset `preset` as character spans, each with its kinds (`verify`, `attempt`,
    `chained`): as many as `count_steps` counts (`e3eval.analysis.steps.step_spans`, the bundled lexicon)."""
    from e3eval.analysis.steps import step_spans as spans

    return spans(text, preset)


def attempt_spans(text: str, preset: str) -> list[tuple[int, int]]:
    """Character spans `(start, end)` of the successive attempts of `text` under step preset `preset`
    (`e3eval.analysis.segments.attempt_spans`, with the preset's bundled lexicon)."""
    from e3eval.analysis.segments import attempt_spans as spans

    return spans(text, preset)
