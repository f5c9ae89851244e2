"""`e3eval count-asymmetries`: per-trace step counts and their summary by correctness and budget.

Streams traces (`traces.py`), counts steps with a preset (`steps.py`) on the whole trace or on each budget's prefix
(token-exact, decoded from token ids), flags repetition (`repetition.py`), and collects one row per (trace, budget)
in input order: id, budget, correct, n_tokens, finished, n_steps, n_verify, n_attempts, n_chained, n_equations,
repeats_e3, ngram_loop, empty. `summarize_steps` reduces the rows to mean / median counts per (budget, correct) with
n in every cell, and the fraction of repeating responses among incorrect ones. Only counts are held in memory,
never texts, so memory stays flat as the input grows. Progress is reported in the input's own unit: bytes of a JSONL
file read, traces of a run directory or an e3 file (`add_task(..., unit=, traces=)`, for the command's columns).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from e3eval.analysis.repetition import e3_repeats, ngram_loop
from e3eval.analysis.steps import PRESETS, Lexicon, count_steps, load_lexicon
from e3eval.analysis.traces import Trace, TraceFields, field_warnings, read_traces, to_trace, trace_format
from e3eval.errors import UserError
from e3eval.inputs import to_record
from e3eval.jsonl import BadLines, OversizedLine, fail_or_skip, parse_line, raw_lines

ROW_SCHEMA = pa.schema(
    [
        ("index", pa.int64()),
        ("id", pa.string()),
        ("budget", pa.int32()),
        ("correct", pa.bool_()),
        ("n_tokens", pa.int32()),
        ("finished", pa.bool_()),
        ("n_steps", pa.int32()),
        ("n_verify", pa.int32()),
        ("n_attempts", pa.int32()),
        ("n_chained", pa.int32()),
        ("n_equations", pa.int32()),
        ("repeats_e3", pa.bool_()),
        ("ngram_loop", pa.bool_()),
        ("empty", pa.bool_()),
    ]
)


@dataclass(frozen=True)
class CountConfig:
    source: Path
    preset: str = "math"
    fields: TraceFields = field(default_factory=TraceFields)
    budgets: tuple[int, ...] | None = None
    tokenizer: str | None = None
    lexicon: Path | None = None
    skip_bad_lines: bool = False


@dataclass(frozen=True)
class CountResult:
    table: pa.Table
    traces: int
    skipped: BadLines
    read: int  # how much of the input was read, in `unit`
    unit: str  # "bytes" (JSONL files) or "traces" (run directories, e3 files)
    warnings: tuple[str, ...] = ()  # about the counted field (`traces.field_warnings`)


def count_asymmetries(config: CountConfig, progress: Any = None, jobs: int = 1) -> CountResult:
    """Count every trace of `config.source`; with `jobs` > 1 a JSONL input is counted in that many processes
    (input order is kept; inputs that need a tokenizer are counted in this process)."""
    if config.preset not in PRESETS:
        raise UserError(f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}")
    lexicon = load_lexicon(config.lexicon) if config.preset == "math" else None
    bad = BadLines() if config.skip_bad_lines else None
    tokenizer, decoder = _tokenizer(config)
    budgets = tuple(sorted(config.budgets)) if config.budgets else None
    columns: dict[str, list] = {name: [] for name in ROW_SCHEMA.names}
    fmt = trace_format(config.source, config.fields) if config.source.is_file() else None
    lines = fmt in ("jsonl", "verl")
    unit, total = ("bytes", config.source.stat().st_size) if lines else ("traces", _trace_count(config.source))
    task = progress.add_task(config.source.name, total=total, unit=unit, traces=0) if progress else None
    traces = consumed = 0
    # Worker start-up costs about a second: small files are counted faster in this process. Workers split JSONL by
    # lines; an e3 file is one JSON array.
    if jobs > 1 and tokenizer is None and lines and (total or 0) > 4 * _CHUNK_BYTES:
        chunks = _parallel_rows(config, fmt, jobs, bad)  # type: ignore[arg-type]
    elif lines:
        chunks = _line_rows(config, fmt, lexicon, tokenizer, decoder, budgets, bad)  # type: ignore[arg-type]
    else:
        chunks = _sequential_rows(config, lexicon, tokenizer, decoder, budgets, bad)
    for per_trace, amount in chunks:
        for rows in per_trace:
            for row in rows:
                row["index"] = traces
                for name in ROW_SCHEMA.names:
                    columns[name].append(row[name])
            traces += 1
        consumed += amount
        if progress:
            progress.update(task, completed=min(consumed, total or consumed), traces=traces)
    if progress:
        progress.update(task, completed=total or consumed, total=total or consumed, traces=traces)
    if traces == 0:
        raise UserError(f"{config.source}: no traces to count")
    return CountResult(pa.table(columns, schema=ROW_SCHEMA), traces, bad or BadLines(), consumed, unit,
                       field_warnings(config.source, config.fields))  # fmt: skip


def trace_rows(
    trace: Trace, preset: str, lexicon: Lexicon | None, tokenizer: Any, decoder: Any, budgets: tuple[int, ...] | None
) -> list[dict[str, Any]]:
    """The rows of one trace: one for the whole response, or one per budget prefix."""
    ids = trace.token_ids
    if ids is None and tokenizer is not None:
        ids = tokenizer(trace.response, add_special_tokens=False)["input_ids"]
    if budgets is None:
        texts, cuts = [trace.response], [None]
    else:
        if ids is None:
            raise UserError("--budgets needs token ids: give --token-ids-field or --tokenizer")
        texts, cuts = decoder.decode_prefixes(ids, budgets), list(budgets)
    rows = []
    for text, budget in zip(texts, cuts, strict=True):
        counts = count_steps(text, preset, lexicon, trace.target)
        used = None if ids is None else (len(ids) if budget is None else min(len(ids), budget))
        tail = ids if budget is None or ids is None else ids[:used]
        # Run directories know correctness per budget; other inputs only for the full response.
        correct = trace.correct_at.get(budget) if trace.correct_at is not None and budget else trace.correct
        finished = None
        if trace.finish_reason is not None:
            finished = trace.finish_reason == "stop" and (budget is None or (ids is not None and len(ids) <= budget))
        rows.append(
            {
                "index": None, "id": trace.key, "budget": budget, "correct": correct, "n_tokens": used,
                "finished": finished, "n_steps": counts.n_steps, "n_verify": counts.n_verify,
                "n_attempts": counts.n_attempts, "n_chained": counts.n_chained, "n_equations": counts.n_equations,
                "repeats_e3": e3_repeats(text), "ngram_loop": ngram_loop(tail) if tail is not None else None,
                "empty": not text.strip(),
            }
        )  # fmt: skip
    return rows


def _trace_count(source: Path) -> int | None:
    """The traces a run directory holds (its samples), for the progress bar; None for an e3 file (known once read)."""
    if not source.is_dir():
        return None
    from e3eval.run import Run

    return Run.open(source).samples().samples


def _sequential_rows(
    config: CountConfig, lexicon: Lexicon | None, tokenizer: Any, decoder: Any, budgets: tuple[int, ...] | None,
    bad: BadLines | None,
) -> Iterator[tuple[list[list[dict[str, Any]]], int]]:  # fmt: skip
    """Run directories and e3 files: one trace at a time, progress in traces."""
    for trace in read_traces(config.source, config.fields, bad):
        yield [trace_rows(trace, config.preset, lexicon, tokenizer, decoder, budgets)], 1


def _line_rows(
    config: CountConfig, fmt: str, lexicon: Lexicon | None, tokenizer: Any, decoder: Any,
    budgets: tuple[int, ...] | None, bad: BadLines | None,
) -> Iterator[tuple[list[list[dict[str, Any]]], int]]:  # fmt: skip
    """JSONL and verl files in this process: one line at a time, progress in bytes read (the reader's rules, as
    `inputs.read_inputs` applies them)."""
    for number, raw in raw_lines(config.source):
        where = f"{config.source}:{number}"
        obj = parse_line(raw, where, bad)
        record = None if obj is None else to_record(obj, number, where, fmt, config.fields, bad)
        rows = [] if record is None else [trace_rows(to_trace(record), config.preset, lexicon, tokenizer, decoder,
                                                     budgets)]  # fmt: skip
        yield rows, raw.size if isinstance(raw, OversizedLine) else len(raw)


_CHUNK_BYTES = 4 << 20


def _parallel_rows(
    config: CountConfig, fmt: str, jobs: int, bad: BadLines | None
) -> Iterator[tuple[list[list[dict]], int]]:
    """Count chunks of raw lines in worker processes; chunks come back in input order, a bounded number in flight
    so memory stays flat. Workers report bad lines; a first bad line raises here, in file order."""
    import multiprocessing
    from collections import deque
    from concurrent.futures import ProcessPoolExecutor

    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        pending: deque = deque()
        for chunk in _raw_chunks(config.source):
            pending.append(pool.submit(_count_chunk, config, fmt, chunk, bad is not None))
            if len(pending) >= 2 * jobs:
                yield _collect(pending.popleft().result(), bad)
        while pending:
            yield _collect(pending.popleft().result(), bad)


def _raw_chunks(source: Path) -> Iterator[list[tuple[int, bytes]]]:
    chunk: list[tuple[int, bytes]] = []
    size = 0
    for number, raw in raw_lines(source):
        chunk.append((number, raw))
        size += len(raw)
        if size >= _CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def _collect(result: tuple[list[list[dict]], list[tuple[str, str]], int], bad: BadLines | None):
    per_trace, bad_lines, size = result
    for where, why in bad_lines:
        fail_or_skip(bad, where, why)
    return per_trace, size


class _Skipped(BadLines):
    """A worker's record of every skipped line (the parent keeps the count and the first examples)."""

    def __init__(self) -> None:
        super().__init__()
        self.all: list[tuple[str, str]] = []

    def add(self, where: str, why: str) -> None:
        super().add(where, why)
        self.all.append((where, why))


