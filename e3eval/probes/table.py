"""The probe tables: their schemas, how per-token statistics reduce to rows, and which samples are already done.

`probes.parquet` has one row per (model, ref, problem, sample, budget): token means over the first `budget` response
tokens (all of them when the response is shorter; `n_tokens` says how many) of
- `mean_logprob`: log pi(y_t | x, y_<t) of the stored token, pi = softmax(logits / `temperature`);
- `mean_entropy`: -sum_v pi(v | x, y_<t) log pi(v | x, y_<t) over the full vocabulary, same pi (nats);
- `kl_exact`: sum_v pi(v) (log pi(v) - log ref(v)), full vocabulary; `kl_k1`: log pi(y_t) - log ref(y_t);
  `kl_k3`: exp(r) - r - 1 with r = log ref(y_t) - log pi(y_t) clamped to [-20, 20] and the result to [-10, 10], as
  verl does (null without ref);
- `correct`: the sample's grade at that budget from the run's last scoring (null when unscored or not graded).
With `--per-token`, the row of the largest budget carries the per-token lists (`token_logprob`, `token_entropy`,
`token_kl`); a smaller budget's values are their prefix. `attempt_probes.parquet` has one row per (model, problem,
sample, attempt index k >= 2) with the Fig. 13 log-probabilities (see `attempt_logprobs.py`) and the sample's grade at
the largest scored budget; a sample with fewer than two attempts, or whose attempts could not be placed on its tokens
(`error`), gets one row with null `k` so that it counts as probed. `dtype` is the weights' dtype. This module reads
and shapes tables; it runs no model.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.errors import UserError
from e3eval.store import ATTEMPT_SCHEMA as ATTEMPT_SCHEMA  # declared with every table in store.TABLES
from e3eval.store import ATTEMPT_SLOT, PROBE_SLOT, parts
from e3eval.store import PROBE_SCHEMA as PROBE_SCHEMA

if TYPE_CHECKING:
    from e3eval.run import Run

# Where a measurement lives: its slot (`store.PROBE_SLOT`, `store.ATTEMPT_SLOT`).
# What makes a stored measurement still valid for its slot: the same weights at those paths (`weights.py`), the
# same token ids read (a regenerated sample, or another run's sample under a reused id, is measured again) and the
# same temperature (a probe at another temperature replaces the slot's rows).
_VALID = ("model_fingerprint", "ref_fingerprint", "ids_sha1", "temperature")
PROBE_KEY = (*PROBE_SLOT, *_VALID)
_ADDED = (*_VALID, "n_inserted", "grade_policy", "graded_by")  # columns newer than the first probe tables
ATTEMPT_KEY = (*ATTEMPT_SLOT, "model_fingerprint", "ids_sha1", "temperature")
Key = tuple[Any, ...]


@dataclass(frozen=True)
class SampleIdentity:
    """Which measurement a (model, sample) pair's rows are: the columns all its probe and attempt rows share, and
    its keys (`PROBE_KEY`, `ATTEMPT_KEY`), which say whether an earlier call already made that measurement."""

    run_id: str
    model: str
    step: int | None
    ref: str | None
    dtype: str
    problem_id: str
    sample_idx: int
    model_fingerprint: str | None
    ref_fingerprint: str | None
    ids_sha1: str
    temperature: float | None

    def columns(self) -> dict[str, Any]:
        """The shared columns, which every row of this pair starts from (`budget_rows`, `attempt_rows`)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def probe_key(self) -> Key:
        return tuple(getattr(self, name) for name in PROBE_KEY)

    def attempt_key(self, preset: str | None, max_attempts: int | None) -> Key:
        columns = {**self.columns(), "preset": preset, "max_attempts": max_attempts}
        return tuple(columns[name] for name in ATTEMPT_KEY)


def budget_rows(base: dict[str, Any], stats: Any, budgets: Sequence[int], per_token: bool,
                inserted: Sequence[int] = ()) -> list[dict[str, Any]]:  # fmt: skip
    """One row per budget: token means over the policy's tokens of the response prefix of that budget (`stats` None:
    empty response); tokens in `inserted` (flat (start, end) pairs of spans budget forcing inserted) are left out of
    the means and null in the per-token lists. `correct` is filled from the run's grades (`with_grades`)."""
    length = 0 if stats is None else len(stats.logprob)
    policy = np.ones(length, dtype=bool)
    for start, end in zip(inserted[::2], inserted[1::2], strict=True):
        policy[max(start, 0) : max(end, 0)] = False
    counts = np.concatenate([[0], np.cumsum(policy)])
    sums = {} if stats is None else {name: _prefix_sums(getattr(stats, name), policy) for name in _MEANS}
    rows = []
    for budget in budgets:
        cut = min(budget, length)
        n = int(counts[cut])
        row = {**base, "budget": budget, "n_tokens": n, "n_inserted": cut - n}
        for name, column in _MEANS.items():
            total = sums.get(name)
            row[column] = None if total is None or n == 0 else float(total[cut] / n)
        if per_token and stats is not None and budget == max(budgets):
            row["token_logprob"] = _policy_only(stats.logprob[:cut], policy)
            row["token_entropy"] = _policy_only(stats.entropy[:cut], policy)
            row["token_kl"] = None if stats.kl_exact is None else _policy_only(stats.kl_exact[:cut], policy)
        rows.append(row)
    return rows


