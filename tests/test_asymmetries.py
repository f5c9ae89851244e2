"""`count-asymmetries` and `unique-attempts` on real files: JSONL, verl dumps, run directories, budgets with a real
tokenizer, bad input, parallel workers, and the command line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl
from tests_support import MATH_TRACE

from e3eval.analysis.asymmetries import CountConfig, count_asymmetries, summarize_steps, write_rows
from e3eval.analysis.steps import count_steps
from e3eval.analysis.traces import TraceFields
from e3eval.analysis.unique_attempts import unique_attempts
from e3eval.errors import UserError

E3EVAL = str(Path(sys.executable).parent / "e3eval")
FIELDS = TraceFields(id_field="qid", correct_field="ok")


def _records():
    return [
        {"qid": "a", "response": MATH_TRACE, "ok": True},
        {"qid": "b", "response": "Wait.\nLet me verify.\nHmm.", "ok": False},
        {"qid": "c", "response": "", "ok": 0},
        {"qid": "d", "response": "plain text", "ok": 1.0},
    ]


def test_jsonl_rows_in_input_order(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _records())
    result = count_asymmetries(CountConfig(src, "math", FIELDS))
    rows = result.table.to_pylist()
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["index"] for r in rows] == [0, 1, 2, 3]
    assert [r["correct"] for r in rows] == [True, False, False, True]
    assert rows[0]["n_verify"] == count_steps(MATH_TRACE, "math").n_verify
    # "Hmm." alone is no longer an attempt (math lexicon chosen on labelled traces): only "Wait." counts.
    assert (rows[1]["n_verify"], rows[1]["n_attempts"], rows[1]["n_chained"]) == (1, 1, 1)
    assert rows[2]["empty"] is True and rows[2]["n_steps"] == 0
    assert rows[0]["ngram_loop"] is None and rows[0]["n_tokens"] is None, "no token ids, no tokenizer: unknown"
    summary = {(r.budget, r.group): r for r in summarize_steps(result.table)}
    assert summary[(None, "correct")].n == 2 and summary[(None, "incorrect")].n == 2
    assert summary[(None, "incorrect")].stats["n_verify"] == (0.5, 0.5)


def test_parallel_workers_match_sequential(tmp_path, monkeypatch):
    from e3eval.analysis import asymmetries

    monkeypatch.setattr(asymmetries, "_CHUNK_BYTES", 1024)  # several small chunks, and over the parallel threshold
    records = _records() * 40
    src = write_jsonl(tmp_path / "t.jsonl", records)
    one = count_asymmetries(CountConfig(src, "e3-math", FIELDS), jobs=1).table
    two = count_asymmetries(CountConfig(src, "e3-math", FIELDS), jobs=2).table
    assert one.to_pylist() == two.to_pylist()


def test_out_files_csv_and_parquet(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _records())
    result = count_asymmetries(CountConfig(src, "e3-math", FIELDS))
    write_rows(tmp_path / "rows.parquet", result.table)
    write_rows(tmp_path / "rows.csv", result.table)
    table = pq.read_table(tmp_path / "rows.parquet")
    assert {"id", "n_verify", "n_attempts", "n_chained", "budget", "correct"} <= set(table.column_names)
    header = (tmp_path / "rows.csv").read_text().splitlines()[0]
    assert '"n_verify"' in header and '"n_attempts"' in header
    with pytest.raises(UserError, match=r"must end in \.csv or \.parquet"):
        write_rows(tmp_path / "rows.txt", result.table)


def test_budgets_count_only_the_prefix_with_a_real_tokenizer(tmp_path, tiny_model_dir, tokenizer):
    text = "First line.\n" + "Wait, let me verify this.\n" * 3 + "filler " * 200 + "\nWait again.\nLet me check."
    src = write_jsonl(tmp_path / "t.jsonl", [{"response": text}])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    budgets = (8, 40, len(ids))
    result = count_asymmetries(CountConfig(src, "math", TraceFields(), budgets, str(tiny_model_dir)))
    rows = result.table.to_pylist()
    assert [r["budget"] for r in rows] == list(budgets)
    for row, budget in zip(rows, budgets, strict=True):
        prefix = tokenizer.decode(ids[:budget], skip_special_tokens=True)
        assert row["n_verify"] == count_steps(prefix, "math").n_verify
        assert row["n_tokens"] == min(budget, len(ids))
    assert rows[0]["n_verify"] < rows[-1]["n_verify"] == 4
    with pytest.raises(UserError, match="needs a tokenizer"):
        count_asymmetries(CountConfig(src, "math", TraceFields(), budgets))


def test_run_directory_uses_grades_per_budget(tmp_path, tiny_model_dir, tokenizer):
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run

    records = [
        {"id": "p", "response": "Wait, is it 3?\nLet me verify: \\boxed{3}", "answer": "3"},
        {"id": "p", "response": "Let me try.\n\\boxed{4}", "answer": "3"},
    ]
    src = write_jsonl(tmp_path / "r.jsonl", records)
    run = tmp_path / "run"
    import_run(ImportConfig(src, run, str(tiny_model_dir)))
    score_run(run, ScoreConfig(budgets=(4, 64), workers=1, resamples=0))
    result = count_asymmetries(CountConfig(run, "math", budgets=(4, 64)))
    rows = {(r["id"], r["budget"]): r for r in result.table.to_pylist()}
    assert rows[("p#0", 64)]["correct"] is True and rows[("p#1", 64)]["correct"] is False
    assert rows[("p#0", 4)]["correct"] is False, "at 4 tokens the box is not written yet"
    assert rows[("p#0", 64)]["n_verify"] == 1 and rows[("p#0", 64)]["finished"] is True


def test_verl_dump_input(tmp_path):
    lines = [{"input": "Q1", "output": "Wait.\nLet me verify.", "score": 1.0, "gts": "5", "step": 3},
             {"input": "Q1", "output": "no markers", "score": 0.0, "gts": "5", "step": 3}]  # fmt: skip
    src = write_jsonl(tmp_path / "3.jsonl", lines)
    rows = count_asymmetries(CountConfig(src, "math")).table.to_pylist()
    assert [(r["correct"], r["n_verify"]) for r in rows] == [(True, 1), (False, 0)]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b"{oops\n", "t.jsonl:2: invalid JSON"),
        (b'{"qid": "x", "ok": true}\n', "t.jsonl:2: missing field 'response'"),
        (b'{"qid": "x", "response": 3}\n', "t.jsonl:2: field 'response' must be a string"),
        (b'{"qid": "x", "response": "caf\xe9"}\n', "t.jsonl:2: not valid UTF-8"),
        (b'{"qid": "x", "response": "x", "ok": "maybe"}\n', "t.jsonl:2: cannot read 'maybe'"),
    ],
)
@pytest.mark.parametrize("jobs", [1, 2])
def test_bad_lines_name_file_and_line_or_are_counted(tmp_path, line, message, jobs, monkeypatch):
    from e3eval.analysis import asymmetries

    monkeypatch.setattr(asymmetries, "_CHUNK_BYTES", 16)  # one line per chunk: jobs=2 really uses the workers
    good = json.dumps({"qid": "g", "response": "Wait."}).encode() + b"\n"
    src = tmp_path / "t.jsonl"
    src.write_bytes(good + line + good)
    with pytest.raises(UserError, match=message.replace(".", r"\.")):
        count_asymmetries(CountConfig(src, "math", FIELDS), jobs=jobs)
    result = count_asymmetries(CountConfig(src, "math", FIELDS, skip_bad_lines=True), jobs=jobs)
    assert result.traces == 2 and result.skipped.count == 1
    assert result.skipped.examples[0].startswith(f"{src}:2: ")


def test_huge_single_line(tmp_path):
    text = ("Wait, let me verify the sum. " * 20 + "\n") * 20_000  # one 12 MB JSON line
    src = write_jsonl(tmp_path / "t.jsonl", [{"response": text}])
    [row] = count_asymmetries(CountConfig(src, "math")).table.to_pylist()
    assert row["n_verify"] == 400_000 and row["n_attempts"] == 400_000, "the math preset counts sentences"
    assert row["repeats_e3"] is True


def test_unique_attempts_across_training_steps(tmp_path):
    def dump(step, rows):
        return write_jsonl(tmp_path / f"{step}.jsonl", [
            {"input": q, "output": out, "score": score, "gts": json.dumps({"target": 24, "numbers": [3, 5, 8]})}
            for q, out, score in rows
        ])  # fmt: skip

    hard, easy = "Make 24 from 3 5 8", "Make 24 from 4 6"
    d0 = dump(0, [(hard, "3 + 5 = 8\n\n8 + 8 = 16", 0.0), (easy, "4 * 6 = 24", 1.0)])
    d1 = dump(1, [(hard, "3 + 5 = 8\n\n5 * 8 = 40", 0.0), (easy, "4 * 6 = 24", 1.0)])
    d2 = dump(2, [(hard, "8 - 5 = 3", 0.0), (hard, "3 * 8 = 24", 1.0)])
    points = unique_attempts([d0, d1, d2], TraceFields())
    assert [p.mean_unique for p in points] == [2.0, 3.0, 4.0]
    assert all(p.n_problems == 1 for p in points), "the easy problem is solved every time and is left out"


def test_cli_count_asymmetries(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _records())
    out = tmp_path / "rows.csv"
    proc = subprocess.run([E3EVAL, "count-asymmetries", str(src), "--id-field", "qid", "--correct-field", "ok",
                           "--preset", "e3-math", "--out", str(out)], capture_output=True, text=True,
                          env={"COLUMNS": "200", "PATH": str(Path(sys.executable).parent)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "incorrect" in proc.stdout and "4 traces" in proc.stdout and "1 empty" in proc.stdout
    assert len(out.read_text().splitlines()) == 5
    bad = subprocess.run([E3EVAL, "count-asymmetries", str(src), "--preset", "chess"], capture_output=True,
                         text=True)  # fmt: skip
    assert bad.returncode == 2 and "unknown preset" in bad.stderr and "Traceback" not in bad.stderr


def _cli(*args: str, columns: int = 80) -> subprocess.CompletedProcess:
    return subprocess.run([E3EVAL, "count-asymmetries", *args], capture_output=True, text=True,
                          env={"COLUMNS": str(columns), "PATH": str(Path(sys.executable).parent)})  # fmt: skip


def _header(stdout: str) -> list[str]:
    return next(line for line in stdout.splitlines() if line.lstrip().startswith("budget ")).split()


def test_cli_legend_explains_columns_unknown_and_dashes(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _records())
    proc = _cli(str(src))
    assert proc.returncode == 0, proc.stderr
    assert _header(proc.stdout) == ["budget", "group", "n", "verify", "attempts", "chained", "repeat", "%", "tokens"]
    legend = " ".join(proc.stdout.split())  # the legend wraps at 80 columns
    assert "unknown = the traces carry no correctness field: give --correct-field NAME" in legend
    assert "- for unknown: the share is taken over incorrect traces" in legend
    assert "- = no token ids: give --token-ids-field or --tokenizer" in legend
    assert "verify per trace, mean / median: sentences with a verification phrase" in legend
    assert re.search(r"\d+/\d+ B, 4 traces", proc.stderr), "the progress bar says its unit"
    graded = _cli(str(src), "--correct-field", "ok", "--id-field", "qid")
    legend = " ".join(graded.stdout.split())
    assert "correct / incorrect: from --correct-field" in legend and "unknown =" not in legend
    assert "- for correct: the share is taken over incorrect traces" in legend


def test_cli_e3_rule_shows_its_one_counter_once(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _records())
    proc = _cli(str(src), "--preset", "e3-math", "--correct-field", "ok")
    assert proc.returncode == 0, proc.stderr
    assert _header(proc.stdout) == ["budget", "group", "n", "flagged", "chained", "repeat", "%", "tokens"]
    legend = " ".join(proc.stdout.split())
    assert "flagged per trace, mean / median: lines with 'wait' or 'approximation'" in legend
    assert "the e3 rule counts each as a verification and an attempt" in legend
    rows = count_asymmetries(CountConfig(src, "e3-math", FIELDS)).table
    assert rows.column("n_verify").to_pylist() == rows.column("n_attempts").to_pylist(), "one count under two names"


def test_cli_on_labelled_traces_warns_about_the_counted_field(shared_data):
    src = shared_data / "labelled-traces" / "r1-distill-qwen-14b.jsonl"
    proc = _cli(str(src))
    assert proc.returncode == 0, proc.stderr
    warnings = " ".join(proc.stderr.split())
    assert ("warning: field 'response' (the default --response-field) includes the prompt (it starts with field "
            "'question')") in warnings  # fmt: skip
    assert "the traces have a 'thinking' field that is not counted: --response-field thinking" in warnings
    assert "MB, 300 traces" in warnings
    for text in (proc.stdout, proc.stderr):
        assert "…" not in text and all(len(line) <= 80 for line in text.splitlines())
    thinking = _cli(str(src), "--response-field", "thinking", "--preset", "e3-math")
    assert thinking.returncode == 0 and "warning" not in thinking.stderr, "the model restating the question is fine"


@pytest.mark.parametrize(
    ("record", "warned"),
    [
        ({"question": "What is two plus two, exactly?", "response": "<|im_start|>user\nWhat is two plus two, "
          "exactly?<|im_end|>\n<|im_start|>assistant\nFour."}, "starts with field 'question'"),
        ({"prompt": "Compute the sum of 3 and 4 please.", "response": "Compute the sum of 3 and 4 please. Seven."},
         "starts with field 'prompt'"),
        ({"response": "<｜User｜>hi<｜Assistant｜>hello"}, "opens with a chat user turn '<｜User｜>'"),
        ({"question": "What is two plus two, exactly?", "response": "So the question: What is two plus two, "
          "exactly? Four."}, None),
        ({"problem": "short", "response": "short answer"}, None),
    ],
)  # fmt: skip
def test_field_warnings_tell_a_prompt_from_a_restated_question(tmp_path, record, warned):
    from e3eval.analysis.traces import field_warnings

    src = write_jsonl(tmp_path / "t.jsonl", [record])
    found = field_warnings(src, TraceFields())
    prompt = [w for w in found if "includes the prompt" in w]
    assert len(prompt) == (warned is not None)
    if warned:
        assert warned in prompt[0]
    assert count_asymmetries(CountConfig(src, "math")).warnings == found


def test_progress_units_follow_the_input(tmp_path):
    src = write_jsonl(tmp_path / "t.jsonl", _records())
    result = count_asymmetries(CountConfig(src, "math", FIELDS))
    assert (result.unit, result.read) == ("bytes", src.stat().st_size)
    dump = write_jsonl(tmp_path / "3.jsonl", [{"input": "Q", "output": "Wait.", "score": 1.0}])
    assert count_asymmetries(CountConfig(dump, "math")).unit == "bytes"
