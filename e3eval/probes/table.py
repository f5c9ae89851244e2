"""The probe tables: their schemas, how per-token statistics reduce to rows, and which samples are already done.

`probes.parquet` has one row per (model, ref, problem, sample, budget): token means over the first `budget` response
tokens (all of them when the response is shorter; `n_tokens` says how many) of
- `mean_logprob`: log pi(y_t | x, y_<t) of the stored token, at temperature 1;
- `mean_entropy`: -sum_v pi(v | x, y_<t) log pi(v | x, y_<t) over the full vocabulary, at temperature 1 (nats);
- `kl_exact`: sum_v pi(v) (log pi(v) - log ref(v)), full vocabulary; `kl_k1`: log pi(y_t) - log ref(y_t);
  `kl_k3`: exp(r) - r - 1 with r = log ref(y_t) - log pi(y_t), clamped to [-10, 10] as verl does (null without ref);
- `correct`: the sample's grade at that budget from the run's last scoring (null when unscored or not graded).
With `--per-token`, the row of the largest budget carries the per-token lists (`token_logprob`, `token_entropy`,
`token_kl`); a smaller budget's values are their prefix. `attempt_probes.parquet` has one row per (model, ref,
problem, sample, attempt index k >= 2) with the Fig. 13 log-probabilities (see `attempts.py`); a sample with fewer
than two attempts gets one row with null `k` so that it counts as probed. This module reads and shapes tables; it
runs no model.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from e3eval.errors import UserError

Key = tuple[str, str | None, str, int]  # (model, ref, problem_id, sample_idx)

_KEY = [("run_id", pa.string()), ("model", pa.string()), ("step", pa.int64()), ("ref", pa.string()),
        ("problem_id", pa.string()), ("sample_idx", pa.int32())]  # fmt: skip
PROBE_SCHEMA = pa.schema(
    [
        *_KEY,
        ("budget", pa.int32()),
        ("n_tokens", pa.int32()),
        ("mean_logprob", pa.float64()),
        ("mean_entropy", pa.float64()),
        ("kl_exact", pa.float64()),
        ("kl_k1", pa.float64()),
        ("kl_k3", pa.float64()),
        ("correct", pa.bool_()),
        ("token_logprob", pa.list_(pa.float32())),
        ("token_entropy", pa.list_(pa.float32())),
        ("token_kl", pa.list_(pa.float32())),
    ]
)
ATTEMPT_SCHEMA = pa.schema(
    [
        *_KEY,
        ("preset", pa.string()),
        ("k", pa.int32()),
        ("n_attempts", pa.int32()),
        ("tokens_k", pa.int32()),
        ("tokens_prev", pa.int32()),
        ("lp_k_given_prev", pa.float64()),
        ("lp_k_skip_prev", pa.float64()),
        ("lp_prev_given_before", pa.float64()),
        ("lp_repeat_prev", pa.float64()),
        ("fig13a", pa.float64()),
        ("fig13b", pa.float64()),
        ("fig13c", pa.float64()),
        ("fig13a_per_token", pa.float64()),
        ("fig13b_per_token", pa.float64()),
        ("fig13c_per_token", pa.float64()),
        ("correct", pa.bool_()),
    ]
)


def budget_rows(base: dict[str, Any], stats: Any, budgets: Sequence[int],
                correct: dict[tuple[str, int, int], bool | None], per_token: bool) -> list[dict[str, Any]]:  # fmt: skip
    """One row per budget: token means over the response prefix of that budget (`stats` None: empty response)."""
    length = 0 if stats is None else len(stats.logprob)
    sums = {} if stats is None else {name: _prefix_sums(getattr(stats, name)) for name in _MEANS}
    rows = []
    for budget in budgets:
        n = min(budget, length)
        row = {**base, "budget": budget, "n_tokens": n,
               "correct": correct.get((base["problem_id"], base["sample_idx"], budget))}  # fmt: skip
        for name, column in _MEANS.items():
            total = sums.get(name)
            row[column] = None if total is None or n == 0 else float(total[n] / n)
        if per_token and stats is not None and budget == max(budgets):
            row["token_logprob"] = stats.logprob[:n].tolist()
            row["token_entropy"] = stats.entropy[:n].tolist()
            row["token_kl"] = None if stats.kl_exact is None else stats.kl_exact[:n].tolist()
        rows.append(row)
    return rows


_MEANS = {"logprob": "mean_logprob", "entropy": "mean_entropy", "kl_exact": "kl_exact", "kl_k1": "kl_k1",
          "kl_k3": "kl_k3"}  # fmt: skip


def _prefix_sums(values: np.ndarray | None) -> np.ndarray | None:
    if values is None:
        return None
    return np.concatenate([[0.0], np.cumsum(np.asarray(values, dtype=np.float64))])


def attempt_rows(base: dict[str, Any], probes: Sequence[Any], preset: str, correct: bool | None,
                 n_attempts: int) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of one sample's attempt probes; a sample with fewer than two attempts gets one row with null k."""
    common = {**base, "preset": preset, "n_attempts": n_attempts, "correct": correct}
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


def done_keys(table: pa.Table, budgets: Iterable[int] = (), preset: str | None = None) -> set[Key]:
    """Samples already probed: (probes) rows for every budget asked for, or (attempts) rows of this preset."""
    if table.num_rows == 0:
        return set()
    if preset is not None:
        table = table.filter(pc.equal(table["preset"], preset))
    columns = [table[c].to_pylist() for c in ("model", "ref", "problem_id", "sample_idx")]
    keys = list(zip(*columns, strict=True))
    if preset is not None:
        return set(keys)
    wanted = set(budgets)
    seen: dict[Key, set[int]] = {}
    for key, budget in zip(keys, table["budget"].to_pylist(), strict=True):
        seen.setdefault(key, set()).add(budget)
    return {key for key, have in seen.items() if wanted <= have}


def latest(table: pa.Table, unique: Sequence[str]) -> pa.Table:
    """Keep the last row of each `unique` key (a sample probed again replaces its older rows)."""
    if table.num_rows == 0:
        return table
    columns = [table[c].to_pylist() for c in unique]
    last: dict[tuple, int] = {}
    for index, key in enumerate(zip(*columns, strict=True)):
        last[key] = index
    return table.take(sorted(last.values()))


def read_parts(folder: Path, kind: str, schema: pa.Schema) -> list[pa.Table]:
    """The part files an interrupted probe left, oldest first (a damaged part is named: remove it to redo it)."""
    if not folder.is_dir():
        return []
    tables = []
    for part in sorted(folder.glob(f"{kind}-*.parquet")):
        try:
            tables.append(pq.read_table(part).cast(schema))
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise UserError(f"{part}: a damaged probe part ({exc}); delete it and rerun to recompute it") from None
    return tables
