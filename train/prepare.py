"""`e3train prepare`: verl-format Parquet for Countdown, multiplication and math (with a difficulty split).

Rows follow verl's RL dataset contract (`verl/utils/dataset/rl_dataset.py` and its reward manager, verl 0.9):
`data_source`, chat `prompt` (a list of messages), `ability`, `reward_model{style: "rule", ground_truth}` and
`extra_info{split, index, ...}`, a struct (verl calls `extra_info.get("index")` on every row), with the same fields
in every file e3train writes so that any mixture of them concatenates; `train/reward.py` reads the ground truths back
(Countdown and multiplication as JSON strings). The math split reproduces the paper's DeepScaleR easy / medium / hard
split from a reference model's pass rates read from an e3eval run: easy when more than `easy_above` of its samples are
correct (default 10/16), hard when at most `hard_at_most` are (default 0: none), medium otherwise. Every file has the
same columns, even when empty, and names e3train and its settings in its schema metadata (`train/write_guard.py`).
Problem counts, sizes, thresholds and the output folder are all checked before anything is generated or written; an
existing file is replaced only if e3train wrote it, and never inside an e3eval run directory.
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
from e3eval.train.tasks import countdown, multiplication
from e3eval.train.write_guard import PROVENANCE_KEY, check_output_dir, check_replaceable, is_prepared_parquet

# Every e3train file has all of these fields (null where a task has no such thing): one schema, any mixture.
EXTRA_INFO = pa.struct(
    [
        ("split", pa.string()),
        ("index", pa.int64()),
        ("difficulty", pa.int64()),  # countdown: numbers per problem
        ("digits", pa.list_(pa.int64())),  # multiplication: digits of each factor
        ("problem_id", pa.string()),  # math
        ("pass_rate", pa.float64()),  # math train splits: the reference model's pass rate
    ]
)
ROW_SCHEMA = pa.schema(
    [
        ("data_source", pa.string()),
        ("prompt", pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))),
        ("ability", pa.string()),
        ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
        ("extra_info", EXTRA_INFO),
    ]
)
MAX_PROBLEMS = 1_000_000  # per split (and per size): DeepScaleR has 40k problems; more is a typo, not a dataset
MAX_DIGITS = 20


def _check_counts(train: int, test: int) -> None:
    """Refuse split sizes that would write empty (or mis-split) files, or run for hours, before anything is made."""
    bad = [f"--{name} {value}" for name, value in (("train", train), ("test", test)) if value < 1]
    if bad:
        raise UserError(f"{', '.join(bad)}: each split needs at least one problem")
    big = [f"--{name} {value:,}" for name, value in (("train", train), ("test", test)) if value > MAX_PROBLEMS]
    if big:
        raise UserError(f"{', '.join(big)}: at most {MAX_PROBLEMS:,} problems per split")


def _check_targets(out: Path, paths: list[Path]) -> None:
    """The output folder and every file about to be written, before any problem is generated."""
    check_output_dir(out)
    for path in paths:
        check_replaceable(path, is_prepared_parquet, "a Parquet file written by `e3train prepare`")


def _rows(entries: list[tuple[str, str, str, dict]], split: str, provenance: dict) -> pa.Table:
    """(data_source, prompt text, ground truth, extra info) -> a verl dataset table (with its columns when empty)."""
    table = pa.Table.from_pylist(
        [
            {
                "data_source": source,
                "prompt": [{"role": "user", "content": prompt}],
                "ability": "math",
                "reward_model": {"style": "rule", "ground_truth": truth},
                "extra_info": {"split": split, "index": i, **extra},
            }
            for i, (source, prompt, truth, extra) in enumerate(entries)
        ],
        schema=ROW_SCHEMA,
    )
    return table.replace_schema_metadata({PROVENANCE_KEY: json.dumps(provenance).encode()})


def _write(path: Path, table: pa.Table) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_table(path, table)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


def _provenance(command: str, **settings: object) -> dict:
    from e3eval.provenance import now, package_version

    return {"written_by": f"e3train prepare {command}", "settings": settings, "created": now(),
            "e3eval": package_version("e3eval")}  # fmt: skip


def prepare_countdown(out: Path, sizes: list[int], train: int, test: int, seed: int) -> list[Path]:
    _check_counts(train, test)
    wrong = [size for size in sizes if not 3 <= size <= 8]
    if not sizes or wrong:
        raise UserError(f"--sizes: Countdown problems have 3 to 8 numbers, got {wrong or 'none'}")
    repeated = sorted({size for size in sizes if sizes.count(size) > 1})
    if repeated:
        raise UserError(f"--sizes: {', '.join(map(str, repeated))} given more than once; each size is one file pair")
    paths = {(split, size): out / f"{split}-{size}.parquet" for size in sizes for split in ("train", "test")}
    _check_targets(out, list(paths.values()))
    provenance = _provenance("countdown", sizes=sizes, train=train, test=test, seed=seed)
    tables = {}
    for size in sizes:  # every size is made before any file is written
        try:
            problems = countdown.generate(train + test, size, seed)
        except RuntimeError:  # the generator's bounded retries ran out of distinct problems
            raise UserError(f"--sizes {size}: cannot make {train + test:,} distinct Countdown problems with {size} "
                            "numbers; ask for fewer") from None  # fmt: skip
        for split, chunk in (("train", problems[:train]), ("test", problems[train:])):
            entries = [("countdown", p.prompt(), json.dumps({"target": p.target, "numbers": list(p.numbers)}),
                        {"difficulty": size}) for p in chunk]  # fmt: skip
            tables[split, size] = _rows(entries, split, provenance)
    for key, path in paths.items():
        _write(path, tables[key])
    return list(paths.values())


def prepare_mult(out: Path, digits: tuple[int, int], train: int, test: int, seed: int, verify: bool) -> list[Path]:
    _check_counts(train, test)
    if min(digits) < 1:
        raise UserError(f"--digits {digits[0]}x{digits[1]}: each factor needs at least one digit")
    if max(digits) > MAX_DIGITS:
        raise UserError(f"--digits {digits[0]}x{digits[1]}: each factor has at most {MAX_DIGITS} digits")
    paths = {split: out / f"{split}.parquet" for split in ("train", "test")}
    _check_targets(out, list(paths.values()))
    problems = multiplication.generate(train + test, digits[0], digits[1], seed)
    source = "mult_v" if verify else "mult"
    provenance = _provenance("mult", digits=list(digits), verify=verify, train=train, test=test, seed=seed)
    for split, chunk in (("train", problems[:train]), ("test", problems[train:])):
        entries = [(source, p.prompt(verify), json.dumps({"a": p.a, "b": p.b}), {"digits": list(digits)})
                   for p in chunk]  # fmt: skip
        _write(paths[split], _rows(entries, split, provenance))
    return list(paths.values())


@dataclass(frozen=True)
class SplitRule:
    """Easy: pass rate > easy_above; hard: pass rate <= hard_at_most; medium: in between (empty when they are
    equal). Both are fractions of correct samples in [0, 1], and hard_at_most <= easy_above (else they overlap)."""

    easy_above: float = 10 / 16
    hard_at_most: float = 0.0

    def __post_init__(self) -> None:
        bad = [f"--{flag} {value:g}" for flag, value in (("easy-above", self.easy_above),
               ("hard-at-most", self.hard_at_most)) if not 0 <= value <= 1]  # fmt: skip
        if bad:  # NaN fails the comparison too
            raise UserError(f"{', '.join(bad)}: a threshold is a pass rate, a number from 0 to 1")
        if self.hard_at_most > self.easy_above:
            raise UserError(f"--hard-at-most {self.hard_at_most:g} is above --easy-above {self.easy_above:g}: a pass "
                            "rate between them would be both easy and hard; hard must be at most easy")  # fmt: skip


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
    levels = ["easy", "medium", "hard", *(["val"] if validation else [])]
    _check_targets(out, [out / f"{level}.parquet" for level in levels])
    buckets: dict[str, list[tuple[str, str, str, dict]]] = {"easy": [], "medium": [], "hard": []}
    for p in problems:
        rate = rates[p.problem_id]
        level = "easy" if rate > rule.easy_above else "hard" if rate <= rule.hard_at_most else "medium"
        prompt = TEMPLATES[template].replace("{problem}", p.problem)
        buckets[level].append(("math", prompt, p.answer, {"problem_id": p.problem_id, "pass_rate": rate}))
    if validation:
        buckets["val"] = [("math", TEMPLATES[template].replace("{problem}", p.problem), p.answer,
                           {"problem_id": p.problem_id}) for p in validation]  # fmt: skip
    provenance = _provenance("math", easy_above=rule.easy_above, hard_at_most=rule.hard_at_most, template=template,
                             problems=len(problems), validation=len(validation or []))  # fmt: skip
    for level, entries in buckets.items():
        _write(out / f"{level}.parquet", _rows(entries, level, provenance))
    return {level: len(entries) for level, entries in buckets.items()}
