"""Hostile input files (issue 11, item 5): byte-order marks, odd field types, e3 indexes naming two problems, huge
lines, hand-edited run.json, curriculum specs with typos, binary bytes or alias bombs, and empty training splits.

Each row of `CASES` runs a real `e3eval` / `e3train` process and states the exit code and what the user must read;
ordinary tests below check what a table row cannot (memory held by a skipped line, time to refuse an alias bomb).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl
from hostile import Case, run_case

from e3eval.jsonl import BOM, BadLines, OversizedLine, raw_lines, read_jsonl
from e3eval.store import is_run_id

# --- input files --------------------------------------------------------------------------------------------------

RECORDS = [
    {"id": "a", "response": "so \\boxed{1}", "answer": "1"},
    {"id": "b", "response": "so \\boxed{3}", "answer": "2"},
]


def _with_bom(name: str, text: str) -> Callable[[Path, Path], None]:
    def setup(tmp: Path, _model: Path) -> None:
        (tmp / name).write_bytes(BOM + text.encode())

    return setup


_JSONL = "".join(json.dumps(r) + "\n" for r in RECORDS)
_VERL = json.dumps({"input": "What is 1?", "output": "\\boxed{1}", "score": 1, "gts": "1"}) + "\n"


def _verl_odd_gts(tmp: Path, _model: Path, bom: bytes = b"") -> None:
    rows = [
        {"input": "What is 1?", "output": "\\boxed{1}", "score": 1, "gts": "1"},
        {"input": "What is 2?", "output": "\\boxed{2}", "score": 1, "gts": [2, "two"]},
        {"input": "What is 3?", "output": "\\boxed{3}", "score": 1, "gts": True},
        {"input": ["What is 4?"], "output": "\\boxed{4}", "score": 1, "gts": "4"},
    ]
    (tmp / "verl.jsonl").write_bytes(bom + "".join(json.dumps(r) + "\n" for r in rows).encode())


def _odd_problem(tmp: Path, _model: Path) -> None:
    write_jsonl(tmp / "in.jsonl", [{**RECORDS[0], "problem": {"text": "?"}}, RECORDS[1]])


def _e3_two_prompts(tmp: Path, _model: Path) -> None:
    records = [
        {"index": 0, "input": "What is 1+1?", "output": "\\boxed{2}", "score": 1},
        {"index": 0, "input": "What is 1+1?", "output": "\\boxed{3}", "score": 0},
        {"index": 0, "input": "What is 2+2?", "output": "\\boxed{4}", "score": 1},
    ]
    (tmp / "e3_rollouts.json").write_text(json.dumps(records))
    write_jsonl(tmp / "gold.jsonl", [{"id": "0", "problem": "What is 1+1?", "answer": "2"}])


def _e3_one_prompt_with_bom(tmp: Path, model: Path) -> None:
    """Two samples of one problem (one index, one prompt), in a file opening with a byte-order mark."""
    _e3_two_prompts(tmp, model)
    records = json.loads((tmp / "e3_rollouts.json").read_text())[:2]
    (tmp / "e3_rollouts.json").write_bytes(BOM + json.dumps(records).encode())


def _plain(tmp: Path, _model: Path) -> None:
    write_jsonl(tmp / "in.jsonl", RECORDS)


LIMIT = 16 * 1024 * 1024


def _huge_line(tmp: Path, _model: Path) -> None:
    # Line 1 is 17 MiB (over the 16 MiB limit), written in pieces so the test itself stays small in memory.
    with (tmp / "huge.jsonl").open("w") as handle:
        handle.write('{"id": "h", "answer": "1", "response": "')
        for _ in range(17):
            handle.write("w" * (1 << 20))
        handle.write('"}\n')
        handle.write(json.dumps(RECORDS[0]) + "\n")


def _absent(name: str):
    def check(tmp: Path) -> None:
        assert not (tmp / name).exists(), f"{name} was created"
        assert not list(tmp.glob(f".{name}.building-*")), "a half-built folder was left behind"

    return check


def _problems(name: str, count: int):
    def check(tmp: Path) -> None:
        assert pq.read_table(tmp / name / "problems.parquet").num_rows == count

    return check


_IMPORT = ("import", "--tokenizer", "{model}", "--out", "{tmp}/run")

# --- run.json edited by hand --------------------------------------------------------------------------------------


@cache
def _valid_run(model: str) -> Path:
    """One imported run per session (beside the session's tiny model); each case copies it and edits its run.json."""
    from e3eval.ingest import ImportConfig, import_run

    home = Path(model).parent / "hostile-files-run"
    home.mkdir()
    source = write_jsonl(home / "in.jsonl", RECORDS)
    import_run(ImportConfig(source, home / "run", model))
    return home / "run"


def _edited(edit):
    def setup(tmp: Path, model: Path) -> None:
        shutil.copytree(_valid_run(str(model)), tmp / "run")
        manifest = json.loads((tmp / "run" / "run.json").read_text())
        (tmp / "run" / "run.json").write_text(json.dumps(edit(manifest)))

    return setup


def _without(key: str):
    return lambda m: {k: v for k, v in m.items() if k != key}


# --- curriculum specs ---------------------------------------------------------------------------------------------

SPEC = """name: x
model: m
output_dir: out
algorithm: grpo
stages:
  - name: s1
    data: {train: [a.parquet], val: [b.parquet]}
    budget: 256
    steps: 10
    hyper:
      lr: 1.0e-6
"""

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
)


