"""Which model a probe row measures, so that no point of a figure averages two models, two dtypes or two references.

One probe table (`e3eval probe`) can hold many models: the checkpoints of a training run (verl's
`EXPERIMENT/global_step_N/actor/huggingface`), those of several experiments under one folder
(`checkpoints/PROJECT/{A,B}/global_step_N`, which `--model checkpoints/PROJECT` probes together), a base model without a
step, or one model in two dtypes. A row's *experiment* is its model path without the trailing `global_step_N/...` (the
folder holding the steps: `e3eval.probes.checkpoints.experiment_of`). `split` cuts the rows of one spec label into
groups, one per experiment and per value of the columns a family names (`dtype`, `temperature`; the attempt probes
add `preset` and `max_attempts`), names them apart (`label (A, bfloat16)`) and says what each one is, for the
footnote. A model without a step (a base model) joins every group of its label that shares those values: it is their
common starting point.
`split` refuses what it cannot draw apart: one checkpoint with two sets of weights (two model paths, or two
`model_fingerprint`s where the table has that column: older tables do not) and one group probed against several
references (`ref`, `ref_fingerprint`), which would count every sample twice; rows probed without a reference are left
out of a group that has one (`_one_ref`). This module reads no file and draws nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from e3eval.errors import UserError
from e3eval.probes.checkpoints import experiment_of

if TYPE_CHECKING:
    import pandas as pd

_OPTIONAL = ("dtype", "model_fingerprint", "ref", "ref_fingerprint")
# How a group's value of a split column reads in its name ("" when the table does not record it).
_SHOWN = {
    "dtype": lambda v: v or "dtype not recorded",
    "preset": lambda v: v or "preset not recorded",
    "max_attempts": lambda v: f"at most {v} attempts" if v else "all attempts",
    "temperature": lambda v: f"temperature {float(v):g}",
}


@dataclass(frozen=True)
class Group:
    """Rows of one spec label that may share a line: one experiment, one value of each split column, one ref."""

    name: str  # the series name: the label, or `label (detail)` when the label's rows hold several groups
    about: str  # what the rows are: experiment folder, dtype, reference, models without a step
    rows: pd.DataFrame


def split(table: pd.DataFrame, label: str, by: Sequence[str] = ("dtype",), key: str = "probes") -> list[Group]:
    """The groups of one label's probe rows (see the module text); `key` names the spec input in errors."""
    table = table.reset_index(drop=True)
    for column in {*_OPTIONAL, *by}:
        if column not in table.columns:
            table[column] = None
    if "temperature" in table.columns:  # tables from before probes recorded it were all at temperature 1
        table["temperature"] = table["temperature"].astype("float64").fillna(1.0)
    values = list(zip(*(table[c].map(_text) for c in by), strict=True)) if by else [()] * len(table)
    stepped = table["step"].notna().to_list()
    members: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    loose: dict[tuple[str, ...], list[int]] = {}
    for index, (model, has_step, value) in enumerate(zip(table["model"], stepped, values, strict=True)):
        if has_step:
            members.setdefault((experiment_of(str(model)), value), []).append(index)
        else:
            loose.setdefault(value, []).append(index)
    for value, indices in loose.items():
        owners = [group for group in members if group[1] == value]
        for group in owners or [("", value)]:
            members.setdefault(group, []).extend(indices)
    names = _names(label, list(members), by)
    groups = []
    for (experiment, value), name in zip(members, names, strict=True):
        rows = table.iloc[sorted(members[(experiment, value)])]
        _check_runs(rows, label, key)
        _check_weights(rows, label, key)
        rows, ref = _one_ref(rows, name, key)
        about = _about(rows, experiment, dict(zip(by, value, strict=True)), ref)
        groups.append(Group(name, about, rows))
    return groups


