"""`e3eval score`: grade every sample of a run at every budget and write grades + summary.

One pass streams the rollout shards (token ids only, never the response text column), decodes each response's
prefixes at all budgets from one gather of its bytes, applies the scoring policy, and submits each distinct
(gold, answer) pair once to the isolated grader pool, which works while the stream goes on. Then grades are assembled,
summarised with bootstrap CIs, and written atomically; run.json's `scoring` section is written last. Budgets come
from `budgets.parse_budgets`; generation is not this module's business.

Only samples are graded (`samples.ledger`): failed requests and samples the run lacks are left out of every metric,
counted in the summary's `n_failed` / `n_missing` and flagged; a run without a single successful sample is refused.
A policy that reads more than the rollouts gets it made first: `forced` (`forced_answer.py`) has its continuations
generated or read back before the pass; a forced answer whose request failed is a grade row with status `error` (its
detail says why) that is left out of that budget's metrics and counted in its `n_failed`, never averaged in as
incorrect. grades.parquet holds the last scoring; summary.parquet holds the latest scoring of every policy (a `forced`
scoring keeps the `prefix` rows beside it, so `e3eval report RUN` shows both), and run.json's `scoring` section
describes the last scoring with, under `policies`, what each policy in the summary was scored with. The run's writer
lock is held throughout, so two scorings never interleave their tables.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from e3eval.errors import UserError
from e3eval.forced_answer import ForcedConfig, ForcedOutcome, ended
from e3eval.grade import Verdict, quick_verdict
from e3eval.grade_pool import GraderPool, default_workers
from e3eval.grade_summary import Exclusions, SummaryConfig, summarize_grades
from e3eval.manifest import ScoringRecord
from e3eval.policy import Prepared, SampleAtBudget, ScoringContext, ScoringPolicy, get_policy
from e3eval.provenance import environment, now, package_version
from e3eval.records import GRADE_STATUSES, Problem
from e3eval.run import Run
from e3eval.samples import SampleLedger
from e3eval.store import GRADE_SCHEMA, MANIFEST, SUMMARY_SCHEMA
from e3eval.tokenizers import fingerprint, load_tokenizer
from e3eval.truncate import PrefixDecoder

_COLUMNS = ("problem_id", "sample_idx", "token_ids", "num_tokens", "finish_reason")


MIN_BOOTSTRAP = 10  # below it a 95% CI is the min and max of a handful of draws (1 gave "6.2-6.2" around 3.1)
MAX_BOOTSTRAP = 100_000  # 1,000 is the default; 10^9 resamples asked numpy for 119 GiB after all the grading


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
    forced: ForcedConfig | None = None  # who writes the forced answers: needed by, and only by, `--policy forced`

    def problems(self) -> list[str]:
        """What is wrong with these settings, in the words of the flags that set them (empty: nothing)."""
        policy = get_policy(self.policy)  # an unknown policy is a UserError of its own
        cores = os.cpu_count() or 1
        most_workers = max(16, 4 * cores)  # each grader is a ~60 MB process: 100,000 of them took a machine down
        problems = []
        if not self.budgets:
            problems.append("no budgets given")
        elif not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in self.budgets):
            problems.append(f"budgets must be positive whole numbers of tokens, not {list(self.budgets)}")
        if not 1 <= self.workers <= most_workers:
            problems.append(f"--workers must be between 1 and {most_workers} on this machine ({cores} cores)")
        if not (math.isfinite(self.deadline_s) and self.deadline_s > 0):
            problems.append("--timeout must be a positive number of seconds")
        if not 0 <= self.resamples <= MAX_BOOTSTRAP:
            problems.append(f"--bootstrap must be between 0 (no CIs) and {MAX_BOOTSTRAP:,}")
        elif 0 < self.resamples < MIN_BOOTSTRAP:
            problems.append(f"--bootstrap {self.resamples}: too few resamples for a 95% CI; give 0 (no CIs) or at "
                            f"least {MIN_BOOTSTRAP}")  # fmt: skip
        if not 0 <= self.seed < 2**63:
            problems.append("--seed must be between 0 and 2^63 - 1")
        if ("forced" in policy.reads) != (self.forced is not None):
            problems.append(
                f"--policy {self.policy} needs --model (the model that writes the forced answers)"
                if self.forced is None
                else f"--model, --backend and the answer flags apply to --policy forced only, not {self.policy}"
            )
        return problems

    def check(self) -> None:
        """Refuse these settings, every problem named in one UserError."""
        problems = self.problems()
        if problems:
            raise UserError("; ".join(problems))


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
    forced: ForcedOutcome | None = None


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
    left_out: list[bool] = field(default_factory=list)  # a failed forced answer: recorded, never a sample


def score_run(
    run_dir: Path, config: ScoreConfig, progress: Any = None, log: Callable[[str], None] = lambda _: None
) -> ScoreResult:
    """Score `run_dir` under `config`; `progress` is an optional rich Progress to report on, `log` gets one line
    per stage worth telling (what forced answers will cost)."""
    config.check()
    policy = get_policy(config.policy)
    with Run.open(run_dir).lock("score"):
        run = Run.open(run_dir)  # reopened under the lock: the latest run.json
        run.ensure_identity()
        _check_s1(run, config, policy)
        return _score(run, config, progress, log)


def s1_budget(run: Run) -> int | None:
    """The thinking budget of a run generated with `--forcing s1` (its one budget), else None."""
    generation = run.record.generation
    return generation.s1_budget if generation is not None else None


def s1_folder_hint(folder: Path) -> None:
    """A UserError naming the runs when `folder` is not a run but the folder of a `sweep --forcing s1` (one run per
    budget inside it); nothing otherwise (opening the run then says what is wrong)."""
    if (folder / MANIFEST).is_file() or not folder.is_dir():
        return
    runs = sorted(p.parent.name for p in folder.glob(f"*/{MANIFEST}"))
    if runs:
        shown = ", ".join(runs[:4]) + (", ..." if len(runs) > 4 else "")
        raise UserError(f"{folder} is not a run but a folder of runs ({shown}): score each of them (a `sweep "
                        f"--forcing s1` folder holds one run per budget; `e3eval report {folder}` shows them as one "
                        "curve)")  # fmt: skip


def default_policy(run_dir: Path) -> str:
    """The policy `score` uses when none is given: `s1` for a run generated with `--forcing s1`, else `prefix`."""
    return "s1" if s1_budget(Run.open(run_dir)) is not None else "prefix"


def _check_s1(run: Run, config: ScoreConfig, policy: ScoringPolicy) -> None:
    """An s1-forced run is read by the `s1` policy at its thinking budget, and only it and only there."""
    budget = s1_budget(run)
    if budget is None:
        if policy.whole_response:
            raise UserError(f"{run.path}: --policy {policy.name} scores runs generated with --forcing s1, and this run "
                            "was not: score it with prefix, strict, length or forced")  # fmt: skip
        return
    if not policy.whole_response:
        raise UserError(f"{run.path} was generated with --forcing s1: each response holds its thinking cut at "
                        f"{budget:,} tokens, then an appended end of thinking and an answer phase; --policy "
                        f"{config.policy} would cut that at the budget. Score it with --policy s1")  # fmt: skip
    if sorted(set(config.budgets)) != [budget]:
        raise UserError(f"{run.path} was generated with --forcing s1 at a thinking budget of {budget:,} tokens: it is "
                        f"scored at that budget only (--budgets {budget}). Under s1's forcing the sample at another "
                        "budget is another generation: `e3eval sweep --forcing s1 --budgets ...` makes one run per "
                        "budget")  # fmt: skip


@dataclass
class _Graded:
    """What the grading pass made: the rows and their verdicts, and what the scoring record says of it."""

    extractor: _Extractor
    verdicts: dict[int, Verdict]
    longest: int
    kills: int
    tokenizer_fingerprint: str
    warnings: list[str]


@dataclass(frozen=True)
class _Job:
    """One scoring: the run, its settings, and what is read once before the grading pass."""

    run: Run
    config: ScoreConfig
    problems: list[Problem]
    samples: SampleLedger
    budgets: list[int]
    tokenizer_name: str
    progress: Any
    log: Callable[[str], None]


def _score(run: Run, config: ScoreConfig, progress: Any, log: Callable[[str], None]) -> ScoreResult:
    started = time.monotonic()
    problems = run.problem_records()
    tokenizer_name = config.tokenizer or run.tokenizer_name
    if not tokenizer_name:
        raise UserError(f"{run.path}: run.json names no tokenizer; pass --tokenizer")
    samples = run.samples(problems)
    if not samples.samples:
        raise UserError(f"{run.path}: no successful sample to score ({samples.describe()}); "
                        f"{_refill(run, 'retry the failed ones')}")  # fmt: skip
    job = _Job(run, config, problems, samples, sorted(set(config.budgets)), tokenizer_name, progress, log)
    graded = _grade(job)
    grades, summary, warnings = _summarize(job, graded)
    statuses = grades.column("status").to_pylist()
    status_counts = {s: statuses.count(s) for s in GRADE_STATUSES}
    kept, policies = _kept_policies(run, config.policy, samples.samples, warnings)
    scoring = _scoring_record(job, graded, status_counts, warnings, time.monotonic() - started)
    scoring["policies"] = {**policies, config.policy: _policy_record(scoring)}
    combined = pa.concat_tables([kept, summary.cast(SUMMARY_SCHEMA)]) if kept.num_rows else summary
    run.commit("scoring", scoring, {"grades": grades, "summary": combined})  # one unit: tables, then run.json
    extractor = graded.extractor
    return ScoreResult(grades, summary, warnings, status_counts, len(extractor.pairs), scoring["seconds"],
                       extractor.decoder.path, samples, extractor.prepared.forced)  # fmt: skip


def _grade(job: _Job) -> _Graded:
    """The grading pass: the policy prepares what it reads, the rollouts stream through the extractor while the
    isolated grader pool works, then the pool is drained."""
    run, config, problems, samples, progress = job.run, job.config, job.problems, job.samples, job.progress
    budgets, tokenizer_name = job.budgets, job.tokenizer_name
    policy = get_policy(config.policy)
    # Workers start first: their math-verify import overlaps with loading the tokenizer and decoding.
    with GraderPool(config.workers, config.deadline_s, config.inner_timeout_s, config.memory_limit_mb) as pool:
        tokenizer = load_tokenizer(tokenizer_name)
        warnings = _check_tokenizer(run, tokenizer_name, tokenizer)
        # What the policy reads besides the rollouts comes first (forced answers): grading reads it.
        context = ScoringContext(run, problems, samples, budgets, tokenizer, tokenizer_name, config.forced, progress,
                                 job.log)  # fmt: skip
        gold = {p.problem_id: p.answer for p in problems}
        extractor = _Extractor(budgets, policy, gold, PrefixDecoder(tokenizer), pool, policy.prepare(context))
        task = progress.add_task("decode + extract", total=samples.samples) if progress else None
        start = longest = 0
        for batch in run.rollout_batches((*_COLUMNS, *extractor.prepared.columns)):
            keep = samples.keep[start : start + batch.num_rows]
            start += batch.num_rows
            if not keep.all():
                batch = batch.filter(keep)  # failed requests and superseded rows are not samples
            extractor.add(batch)
            longest = max(longest, max(batch.column("num_tokens").to_pylist(), default=0))
            pool.pump(0.0)
            if progress:
                progress.advance(task, batch.num_rows)
        quick, pairs = extractor.quick, len(extractor.pairs)
        grade_task = progress.add_task("grade (distinct answers)", total=pairs) if progress else None
        verdicts = pool.drain(
            lambda done: progress.update(grade_task, completed=len(quick) + done) if progress else None
        )
        if progress:
            progress.update(grade_task, completed=pairs)
        return _Graded(extractor, {**verdicts, **quick}, longest, pool.kills, fingerprint(tokenizer), warnings)


def _summarize(job: _Job, graded: _Graded) -> tuple[pa.Table, pa.Table, list[str]]:
    """The grades table, the summary (bootstrap CIs; failed and missing samples counted beside n) and every warning
    the scoring gives."""
    run, config, samples, budgets = job.run, job.config, job.samples, job.budgets
    rows, warnings = graded.extractor.rows, graded.warnings
    warnings += [
        f"budget {b} is above the longest response ({graded.longest} tokens): every sample is complete there"
        for b in budgets
        if b > graded.longest and not graded.extractor.policy.whole_response
    ]
    grades = _grades_table(rows, graded.verdicts, run.run_id, config.policy)
    note = None if samples.complete else f"{samples.describe()}: metrics use the {samples.samples} samples only"
    failed_at = _failed_at(rows)
    excluded = Exclusions(samples.failures.count, samples.missing, note, failed_at)
    counted = grades.filter(pa.array([not x for x in rows.left_out], pa.bool_())) if failed_at else grades
    summary, summary_warnings = summarize_grades(
        counted, run.run_id, config.policy, SummaryConfig(config.resamples, config.seed), excluded
    )
    if excluded.note:
        warnings.insert(0, f"{excluded.note}. {_refill(run, 'fill them', start=True)}")
    if failed_at:
        warnings.append(
            f"{sum(failed_at.values())} forced answer(s) failed (see grades.parquet `detail`); they are left out of "
            "their budget's numbers. Rescore to retry them"
        )
    unscored = [b for b in budgets if b not in set(counted.column("budget").to_pylist())]
    if unscored:
        warnings.append(f"no (sample, budget) pair left to count at budget(s) {unscored}: their rows have no value")
    return grades, summary, warnings + summary_warnings


def _scoring_record(
    job: _Job, graded: _Graded, status_counts: dict[str, int], warnings: list[str], seconds: float
) -> dict[str, Any]:
    """run.json's scoring section for this scoring (its `policies` entry is added by the caller)."""
    samples = job.samples
    return {
        **{k: v for k, v in asdict(job.config).items() if k not in ("budgets", "forced")},
        "budgets": job.budgets,
        "forced": graded.extractor.prepared.record(),
        "tokenizer": job.tokenizer_name,
        "tokenizer_fingerprint": graded.tokenizer_fingerprint,
        "decode_path": graded.extractor.decoder.path,
        "grader": {"name": "math-verify", "version": package_version("math-verify"), "gold_first": True},
        "samples": {
            "graded": samples.samples,
            "failed": samples.failures.count,
            "failure_examples": list(samples.failures.examples),
            "missing": samples.missing,
            "superseded_failures": samples.superseded,
            "problems_without_samples": list(samples.problems_without_samples),
        },
        "distinct_pairs": len(graded.extractor.pairs),
        "grader_kills": graded.kills,
        "status_counts": status_counts,
        "warnings": warnings,
        "seconds": round(seconds, 3),
        "scored_at": now(),
        "environment": environment(),
    }