def _count_chunk(
    config: CountConfig, fmt: str, chunk: list[tuple[int, bytes]], skipping: bool
) -> tuple[list[list[dict]], list[tuple[str, str]], int]:
    """Worker: parse and count one chunk of lines (no tokenizer: whole responses only)."""
    lexicon = load_lexicon(config.lexicon) if config.preset == "math" else None
    bad = _Skipped() if skipping else None
    per_trace: list[list[dict]] = []
    for number, raw in chunk:
        where = f"{config.source}:{number}"
        obj = parse_line(raw, where, bad)
        record = None if obj is None else to_record(obj, number, where, fmt, config.fields, bad)
        if record is not None:
            per_trace.append(trace_rows(to_trace(record), config.preset, lexicon, None, None, None))
    return per_trace, (bad.all if bad else []), sum(len(raw) for _, raw in chunk)


def _tokenizer(config: CountConfig) -> tuple[Any, Any]:
    from e3eval.tokenizers import load_tokenizer
    from e3eval.truncate import PrefixDecoder

    name = config.tokenizer
    if name is None and config.source.is_dir():
        from e3eval.run import Run

        name = Run.open(config.source).tokenizer_name
    if name is None:
        if config.budgets:
            raise UserError("--budgets needs a tokenizer to decode prefixes: pass --tokenizer")
        return None, None
    tokenizer = load_tokenizer(name)
    return tokenizer, PrefixDecoder(tokenizer)


