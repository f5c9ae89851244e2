"""Whether a run's summary still describes the samples it holds: a run generated further after `score` is stale.

`compare` counts the samples a run holds now (`samples_held`) and the samples its summary was computed from
(`scored_samples`, from run.json's scoring section) and, when they differ, words a warning with the command that
rescores it (`stale_warning`), issued as a `StaleSummaryWarning` so a notebook shows it. This module reads run.json
and the rollouts' keys; it changes nothing.
"""

from __future__ import annotations

import shlex

import pyarrow as pa

from e3eval.errors import UserError
from e3eval.run import Run
from e3eval.samples import successful_keys


class StaleSummaryWarning(UserWarning):
    """A run's summary was computed from fewer (or other) samples than the run holds now: rescore it."""


def samples_held(run: Run) -> int | None:
    """How many samples the run holds now (failed requests are not samples); None when it keeps no rollouts (a
    summary kept without them) or they cannot be read (then every other reader says why)."""
    if not run.has("rollouts"):
        return None
    try:
        return len(successful_keys(run.path))
    except UserError:
        return None


def scored_samples(run: Run, policy: str, table: pa.Table | None = None) -> int | None:
    """How many samples `policy`'s summary was computed from, as run.json's scoring section records it (summaries
    older than that record: the most samples counted at any budget of `table`); None when nothing says."""
    scoring = run.record.scoring
    graded = scoring.policy_record(policy).samples_graded if scoring is not None else None
    if graded is None and table is not None and table.num_rows and "n_samples" in table.column_names:
        graded = max((n for n in table["n_samples"].to_pylist() if n is not None), default=None)
    return graded if isinstance(graded, int) and not isinstance(graded, bool) else None


def stale_warning(run: Run, name: str, table: pa.Table, held: int | None) -> str | None:
    """`NAME: N samples were added after it was scored; rescore with e3eval score RUN ...`, or None when the summary
    rests on the samples the run holds (`held`, from `samples_held`) or nothing says what it rests on."""
    if held is None or not table.num_rows:
        return None
    policy = str(table["policy"][0].as_py())
    scored = scored_samples(run, policy, table)
    if scored is None or scored == held:
        return None
    budgets = ",".join(str(b) for b in sorted(set(table["budget"].to_pylist())))
    command = f"e3eval score {shlex.quote(str(run.path))} --budgets {budgets}"
    if policy != "prefix":
        command += f" --policy {policy}"
    scoring = run.record.scoring
    forced = scoring.policy_record(policy).forced if scoring is not None else None
    if forced is not None and forced.model:  # the flags that set the forced answers: others would be other answers
        command += f" --model {shlex.quote(forced.model_path or forced.model)}"
        flags = {"--backend": forced.backend, "--answer-tokens": forced.answer_tokens, "--answer-cue": forced.cue,
                 "--think-end": forced.think_end, "--base-url": forced.base_url}  # fmt: skip
        for flag, value in flags.items():
            if value is not None:
                command += f" {flag} {shlex.quote(str(value))}"
    if held > scored:
        what = f"{held - scored} samples were added after it was scored ({scored} scored, {held} now)"
    else:
        what = f"it was scored on {scored} samples and holds {held} now"
    return f"{name}: {what}; rescore with {command}"
