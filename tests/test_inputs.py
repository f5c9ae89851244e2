"""The shared input layer (`e3eval.inputs`) on real files: each format, the field map, bad lines named file:line or
counted, failed requests in the source, and the same records reaching `import` and `count-asymmetries`."""

import json
from pathlib import Path

import pytest
from conftest import write_jsonl

from e3eval.analysis.traces import TraceFields, read_traces
from e3eval.errors import UserError
from e3eval.ingest import ImportConfig
from e3eval.inputs import FieldMap, InputRecord, detect_format, read_inputs, to_record
from e3eval.jsonl import BadLines, read_jsonl

IMPORT_LIKE = FieldMap(id_field="id", answer_field="answer", problem_field="problem", error_field="error")


def _read(path: Path, fmt: str, fields: FieldMap = IMPORT_LIKE, bad: BadLines | None = None) -> list[InputRecord]:
    return list(read_inputs(path, fmt, fields, bad))


def test_detect_format(tmp_path):
    verl = write_jsonl(tmp_path / "3.jsonl", [{"input": "Q", "output": "A", "score": 1.0, "step": 3}])
    generic = write_jsonl(tmp_path / "g.jsonl", [{"id": "q", "response": "A", "input": "Q"}])
    e3 = tmp_path / "0_rollouts.json"
    e3.write_text('\n  [{"input": "Q", "output": "A", "score": 1}]')
    assert [detect_format(p) for p in (verl, generic, e3)] == ["verl", "jsonl", "e3"]


def test_generic_jsonl_every_field(tmp_path):
    fields = FieldMap(response_field="text", id_field="qid", correct_field="ok", token_ids_field="ids",
                      finish_reason_field="fr", target_field="t", group_field="g", answer_field="gold",
                      problem_field="q", sample_field="s", error_field="err")  # fmt: skip
    line = {"qid": 17, "text": "4 * 6 = 24", "ok": 1, "ids": [5, 6], "fr": "length", "t": '{"target": 24}',
            "g": "easy", "gold": 2.5, "q": "Make 24", "s": 3}  # fmt: skip
    src = tmp_path / "r.jsonl"
    src.write_text("\n" + json.dumps(line) + "\n")  # a blank first line still counts in line numbers
    [record] = _read(src, "jsonl", fields)
    assert record == InputRecord(
        f"{src}:2", 2, "4 * 6 = 24", key="17", token_ids=[5, 6], sample_idx=3, finish_reason="length", gold="2.5",
        problem_text="Make 24", correct=True, target=24.0, group="easy",
    )  # fmt: skip


def test_field_map_defaults_are_each_commands_own():
    assert TraceFields is FieldMap
    assert TraceFields("text", "qid", "ok") == FieldMap(response_field="text", id_field="qid", correct_field="ok")
    assert FieldMap() == FieldMap(response_field="response"), "count-asymmetries reads only the response by default"
    imported = ImportConfig(Path("r.jsonl"), Path("run"), "tok").fields
    assert (imported.id_field, imported.answer_field, imported.problem_field, imported.error_field) == (
        "id", "answer", "problem", "error")  # fmt: skip
    with_dataset = ImportConfig(Path("r.jsonl"), Path("run"), "tok", dataset=Path("ds.jsonl")).fields
    assert with_dataset.answer_field is None, "golds come from --dataset: records need no answer field"


def test_only_named_fields_are_read(tmp_path):
    src = write_jsonl(tmp_path / "r.jsonl", [{"response": "x", "id": [1], "answer": {}, "ok": "maybe", "s": -1}])
    [record] = _read(src, "jsonl", FieldMap())
    assert (record.key, record.gold, record.correct, record.sample_idx, record.line) == (None, None, None, None, 1)