def check_rows_target(path: Path, force: bool = False) -> None:
    """Refuse an `--out` for the per-trace table before any counting: a name that is not .csv/.parquet, or a file
    e3eval did not write (see `e3eval.outputs`)."""
    from e3eval.outputs import check_replaceable

    if path.suffix not in (".csv", ".parquet"):
        raise UserError(f"{path}: --out must end in .csv or .parquet")
    check_replaceable(path, force)


def write_rows(path: Path, table: pa.Table, force: bool = False) -> None:
    """Write the per-trace table as CSV or Parquet; never over a file e3eval did not write unless `force`."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from e3eval.outputs import write_output
    from e3eval.store import COMPRESSION

    check_rows_target(path, force)
    if path.suffix == ".parquet":
        write_output(path, lambda temp: pq.write_table(table, temp, compression=COMPRESSION), force)
    else:
        write_output(path, lambda temp: pacsv.write_csv(table, temp), force)


@dataclass(frozen=True)
class SummaryRow:
    budget: int | None
    group: str
    n: int
    stats: dict[str, tuple[float, float]]  # metric -> (mean, median)
    repeat_rate: float | None
    mean_tokens: float | None


def summarize_steps(table: pa.Table, by_correct: bool = True) -> list[SummaryRow]:
    """Mean / median counts per (budget, correctness group), with n; repetition rate among incorrect traces."""
    data = {name: table.column(name).to_pylist() for name in table.column_names}
    groups: dict[tuple[int | None, str], list[int]] = {}
    for i, (budget, correct) in enumerate(zip(data["budget"], data["correct"], strict=True)):
        label = ("correct" if correct else "incorrect" if correct is False else "unknown") if by_correct else "all"
        groups.setdefault((budget, label), []).append(i)
    rows = []
    order = {"correct": 0, "incorrect": 1, "unknown": 2, "all": 3}
    for (budget, label), members in sorted(groups.items(), key=lambda kv: (kv[0][0] or 1 << 40, order[kv[0][1]])):
        stats = {}
        for metric in ("n_verify", "n_attempts", "n_chained"):
            values = np.array([data[metric][i] for i in members], dtype=float)
            stats[metric] = (float(values.mean()), float(np.median(values)))
        repeat = float(np.mean([data["repeats_e3"][i] for i in members])) if label in ("incorrect", "all") else None
        tokens = [data["n_tokens"][i] for i in members if data["n_tokens"][i] is not None]
        rows.append(SummaryRow(budget, label, len(members), stats, repeat, float(np.mean(tokens)) if tokens else None))
    return rows
