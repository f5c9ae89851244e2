"""The JSON `e3eval view` serves: runs, a run's problems, one sample, one problem across runs.

`Views` holds the runs given on the command line (indexed 0..R-1, each a `viewed_run.ViewedRun`). The payloads are
built from e3eval's own numbers, never recomputed here: the runs' curves are `report.compare`'s summary rows (what
`e3eval report` prints), per-problem pass@1 is `grade_summary.problem_pass1` over grades.parquet (so a problem's
numbers average to the summary's), a sample's cut points come from token-exact truncation (`sample_text.py`), steps
from the analysis presets (`segmentation.step_spans`). Failed samples are shown with their error and no grades, never
as incorrect. Unknown runs, problems, samples or presets are a LookupError (the server's 404). Every payload is
JSON-safe: no NaN (null instead), no absolute paths (a run is named by its folder). This module writes nothing.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e3eval.errors import UserError
from e3eval.grade_summary import problem_pass1
from e3eval.labels import forcing_label, inserted_waits, run_label, short_model, subset_label, unique_labels
from e3eval.segmentation import step_presets, step_spans
from e3eval.store import SUMMARY, rollout_shards
from e3eval.thinking import THINK_CLOSE
from e3eval.view import sample_text
from e3eval.view.viewed_run import ViewedRun

PROBLEM_CHARS = 300  # the problems page shows the start of each problem; the sample page shows it whole
MAX_ANSWERS = 8
DEFAULT_PRESET = "math"
_SAMPLE_COLUMNS = ("response", "token_ids", "num_tokens", "finish_reason", "error", "inserted")


class Views:
    """The runs one `e3eval view` shows: opened once (a folder that is not a run is a UserError naming it)."""

    def __init__(self, run_dirs: Sequence[Path | str]) -> None:
        if not run_dirs:
            raise UserError("give at least one run directory")
        self.runs = tuple(ViewedRun(i, path) for i, path in enumerate(run_dirs))

    def run(self, index: int) -> ViewedRun:
        if not isinstance(index, int) or not 0 <= index < len(self.runs):
            raise LookupError(f"no run #{index}: {len(self.runs)} run(s) are shown")
        return self.runs[index]

    def preload(self) -> threading.Thread:
        """Load every run's tokenizer on a daemon thread (seconds for big vocabularies; pages wait only if they need
        one before it is done)."""
        thread = threading.Thread(target=lambda: [r.preload() for r in self.runs], daemon=True, name="e3view-load")
        thread.start()
        return thread

    def labels(self) -> list[str]:
        """Each run's label as reports name it (`labels.run_label` with its last scoring's policy), ties broken by
        folder name."""
        labels, names = [], []
        for state in self.runs:
            try:
                run = state.run()
            except UserError:  # gone or unreadable now: named by its folder, and its card says why
                labels.append(state.path.name)
                names.append(state.path.name)
                continue
            labels.append(run_label(run.record, run.name, _policy(run.record)))
            names.append(run.name)
        return unique_labels(labels, names)


def _policy(record: Any) -> str | None:
    return record.scoring.policy if record.scoring is not None else None


# Runs ---------------------------------------------------------------------------------------------------------------


def runs_payload(views: Views) -> dict[str, Any]:
    """Every run: what was run, its samples, and its pass@k curves with CIs (`report.compare`'s summary)."""
    labels = views.labels()
    curves, notes = _curves(views)
    runs = []
    for state, label in zip(views.runs, labels, strict=True):
        try:
            runs.append(_run_card(state, label, curves, notes))
        except (UserError, OSError) as exc:  # one run deleted or broken while served: the others still show
            why = _unreadable(exc, state)
            runs.append({"index": state.index, "label": label, "path_name": state.path.name, "error": why})
    return {"runs": runs}


def _unreadable(exc: BaseException, state: ViewedRun) -> str:
    """Why a run cannot be shown now, for its card or column (a reload retries)."""
    if not state.path.is_dir():
        return "not readable now: its folder is gone"
    text = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {getattr(exc, 'strerror', None) or exc}"
    return f"not readable now: {text}"


def _run_card(state: ViewedRun, label: str, curves: dict[int, list[dict[str, Any]]],
          notes: dict[int, list[str]]) -> dict[str, Any]:  # fmt: skip
    """One run's card: what was run, its samples, its curves and what keeps any of it from showing."""
    state.samples.refresh()
    record = state.record
    generation = record.generation
    problems = state.problems()
    expected = generation.n * len(problems) if generation is not None and generation.n else None
    stored, failed = state.samples.samples, state.samples.failed
    grades, grades_note = state.grades()
    return {
        "index": state.index, "label": label, "path_name": state.path.name,
        "model": _model(generation),
        "dataset": _dataset(generation, problems), "n_problems": len(problems),
        "n_per_problem": _per_problem(state, generation),
        "budgets": sorted({int(b) for b in grades.table.column("budget").to_pylist()}) if grades else [],
        "train_budget": generation.train_budget if generation is not None else None,
        "policy": _policy(record),
        "forcing": forcing_label(generation.forcing, inserted_waits(generation)) if generation else None,
        "subset": subset_label(generation),
        "curves": curves.get(state.index, []),
        "samples_stored": stored, "samples_failed": failed,
        "samples_missing": max(0, expected - stored - failed) if expected is not None else 0,
        "status": (generation.status or "complete") if generation is not None else record.kind,
        "kind": record.kind, "scored": grades is not None, "note": grades_note,
        "warnings": notes.get(state.index, []),
    }  # fmt: skip


def _model(generation: Any) -> str | None:
    """The model as given to generate; a local folder by its name (a payload names no absolute path)."""
    model = generation.model if generation is not None else None
    return short_model(model) if model and Path(model).is_absolute() else model


def _dataset(generation: Any, problems: dict[str, dict[str, Any]]) -> str | None:
    if generation is not None and generation.dataset:
        return generation.dataset
    names = {p["dataset"] for p in problems.values() if p.get("dataset")}
    return names.pop() if len(names) == 1 else None


def _per_problem(state: ViewedRun, generation: Any) -> int | None:
    if generation is not None and generation.n:
        return generation.n
    counts = Counter(pid for (pid, _), at in state.samples.locations().items() if not at.failed)
    return next(iter(set(counts.values()))) if len(set(counts.values())) == 1 else None


def _curves(views: Views) -> tuple[dict[int, list[dict[str, Any]]], dict[int, list[str]]]:
    """Run index -> its pass@k curves (the last scoring's policy) and the warnings `compare` gives about it (a
    summary older than the samples); each run's re-read only when its summary, run.json or rollouts changed."""
    curves: dict[int, list[dict[str, Any]]] = {}
    notes: dict[int, list[str]] = {}
    for state in views.runs:
        if not (state.path / SUMMARY).is_file():
            notes[state.index] = ["no summary.parquet: `e3eval score` draws the curves"]
            continue
        try:  # one at a time: a run being rescored (or gone) must not hide the others' curves
            files = [state.path / SUMMARY, *rollout_shards(state.path)]
            curves[state.index], notes[state.index] = state.cached("curves", files, lambda s=state: _run_curves(s))
        except (UserError, OSError) as exc:
            curves[state.index], notes[state.index] = [], [_unreadable(exc, state)]
    return curves, notes


def _run_curves(state: ViewedRun) -> tuple[list[dict[str, Any]], list[str]]:
    from e3eval.report import compare

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # said in the payload instead
            comparison = compare([state.path])
    except UserError as exc:
        return [], [str(exc)]
    entries = list(comparison.runs)
    if not entries:
        return [], []
    policy = _policy(state.record)
    entry = next((e for e in entries if e.policy == policy), entries[0])
    summary = comparison.summary
    rows = summary[(summary["run"] == entry.label) & (summary["metric"].str.startswith("pass@"))]
    by_k: dict[int, list[dict[str, Any]]] = {}
    for row in rows.sort_values(["k", "budget"]).to_dict("records"):
        by_k.setdefault(int(row["k"]), []).append({
            "budget": int(row["budget"]), "value": _number(row["value"]), "ci_low": _number(row["ci_low"]),
            "ci_high": _number(row["ci_high"]), "n_problems": int(row["n_problems"]),
            "n_samples": int(row["n_samples"]),
        })  # fmt: skip
    curves = [{"metric": f"pass@{k}", "k": k, "points": points} for k, points in sorted(by_k.items())]
    return curves, list(entry.warnings)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


# Problems -----------------------------------------------------------------------------------------------------------


def problems_payload(views: Views, run: int) -> dict[str, Any]:
    """One row per problem of a run: pass@1 at each budget (`problem_pass1`), mean tokens, finished share at the
    largest budget, samples and failures, and the most given answers at the largest budget (with how many samples gave
    each and whether it was graded correct)."""
    state = views.run(run)
    state.samples.refresh()
    grades, note = state.grades()
    rates = problem_pass1(grades.table) if grades is not None else {}
    budgets = sorted(rates)
    largest = budgets[-1] if budgets else None
    per_problem: dict[str, dict[str, Any]] = {}
    for (pid, _), location in state.samples.locations().items():
        entry = per_problem.setdefault(pid, {"tokens": [], "failed": 0})
        if location.failed:
            entry["failed"] += 1
        else:
            entry["tokens"].append(location.num_tokens or 0)
    finished: dict[str, list[bool]] = {}
    answers: dict[str, Counter[str]] = {}
    right: set[tuple[str, str]] = set()
    if grades is not None and largest is not None:
        for (pid, _), by_budget in grades.by_sample.items():
            row = by_budget.get(largest)
            if row is not None:
                finished.setdefault(pid, []).append(bool(row["finished"]))
                if row["answer"] is not None:
                    answers.setdefault(pid, Counter())[row["answer"]] += 1
                    if row["correct"]:
                        right.add((pid, row["answer"]))
    rows = []
    for pid, problem in state.problems().items():
        text = problem["problem"] or ""
        held = per_problem.get(pid, {"tokens": [], "failed": 0})
        done = finished.get(pid)
        rows.append({
            "problem_id": pid, "problem": text[:PROBLEM_CHARS] + ("…" if len(text) > PROBLEM_CHARS else ""),
            "problem_truncated": len(text) > PROBLEM_CHARS, "answer": problem["answer"],
            "pass1": {str(b): rates[b].get(pid) for b in budgets},
            "mean_tokens": sum(held["tokens"]) / len(held["tokens"]) if held["tokens"] else None,
            "finished": sum(done) / len(done) if done else None,
            "samples": len(held["tokens"]), "failed": held["failed"],
            "answers": [{"answer": a, "count": n, "correct": (pid, a) in right}
                        for a, n in answers.get(pid, Counter()).most_common(MAX_ANSWERS)],
        })  # fmt: skip
    train = state.record.generation
    return {"run": state.index, "budgets": budgets, "train_budget": train.train_budget if train else None,
            "policy": grades.policy if grades else None, "note": note, "problems": rows}  # fmt: skip


# One sample ---------------------------------------------------------------------------------------------------------


def sample_payload(views: Views, run: int, problem_id: str, sample_idx: int, preset: str | None) -> dict[str, Any]:
    """One sample: its text (the decode of its token ids), the cut, answer and grade at every scored budget, the
    thinking/answer split, inserted waits, forced answers, the preset's steps, per-token heat, and its neighbours."""
    state = views.run(run)
    preset = preset or DEFAULT_PRESET
    presets = list(step_presets())
    if preset not in presets:
        raise LookupError(f"no step preset {preset!r}; there are {', '.join(presets)}")
    problem = state.problems().get(problem_id)
    state.samples.refresh()  # a run still being generated: its newest sample gets a `next`
    location = state.samples.locate(problem_id, sample_idx)
    row = state.samples.read(problem_id, sample_idx, _SAMPLE_COLUMNS)
    before, after = state.samples.neighbours(problem_id, sample_idx)
    payload: dict[str, Any] = {
        "run": state.index, "problem_id": problem_id, "sample_idx": sample_idx,
        "problem": problem["problem"] if problem else None, "answer": problem["answer"] if problem else None,
        "num_tokens": row["num_tokens"], "finish_reason": row["finish_reason"], "error": None,
        "text": row["response"] or "", "cuts_available": False, "cuts_note": None, "think_end": None,
        "think_end_text": None, "cuts": [], "waits": [], "forced": [], "steps": [], "preset": preset,
        "presets": presets, "heat": None,
        "prev": _key(before), "next": _key(after),
    }  # fmt: skip
    if location.failed:
        payload["error"] = row["error"] or "failed (no error message)"
        payload["cuts_note"] = "a failed request: it has no text and is never graded"
        return payload
    decoder, _, why = state.decoder()
    ids = row["token_ids"]
    text = payload["text"]
    if decoder is not None and ids is not None:
        text = payload["text"] = decoder.decode_prefix(ids, len(ids))
        payload["cuts_available"] = True
    else:
        payload["cuts_note"] = why or "the sample has no token ids"
    grades, note = state.grades()
    graded = grades.by_sample.get((problem_id, sample_idx), {}) if grades is not None else {}
    budgets = sorted(graded)
    places = {c.budget: c for c in sample_text.cuts(decoder, ids, text, budgets)} if payload["cuts_available"] else {}
    for budget in budgets:
        grade, cut = graded[budget], places.get(budget)
        payload["cuts"].append({
            "budget": budget, "char": cut.char if cut else None, "inside_char": cut.inside_char if cut else False,
            **{k: grade[k] for k in ("tokens_used", "finished", "answer", "correct", "status", "detail")},
        })  # fmt: skip
    if note and payload["cuts_note"] is None:
        payload["cuts_note"] = note
    generation = state.record.generation
    delimiter = (generation.forcing.think_end if generation and generation.forcing else None) or THINK_CLOSE
    payload["think_end"], payload["think_end_text"] = sample_text.think_end(text, delimiter), delimiter
    if payload["cuts_available"]:
        payload["waits"] = sample_text.token_spans(decoder, ids, text, row["inserted"])
        probed = state.heat((problem_id, sample_idx), ids)
        if probed is not None:
            payload["heat"] = sample_text.heat(decoder, ids, {k: v for k, v in probed.items() if k != "model"})
            if payload["heat"] is not None:
                payload["heat"]["model"] = probed["model"]
    payload["forced"] = _forced(state, problem_id, sample_idx, graded, grades.policy if grades else None)
    if after is not None:
        state.samples.prefetch(*after, _SAMPLE_COLUMNS)  # j/k: the next sample's row group is read meanwhile
    payload["steps"] = [{"start": s.start, "end": s.end, "verify": s.verify, "attempt": s.attempt,
                         "chained": s.chained} for s in step_spans(text, preset)]  # fmt: skip
    return payload


def _key(key: tuple[str, int] | None) -> dict[str, Any] | None:
    return {"problem_id": key[0], "sample_idx": key[1]} if key is not None else None


def _forced(state: ViewedRun, problem_id: str, sample_idx: int, graded: dict[int, dict[str, Any]],
            policy: str | None) -> list[dict[str, Any]]:  # fmt: skip
    """The stored forced answers of this sample, by budget, with the grade when the last scoring was `forced`."""
    stored = state.forced()
    found = []
    for (pid, idx, budget), answer in sorted(stored.items(), key=lambda item: item[0][2]):
        if (pid, idx) != (problem_id, sample_idx):
            continue
        grade = graded.get(budget) if policy == "forced" else None
        found.append({"budget": budget, "text": answer.text, "error": answer.error,
                      "answer": grade["answer"] if grade else None,
                      "correct": grade["correct"] if grade else None})  # fmt: skip
    return found


# One problem across runs --------------------------------------------------------------------------------------------


def compare_payload(views: Views, problem_id: str) -> dict[str, Any]:
    """One problem in every run that has it: per run its pass@1 by budget and each sample's length, finish and grade
    at each budget (failed samples with their error)."""
    labels = views.labels()
    problem: dict[str, Any] | None = None
    runs = []
    found = False
    for state, label in zip(views.runs, labels, strict=True):
        try:
            entry, mine = _compared(state, label, problem_id)
        except (UserError, OSError) as exc:  # gone or broken now: said in its column, the others still compared
            why = _unreadable(exc, state)
            runs.append({"index": state.index, "label": label, "note": why, "pass1": {}, "samples": []})
            continue
        if entry is not None:
            found = True
            problem = problem or mine
            runs.append(entry)
    if not found:
        raise LookupError(f"no run holds problem {problem_id!r}")
    return {"problem_id": problem_id, "problem": problem["problem"] if problem else None,
            "answer": problem["answer"] if problem else None, "runs": runs}  # fmt: skip


def _compared(state: ViewedRun, label: str, problem_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """One run's column of the compare page (None when it lacks the problem) and its record of the problem."""
    state.samples.refresh()
    mine = state.problems().get(problem_id)
    keys = [k for k in state.samples.keys() if k[0] == problem_id]  # noqa: SIM118 - not a dict
    if mine is None and not keys:
        return None, None
    grades, note = state.grades()
    rates = problem_pass1(grades.table) if grades is not None else {}
    samples = []
    for pid, idx in sorted(keys, key=lambda k: k[1]):
        location = state.samples.locate(pid, idx)
        graded = grades.by_sample.get((pid, idx), {}) if grades is not None else {}
        samples.append({"sample_idx": idx, "num_tokens": location.num_tokens,
                        "finish_reason": location.finish_reason,
                        "error": (location.error or "failed") if location.failed else None,
                        "correct_at": {str(b): graded[b]["correct"] for b in sorted(graded)}})  # fmt: skip
    entry = {"index": state.index, "label": label, "note": note,
             "pass1": {str(b): rates[b].get(problem_id) for b in sorted(rates)}, "samples": samples}  # fmt: skip
    return entry, mine