def _policy_record(scoring: dict[str, Any]) -> dict[str, Any]:
    """What run.json keeps about a policy's scoring once a later scoring with another policy is the top-level one."""
    samples = scoring.get("samples") or {}
    return {k: scoring.get(k) for k in ("budgets", "scored_at", "seed", "resamples", "tokenizer", "forced")} | {
        "samples_graded": samples.get("graded")
    }


def _kept_policies(
    run: Run, policy: str, graded: int, warnings: list[str]
) -> tuple[pa.Table, dict[str, dict[str, Any]]]:
    """The summary rows of the run's other policies (kept beside this scoring's) and their run.json records.

    A summary that does not match run.json (an interrupted scoring) is not kept; a kept policy scored on another
    number of samples than the run now holds is named in a warning, since its numbers describe fewer samples.
    """
    previous = run.record.scoring or ScoringRecord()
    if not run.has("summary"):
        return SUMMARY_SCHEMA.empty_table(), {}
    try:
        old = run.table("summary")
    except UserError as exc:
        warnings.append(f"the earlier summary is not kept: {exc}")
        return SUMMARY_SCHEMA.empty_table(), {}
    others = old.filter(pc.not_equal(old["policy"], policy))
    if not others.num_rows:
        return SUMMARY_SCHEMA.empty_table(), {}
    records = {name: kept.fields for name, kept in previous.policies.items()}
    if previous.policy and previous.policy not in records:  # scored before run.json kept one per policy
        records[previous.policy] = _policy_record(previous.fields)
    names = sorted(set(others["policy"].to_pylist()))
    for name in names:
        before = previous.policy_record(name).samples_graded
        if before is not None and before != graded:
            warnings.append(
                f"the kept `{name}` summary rests on {before} samples, the run now holds {graded}: rescore it with "
                f"--policy {name}"
            )
    kept = pa.Table.from_pylist(others.to_pylist(), schema=SUMMARY_SCHEMA)  # summaries of older versions lack columns
    return kept, {name: records[name] for name in names if name in records}