def _policy_only(values: np.ndarray, policy: np.ndarray) -> list[float | None]:
    """Per-token values, aligned with the response's tokens, null where a token was inserted rather than sampled."""
    return [float(v) if own else None for v, own in zip(values.tolist(), policy[: len(values)].tolist(), strict=True)]


_MEANS = {"logprob": "mean_logprob", "entropy": "mean_entropy", "kl_exact": "kl_exact", "kl_k1": "kl_k1",
          "kl_k3": "kl_k3"}  # fmt: skip


def _prefix_sums(values: np.ndarray | None, policy: np.ndarray) -> np.ndarray | None:
    if values is None:
        return None
    return np.concatenate([[0.0], np.cumsum(np.where(policy, np.asarray(values, dtype=np.float64), 0.0))])


def attempt_rows(base: dict[str, Any], probes: Sequence[Any], preset: str, max_attempts: int | None,
                 n_attempts: int | None, error: str | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of one sample's attempt probes; a sample with fewer than two attempts (or whose attempts could not be
    probed: `error`) gets one row with null k."""
    common = {**base, "ref": None, "preset": preset, "max_attempts": max_attempts, "n_attempts": n_attempts,
              "error": error}  # fmt: skip
    if not probes:
        return [common]
    rows = []
    for probe in probes:
        rows.append({**common, "k": probe.k, "tokens_k": probe.tokens_k, "tokens_prev": probe.tokens_prev,
                     "lp_k_given_prev": probe.lp_k_given_prev, "lp_k_skip_prev": probe.lp_k_skip_prev,
                     "lp_prev_given_before": probe.lp_prev_given_before, "lp_repeat_prev": probe.lp_repeat_prev,
                     "fig13a": probe.fig13a, "fig13b": probe.fig13b, "fig13c": probe.fig13c,
                     "fig13a_per_token": probe.fig13a_per_token, "fig13b_per_token": probe.fig13b_per_token,
                     "fig13c_per_token": probe.fig13c_per_token})  # fmt: skip
    return rows


def done_keys(table: pa.Table, unique: Sequence[str], budgets: Iterable[int] = (), per_token: bool = False) -> set[Key]:
    """Samples already measured under `unique` (PROBE_KEY or ATTEMPT_KEY values). For probes: rows for every budget
    asked for, and per-token lists on the largest budget's row when they are asked for too."""
    if table.num_rows == 0:
        return set()
    keys = list(zip(*(table[c].to_pylist() for c in unique), strict=True))
    if "budget" not in table.column_names:
        return set(keys)
    wanted, largest = set(budgets), max(budgets, default=None)
    seen: dict[Key, set[int]] = {}
    lists = table["token_logprob"].is_valid().to_pylist()
    for key, budget, has_list in zip(keys, table["budget"].to_pylist(), lists, strict=True):
        if not per_token or budget != largest or has_list:
            seen.setdefault(key, set()).add(budget)
    return {key for key, have in seen.items() if wanted <= have}


def latest(tables: Sequence[pa.Table], unique: Sequence[str], schema: pa.Schema) -> pa.Table:
    """The rows of each `unique` key (a slot) from the last of `tables` (oldest first) that holds that key: a sample
    probed again replaces all its older rows, however rows of other keys are interleaved."""
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return schema.empty_table()
    keyed = [list(zip(*(t[c].to_pylist() for c in unique), strict=True)) for t in tables]
    newest: dict[tuple, int] = {}
    for index, keys in enumerate(keyed):
        for key in keys:
            newest[key] = index
    kept = [
        t.filter(pa.array([newest[key] == i for key in keys]))
        for i, (t, keys) in enumerate(zip(tables, keyed, strict=True))
    ]
    return pa.concat_tables(kept)


Grades = dict[tuple[str, int, int | None], bool | None]


@dataclass(frozen=True)
class RunGrades:
    """A run's grades as they are now: per (problem, sample, budget) (None: timeout or error), plus (problem, sample,
    None), the grade at the largest scored budget, which attempt rows (whole responses) carry; and which scoring they
    come from (its policy and unit id, written beside `correct` so a table read without its run can be checked)."""

    grades: Grades = field(default_factory=dict)
    policy: str | None = None
    unit: str | None = None