def test_verl_dump(tmp_path):
    countdown = {"target": 24, "numbers": [3, 5, 8]}
    lines = [
        {"input": "Make 24", "output": "3 * 8 = 24", "score": 1.0, "gts": json.dumps(countdown), "step": 3},
        {"input": "Make 24", "output": "no", "score": 0, "gts": countdown, "step": 3},
        {"input": "What is 1/2?", "output": "\\boxed{1/2}", "score": "odd", "gts": "\\frac{1}{2}", "step": 3},
    ]
    src = write_jsonl(tmp_path / "3.jsonl", lines)
    records = _read(src, "verl", FieldMap(response_field="ignored"))
    assert [(r.prompt, r.response, r.score, r.correct, r.target) for r in records] == [
        ("Make 24", "3 * 8 = 24", 1.0, True, 24.0),
        ("Make 24", "no", 0.0, False, 24.0),
        ("What is 1/2?", "\\boxed{1/2}", None, None, None),
    ]
    assert [r.gold for r in records] == [json.dumps(countdown), None, "\\frac{1}{2}"], "a dict is not a gold answer"
    assert all(r.key is None for r in records)


def test_e3_rollouts(tmp_path):
    src = tmp_path / "0_rollouts.json"
    src.write_text(json.dumps([{"input": "P", "output": "\\boxed{1}", "score": 1, "index": 12},
                               {"input": "Q", "output": "o", "score": 0.0, "gts": "7"}, 5]))  # fmt: skip
    with pytest.raises(UserError, match=r"0_rollouts\.json record 2: expected a JSON object"):
        _read(src, "e3")
    bad = BadLines()
    first, second = _read(src, "e3", bad=bad)
    assert (first.key, first.prompt, first.correct, first.line, first.where) == ("12", "P", True, 0, f"{src} record 0")
    assert (second.key, second.gold, second.score) == (None, None, 0.0), "e3 files carry no gold answers"
    assert bad.count == 1


BASE = {"id": "x", "response": "Wait.", "answer": "1", "ids": [1], "s": 0, "fr": "stop"}
DROP = object()


def _line(**changes) -> bytes:
    record = {k: v for k, v in {**BASE, **changes}.items() if v is not DROP}
    return json.dumps(record).encode() + b"\n"


@pytest.mark.parametrize(
    ("fmt", "line", "message"),
    [
        ("jsonl", b"{oops\n", "invalid JSON"),
        ("jsonl", b'"text"\n', "expected a JSON object, got str"),
        ("jsonl", _line().replace(b"Wait.", b"caf\xe9"), "not valid UTF-8"),
        ("jsonl", _line(id=DROP), "missing field 'id'"),
        ("jsonl", _line(id={"a": 1}), "field 'id' must be a string, got dict"),
        ("jsonl", _line(response=DROP), "missing field 'response'"),
        ("jsonl", _line(response=3), "field 'response' must be a string, got int"),
        ("jsonl", _line(answer=DROP), "missing field 'answer'"),
        ("jsonl", _line(answer=True), "field 'answer' must be a string, got bool"),
        ("jsonl", _line(problem=[1]), "field 'problem' must be a string, got list"),
        ("jsonl", _line(ids=DROP), "field 'ids' must be a list of integer token ids"),
        ("jsonl", _line(ids=[1, True]), "field 'ids' must be a list of integer token ids"),
        ("jsonl", _line(ids="1 2"), "field 'ids' must be a list of integer token ids"),
        ("jsonl", _line(s=-1), "field 's' must be a non-negative integer"),
        ("jsonl", _line(s=1.0), "field 's' must be a non-negative integer"),
        ("jsonl", _line(fr="abort"), "field 'fr' must be one of stop, length, error"),
        ("jsonl", _line(fr=None), "field 'fr' must be one of stop, length, error"),
        ("jsonl", _line(ok="maybe"), "cannot read 'maybe' as correct/incorrect"),
        ("jsonl", _line(t="24 or so"), "cannot read a target"),
        ("verl", b'{"output": "x", "score": 1}\n', "missing field 'input'"),
        ("verl", b'{"input": {}, "output": "x", "score": 1}\n', "field 'input' must be a string, got dict"),
        ("verl", b'{"input": "Q", "score": 1}\n', "missing field 'output'"),
        ("verl", b'{"input": "Q", "output": 1, "score": 1}\n', "field 'output' must be a string"),
    ],
)
def test_bad_lines_name_file_and_line_or_are_counted(tmp_path, fmt, line, message):
    fields = FieldMap(id_field="id", answer_field="answer", problem_field="problem", token_ids_field="ids",
                      sample_field="s", finish_reason_field="fr", correct_field="ok", target_field="t")  # fmt: skip
    good = _line() if fmt == "jsonl" else b'{"input": "Q", "output": "Wait.", "score": 1}\n'
    src = tmp_path / "t.jsonl"
    src.write_bytes(good + line + good)
    with pytest.raises(UserError) as info:
        _read(src, fmt, fields)
    assert str(info.value).startswith(f"{src}:2: {message}")
    bad = BadLines()
    records = _read(src, fmt, fields, bad)
    assert [r.line for r in records] == [1, 3] and bad.count == 1
    assert bad.examples[0].startswith(f"{src}:2: {message}")
    # Worker processes parse lines themselves and go through the same rules.
    objects = dict(read_jsonl(src, BadLines()))
    if 2 in objects:
        with pytest.raises(UserError, match=message):
            to_record(objects[2], 2, f"{src}:2", fmt, fields, None)


