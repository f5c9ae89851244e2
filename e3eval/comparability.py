"""What may not be compared silently: the settings in which runs shown side by side differ, and the common k.

Numbers of two runs side by side invite a comparison; this module says when it is not like for like: the runs
differ in dataset, in the problems they hold (a `--limit` or `--shard` subset, or another benchmark), in samples per
problem, in sampling settings (temperature, top_p) or in budget forcing. It also chooses the metrics a report shows
by default, and says when pass@k or maj@k is shown at a k smaller than some run has (the largest k every run has).
Each finding is one line of text naming the runs by label. It reads nothing (`report.py` gathers the `RunFacts`) and
refuses nothing: the lines are shown under every report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from e3eval.labels import forcing_label, inserted_waits, subset_label
from e3eval.manifest import GenerationRecord
from e3eval.notebook import K_METRICS, metric_name

# The rates a report shows by default, after pass@1 and the common pass@k / maj@k.
DEFAULT_RATES = ("mean_tokens", "frac_finished", "frac_answered")
# Shown only when some run has a non-zero value: both count as incorrect, so they must be seen beside the numbers.
FAILURE_RATES = ("frac_timeout", "frac_ungraded")


@dataclass(frozen=True)
class RunFacts:
    """What the comparison of one run (one entry of a report) rests on."""

    label: str
    generation: GenerationRecord | None
    problems: frozenset[str]
    n_per_problem: int | None  # None: problems hold different numbers of samples
    ks: dict[str, tuple[int, ...]] = field(default_factory=dict)  # pass@k / maj@k -> the ks with a value
    failures: frozenset[str] = frozenset()  # failure rates with a non-zero value somewhere
    run_key: str = ""  # entries of one run (its policies) share it: they never differ in settings


def _by(facts: Sequence[RunFacts], values: Sequence[object], names: Mapping[str, str] | None = None) -> str:
    """`A: 1; B: 0.6`: each run named as `names` says (its key under a key legend), else by its label."""
    names = names or {}
    return "; ".join(f"{names.get(f.label, f.label)}: {v}" for f, v in zip(facts, values, strict=True))


def _one_per_run(facts: Sequence[RunFacts]) -> list[RunFacts]:
    seen: dict[str, RunFacts] = {}
    for fact in facts:
        seen.setdefault(fact.run_key or fact.label, fact)
    return list(seen.values())


def subset_notes(facts: Sequence[RunFacts], names: Mapping[str, str] | None = None) -> list[str]:
    """One line per run that holds only part of its dataset (`--limit`, `--shard`), named by key (`names`) or label
    (which names the subset already: said once)."""
    lines = []
    for f in _one_per_run(facts):
        if f.generation is None or not f.generation.subset:
            continue
        subset = subset_label(f.generation) or "a subset"
        name = (names or {}).get(f.label, f.label)
        what = f" ({subset})" if subset not in name else ""
        lines.append(f"{name} holds part of its dataset{what}: its numbers describe those problems only")
    return lines


def forcing_notes(facts: Sequence[RunFacts], names: Mapping[str, str] | None = None) -> list[str]:
    """One line per run generated with budget forcing that run.json says inserted no wait: a plain generation."""
    lines = []
    for f in _one_per_run(facts):
        forcing = f.generation.forcing if f.generation is not None else None
        if forcing is not None and forcing.mode != "s1" and forcing.wait and inserted_waits(f.generation) == 0:
            lines.append(f"{(names or {}).get(f.label, f.label)} was generated with wait={forcing.wait} but no wait "
                         "was inserted (the end of thinking never occurred): its numbers are a plain "
                         "generation's")  # fmt: skip
    return lines


def setting_differences(facts: Sequence[RunFacts], names: Mapping[str, str] | None = None) -> list[str]:
    """One line per setting in which the runs differ: dataset, problems, n per problem, sampling, forcing."""
    lines: list[str] = []
    runs = _one_per_run(facts)
    if len(runs) < 2:
        return lines
    generations = [f.generation or GenerationRecord() for f in runs]
    datasets = [g.dataset for g in generations]
    if len(set(datasets)) > 1:
        lines.append(f"the runs differ in dataset ({_by(runs, [d or 'not recorded' for d in datasets], names)})")
    problem_sets = [f.problems for f in runs]
    if len(set(problem_sets)) > 1:
        shared = frozenset.intersection(*problem_sets)
        sizes = _by(runs, [len(p) for p in problem_sets], names)
        lines.append(f"the runs hold different problems ({sizes}; {len(shared)} shared): their numbers average over "
                     "different problems")  # fmt: skip
    ns = [f.n_per_problem for f in runs]
    if len(set(ns)) > 1:
        lines.append(f"the runs differ in samples per problem ({_by(runs, [n or 'varies' for n in ns], names)})")
    for setting in ("temperature", "top_p"):
        values = [getattr(g.sampling, setting) for g in generations]
        if len(set(values)) > 1:
            lines.append(f"the runs differ in sampling {setting} ({_by(runs, [_shown(v) for v in values], names)})")
    forcings = [forcing_label(g.forcing, inserted_waits(g)) or "none" for g in generations]
    wait_texts = [g.forcing.wait_text if g.forcing is not None else None for g in generations]
    if len(set(forcings)) > 1 or len(set(wait_texts)) > 1:
        lines.append(f"the runs differ in budget forcing ({_by(runs, forcings, names)})")
    return lines


def _shown(value: float | None) -> str:
    return "not recorded" if value is None else f"{value:g}"


def default_metrics(facts: Sequence[RunFacts], naming: Mapping[str, str] | None = None) -> tuple[list[str], list[str]]:
    """The metrics a report shows when none are asked for (pass@1, the largest pass@k and maj@k every run has, the
    token and finish rates, and grader failure rates where any run has one), and a line for each metric shown at a
    smaller k than some run has."""
    names = ["pass@1"]
    lines = []
    for metric in K_METRICS:
        largest = [max(f.ks.get(metric, ()), default=0) for f in facts]
        common = set.intersection(*(set(f.ks.get(metric, ())) for f in facts)) if facts else set()
        kept = max((k for k in common if k > 1), default=None)
        if kept is not None:
            names.append(metric_name(metric, kept))
        if len(set(largest)) > 1:
            shown = f"shown at k={kept}" if kept is not None else "pass@1 only" if metric == "pass@k" else "not shown"
            held = _by(facts, [f"up to {k}" if k else "none" for k in largest], naming)
            lines.append(f"{metric}: {shown}, the largest k every run has ({held}); --metrics "
                         f"{metric_name(metric, max(largest))} shows the larger k")  # fmt: skip
    names += list(DEFAULT_RATES)
    names += [m for m in FAILURE_RATES if any(m in f.failures for f in facts)]
    return names, lines