def _check_runs(rows: pd.DataFrame, label: str, key: str) -> None:
    """One series describes one run's samples: rows of several runs (a probe table several runs were probed into)
    would average problems of different runs as if they were one."""
    runs = sorted({str(r) for r in rows["run_id"].dropna()}) if "run_id" in rows.columns else []
    if len(runs) > 1:
        shown = ", ".join(runs[:3]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
        raise UserError(
            f"{key}: {label}: probe rows of {len(runs)} runs ({shown}) under one label would be averaged as one; "
            "give each run its own label (probe each run into its own table, or give the run directories)"
        )


def display_name(series: str, labels: Mapping[str, str]) -> str:
    """A series' name in a legend or title: `labels[series]`, or a split series `label (detail)` under its label's
    entry (`labels: {GRPO: Ours}` shows `GRPO (A, float32)` as `Ours (A, float32)`)."""
    if series in labels:
        return labels[series]
    for label, shown in labels.items():
        if series.startswith(f"{label} (") and series.endswith(")"):
            return shown + series[len(label) :]
    return series


def _text(value: Any) -> str:
    """A split column's value as text: "" for null, `4` for an integer stored as a float beside nulls."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _names(label: str, groups: list[tuple[str, tuple[str, ...]]], by: Sequence[str]) -> list[str]:
    """`label` for a single group; else `label (what differs: experiment, then the split columns' values)`."""
    if len(groups) == 1:
        return [label]
    shown_experiments = short_paths([experiment for experiment, _ in groups])
    details: list[list[str]] = [[] for _ in groups]
    if len({experiment for experiment, _ in groups}) > 1:
        for detail, shown in zip(details, shown_experiments, strict=True):
            detail.append(shown or "models without a step")
    for position, column in enumerate(by):
        if len({value[position] for _, value in groups}) > 1:
            show = _SHOWN.get(column, lambda v, c=column: f"{c} {v or 'not recorded'}")
            for detail, (_, value) in zip(details, groups, strict=True):
                detail.append(show(value[position]))
    return [f"{label} ({', '.join(detail)})" for detail in details]


def short_paths(paths: list[str]) -> list[str]:
    """The fewest trailing folder names that still tell the paths apart (`PROJ/A` and `PROJ2/A` -> `PROJ/A` ...)."""
    parts = [PurePath(p).parts if p else () for p in paths]
    for depth in range(1, max((len(p) for p in parts), default=0) + 1):
        shown = [str(PurePath(*p[-depth:])) if p else "" for p in parts]
        if len(set(shown)) == len(set(paths)):
            return shown
    return list(paths)


def _check_weights(rows: pd.DataFrame, label: str, key: str) -> None:
    """One set of weights per checkpoint: one model path per (experiment, step), one fingerprint per model."""
    stepped = rows[rows["step"].notna()]
    for step, at in stepped.groupby("step", sort=True):
        models = sorted({str(m) for m in at["model"]})
        if len(models) > 1:
            raise UserError(f"{key}: {label}: step {int(step)} of {experiment_of(models[0])} was probed as "
                            f"{len(models)} models ({', '.join(models)}); give the tables of one of them")  # fmt: skip
    for model, at in rows.groupby("model", sort=True):
        prints = sorted({str(f) for f in at["model_fingerprint"].dropna()})
        if len(prints) > 1:
            raise UserError(f"{key}: {label}: {model} was probed with different weights (model_fingerprint "
                            f"{', '.join(prints)}): the folder was rewritten between probes; give the tables of one "
                            "set of weights")  # fmt: skip


def _one_ref(rows: pd.DataFrame, name: str, key: str) -> tuple[pd.DataFrame, str | None]:
    """The rows of one reference model: a sample probed again with another `--ref` would count twice."""
    with_ref = rows[rows["ref"].notna()]
    refs = sorted({(str(r), _text(f)) for r, f in zip(with_ref["ref"], with_ref["ref_fingerprint"], strict=True)})
    if len(refs) > 1:
        shown = ", ".join(f"{r} (weights {f})" if f else r for r, f in refs)
        raise UserError(f"{key}: {name}: probed against several references ({shown}); give the tables of one "
                        "reference per series")  # fmt: skip
    if not refs:
        return rows, None
    return with_ref, refs[0][0]


def _about(rows: pd.DataFrame, experiment: str, values: Mapping[str, str], ref: str | None) -> str:
    """What a group's rows are, in words: `checkpoints of ckpts/A, bfloat16, KL to base`."""
    loose = sorted({str(m) for m in rows.loc[rows["step"].isna(), "model"]})
    parts = [f"checkpoints of {experiment}" if experiment else f"model{'s' if len(loose) > 1 else ''} "
             f"{', '.join(loose)}"]  # fmt: skip
    if experiment and loose:
        parts.append(f"with {', '.join(loose)} (no step)")
    parts += [_SHOWN.get(column, lambda v, c=column: f"{c} {v}")(value) for column, value in values.items()]
    if ref:
        parts.append(f"KL to {ref}")
    return ", ".join(parts)