def run_grades(run: Run) -> RunGrades:
    """The run's current grades (`grades.parquet`: its last scoring); empty when it was never scored."""
    if not run.has("grades"):
        return RunGrades()
    table = run.table("grades", ["problem_id", "sample_idx", "budget", "correct", "policy"])
    found: Grades = {}
    largest: dict[tuple[str, int], int] = {}
    columns = (table.column(c).to_pylist() for c in ("problem_id", "sample_idx", "budget", "correct"))
    for pid, idx, budget, ok in zip(*columns, strict=True):
        found[(pid, idx, budget)] = ok
        if budget >= largest.get((pid, idx), -1):
            largest[(pid, idx)] = budget
            found[(pid, idx, None)] = ok
    policy = table["policy"][0].as_py() if table.num_rows else None
    return RunGrades(found, policy, run.record.scoring.unit if run.record.scoring is not None else None)


def with_grades(table: pa.Table, run_ids: str | Collection[str], current: RunGrades) -> pa.Table:
    """`correct` from the run's current grades for this run's rows (a probe made before scoring, or before a new
    scoring, must not keep a stale grade), with `grade_policy` and `graded_by` (the scoring unit) saying which
    scoring that is. Keys are (problem, sample, budget); attempt rows use budget None."""
    needed = ("run_id", "problem_id", "sample_idx", "correct")
    if table.num_rows == 0 or any(c not in table.column_names for c in needed):
        return table
    own = {run_ids} if isinstance(run_ids, str) else set(run_ids)
    budgets = table["budget"].to_pylist() if "budget" in table.column_names else [None] * table.num_rows
    mine = [r in own for r in table["run_id"].to_pylist()]
    columns = {"correct": (current.grades, pa.bool_()), "grade_policy": (current.policy, pa.string()),
               "graded_by": (current.unit, pa.string())}  # fmt: skip
    for name, (value, kind) in columns.items():
        old = table[name].to_pylist() if name in table.column_names else [None] * table.num_rows
        keys = zip(table["problem_id"].to_pylist(), table["sample_idx"].to_pylist(), budgets, strict=True)
        fresh = [
            (value.get(key) if isinstance(value, dict) else value) if is_mine else was
            for key, is_mine, was in zip(keys, mine, old, strict=True)
        ]
        if name in table.column_names:
            table = table.set_column(table.schema.get_field_index(name), name, pa.array(fresh, kind))
        else:
            table = table.append_column(name, pa.array(fresh, kind))
    return table


_PART = re.compile(r"(probes|attempts)-\d+\.parquet")
_KINDS = ("attempts", "probes")


def part_files(folder: Path, kind: str | None = None) -> list[Path]:
    """The part files a probe wrote in `folder` (`probes-N.parquet`, `attempts-N.parquet`), each kind in the order
    written (`store.parts`: by N, as a number). N is `store.append_part`'s five digits, or the nanosecond timestamp
    an older version named its parts by; `append_part` numbers past those, so they are still read first. A folder at
    that place holding anything else was not made by e3eval: refused, nothing in it read or removed."""
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise UserError(f"{folder}: not the folder of probe parts e3eval makes; move it away")
    if not folder.is_dir():
        return []
    entries = sorted(folder.iterdir())
    foreign = [p.name for p in entries if not _PART.fullmatch(p.name) or p.is_symlink() or not p.is_file()]
    if foreign:
        raise UserError(f"{folder}: holds {foreign[0]!r}, which no probe wrote; move it (or the folder) away")
    return [path for prefix in _KINDS if kind in (None, prefix) for path in parts(folder, prefix)]


def read_parts(folder: Path, kind: str, schema: pa.Schema) -> list[pa.Table]:
    """The part files an interrupted probe left, oldest first (a damaged part is named: remove it to redo it)."""
    tables = []
    for part in part_files(folder, kind):
        try:
            tables.append(conform(pq.read_table(part), schema))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise UserError(f"{part}: a damaged probe part ({exc}); delete it and rerun to recompute it") from None
    return tables


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table written by an older e3eval in today's schema: columns it lacks (fingerprints, ids_sha1, n_inserted)
    are null, so its rows stay in their slots but never count as valid measurements (they are probed again). A
    table lacking any other column is not a probe table: ValueError naming them."""
    missing = [name for name in schema.names if name not in table.column_names and name not in _ADDED]
    if missing:
        raise ValueError(f"not a probe table (no {', '.join(missing)})")
    for name in schema.names:
        if name == "temperature" and name not in table.column_names:  # every probe before it was at temperature 1
            table = table.append_column(name, pa.array([1.0] * table.num_rows, pa.float64()))
        elif name not in table.column_names:
            table = table.append_column(name, pa.nulls(table.num_rows, schema.field(name).type))
    return table.select(schema.names).cast(schema)