def _spec(text: str | bytes):
    def setup(tmp: Path, _model: Path) -> None:
        target = tmp / "spec.yaml"
        target.write_bytes(text if isinstance(text, bytes) else text.encode())

    return setup


def _spec_edit(old: str, new: str):
    assert old in SPEC
    return _spec(SPEC.replace(old, new))


_RUN_SPEC = ("run", "spec.yaml", "--dry-run")

CASES = [
    # A UTF-8 byte-order mark opens the file: not part of line 1, in every format and command.
    Case("bom-jsonl-import", (*_IMPORT, "in.jsonl"), 0, "imported 2 rollouts of 2 problems",
         _with_bom("in.jsonl", _JSONL), check=_problems("run", 2)),
    Case("bom-jsonl-import-skip-bad-lines", (*_IMPORT, "in.jsonl", "--skip-bad-lines"), 0,
         "imported 2 rollouts of 2 problems", _with_bom("in.jsonl", _JSONL), check=_problems("run", 2)),
    Case("bom-jsonl-count-asymmetries", ("count-asymmetries", "in.jsonl"), 0, "2 traces",
         _with_bom("in.jsonl", _JSONL)),
    Case("bom-verl-detected", (*_IMPORT, "v.jsonl"), 0, "(verl format", _with_bom("v.jsonl", _VERL)),
    Case("bom-e3-array-one-index-one-prompt", (*_IMPORT, "e3_rollouts.json", "--dataset", "gold.jsonl"), 0,
         "imported 2 rollouts of 1 problems (e3 format", _e3_one_prompt_with_bom, check=_problems("run", 1)),
    # verl `gts` that can be no gold answer, and a non-string prompt or problem: bad lines, skippable and counted.
    Case("verl-odd-gts-stops", (*_IMPORT, "verl.jsonl"), 2,
         "verl.jsonl:2: field 'gts' must be a string (a gold answer), got list", _verl_odd_gts, check=_absent("run")),
    Case("verl-odd-gts-skipped", (*_IMPORT, "verl.jsonl", "--skip-bad-lines"), 0, "skipped 3 bad line(s)",
         _verl_odd_gts, check=_problems("run", 1)),
    # count-asymmetries reads no gold: an odd `gts` is no reason to drop a trace (here after a byte-order mark).
    Case("bom-verl-odd-gts-count-asymmetries", ("count-asymmetries", "verl.jsonl", "--skip-bad-lines"), 0,
         "3 traces", lambda tmp, model: _verl_odd_gts(tmp, model, BOM)),
    Case("jsonl-odd-problem-skipped", (*_IMPORT, "in.jsonl", "--skip-bad-lines"), 0,
         "in.jsonl:1: field 'problem' must be a string", _odd_problem, check=_problems("run", 1)),
    # Two e3 prompts under one `index`: graded against one gold; refused, naming both records.
    Case("e3-index-two-prompts", (*_IMPORT, "e3_rollouts.json", "--dataset", "gold.jsonl"), 2,
         "e3_rollouts.json record 2: index 0 is also the index of", _e3_two_prompts, check=_absent("run")),
    Case("import-max-tokens-negative", (*_IMPORT, "in.jsonl", "--max-tokens", "-5"), 2,
         "--max-tokens must be a positive number of tokens", _plain, check=_absent("run")),
    Case("import-max-tokens-zero", (*_IMPORT, "in.jsonl", "--max-tokens", "0"), 2,
         "--max-tokens must be a positive number of tokens", _plain, check=_absent("run")),
    # A line over the size limit: refused with file:line, or skipped unread under --skip-bad-lines.
    Case("huge-line-import", (*_IMPORT, "huge.jsonl"), 2,
         "huge.jsonl:1: line is 17.0 MiB, over the 16 MiB limit", _huge_line, check=_absent("run")),
    Case("huge-line-import-skipped", (*_IMPORT, "huge.jsonl", "--skip-bad-lines"), 0,
         "imported 1 rollouts of 1 problems", _huge_line, check=_problems("run", 1)),
    Case("huge-line-count-asymmetries", ("count-asymmetries", "huge.jsonl"), 2,
         "huge.jsonl:1: line is 17.0 MiB", _huge_line),
    Case("huge-line-count-asymmetries-skipped", ("count-asymmetries", "huge.jsonl", "--skip-bad-lines", "--jobs", "2"),
         0, "1 bad lines skipped", _huge_line),
    # run.json edited by hand: one line naming run.json and the field, from every reader.
    Case("run-json-tokenizer-string", ("score", "run", "--budgets", "4,8"), 2,
         "run/run.json: field 'tokenizer' must be an object, not string", _edited(lambda m: {**m, "tokenizer": "t"})),
    Case("run-json-tokenizer-name-number", ("score", "run", "--budgets", "4,8"), 2,
         "run/run.json: field 'tokenizer.name_or_path' must be a string, not number",
         _edited(lambda m: {**m, "tokenizer": {**m["tokenizer"], "name_or_path": 7}})),
    Case("run-json-run-id-number", ("score", "run", "--budgets", "4,8"), 2,
         "run/run.json: field 'run_id' must be a non-empty string, not number", _edited(lambda m: {**m, "run_id": 5})),
    Case("run-json-run-id-missing", ("report", "run"), 2, "run/run.json: field 'run_id' is missing",
         _edited(_without("run_id"))),
    Case("run-json-list", ("count-asymmetries", "run"), 2, "run/run.json: must hold a JSON object",
         _edited(lambda m: [m])),
    Case("run-json-source-string", ("score", "run", "--budgets", "4,8"), 2,
         "run/run.json: field 'source' must be an object, not string", _edited(lambda m: {**m, "source": "x"})),
    Case("run-json-generation-list", ("score", "run", "--budgets", "4,8"), 2,
         "run/run.json: field 'generation' must be an object, not list", _edited(lambda m: {**m, "generation": []})),
    Case("run-json-skipped-lines-string", ("report", "run"), 2,
         "run/run.json: field 'source.skipped_lines' must be an integer, not string",
         _edited(lambda m: {**m, "source": {**m["source"], "skipped_lines": "2"}})),
    # Curriculum specs: typos, wrong hyper-parameter types, binary files, alias bombs, huge or deep files.
    Case("spec-unknown-top-field", _RUN_SPEC, 2, "algoritm (line 4): unknown field (did you mean 'algorithm'?)",
         _spec_edit("algorithm: grpo", "algoritm: grpo_mask"), program="e3train"),
    Case("spec-unknown-stage-field", _RUN_SPEC, 2, "stages[0].stepz (line 10): unknown field (did you mean 'steps'?)",
         _spec_edit("    steps: 10\n", "    steps: 10\n    stepz: 20\n"), program="e3train"),
    Case("spec-unknown-data-field", _RUN_SPEC, 2, "stages[0].data.tran (line 7): unknown field",
         _spec_edit("{train: [a.parquet], val", "{train: [a.parquet], tran: [c.parquet], val"), program="e3train"),
    Case("spec-lr-not-a-number", _RUN_SPEC, 2, "stages[0].hyper.lr (line 11): must be a positive number, not 'fast'",
         _spec_edit("lr: 1.0e-6", "lr: fast"), program="e3train"),
    Case("spec-rollout-name-sweep", _RUN_SPEC, 2, "stages[0].hyper.rollout_name (line 11): must be a plain name",
         _spec_edit("lr: 1.0e-6", "rollout_name: 'vllm,sglang'"), program="e3train"),
    Case("spec-binary", _RUN_SPEC, 2, "spec.yaml: not a UTF-8 text file (byte 4)",
         _spec(b"\x7fELF\xff\xfe\x00binary"), program="e3train"),
    Case("spec-billion-laughs", _RUN_SPEC, 2, "spec.yaml:2: not valid YAML (alias *a: aliases are not allowed",
         _spec(BILLION_LAUGHS), program="e3train"),
    Case("spec-deeply-nested", _RUN_SPEC, 2, "spec.yaml: nested too deeply",
         _spec("a: " + "[" * 50_000 + "]" * 50_000 + "\n"), program="e3train"),
    Case("spec-too-large", _RUN_SPEC, 2, "spec.yaml: larger than 1024 KiB",
         _spec(SPEC + "# padding\n" * 120_000), program="e3train"),
    # Training data splits that would be empty (column-less Parquet) or mis-split.
    Case("prepare-countdown-train-negative", ("prepare", "countdown", "--out", "cd", "--train", "-1"), 2,
         "--train -1: each split needs at least one problem", program="e3train", check=_absent("cd")),
    Case("prepare-countdown-test-negative", ("prepare", "countdown", "--out", "cd", "--test", "-3"), 2,
         "--test -3: each split needs at least one problem", program="e3train", check=_absent("cd")),
    Case("prepare-countdown-empty", ("prepare", "countdown", "--out", "cd", "--train", "0", "--test", "0"), 2,
         "--train 0, --test 0: each split needs at least one problem", program="e3train", check=_absent("cd")),
    Case("prepare-countdown-size-9", ("prepare", "countdown", "--out", "cd", "--sizes", "3,9", "--train", "2"), 2,
         "--sizes: Countdown problems have 3 to 8 numbers, got [9]", program="e3train", check=_absent("cd")),
    Case("prepare-countdown-sizes-text", ("prepare", "countdown", "--out", "cd", "--sizes", "3,,6"), 2,
         "--sizes '3,,6': expected comma-separated numbers", program="e3train", check=_absent("cd")),
    Case("prepare-mult-empty", ("prepare", "mult", "--out", "m", "--train", "0"), 2,
         "--train 0: each split needs at least one problem", program="e3train", check=_absent("m")),
    Case("prepare-mult-zero-digits", ("prepare", "mult", "--out", "m", "--digits", "0x5"), 2,
         "--digits 0x5: each factor needs at least one digit", program="e3train", check=_absent("m")),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_file(case: Case, tmp_path: Path, tiny_model_dir: Path) -> None:
    run_case(case, tmp_path, tiny_model_dir)


# --- what a row cannot check --------------------------------------------------------------------------------------


def test_a_huge_line_is_skipped_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as handle:
        handle.write(BOM + b'{"n": 1}\n\n')
        handle.write(b'{"n": "' + b"w" * (20 << 20) + b'"}\n')
        handle.write(b'{"n": 4}')  # the last line has no newline
    tracemalloc.start()
    lines = list(raw_lines(path, max_line_bytes=1 << 20))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held while skipping a 20 MiB line"
    assert [number for number, _ in lines] == [1, 3, 4], "blank lines are skipped, numbers stay the file's"
    assert lines[0][1] == b'{"n": 1}\n', "the byte-order mark is not part of line 1"
    assert isinstance(lines[1][1], OversizedLine) and lines[1][1].size == (20 << 20) + 10
    bad = BadLines()
    # read_jsonl uses the default limit: this 20 MiB line is over it too.
    assert [record["n"] for _, record in read_jsonl(path, bad)] == [1, 4]
    assert bad.count == 1 and bad.examples[0].startswith(f"{path}:3: line is 20.0 MiB, over the 16 MiB limit")


def test_a_line_at_the_limit_is_read(tmp_path: Path) -> None:
    path = tmp_path / "edge.jsonl"
    body = b'{"n": "' + b"w" * 100 + b'"}'
    path.write_bytes(body + b"\n" + body)
    assert [raw for _, raw in raw_lines(path, max_line_bytes=len(body))] == [body + b"\n", body]
    assert all(isinstance(raw, OversizedLine) for _, raw in raw_lines(path, max_line_bytes=len(body) - 1))


def test_the_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)
    started = time.monotonic()
    # A real process with a hard deadline: before the fix this document grew past 8 GB in two minutes.
    result = subprocess.run(
        [str(Path(sys.executable).parent / "e3train"), "run", "bomb.yaml", "--dry-run"],
        capture_output=True, text=True, cwd=tmp_path, timeout=30,
    )  # fmt: skip
    seconds = time.monotonic() - started
    assert result.returncode == 2 and "aliases are not allowed" in result.stderr, result.stderr[-2000:]
    assert seconds < 5, f"took {seconds:.1f} s to refuse"
    # An anchor alone repeats nothing: it stays allowed.
    from e3eval.train.curriculum import load_spec

    (tmp_path / "anchored.yaml").write_text(SPEC.replace("name: x", "name: &spec_name x"))
    assert load_spec(tmp_path / "anchored.yaml").name == "x"


def test_a_valid_run_json_still_loads_and_edits_name_every_problem(tmp_path: Path, tiny_model_dir: Path) -> None:
    from e3eval.errors import UserError
    from e3eval.run import Run

    run = Run.open(_valid_run(str(tiny_model_dir)))
    assert run.name == "run" and is_run_id(run.run_id) and run.tokenizer_name == str(tiny_model_dir.resolve())
    _edited(lambda m: {**m, "run_id": "", "tokenizer": {"class": "X"}, "kind": 3})(tmp_path, tiny_model_dir)
    with pytest.raises(UserError) as info:
        Run.open(tmp_path / "run")
    message = str(info.value)
    for expected in ("'run_id' is empty", "'kind' must be a string", "'tokenizer.name_or_path'"):
        assert expected in message, message
    assert "\n" not in message
