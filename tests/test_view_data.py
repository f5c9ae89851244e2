"""The data layer of `e3eval view` (`e3eval/view/`) against real runs: the demo's sweep, imports (a failed sample,
multi-byte text, a tokenizer that no longer loads) and a budget-forcing run of the stopping tiny model (--wait 2) scored
with forced answers and probed per token. Every number a page shows is checked against e3eval's own: the cut at B
against token-exact truncation, grades against grades.parquet, curves against `compare`, per-problem pass@1 against
the summary, steps against `count_steps`, heat against probes.parquet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import run_cli, write_jsonl

from e3eval.errors import UserError
from e3eval.records import Rollout
from e3eval.store import (
    TABLES,
    RolloutWriter,
    append_part,
    ids_sha1,
    read_row_group,
    rollout_shards,
    shard_row_groups,
)
from e3eval.tokenizers import load_tokenizer
from e3eval.truncate import PrefixDecoder
from e3eval.view.index import SampleIndex
from e3eval.view.payload import Views, compare_payload, problems_payload, runs_payload, sample_payload

STOP = 6
WAIT_BUDGETS = (8, 16, 32, 64)
UNICODE = "ab 日本語 🙂 x é ∑ → \\boxed{7}"


def _json(payload: dict) -> dict:
    """The payload as the server sends it: JSON without NaN (raises otherwise)."""
    return json.loads(json.dumps(payload, allow_nan=False))


def _rows(run: Path, name: str) -> list[dict]:
    return pq.read_table(run / name).to_pylist()


def _samples(run: Path) -> list[dict]:
    return pa.concat_tables([pq.read_table(p) for p in rollout_shards(run)]).to_pylist()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Path:
    from e3eval.dev.demo import run_demo

    out = tmp_path_factory.mktemp("view-demo")
    run_demo(out, workers=1, plot=lambda *_: [])
    return out / "sweep"


@pytest.fixture(scope="module")
def imported(tmp_path_factory, tiny_model_dir) -> Path:
    """An import with one failed sample and a multi-byte response whose budgets split characters."""
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run

    root = tmp_path_factory.mktemp("view-import")
    source = write_jsonl(root / "in.jsonl", [
        {"id": "a", "s": 0, "response": UNICODE, "answer": "7", "problem": "What is 3 + 4?"},
        {"id": "a", "s": 1, "response": None, "answer": "7", "error": "HTTP 500: upstream timeout"},
        {"id": "b", "s": 0, "response": "Wait, 1 + 2 = 3. So \\boxed{3}", "answer": "3", "problem": "1 + 2?"},
    ])  # fmt: skip
    run = root / "imported"
    import_run(ImportConfig(source, run, str(tiny_model_dir), sample_field="s"))
    score_run(run, ScoreConfig(budgets=(3, 4, 6, 64), workers=1, resamples=0))
    return run


@pytest.fixture(scope="module")
def forcing_run(tmp_path_factory) -> tuple[Path, Path]:
    """The stopping model swept with --wait 2, rescored with forced answers, probed per token."""
    from e3eval.dev.tiny_model import build_stopping_model

    root = tmp_path_factory.mktemp("view-forcing")
    model = build_stopping_model(root / "stopping", STOP)
    run = root / "wait2"
    common = ("--workers", "1", "--bootstrap", "0")
    budgets = ",".join(map(str, WAIT_BUDGETS))
    for args in (
        ("sweep", "--model", str(model), "--backend", "hf", "--dataset", "demo", "--n", "2", "--budgets", budgets,
         "--out", str(run), "--wait", "2", *common),
        ("score", str(run), "--budgets", budgets, "--policy", "forced", "--model", str(model), "--backend", "hf",
         *common),
        ("probe", str(run), "--model", str(model), "--per-token", "--device", "cpu"),
    ):  # fmt: skip
        result = run_cli("e3eval", *args)
        assert result.returncode == 0, result.stderr
    return run, model


def _decoder(run: Path) -> PrefixDecoder:
    return PrefixDecoder(load_tokenizer(json.loads((run / "run.json").read_text())["tokenizer"]["name_or_path"]))


def _check_cuts(run: Path) -> int:
    """Every sample's cut at every budget: the longest common prefix of the budget's decode and the full text, whose
    text is e3eval's truncation (less a trailing U+FFFD where the budget splits a character). Returns how many cuts
    split one."""
    views, decoder = Views([run]), _decoder(run)
    inside = 0
    for row in _samples(run):
        if row["finish_reason"] == "error":
            continue
        payload = _json(sample_payload(views, 0, row["problem_id"], row["sample_idx"], None))
        ids = row["token_ids"]
        text = decoder.decode_prefix(ids, len(ids))
        assert payload["text"] == text and payload["cuts_available"]
        assert payload["cuts"], "a scored sample has a cut at every budget"
        for cut in payload["cuts"]:
            prefix = decoder.decode_prefixes(ids, [cut["budget"]])[0]
            common = next(
                (i for i, (a, b) in enumerate(zip(prefix, text, strict=False)) if a != b), min(map(len, (prefix, text)))
            )
            assert cut["char"] == common, cut
            assert text[: cut["char"]] == (prefix.removesuffix("\ufffd") if cut["inside_char"] else prefix), cut
            inside += cut["inside_char"]
    return inside


def test_cuts_are_token_exact(demo_run, imported, forcing_run):
    assert _check_cuts(demo_run) == 0
    assert _check_cuts(forcing_run[0]) == 0
    assert _check_cuts(imported) > 0, "budgets 3, 4 and 6 split a multi-byte character of the import"


def test_grades_equal_grades_parquet_and_failed_samples_have_none(demo_run, imported):
    for run in (demo_run, imported):
        views = Views([run])
        stored = {(r["problem_id"], r["sample_idx"], r["budget"]): r for r in _rows(run, "grades.parquet")}
        shown = 0
        for row in _samples(run):
            payload = _json(sample_payload(views, 0, row["problem_id"], row["sample_idx"], "e3-math"))
            for cut in payload["cuts"]:
                grade = stored[(row["problem_id"], row["sample_idx"], cut["budget"])]
                assert {k: cut[k] for k in ("tokens_used", "finished", "answer", "correct", "status", "detail")} == {
                    k: grade[k] for k in ("tokens_used", "finished", "answer", "correct", "status", "detail")
                }
                shown += 1
            if row["finish_reason"] == "error":
                assert payload["error"] == "HTTP 500: upstream timeout" and payload["cuts"] == []
        assert shown == len(stored), "every stored grade is shown, each once"
    runs = _json(runs_payload(Views([imported])))["runs"][0]
    assert (runs["samples_stored"], runs["samples_failed"], runs["samples_missing"]) == (2, 1, 0)
    problems = {p["problem_id"]: p for p in _json(problems_payload(Views([imported]), 0))["problems"]}
    assert (problems["a"]["samples"], problems["a"]["failed"]) == (1, 1)
    assert problems["a"]["pass1"]["64"] == 1.0, "the failed sample is left out, not counted as incorrect"
    compared = _json(compare_payload(Views([imported]), "a"))["runs"][0]["samples"]
    assert [(s["sample_idx"], s["error"], s["correct_at"]) for s in compared][1] == (1, "HTTP 500: upstream timeout",
                                                                                     {})  # fmt: skip


def test_runs_curves_and_problem_pass1_are_the_summary(demo_run, forcing_run):
    import e3eval

    views = Views([demo_run, forcing_run[0]])
    runs = _json(runs_payload(views))["runs"]
    for run, entry in zip((demo_run, forcing_run[0]), runs, strict=True):
        summary = e3eval.compare([run]).summary
        policy = json.loads((run / "run.json").read_text())["scoring"]["policy"]
        assert entry["policy"] == policy and entry["path_name"] == run.name and "/" not in entry["path_name"]
        expected = summary[(summary["policy"] == policy) & summary["metric"].str.startswith("pass@")]
        points = {(c["k"], p["budget"]): p for c in entry["curves"] for p in c["points"]}
        assert len(points) == len(expected) > 0
        for row in expected.to_dict("records"):
            point = points[(row["k"], row["budget"])]
            assert point["value"] == pytest.approx(row["value"])
            assert point["ci_low"] == (None if np.isnan(row["ci_low"]) else pytest.approx(row["ci_low"]))
            assert point["n_samples"] == row["n_samples"]
        pass1 = {r["budget"]: r["value"] for r in expected.to_dict("records") if r["k"] == 1}
        problems = _json(problems_payload(views, entry["index"]))
        assert problems["budgets"] == sorted(pass1) == entry["budgets"]
        for budget, value in pass1.items():
            rates = [p["pass1"][str(budget)] for p in problems["problems"]]
            assert np.mean(rates) == pytest.approx(value), budget
    assert runs[0]["train_budget"] == 32 and runs[1]["forcing"] == "wait=2" and runs[1]["policy"] == "forced"


def test_steps_are_the_presets_counts(demo_run, imported):
    from e3eval.analysis.steps import PRESETS, count_steps

    for run in (demo_run, imported):
        views = Views([run])
        for row in _samples(run)[:8]:
            for preset in PRESETS:
                payload = _json(sample_payload(views, 0, row["problem_id"], row["sample_idx"], preset))
                counts = count_steps(payload["text"], preset)
                steps = payload["steps"]
                assert (len(steps), sum(s["verify"] for s in steps), sum(s["attempt"] for s in steps),
                        sum(s["chained"] for s in steps)) == (counts.n_steps, counts.n_verify, counts.n_attempts,
                                                              counts.n_chained)  # fmt: skip
                assert all(0 <= s["start"] <= s["end"] <= len(payload["text"]) for s in steps)
    assert any(s["verify"] for s in _json(sample_payload(Views([imported]), 0, "b", 0, "e3-math"))["steps"])


def test_forcing_run_shows_waits_forced_answers_and_heat(forcing_run):
    run, _ = forcing_run
    views = Views([run])
    record = json.loads((run / "run.json").read_text())
    wait_text = record["generation"]["forcing"]["wait_text"]
    cue_ids = record["scoring"]["forced"]["cue_ids"]
    decoder = _decoder(run)
    forced = pa.concat_tables([pq.read_table(p) for p in sorted((run / "forced").glob("part-*.parquet"))])
    forced = {(r["problem_id"], r["sample_idx"], r["budget"]): r for r in forced.to_pylist()}
    grades = {(r["problem_id"], r["sample_idx"], r["budget"]): r for r in _rows(run, "grades.parquet")}
    probes = [r for r in _rows(run, "probes.parquet") if r["token_entropy"] is not None]
    assert probes, "probe --per-token wrote per-token lists"
    for row in _samples(run):
        key = (row["problem_id"], row["sample_idx"])
        payload = _json(sample_payload(views, 0, *key, None))
        text = payload["text"]
        assert len(payload["waits"]) * 2 == len(row["inserted"]) == 4
        assert all(text[a:b] == wait_text for a, b in payload["waits"]), payload["waits"]
        assert text[payload["think_end"] :].startswith("</think>")
        shown = {f["budget"]: f for f in payload["forced"]}
        assert set(shown) == {b for (p, s, b) in forced if (p, s) == key} and shown
        for budget, answer in shown.items():
            stored = forced[(*key, budget)]
            assert answer["text"] == decoder.tokenizer.decode(
                [*cue_ids, *stored["token_ids"]], skip_special_tokens=True
            )
            assert (answer["answer"], answer["correct"]) == (grades[(*key, budget)]["answer"],
                                                             grades[(*key, budget)]["correct"])  # fmt: skip
        heat = payload["heat"]
        [probe] = [p for p in probes if (p["problem_id"], p["sample_idx"]) == key]
        assert len(heat["token_ends"]) == row["num_tokens"] and heat["token_ends"][-1] == len(text)
        assert heat["kl"] is None and "entropy" in heat["metrics"], "probed without --ref: no KL"
        nulls = [i for i, v in enumerate(heat["entropy"]) if v is None]
        assert nulls == [i for i, v in enumerate(probe["token_entropy"]) if v is None] and nulls
        assert all(row["inserted"][0] <= i < row["inserted"][1] or row["inserted"][2] <= i < row["inserted"][3]
                   for i in nulls), "the inserted tokens carry no probe values"  # fmt: skip
        assert heat["logprob"] == pytest.approx(
            [round(v, 4) if v is not None else None for v in probe["token_logprob"]]
        )
        assert ids_sha1(row["token_ids"]) != probe["ids_sha1"], "the probe fingerprints prompt + response"


def test_an_import_whose_tokenizer_is_gone_shows_its_response(tmp_path, tiny_model_dir):
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run

    tokenizer = shutil.copytree(tiny_model_dir, tmp_path / "tokenizer")
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "response": "So \\boxed{7}", "answer": "7"}])
    run = tmp_path / "gone"
    import_run(ImportConfig(source, run, str(tokenizer)))
    score_run(run, ScoreConfig(budgets=(4, 64), workers=1, resamples=0))
    shutil.rmtree(tokenizer)
    payload = _json(sample_payload(Views([run]), 0, "a", 0, None))
    assert payload["text"] == "So \\boxed{7}" and not payload["cuts_available"] and "tokenizer" in payload["cuts_note"]
    assert [(c["budget"], c["char"]) for c in payload["cuts"]] == [(4, None), (64, None)]
    assert payload["cuts"][-1]["correct"] is True, "the grades are shown without the tokenizer"
    assert payload["heat"] is None and payload["waits"] == []


def test_the_index_finds_every_sample_and_a_part_appended_later(demo_run, tmp_path):
    run = shutil.copytree(demo_run, tmp_path / "growing")
    views = Views([run])
    stored = [(r["problem_id"], r["sample_idx"]) for r in _samples(run)]
    assert views.runs[0].samples.keys() == stored, "every stored sample, in storage order"
    for pid, idx in stored[:: max(1, len(stored) // 10)]:
        assert _json(sample_payload(views, 0, pid, idx, None))["sample_idx"] == idx
    assert _json(sample_payload(views, 0, *stored[-1], None))["next"] is None
    old = _samples(run)[0]
    old.update(sample_idx=99, error=None)
    table = pa.Table.from_pylist([old], schema=TABLES["rollouts"].schema)
    append_part(run / "rollouts", table, row_group_rows=TABLES["rollouts"].row_group_rows)
    payload = _json(sample_payload(views, 0, old["problem_id"], 99, None))
    assert payload["text"] == old["response"] and payload["cuts"] == [], "a new sample, not scored yet"
    assert _json(sample_payload(views, 0, *stored[-1], None))["next"] == {"problem_id": old["problem_id"],
                                                                          "sample_idx": 99}  # fmt: skip
    problems = _json(problems_payload(views, 0))["problems"]
    assert sum(p["samples"] for p in problems) == len(stored) + 1


def test_unknown_things_are_lookup_errors_and_a_folder_that_is_no_run_is_refused(demo_run, tmp_path):
    views = Views([demo_run])
    pid, idx = views.runs[0].samples.keys()[0]
    for call in (
        lambda: problems_payload(views, 1),
        lambda: problems_payload(views, -1),
        lambda: sample_payload(views, 0, "no-such-problem", 0, None),
        lambda: sample_payload(views, 0, pid, 10_000, None),
        lambda: sample_payload(views, 0, pid, idx, "no-such-preset"),
        lambda: compare_payload(views, "no-such-problem"),
    ):
        with pytest.raises(LookupError):
            call()
    with pytest.raises(UserError, match="not-a-run"):
        Views([tmp_path / "not-a-run"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="empty: not a run directory"):
        Views([demo_run, tmp_path / "empty"])


def test_rollout_parts_are_written_in_small_row_groups_and_old_parts_still_read(demo_run, tmp_path):
    rows = _samples(demo_run)
    assert TABLES["rollouts"].row_group_rows == 16
    assert {tuple(shard_row_groups(p)) for p in rollout_shards(demo_run)} == {(16,)}, "the demo wrote 16-row parts"
    with RolloutWriter(tmp_path / "written", "r", shard_rows=40) as writer:  # the writer generate and import use
        for i, row in enumerate(rows[:8] * 5):
            writer.add(Rollout(row["problem_id"], i, row["response"], tuple(row["token_ids"]), row["finish_reason"]))
    [part] = rollout_shards(tmp_path / "written")
    assert shard_row_groups(part) == [16, 16, 8]
    assert read_row_group(part, 2, ["response"]).column("response").to_pylist() == [r["response"] for r in rows[:8]]
    # A run written before row groups were small: one 256-row part of one row group (and no `inserted` column).
    old = shutil.copytree(demo_run, tmp_path / "old")
    for shard in rollout_shards(old):
        shard.unlink()
    table = pa.Table.from_pylist((rows * 4)[:256], schema=TABLES["rollouts"].schema)
    table = table.set_column(2, "sample_idx", pa.array(range(256), pa.int32())).drop_columns(["inserted"])
    pq.write_table(table, old / "rollouts" / "part-00000.parquet")
    assert shard_row_groups(rollout_shards(old)[0]) == [256]
    index = SampleIndex(old)
    assert len(index.keys()) == 256
    for idx in (0, 17, 255):
        read = index.read(table["problem_id"][idx].as_py(), idx, ["response", "token_ids", "inserted"])
        assert read["response"] == table["response"][idx].as_py() and read["inserted"] is None
        assert read["token_ids"].tolist() == table["token_ids"][idx].as_py()


def test_char_offsets_place_every_token(tokenizer):
    decoder = PrefixDecoder(tokenizer)
    ids = tokenizer(UNICODE, add_special_tokens=False)["input_ids"]
    text = decoder.decode_prefix(ids, len(ids))
    ends = decoder.char_offsets(ids)
    assert decoder.path == "byte-table" and len(ends) == len(ids) and ends[-1] == len(text)
    for t in range(len(ids)):
        assert text[: ends[t]] == decoder.decode_prefix(ids, t + 1).removesuffix("\ufffd"), t
    assert PrefixDecoder(tokenizer, allow_fast=False).char_offsets(ids) is None


def test_problem_pass1_leaves_out_failed_forced_answers_as_the_summary_does(imported):
    from e3eval.grade_summary import FORCED_FAILED, problem_pass1

    grades = pq.read_table(imported / "grades.parquet")
    before = problem_pass1(grades)
    assert before[64] == {"a": 1.0, "b": 1.0}
    failed = next(g for g in grades.to_pylist() if (g["problem_id"], g["budget"]) == ("a", 64))
    failed.update(sample_idx=7, correct=None, status="error", detail=f"{FORCED_FAILED}: HTTP 500")
    wrong = {**failed, "sample_idx": 8, "detail": None}
    assert problem_pass1(pa.concat_tables([grades, pa.Table.from_pylist([failed], grades.schema)])) == before
    counted = problem_pass1(pa.concat_tables([grades, pa.Table.from_pylist([wrong], grades.schema)]))
    assert counted[64]["a"] == 0.5, "an ungraded answer counts as incorrect"


def test_problem_rows_flag_long_problems_and_list_answers(demo_run):
    payload = _json(problems_payload(Views([demo_run]), 0))
    assert len(payload["problems"]) == 16 and payload["train_budget"] == 32
    row = payload["problems"][0]
    assert row["answers"] and len(row["answers"]) <= 8 and row["samples"] == 4 and row["failed"] == 0
    assert 0 <= row["finished"] <= 1 and row["mean_tokens"] > 0 and not row["problem_truncated"]
    grades = [g for g in _rows(demo_run, "grades.parquet") if g["problem_id"] == row["problem_id"]]
    largest = max(g["budget"] for g in grades)
    at_largest = [g for g in grades if g["budget"] == largest and g["answer"] is not None]
    assert {a["answer"] for a in row["answers"]} == {g["answer"] for g in at_largest}
    for shown in row["answers"]:
        given = [g for g in at_largest if g["answer"] == shown["answer"]]
        assert shown["count"] == len(given) and shown["correct"] == any(g["correct"] for g in given)


def test_runs_loading_tokenizers_at_once_in_a_fresh_process_all_get_one(demo_run, tmp_path):
    """The preload thread loads one run's tokenizer while a request loads another's: transformers imports its classes
    lazily, and two threads doing so at once in a fresh process once left a run without cuts (ImportError)."""
    import subprocess
    import sys

    second = tmp_path / "second"
    shutil.copytree(demo_run, second)
    script = (
        "import sys, threading\n"
        "from e3eval.view.payload import Views\n"
        "views = Views(sys.argv[1:])\n"
        "thread = views.preload()\n"
        "reasons = [views.runs[-1].decoder()[2]]\n"
        "thread.join()\n"
        "reasons += [run.decoder()[2] for run in views.runs]\n"
        "print(reasons)\n"
        "assert reasons == [None] * len(reasons), reasons\n"
    )
    runs = [str(demo_run), str(second), str(demo_run)]
    done = subprocess.run([sys.executable, "-c", script, *runs], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_run_deleted_while_served_leaves_the_others_shown(demo_run, tmp_path):
    """Runs, compare: a run that is gone (or broken) gets a card or column saying so; the other runs still show."""
    kept, gone = tmp_path / "kept", tmp_path / "gone"
    shutil.copytree(demo_run, kept)
    shutil.copytree(demo_run, gone)
    views = Views([kept, gone])
    assert [r.get("error") for r in runs_payload(views)["runs"]] == [None, None]
    shutil.rmtree(gone)
    runs = _json(runs_payload(views))["runs"]
    assert runs[0]["path_name"] == "kept" and runs[0]["curves"] and "error" not in runs[0]
    assert runs[1]["path_name"] == "gone" and runs[1]["error"] == "not readable now: its folder is gone"
    compared = _json(compare_payload(views, "demo-01"))
    assert [bool(r["samples"]) for r in compared["runs"]] == [True, False]
    assert compared["runs"][1]["note"] == "not readable now: its folder is gone"
    with pytest.raises(UserError, match="cannot read gone: not readable now"):
        from e3eval.view.static_export import export_static

        export_static(views, tmp_path / "copy")


def test_corrupt_grades_are_not_called_a_rescoring(demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(demo_run, run)
    (run / "grades.parquet").write_bytes(b"PAR1 not a table")
    payload = _json(problems_payload(Views([run]), 0))
    assert payload["note"].startswith("grades unreadable") and "e3eval score" in payload["note"]
    assert "rescored" not in payload["note"]
