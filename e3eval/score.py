"""`e3eval score`: grade every sample of a run at every budget and write grades + summary.

One pass streams the rollout shards (token ids only, never the response text column), decodes each response's
prefixes at all budgets from one gather of its bytes, applies the scoring policy, and submits each distinct
(gold, answer) pair once to the isolated grader pool, which works while the stream goes on. Then grades are assembled,
summarised with bootstrap CIs, and written atomically; run.json's `scoring` section is written last. Budgets come
from `budgets.parse_budgets`; generation is not this module's business.

Only samples are graded (`samples.ledger`): failed requests and samples the run lacks are left out of every metric,
counted in the summary's `n_failed` / `n_missing` and flagged; a run without a single successful sample is refused.
The run's writer lock is held throughout, so two scorings never interleave their tables.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from e3eval.errors import UserError
from e3eval.grade import Verdict, quick_verdict
from e3eval.grade_pool import GraderPool, default_workers
from e3eval.policy import SampleAtBudget, ScoringPolicy, get_policy
from e3eval.provenance import environment, now, package_version
from e3eval.records import GRADE_STATUSES
from e3eval.run import Run
from e3eval.samples import SampleLedger
from e3eval.store import GRADE_SCHEMA
from e3eval.summary import Exclusions, SummaryConfig, summarize_grades
from e3eval.tokenizers import fingerprint, load_tokenizer
from e3eval.truncate import PrefixDecoder

_COLUMNS = ("problem_id", "sample_idx", "token_ids", "num_tokens", "finish_reason")


@dataclass(frozen=True)
class ScoreConfig:
    budgets: tuple[int, ...]
    policy: str = "prefix"
    workers: int = field(default_factory=default_workers)
    deadline_s: float = 10.0
    inner_timeout_s: int = 3
    memory_limit_mb: int = 4096
    resamples: int = 1000
    seed: int = 0
    tokenizer: str | None = None


@dataclass
class ScoreResult:
    grades: pa.Table
    summary: pa.Table
    warnings: list[str]
    status_counts: dict[str, int]
    distinct_pairs: int
    seconds: float
    decode_path: str
    ledger: SampleLedger


@dataclass
class _Rows:
    """Grade rows under construction; `pair` is the index of the (gold, answer) pair to grade, or -1."""

    problem_id: list[str] = field(default_factory=list)
    sample_idx: list[int] = field(default_factory=list)
    budget: list[int] = field(default_factory=list)
    tokens_used: list[int] = field(default_factory=list)
    finished: list[bool] = field(default_factory=list)
    answer: list[str | None] = field(default_factory=list)
    pair: list[int] = field(default_factory=list)
    fixed: list[Verdict | None] = field(default_factory=list)


def score_run(run_dir: Path, config: ScoreConfig, progress: Any = None) -> ScoreResult:
    """Score `run_dir` under `config`; `progress` is an optional rich Progress to report on."""
    get_policy(config.policy)
    if not config.budgets:
        raise UserError("no budgets given")
    with Run.open(run_dir).lock("score"):
        return _score(Run.open(run_dir), config, progress)  # reopened under the lock: the latest run.json


def _score(run: Run, config: ScoreConfig, progress: Any) -> ScoreResult:
    started = time.monotonic()
    run_dir = run.path
    problems = run.problem_records()
    gold = {p.problem_id: p.answer for p in problems}
    tokenizer_name = config.tokenizer or run.tokenizer_name
    if not tokenizer_name:
        raise UserError(f"{run_dir}: run.json names no tokenizer; pass --tokenizer")
    budgets = sorted(set(config.budgets))
    policy = get_policy(config.policy)
    samples = run.samples(problems)
    if not samples.samples:
        raise UserError(
            f"{run_dir}: no successful sample to score ({samples.describe()}); "
            "rerun `e3eval generate` with the same settings to retry the failed ones"
        )
    total = samples.samples
    rows = _Rows()
    pairs: dict[tuple[str, str], int] = {}
    quick: dict[int, Verdict] = {}
    longest = 0
    # Workers start first: their math-verify import overlaps with loading the tokenizer and decoding.
    with GraderPool(config.workers, config.deadline_s, config.inner_timeout_s, config.memory_limit_mb) as pool:
        tokenizer = load_tokenizer(tokenizer_name)
        warnings = _check_tokenizer(run, tokenizer_name, tokenizer)
        decoder = PrefixDecoder(tokenizer)
        task = progress.add_task("decode + extract", total=total) if progress else None
        start = 0
        for batch in run.rollout_batches(_COLUMNS):
            keep = samples.keep[start : start + batch.num_rows]
            start += batch.num_rows
            if not keep.all():
                batch = batch.filter(keep)  # failed requests and superseded rows are not samples
            _extract_batch(batch, budgets, policy, gold, decoder, rows, pairs, quick, pool)
            longest = max(longest, max(batch.column("num_tokens").to_pylist(), default=0))
            pool.pump(0.0)
            if progress:
                progress.advance(task, batch.num_rows)
        grade_task = progress.add_task("grade (distinct answers)", total=len(pairs)) if progress else None
        verdicts = pool.drain(
            lambda done: progress.update(grade_task, completed=len(quick) + done) if progress else None
        )
        if progress:
            progress.update(grade_task, completed=len(pairs))
        verdicts = {**verdicts, **quick}
        kills = pool.kills

    warnings += [
        f"budget {b} is above the longest response ({longest} tokens): every sample is complete there"
        for b in budgets
        if b > longest
    ]
    grades = _grades_table(rows, verdicts, run.run_id, config.policy)
    note = None if samples.complete else f"{samples.describe()}: metrics use the {samples.samples} samples only"
    excluded = Exclusions(samples.failures.count, samples.missing, note)
    summary, summary_warnings = summarize_grades(
        grades, run.run_id, config.policy, SummaryConfig(config.resamples, config.seed), excluded
    )
    if excluded.note:
        warnings.insert(0, f"{excluded.note}. Rerun `e3eval generate` with the same settings to fill them")
    warnings += summary_warnings
    statuses = grades.column("status").to_pylist()
    status_counts = {s: statuses.count(s) for s in GRADE_STATUSES}

    seconds = time.monotonic() - started
    scoring = {
        **{k: v for k, v in asdict(config).items() if k != "budgets"},
        "budgets": budgets,
        "tokenizer": tokenizer_name,
        "tokenizer_fingerprint": fingerprint(tokenizer),
        "decode_path": decoder.path,
        "grader": {"name": "math-verify", "version": package_version("math-verify"), "gold_first": True},
        "samples": {
            "graded": samples.samples,
            "failed": samples.failures.count,
            "failure_examples": list(samples.failures.examples),
            "missing": samples.missing,
            "superseded_failures": samples.superseded,
            "problems_without_samples": list(samples.problems_without_samples),
        },
        "distinct_pairs": len(pairs),
        "grader_kills": kills,
        "status_counts": status_counts,
        "warnings": warnings,
        "seconds": round(seconds, 3),
        "scored_at": now(),
        "environment": environment(),
    }
    run.commit("scoring", scoring, {"grades": grades, "summary": summary})  # one unit: tables, then run.json
    return ScoreResult(grades, summary, warnings, status_counts, len(pairs), seconds, decoder.path, samples)


def _check_tokenizer(run: Run, name: str, tokenizer: Any) -> list[str]:
    """Refuse a tokenizer that would decode the run's ids to other text than the one they were made with.

    The run records its tokenizer's fingerprint (generation and import); runs from before that are checked against
    the recorded tokenizer itself when it still loads, and otherwise scored with a warning.
    """
    recorded = run.section("tokenizer") or {}
    expected = recorded.get("fingerprint")
    recorded_name = recorded.get("name_or_path")
    if expected is None and recorded_name and recorded_name != name:
        try:
            expected = fingerprint(load_tokenizer(recorded_name))
        except UserError:
            return [f"cannot load the run's tokenizer {recorded_name!r} to check that {name!r} decodes its ids alike"]
    if expected is not None and fingerprint(tokenizer) != expected:
        raise UserError(
            f"tokenizer {name!r} is not the one {run.path}'s token ids were made with ({recorded_name!r}): its "
            "vocabulary, merges or decoder differ, so every decoded text and answer would be wrong"
        )
    return []


def _extract_batch(
    batch: pa.RecordBatch,
    budgets: list[int],
    policy: ScoringPolicy,
    gold: dict[str, str],
    decoder: PrefixDecoder,
    rows: _Rows,
    pairs: dict[tuple[str, str], int],
    quick: dict[int, Verdict],
    pool: GraderPool,
) -> None:
    token_lists = batch.column("token_ids")
    offsets = token_lists.offsets.to_numpy()
    flat = token_lists.values.to_numpy(zero_copy_only=False)
    full = policy.needs_full_text
    for i, (problem_id, sample_idx, num_tokens, finish) in enumerate(
        zip(
            *(batch.column(c).to_pylist() for c in ("problem_id", "sample_idx", "num_tokens", "finish_reason")),
            strict=True,
        )
    ):
        ids = flat[offsets[i] : offsets[i + 1]]
        fixed: Verdict | None = None
        texts: list[str] = []
        if problem_id not in gold:
            fixed = Verdict("error", None, f"problem {problem_id!r} is not in problems.parquet")
        else:
            try:
                texts = decoder.decode_prefixes(ids, [*budgets, num_tokens] if full else budgets)
            except (IndexError, ValueError, OverflowError) as exc:
                fixed = Verdict("error", None, f"cannot decode token ids: {exc}")
        for j, budget in enumerate(budgets):
            answer = None
            if fixed is None:
                sample = SampleAtBudget(texts[j], texts[-1] if full else "", num_tokens, finish == "stop", budget,
                                        gold[problem_id])  # fmt: skip
                answer = policy.answer(sample)
            rows.problem_id.append(problem_id)
            rows.sample_idx.append(sample_idx)
            rows.budget.append(budget)
            rows.tokens_used.append(min(num_tokens, budget))
            rows.finished.append(finish == "stop" and num_tokens <= budget)
            rows.answer.append(answer)
            rows.fixed.append(fixed)
            if fixed is None and answer is not None:
                key = (gold[problem_id], answer)
                index = pairs.get(key)
                if index is None:
                    index = pairs[key] = len(pairs)
                    verdict = quick_verdict(*key)
                    if verdict is not None:  # integer vs integer: no symbolic work, no need for isolation
                        quick[index] = verdict
                    else:
                        pool.submit(index, *key)
                rows.pair.append(index)
            else:
                rows.pair.append(-1)


def _grades_table(rows: _Rows, verdicts: dict[int, Verdict], run_id: str, policy: str) -> pa.Table:
    status: list[str] = []
    correct: list[bool | None] = []
    detail: list[str | None] = []
    for pair, fixed in zip(rows.pair, rows.fixed, strict=True):
        verdict = fixed or (verdicts[pair] if pair >= 0 else Verdict("no_answer", False))
        status.append(verdict.status)
        correct.append(verdict.correct)
        detail.append(verdict.detail)
    n = len(rows.budget)
    return pa.table(
        {
            "run_id": [run_id] * n,
            "problem_id": rows.problem_id,
            "sample_idx": rows.sample_idx,
            "budget": rows.budget,
            "policy": [policy] * n,
            "tokens_used": rows.tokens_used,
            "finished": rows.finished,
            "answer": rows.answer,
            "correct": correct,
            "status": status,
            "detail": detail,
        },
        schema=GRADE_SCHEMA,
    )
