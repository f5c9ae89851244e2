"""`e3eval import`: every supported format, gold answers from records or a dataset, and bad input."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl

from e3eval.errors import UserError
from e3eval.ingest import ImportConfig, detect_format, import_run
from e3eval.store import is_run_id, iter_rollout_batches, read_manifest, read_problems


def _rows(run_dir: Path) -> list[dict]:
    return [
        r
        for b in iter_rollout_batches(
            run_dir,
            ["problem_id", "sample_idx", "response", "token_ids", "num_tokens", "finish_reason", "source_score"],
        )
        for r in b.to_pylist()
    ]


def test_generic_jsonl_retokenizes_and_records_it(tmp_path, tiny_model_dir, tokenizer):
    src = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"qid": "a", "text": "so \\boxed{1}", "gold": "1"},
            {"qid": "a", "text": "", "gold": "1"},
            {"qid": "b", "text": "ж 🚀 \\boxed{2}", "gold": 2},
        ],
    )
    result = import_run(
        ImportConfig(
            src, tmp_path / "run", str(tiny_model_dir), id_field="qid", response_field="text", answer_field="gold"
        )
    )
    assert (result.problems, result.rollouts, result.format) == (2, 3, "jsonl")
    manifest = read_manifest(tmp_path / "run")
    assert manifest["token_ids_source"] == "retokenized"
    assert manifest["source"]["sha256"]
    rows = _rows(tmp_path / "run")
    assert [(r["problem_id"], r["sample_idx"]) for r in rows] == [("a", 0), ("a", 1), ("b", 0)]
    assert rows[1]["token_ids"] == [] and rows[1]["num_tokens"] == 0
    assert rows[2]["token_ids"] == tokenizer.encode("ж 🚀 \\boxed{2}", add_special_tokens=False)
    assert {p.problem_id: p.answer for p in read_problems(tmp_path / "run")} == {"a": "1", "b": "2"}
    schema = pq.read_schema(next((tmp_path / "run" / "rollouts").glob("part-*.parquet")))
    assert str(schema.field("token_ids").type) == "list<element: int32>"


def test_generic_jsonl_with_token_ids_samples_and_finish(tmp_path, tiny_model_dir, tokenizer):
    ids = tokenizer.encode("text \\boxed{3}", add_special_tokens=False)
    src = write_jsonl(
        tmp_path / "r.jsonl",
        [
            {"id": "p", "response": "text \\boxed{3}", "ids": ids, "s": 5, "fr": "length", "answer": "3"},
            {"id": "p", "response": "text \\boxed{3}", "ids": ids, "s": 2, "fr": "stop", "answer": "3"},
        ],
    )
    import_run(
        ImportConfig(
            src,
            tmp_path / "run",
            str(tiny_model_dir),
            token_ids_field="ids",
            sample_field="s",
            finish_reason_field="fr",
        )
    )
    rows = _rows(tmp_path / "run")
    assert [(r["sample_idx"], r["finish_reason"], r["token_ids"]) for r in rows] == [
        (5, "length", ids),
        (2, "stop", ids),
    ]
    assert read_manifest(tmp_path / "run")["token_ids_source"] == "imported"


def test_max_tokens_marks_cut_responses(tmp_path, tiny_model_dir, tokenizer):
    long = "wait " * 50
    src = write_jsonl(
        tmp_path / "r.jsonl",
        [{"id": "p", "response": long, "answer": "1"}, {"id": "p", "response": "ok", "answer": "1"}],
    )
    n = len(tokenizer.encode(long, add_special_tokens=False))
    import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir), max_tokens=n))
    assert [r["finish_reason"] for r in _rows(tmp_path / "run")] == ["length", "stop"]


def test_verl_dump_groups_by_prompt_and_keeps_scores(tmp_path, tiny_model_dir):
    recs = []
    for j, (prompt, gts) in enumerate(
        [("<|im_start|>user\nWhat is 1+1?", "2"), ("<|im_start|>user\nWhat is 2+2?", "4")]
    ):
        for s in range(3):
            recs.append(
                {"input": prompt, "output": f"\\boxed{{{j + s}}}", "gts": gts, "score": float(s == 2), "step": 7}
            )
    recs = recs[::2] + recs[1::2]  # verl's batch balancing reorders rollout dumps
    src = write_jsonl(tmp_path / "7.jsonl", recs)
    assert detect_format(src) == "verl"
    result = import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir)))
    assert (result.format, result.problems, result.rollouts) == ("verl", 2, 6)
    problems = read_problems(tmp_path / "run")
    assert sorted(p.answer for p in problems) == ["2", "4"]
    assert all(p.prompt.startswith("<|im_start|>") for p in problems)
    rows = _rows(tmp_path / "run")
    assert sorted((r["problem_id"], r["sample_idx"]) for r in rows) == [
        (p, s) for p in ("p00000", "p00001") for s in range(3)
    ]
    assert {r["source_score"] for r in rows} == {0.0, 1.0}


def test_e3_rollouts_json_with_dataset_golds(tmp_path, tiny_model_dir):
    dataset = write_jsonl(
        tmp_path / "ds.jsonl",
        [
            {"id": "q1", "problem": "What is $17 \\times 23$?", "answer": "391"},
            {"id": "q2", "problem": "Compute 2+2.", "answer": "4"},
        ],
    )
    template = "You will be given a math problem. Solve the problem step by step. Problem: {}"
    records = [
        {
            "input": template.format("What is $17 \\times 23$?"),
            "output": f"\\boxed{{{391 + i}}}",
            "score": float(i == 0),
        }
        for i in range(4)
    ]
    records += [{"input": template.format("Compute 2+2."), "output": "\\boxed{4}", "score": 1.0} for _ in range(4)]
    src = tmp_path / "0_rollouts.json"
    src.write_text(json.dumps(records))
    result = import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir), dataset=dataset))
    assert (result.format, result.problems, result.rollouts) == ("e3", 2, 8)
    assert {p.problem_id: p.answer for p in read_problems(tmp_path / "run")} == {"q1": "391", "q2": "4"}


def test_e3_rollouts_index_field_names_problems(tmp_path, tiny_model_dir):
    records = [{"input": "P", "output": "\\boxed{1}", "score": 1.0, "index": 12} for _ in range(2)]
    src = tmp_path / "x.json"
    src.write_text(json.dumps(records))
    dataset = write_jsonl(tmp_path / "ds.jsonl", [{"id": "12", "problem": "unrelated", "answer": "1"}])
    import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir), dataset=dataset))
    assert [p.problem_id for p in read_problems(tmp_path / "run")] == ["12"]


# ---- bad input ---------------------------------------------------------------------------------------------------


def _import(tmp_path, tiny_model_dir, lines: bytes, **kw):
    src = tmp_path / "bad.jsonl"
    src.write_bytes(lines)
    return src, import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir), **kw))


GOOD = b'{"id": "p", "response": "\\\\boxed{1}", "answer": "1"}\n'


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (b'{"id": "p", "response": \n', "invalid JSON"),
        (b'["not", "an", "object"]\n', "expected a JSON object"),
        (b'{"id": "p", "answer": "1"}\n', "missing field 'response'"),
        (b'{"id": "p", "response": 5, "answer": "1"}\n', "field 'response' must be a string"),
        (b'{"response": "x", "answer": "1"}\n', "missing field 'id'"),
        (b'{"id": "p", "response": "x"}\n', "missing field 'answer'"),
        (b'{"id": "p", "response": "caf\xe9", "answer": "1"}\n', "not valid UTF-8"),
    ],
)
def test_bad_line_names_file_and_line(tmp_path, tiny_model_dir, bad_line, message):
    with pytest.raises(UserError) as info:
        _import(tmp_path, tiny_model_dir, GOOD + bad_line + GOOD)
    assert f"bad.jsonl:2: {message}" in str(info.value)
    assert not (tmp_path / "run").exists(), "a failed import leaves no half-built run behind"


def test_skip_bad_lines_counts_them(tmp_path, tiny_model_dir):
    lines = GOOD + b"{oops\n" + b'{"id": "q", "response": "caf\xe9", "answer": "1"}\n' + GOOD.replace(b'"p"', b'"r"')
    _, result = _import(tmp_path, tiny_model_dir, lines, skip_bad_lines=True)
    assert result.rollouts == 2 and result.skipped.count == 2
    manifest = read_manifest(tmp_path / "run")
    assert manifest["source"]["skipped_lines"] == 2
    assert manifest["source"]["skipped_examples"][0].endswith(
        "bad.jsonl:2: invalid JSON (Expecting property name enclosed in double quotes at column 2)"
    )


def test_duplicate_samples_and_conflicting_golds(tmp_path, tiny_model_dir):
    with pytest.raises(UserError, match="duplicate sample 0"):
        _import(tmp_path, tiny_model_dir, GOOD.replace(b"}\n", b', "s": 0}\n') * 2, sample_field="s")
    with pytest.raises(UserError, match="conflicts"):
        _import(tmp_path, tiny_model_dir, GOOD + GOOD.replace(b'"answer": "1"', b'"answer": "2"'))


def test_token_ids_out_of_vocab(tmp_path, tiny_model_dir):
    line = b'{"id": "p", "response": "x", "ids": [1, 999999], "answer": "1"}\n'
    with pytest.raises(UserError, match=r"bad\.jsonl:1: token ids must be integers"):
        _import(tmp_path, tiny_model_dir, line, token_ids_field="ids")


def test_missing_golds_with_prompt_formats(tmp_path, tiny_model_dir):
    src = tmp_path / "e3.json"
    src.write_text(json.dumps([{"input": "P", "output": "o", "score": 0}]))
    with pytest.raises(UserError, match="no gold answer for 1 problem"):
        import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir)))


def test_existing_run_dir_needs_force(tmp_path, tiny_model_dir):
    _import(tmp_path, tiny_model_dir, GOOD)
    with pytest.raises(UserError, match="already exists"):
        _import(tmp_path, tiny_model_dir, GOOD)
    _, result = _import(tmp_path, tiny_model_dir, GOOD * 1, force=True)
    assert result.rollouts == 1


def test_empty_file_and_bad_tokenizer(tmp_path, tiny_model_dir):
    with pytest.raises(UserError, match="no usable records"):
        _import(tmp_path, tiny_model_dir, b"\n\n")
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "p", "response": "x", "answer": "1"}])
    with pytest.raises(UserError, match="cannot load tokenizer"):
        import_run(ImportConfig(src, tmp_path / "run2", str(tmp_path / "nope")))


def test_generic_jsonl_with_golds_from_a_parquet_dataset(tmp_path, tiny_model_dir):
    import pyarrow as pa

    dataset = tmp_path / "ds.parquet"
    pq.write_table(pa.table({"id": ["q1", "q2"], "problem": ["A", "B"], "answer": ["073", "\\frac{1}{2}"]}), dataset)
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "q1", "response": "\\boxed{73}"}, {"id": "q2", "response": "x"}])
    import_run(ImportConfig(src, tmp_path / "run", str(tiny_model_dir), dataset=dataset))
    problems = {p.problem_id: (p.answer, p.problem) for p in read_problems(tmp_path / "run")}
    assert problems == {"q1": ("073", "A"), "q2": ("\\frac{1}{2}", "B")}
    src = write_jsonl(tmp_path / "s.jsonl", [{"id": "q9", "response": "x"}])
    with pytest.raises(UserError, match="not in --dataset"):
        import_run(ImportConfig(src, tmp_path / "run2", str(tiny_model_dir), dataset=dataset))


# ---- --force never loses data (issue 11 item 1) -------------------------------------------------------------------


def test_force_refuses_an_output_that_holds_the_input(tmp_path, tiny_model_dir):
    from conftest import run_cli

    folder = tmp_path / "d"
    folder.mkdir()
    pool = folder / "pool.jsonl"
    pool.write_bytes(GOOD)
    (folder / "notes.txt").write_text("mine")
    result = run_cli("e3eval", "import", str(pool), "--out", str(folder), "--tokenizer", str(tiny_model_dir), "--force")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "contains or lies inside the input" in result.stderr
    assert pool.read_bytes() == GOOD and (folder / "notes.txt").read_text() == "mine"
    dataset = write_jsonl(folder / "ds.jsonl", [{"id": "p", "problem": "P", "answer": "1"}])
    src = write_jsonl(tmp_path / "r.jsonl", [{"id": "p", "response": "x"}])
    with pytest.raises(UserError, match="contains or lies inside the input"):
        import_run(ImportConfig(src, folder, str(tiny_model_dir), dataset=dataset, force=True))
    assert sorted(p.name for p in folder.iterdir()) == ["ds.jsonl", "notes.txt", "pool.jsonl"], "the dataset counts"


def test_force_replaces_only_a_run(tmp_path, tiny_model_dir):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "paper.tex").write_text("draft")
    with pytest.raises(UserError, match="not an e3eval run"):
        _import(tmp_path, tiny_model_dir, GOOD, force=True)
    assert [p.name for p in folder.iterdir()] == ["paper.tex"]


def test_failed_forced_import_leaves_the_old_run_intact_and_success_replaces_it(tmp_path, tiny_model_dir):
    from e3eval.score import ScoreConfig, score_run

    run = tmp_path / "run"
    _import(tmp_path, tiny_model_dir, GOOD + GOOD.replace(b'"p"', b'"q"'))
    score_run(run, ScoreConfig(budgets=(32,), workers=1, resamples=0))
    before = {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert {Path("grades.parquet"), Path("summary.parquet")} <= set(before)
    with pytest.raises(UserError, match=r"bad\.jsonl:2: invalid JSON"):
        _import(tmp_path, tiny_model_dir, GOOD + b"{oops\n" + GOOD, force=True)
    assert {p.relative_to(run): p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not list(tmp_path.glob(".run.building-*")), "the half-built folder is removed"
    _, result = _import(tmp_path, tiny_model_dir, GOOD.replace(b'"p"', b'"r"'), force=True)
    assert result.run_dir == run and result.rollouts == 1
    assert [p.problem_id for p in read_problems(run)] == ["r"]
    assert not (run / "grades.parquet").exists(), "the old run's grades went with it"
    assert is_run_id(read_manifest(run)["run_id"]) and "name" not in read_manifest(run)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".run.") and "lock" not in p.name]