def _refill(run: Run, goal: str, start: bool = False) -> str:
    """How to get the samples a run lacks: generation for a generated run, the source tool for an import."""
    if run.kind == "imported":
        text = f"this run was imported: {goal} with the tool that wrote it, then re-import with --force"
    else:
        text = f"rerun `e3eval generate` with the same settings to {goal}"
    return text[0].upper() + text[1:] if start else text


def _failed_at(rows: _Rows) -> dict[int, int]:
    counts: dict[int, int] = {}
    for budget, left_out in zip(rows.budget, rows.left_out, strict=True):
        if left_out:
            counts[budget] = counts.get(budget, 0) + 1
    return counts


def _check_tokenizer(run: Run, name: str, tokenizer: Any) -> list[str]:
    """Refuse a tokenizer that would decode the run's ids to other text than the one they were made with.

    The run records its tokenizer's fingerprint (generation and import); runs from before that are checked against
    the recorded tokenizer itself when it still loads, and otherwise scored with a warning.
    """
    expected, recorded_name = run.record.tokenizer.fingerprint, run.record.tokenizer.name_or_path
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


@dataclass
class _Extractor:
    """Decodes, extracts and queues the grading of rollout batches at every budget, into `rows`; each distinct (gold,
    answer) pair is graded once (`pairs` numbers them; `quick` holds those decided without the pool). What the policy
    prepared is read here: forced answers, and `s1_end` (s1 runs: the length of the end of thinking the harness
    appends when the thinking stopped by itself), which makes a row's tokens the thinking kept and `finished` whether
    it stopped before the cap."""

    budgets: list[int]
    policy: ScoringPolicy
    gold: dict[str, str]
    decoder: PrefixDecoder
    pool: GraderPool
    prepared: Prepared = field(default_factory=Prepared)
    rows: _Rows = field(default_factory=_Rows)
    pairs: dict[tuple[str, str], int] = field(default_factory=dict)
    quick: dict[int, Verdict] = field(default_factory=dict)

    def add(self, batch: pa.RecordBatch) -> None:
        """Every sample of one batch of rollouts (`_COLUMNS` plus the columns the policy prepared for)."""
        token_lists = batch.column("token_ids")
        offsets = token_lists.offsets.to_numpy()
        flat = token_lists.values.to_numpy(zero_copy_only=False)
        inserted = batch.column("inserted").to_pylist() if self.prepared.s1_end is not None else None
        columns = (batch.column(c).to_pylist() for c in ("problem_id", "sample_idx", "num_tokens", "finish_reason"))
        for i, (problem_id, sample_idx, num_tokens, finish) in enumerate(zip(*columns, strict=True)):
            spans = (inserted[i] or None) if inserted is not None else None
            self._sample(problem_id, sample_idx, flat[offsets[i] : offsets[i + 1]], num_tokens, finish, spans)

    def _sample(self, problem_id: str, sample_idx: int, ids: Any, num_tokens: int, finish: str,
                spans: list[int] | None) -> None:  # fmt: skip
        """One sample at every budget: its rows, each with an answer queued for grading or a fixed verdict."""
        full = self.policy.needs_full_text
        fixed: Verdict | None = None
        texts: list[str] = []
        if problem_id not in self.gold:
            fixed = Verdict("error", None, f"problem {problem_id!r} is not in problems.parquet")
        else:
            try:
                texts = self.decoder.decode_prefixes(ids, [*self.budgets, num_tokens] if full else self.budgets)
            except (IndexError, ValueError, OverflowError) as exc:
                fixed = Verdict("error", None, f"cannot decode token ids: {exc}")
        for j, budget in enumerate(self.budgets):
            answer = None
            verdict, forced_text, forced_final = self._forced(problem_id, sample_idx, num_tokens, finish, budget, fixed)
            if verdict is None:
                sample = SampleAtBudget(texts[j], texts[-1] if full else "", num_tokens, finish == "stop", budget,
                                        self.gold[problem_id], forced_text, forced_final)  # fmt: skip
                answer = self.policy.answer(sample)
            tokens, finished = self._cost(num_tokens, finish, budget, spans)
            rows = self.rows
            rows.problem_id.append(problem_id)
            rows.sample_idx.append(sample_idx)
            rows.budget.append(budget)
            rows.tokens_used.append(tokens)
            rows.finished.append(finished)
            rows.answer.append(answer)
            rows.fixed.append(verdict)
            rows.left_out.append(verdict is not None and fixed is None)
            queued = verdict is None and answer is not None
            rows.pair.append(self._queue(self.gold[problem_id], answer) if queued else -1)

    def _forced(self, problem_id: str, sample_idx: int, num_tokens: int, finish: str, budget: int,
                fixed: Verdict | None) -> tuple[Verdict | None, str | None, bool]:  # fmt: skip
        """The verdict fixed before grading (a failed forced answer is an error row left out of the metrics), and
        the forced answer's text and whether its continuation stopped on its own (forced policy only)."""
        forced = self.prepared.forced
        if fixed is not None or forced is None or ended(finish, num_tokens, budget):
            return fixed, None, True
        found = forced.answers.get((problem_id, sample_idx, budget))
        if found is None or found.error is not None:
            why = found.error if found is not None else "not generated"
            return Verdict("error", None, f"forced answer failed (left out of the metrics): {why}"), None, True
        return None, found.text, found.final

    def _cost(self, num_tokens: int, finish: str, budget: int, spans: list[int] | None) -> tuple[int, bool]:
        """A row's tokens and whether it finished: of the prefix at `budget`; of an s1 sample, the thinking kept and
        whether the model ended it before the cap (the appended end is the delimiter alone)."""
        if self.prepared.s1_end is not None:
            start, end = (spans or [num_tokens, num_tokens])[-2:]
            return start, end - start == self.prepared.s1_end
        return min(num_tokens, budget), finish == "stop" and num_tokens <= budget

    def _queue(self, gold: str, answer: str) -> int:
        """The index of the (gold, answer) pair, submitted to the pool the first time it is seen (integer pairs
        are decided at once: no symbolic work, no need for isolation)."""
        key = (gold, answer)
        index = self.pairs.get(key)
        if index is None:
            index = self.pairs[key] = len(self.pairs)
            verdict = quick_verdict(*key)
            if verdict is not None:
                self.quick[index] = verdict
            else:
                self.pool.submit(index, *key)
        return index


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
