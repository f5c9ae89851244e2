"""`e3train prepare`: verl-format Parquet for Countdown, multiplication and math (with a difficulty split).

Rows follow verl's RL dataset contract: `data_source`, chat `prompt` (a list of messages), `ability`,
`reward_model{style: "rule", ground_truth}` and `extra_info{split, index, ...}`; `train/reward.py` reads the ground
truths back (Countdown and multiplication as JSON strings). The math split reproduces the paper's DeepScaleR
easy / medium / hard split from a reference model's pass rates read from an e3eval run: easy when more than
`easy_above` of its samples are correct (default 10/16), hard when none are, medium otherwise. Every file has the
same columns, even when empty; problem counts and sizes are checked before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from e3eval.errors import UserError
from e3eval.prompts import TEMPLATES
from e3eval.records import Problem
from e3eval.store import write_table
from train.tasks import countdown, multiplication

ROW_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", pa.string()),
    ]
)


def _check_counts(train: int, test: int) -> None:
    """Refuse split sizes that would write empty (or mis-split) files, before anything is generated."""
    bad = [f"--{name} {value}" for name, value in (("train", train), ("test", test)) if value < 1]
    if bad:
        raise UserError(f"{', '.join(bad)}: each split needs at least one problem")


def _rows(entries: list[tuple[str, str, str, dict]], split: str) -> pa.Table:
    """(data_source, prompt text, ground truth, extra info) -> a verl dataset table (with its columns when empty)."""
    return pa.Table.from_pylist(
        [
            {
                "data_source": source,
                "prompt": [{"role": "user", "content": prompt}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": truth},
                "extra_info": json.dumps({"split": split, "index": i, **extra}),
            }
            for i, (source, prompt, truth, extra) in enumerate(entries)
        ],
        schema=ROW_SCHEMA,
    )


def prepare_countdown(out: Path, sizes: list[int], train: int, test: int, seed: int) -> list[Path]:
    _check_counts(train, test)
    wrong = [size for size in sizes if not 3 <= size <= 8]
    if not sizes or wrong:
        raise UserError(f"--sizes: Countdown problems have 3 to 8 numbers, got {wrong or 'none'}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for size in sizes:
        problems = countdown.generate(train + test, size, seed)
        for split, chunk in (("train", problems[:train]), ("test", problems[train:])):
            entries = [("countdown", p.prompt(), json.dumps({"target": p.target, "numbers": list(p.numbers)}),
                        {"difficulty": size}) for p in chunk]  # fmt: skip
            path = out / f"{split}-{size}.parquet"
            write_table(path, _rows(entries, split))
            written.append(path)
    return written


def prepare_mult(out: Path, digits: tuple[int, int], train: int, test: int, seed: int, verify: bool) -> list[Path]:
    _check_counts(train, test)
    if min(digits) < 1:
        raise UserError(f"--digits {digits[0]}x{digits[1]}: each factor needs at least one digit")
    out.mkdir(parents=True, exist_ok=True)
    problems = multiplication.generate(train + test, digits[0], digits[1], seed)
    source = "mult_v" if verify else "mult"
    written = []
    for split, chunk in (("train", problems[:train]), ("test", problems[train:])):
        entries = [(source, p.prompt(verify), json.dumps({"a": p.a, "b": p.b}), {"digits": list(digits)})
                   for p in chunk]  # fmt: skip
        path = out / f"{split}.parquet"
        write_table(path, _rows(entries, split))
        written.append(path)
    return written


@dataclass(frozen=True)
class SplitRule:
    easy_above: float = 10 / 16
    hard_at_most: float = 0.0


def pass_rates(run_dir: Path) -> dict[str, float]:
    """Per-problem fraction of correct samples at the run's largest scored budget."""
    import pyarrow.compute as pc

    from e3eval.run import Run

    grades = Run.open(run_dir).table("grades", ["problem_id", "budget", "correct"])
    top = grades.filter(pc.equal(grades["budget"], pc.max(grades["budget"])))
    rates: dict[str, list[int]] = {}
    for pid, correct in zip(top["problem_id"].to_pylist(), top["correct"].to_pylist(), strict=True):
        tally = rates.setdefault(pid, [0, 0])
        tally[0] += bool(correct)
        tally[1] += 1
    return {pid: ok / total for pid, (ok, total) in rates.items()}


def prepare_math(out: Path, problems: list[Problem], rates: dict[str, float], rule: SplitRule,
                 template: str = "deepscaler", validation: list[Problem] | None = None) -> dict[str, int]:  # fmt: skip
    """Write easy/medium/hard (and val) Parquet files; problems without a pass rate are refused, naming the first."""
    missing = [p.problem_id for p in problems if p.problem_id not in rates]
    if missing:
        raise UserError(f"{len(missing)} problem(s) have no pass rate in the run (first: {missing[0]!r})")
    buckets: dict[str, list[tuple[str, str, str, dict]]] = {"easy": [], "medium": [], "hard": []}
    for p in problems:
        rate = rates[p.problem_id]
        level = "easy" if rate > rule.easy_above else "hard" if rate <= rule.hard_at_most else "medium"
        prompt = TEMPLATES[template].replace("{problem}", p.problem)
        buckets[level].append(("math", prompt, p.answer, {"problem_id": p.problem_id, "pass_rate": rate}))
    if validation:
        buckets["val"] = [("math", TEMPLATES[template].replace("{problem}", p.problem), p.answer,
                           {"problem_id": p.problem_id}) for p in validation]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    for level, entries in buckets.items():
        write_table(out / f"{level}.parquet", _rows(entries, level))
    return {level: len(entries) for level, entries in buckets.items()}