def test_error_field_marks_a_failed_request(tmp_path):
    fields = FieldMap(id_field="id", answer_field="answer", token_ids_field="ids", finish_reason_field="fr",
                      error_field="error")  # fmt: skip
    records = [
        {"id": "a", "response": None, "answer": "1", "error": "HTTP 500: upstream timeout", "ids": "not checked"},
        {"id": "a", "response": "partial", "answer": "1", "error": {"code": 429}, "fr": "not checked"},
        {"id": "a", "response": "x", "answer": "1", "ids": [7], "fr": "error"},
        {"id": "a", "response": "x", "answer": "1", "ids": [7], "fr": "stop", "error": ""},
        {"id": "a", "response": "x", "answer": "1", "ids": [7], "fr": "stop", "error": False},
    ]
    src = write_jsonl(tmp_path / "r.jsonl", records)
    got = [(r.response, r.token_ids, r.finish_reason, r.error) for r in _read(src, "jsonl", fields)]
    assert got == [
        ("", None, "error", "HTTP 500: upstream timeout"),
        ("partial", None, "error", '{"code": 429}'),
        ("x", [7], "error", "marked 'error' by field 'fr' in the source"),
        ("x", [7], "stop", None),
        ("x", [7], "stop", None),
    ]
    without = FieldMap(id_field="id", answer_field="answer")
    with pytest.raises(UserError, match=r"r\.jsonl:1: missing field 'response'"):
        _read(src, "jsonl", without)


def test_both_commands_read_one_file_the_same_way(tmp_path):
    """count-asymmetries now reads e3 files through the shared layer too: one trace per record, grouped by prompt."""
    src = tmp_path / "0_rollouts.json"
    src.write_text(json.dumps([{"input": "P", "output": "Wait. Let me verify.", "score": 1, "index": 3},
                               {"input": "Q", "output": "no", "score": 0}]))  # fmt: skip
    traces = list(read_traces(src, TraceFields(), None))
    assert [(t.key, t.group, t.correct, t.response) for t in traces] == [
        ("3", "P", True, "Wait. Let me verify."),
        ("1", "Q", False, "no"),
    ]
    jsonl = write_jsonl(tmp_path / "t.jsonl", [{"qid": "a", "text": "x", "ok": False}, {"text": "y"}])
    with pytest.raises(UserError, match=r"t\.jsonl:2: missing field 'qid'"):
        list(read_traces(jsonl, TraceFields("text", "qid", "ok"), None))
    [trace] = read_traces(jsonl, TraceFields("text", "qid", "ok"), BadLines())
    assert (trace.key, trace.group, trace.correct) == ("a", "a", False)
