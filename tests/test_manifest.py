"""The typed run record (`e3eval/manifest.py`): run.json files written by the current release (kept as fixtures in
`tests/fixtures/manifests/`) read into the typed sections with the values they hold; a hand-edited or older file
reads as None / empty where it lacks or mistypes a value, never as an exception in a reader."""

import json
from pathlib import Path

from e3eval.manifest import FIXED_SETTINGS, RunManifest
from e3eval.run import Run
from e3eval.store import MANIFEST

FIXTURES = Path(__file__).parent / "fixtures" / "manifests"


def _load(name: str) -> tuple[dict, RunManifest]:
    data = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return data, RunManifest.from_dict(data)


def test_a_plain_generated_and_scored_run():
    data, record = _load("plain-generated-scored.json")
    generation = record.generation
    assert record.kind == "generated" and record.run_id == data["run_id"] and record.schema_version == 1
    assert generation.sampling.max_tokens == data["generation"]["sampling"]["max_tokens"]
    assert generation.sampling.temperature == data["generation"]["sampling"]["temperature"]
    assert generation.n == data["generation"]["n"] and generation.shard == "0/1" and generation.forcing is None
    assert generation.s1_budget is None
    assert record.tokenizer.fingerprint == data["tokenizer"]["fingerprint"]
    assert record.scoring.budgets == tuple(data["scoring"]["budgets"]) and record.scoring.policy == "prefix"
    assert record.scoring.policy_record("prefix").samples_graded == data["scoring"]["samples"]["graded"]
    assert generation.settings == {k: data["generation"].get(k) for k in (*FIXED_SETTINGS, "model_path")}


def test_a_forced_run_scored_under_two_policies():
    data, record = _load("wait-prefix-and-forced.json")
    forcing = record.generation.forcing
    assert forcing.mode == "e3eval" and forcing.wait == data["generation"]["forcing"]["wait"]
    assert forcing.think_end == "</think>" and forcing.think_end_token_ids
    assert set(record.scoring.policies) == {"prefix", "forced"}
    forced = record.scoring.policy_record("forced").forced
    assert forced is not None and forced.model == data["scoring"]["policies"]["forced"]["forced"]["model"]
    assert record.scoring.policy_record("strict").budgets == (), "a policy never scored"


def test_an_s1_run_and_an_import():
    data, record = _load("s1-generated-scored.json")
    assert record.generation.forcing.mode == "s1" and record.generation.s1_budget == 8
    assert record.generation.forcing.answer_tokens == data["generation"]["forcing"]["answer_tokens"]
    data, record = _load("imported.json")
    assert record.kind == "imported" and record.generation is None and record.scoring is None
    assert record.source.skipped_lines == 0 and record.tokenizer.name_or_path == data["tokenizer"]["name_or_path"]


def test_hand_edited_values_read_as_missing():
    data, _ = _load("plain-generated-scored.json")
    data["generation"].update(sampling="hot", n="2", forcing=[1], shard=None)
    record = RunManifest.from_dict(data)  # never raises
    assert record.generation.sampling.max_tokens is None and record.generation.n is None
    assert record.generation.forcing is None and record.generation.shard is None
    data["generation"]["sampling"] = {"max_tokens": True, "temperature": "0.6", "logprobs": 1}
    sampling = RunManifest.from_dict(data).generation.sampling
    assert (sampling.max_tokens, sampling.temperature, sampling.logprobs) == (None, None, False)
    data.update(scoring={"budgets": ["4k", 8], "policies": {"prefix": 3}}, tokenizer=None, kind=7)
    record = RunManifest.from_dict(data)
    assert record.scoring.budgets == (8,) and record.scoring.policies == {} and record.kind == "generated"
    assert record.tokenizer.fingerprint is None
    del data["generation"]
    assert RunManifest.from_dict(data).generation is None and RunManifest.from_dict(data).kind == "imported"


def test_run_reads_through_the_record(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    data = json.loads((FIXTURES / "s1-generated-scored.json").read_text(encoding="utf-8"))
    (run_dir / MANIFEST).write_text(json.dumps(data), encoding="utf-8")
    run = Run.open(run_dir)
    assert run.record.generation.s1_budget == 8 and run.samples_wanted == data["generation"]["n"]
    assert run.tokenizer_name == data["tokenizer"]["name_or_path"]
