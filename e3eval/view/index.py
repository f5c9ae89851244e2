"""Where each stored sample of a run lies, so that opening one reads one small row group, never the rollouts table.

A `SampleIndex` reads the key columns of every rollout part once (problem_id, sample_idx, finish_reason, error,
num_tokens: a few milliseconds for thousands of 32k-token samples) and maps each (problem_id, sample_idx) to its part,
row group and row. It applies the rule of `samples.ledger`: a successful row is the sample, a failed row stands for its
key only while no success exists, a later success supersedes it, and of two successes (which the ledger refuses) the
first is shown and the second counted in `duplicates`. Parts are append-only: `refresh` reads only parts that appeared
since (how a reload shows the new samples of a run still being generated), and rebuilds everything when a part it
read changed or vanished (a run replaced by `--force`). The last few row groups read are kept decoded (an LRU), since
a reader steps through the samples of one problem, which share a part, and `prefetch` reads the next one on a thread
before it is asked for. Thread-safe: the server answers requests on several threads. This module reads rollouts
through `store.py` and knows nothing of grades, budgets or text.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from e3eval.store import iter_shard_batches, read_row_group, rollout_shards, shard_row_groups

Key = tuple[str, int]
_KEY_COLUMNS = ("problem_id", "sample_idx", "finish_reason", "error", "num_tokens")
CACHED_GROUPS = 4


@dataclass(frozen=True)
class Location:
    """Where a sample's row lies (part, row group, row within it, and its position in storage order), and the facts
    the key scan read on the way."""

    shard: Path
    row_group: int
    row: int
    order: tuple[int, int]  # (part number in write order, row within the part): storage order
    failed: bool
    error: str | None
    finish_reason: str | None
    num_tokens: int | None


class SampleIndex:
    """The samples of one run directory: their locations, failures and storage order; `read` gives one row."""

    def __init__(self, run_dir: Path, cached_groups: int = CACHED_GROUPS) -> None:
        self.run_dir = Path(run_dir)
        self._lock = threading.RLock()
        self._cached = cached_groups
        self._groups: OrderedDict[tuple[Any, ...], pa.Table] = OrderedDict()
        self._reset()
        self.refresh()

    def _reset(self) -> None:
        self._stamps: dict[Path, tuple[int, int] | None] = {}
        self._locations: dict[Key, Location] = {}
        self._order: list[Key] | None = None
        self.duplicates = 0
        self.superseded = 0
        self._groups.clear()

    # Building ------------------------------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the parts written since the last call; rebuild when a part read before changed or is gone. Returns
        whether anything changed."""
        with self._lock:
            shards = rollout_shards(self.run_dir)
            stamps = {shard: file_stamp(shard) for shard in shards}
            known = [s for s in shards if s in self._stamps]
            if set(self._stamps) - set(known) or any(stamps[s] != self._stamps[s] for s in known):
                self._reset()
            new = [s for s in shards if s not in self._stamps]
            for shard in new:
                self._add(shard, shards.index(shard))
                self._stamps[shard] = stamps[shard]
            if new:
                self._order = None
            return bool(new)

    def _add(self, shard: Path, number: int) -> None:
        sizes = shard_row_groups(shard)
        groups = [(g, r) for g, size in enumerate(sizes) for r in range(size)]
        at = 0
        for batch in iter_shard_batches(shard, _KEY_COLUMNS):
            columns = [batch.column(c).to_pylist() for c in _KEY_COLUMNS]
            for pid, idx, finish, error, tokens in zip(*columns, strict=True):
                group, row = groups[at]
                failed = finish == "error"
                location = Location(shard, group, row, (number, at), failed, error, finish, tokens)
                self._place((pid, idx), location)
                at += 1

    def _place(self, key: Key, location: Location) -> None:
        """The ledger's rule (`samples.ledger`), row by row in storage order."""
        held = self._locations.get(key)
        if held is None:
            self._locations[key] = location
        elif held.failed and not location.failed:
            self._locations[key] = location
            self.superseded += 1
        elif not held.failed and not location.failed:
            self.duplicates += 1
        elif location.failed and not held.failed:
            self.superseded += 1
        # (a second failure of a failed key: the first error stands, as the ledger reports it)

    # Reading -------------------------------------------------------------------------------------------------------

    def keys(self) -> list[Key]:
        """Every stored key (samples and failures), in storage order."""
        with self._lock:
            if self._order is None:
                self._order = sorted(self._locations, key=lambda k: self._locations[k].order)
            return list(self._order)

    def locations(self) -> dict[Key, Location]:
        with self._lock:
            return dict(self._locations)

    def locate(self, problem_id: str, sample_idx: int) -> Location:
        """Where a key lies; a key not stored (after looking for new parts once) is a LookupError."""
        key = (problem_id, sample_idx)
        with self._lock:
            found = self._locations.get(key)
            if found is None and self.refresh():
                found = self._locations.get(key)
        if found is None:
            raise LookupError(f"{self.run_dir.name}: no sample {sample_idx} of problem {problem_id!r}")
        return found

    def neighbours(self, problem_id: str, sample_idx: int) -> tuple[Key | None, Key | None]:
        """The keys before and after this one in storage order."""
        order = self.keys()
        try:
            at = order.index((problem_id, sample_idx))
        except ValueError:
            raise LookupError(f"{self.run_dir.name}: no sample {sample_idx} of problem {problem_id!r}") from None
        return (order[at - 1] if at else None), (order[at + 1] if at + 1 < len(order) else None)

    @property
    def samples(self) -> int:
        """Keys held by a successful row."""
        with self._lock:
            return sum(1 for loc in self._locations.values() if not loc.failed)

    @property
    def failed(self) -> int:
        """Keys whose only rows are failed requests."""
        with self._lock:
            return sum(1 for loc in self._locations.values() if loc.failed)

    def read(self, problem_id: str, sample_idx: int, columns: Sequence[str]) -> dict[str, Any]:
        """One sample's row, only `columns` (token_ids as a numpy array), read through its row group."""
        location = self.locate(problem_id, sample_idx)
        table = self._group(location, tuple(columns))
        row: dict[str, Any] = {}
        for name in columns:
            column = table.column(name)
            if name == "token_ids":
                value = column[location.row]
                row[name] = value.values.to_numpy(zero_copy_only=False) if value.is_valid else None
            else:
                row[name] = column[location.row].as_py()
        return row

    def prefetch(self, problem_id: str, sample_idx: int, columns: Sequence[str]) -> None:
        """Read a sample's row group on a daemon thread unless it is cached: the next sample a reader opens."""
        location = self._locations.get((problem_id, sample_idx))
        if location is None:
            return
        with self._lock:
            if self._group_key(location, tuple(columns)) in self._groups:
                return
        threading.Thread(target=self._group, args=(location, tuple(columns)), daemon=True).start()

    def _group_key(self, location: Location, columns: tuple[str, ...]) -> tuple[Any, ...]:
        return (location.shard, self._stamps.get(location.shard), location.row_group, columns)

    def _group(self, location: Location, columns: tuple[str, ...]) -> pa.Table:
        key = self._group_key(location, columns)
        with self._lock:
            table = self._groups.get(key)
            if table is not None:
                self._groups.move_to_end(key)
                return table
        table = read_row_group(location.shard, location.row_group, columns)  # outside the lock: reads take time
        with self._lock:
            self._groups[key] = table
            while len(self._groups) > self._cached:
                self._groups.popitem(last=False)
        return table


def file_stamp(path: Path) -> tuple[int, int] | None:
    """(size, mtime_ns) of a file, or None when it is gone: compared to tell whether it changed since it was read."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns
