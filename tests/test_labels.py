"""Run labels (`e3eval/labels.py`): what run.json says was run, the folder name only to break ties."""

from __future__ import annotations

import pytest

from e3eval.labels import forcing_label, run_label, short_model, subset_label, unique_labels
from e3eval.manifest import ForcingRecord, GenerationRecord, RunManifest


def _record(**generation: object) -> RunManifest:
    return RunManifest.from_dict({"generation": {"model": "Qwen/Qwen3-1.7B", "dataset": "aime25", **generation}})


@pytest.mark.parametrize(
    ("model", "short"),
    [("Qwen/Qwen3-1.7B", "Qwen3-1.7B"), ("/models/ckpt/step-200/", "step-200"), ("C:\\m\\e3-1.7B", "e3-1.7B"),
     ("plain", "plain"), (None, None), ("", None)],
)  # fmt: skip
def test_short_model(model, short):
    assert short_model(model) == short


def test_a_forced_subset_run_is_labelled_by_what_ran():
    record = _record(forcing={"mode": "e3eval", "wait": 2}, limit=4, problems_total=30)
    assert run_label(record, "sweep", "forced") == "Qwen3-1.7B · aime25 · wait=2 · forced · first 4/30"
    assert record.generation.subset


@pytest.mark.parametrize(
    ("fields", "subset", "text"),
    [({"shard": "0/1"}, False, None), ({"shard": "merged"}, False, None), ({"shard": "1/4"}, True, "shard 1/4"),
     ({"shard": "merged-incomplete"}, True, "shards missing"), ({"limit": 30, "problems_total": 30}, False, None),
     ({"limit": 5}, True, "first 5"), ({"limit": 4, "problems_total": 30, "shard": "0/2"}, True,
                                       "first 4/30 shard 0/2")],
)  # fmt: skip
def test_subsets(fields, subset, text):
    generation = GenerationRecord.from_dict(fields)
    assert generation.subset is subset and subset_label(generation) == text


def test_forcing_that_inserted_nothing_says_so():
    forcing = ForcingRecord(wait=2)
    assert forcing_label(forcing) == "wait=2" and forcing_label(forcing, 0) == "wait=2 (0 inserted)"
    assert forcing_label(ForcingRecord(wait=0)) is None and forcing_label(None) is None
    assert forcing_label(ForcingRecord(mode="s1", wait=1)) == "s1 wait=1"
    record = _record(forcing={"mode": "e3eval", "wait": 2}, insertions={"waits": 0, "samples_forced": 0, "samples": 8})
    assert run_label(record, "x", "prefix") == "Qwen3-1.7B · aime25 · wait=2 (0 inserted) · prefix"


def test_an_imported_run_is_its_name_and_policy():
    assert run_label(RunManifest.from_dict({"kind": "imported"}), "my-run", "prefix") == "my-run · prefix"


def test_names_break_ties_only():
    assert unique_labels(["a", "b"], ["x", "y"]) == ["a", "b"]
    assert unique_labels(["a", "a", "b"], ["x", "y", "z"]) == ["a (x)", "a (y)", "b"]
    assert unique_labels(["a", "a"], ["x", "x"]) == ["a (x) #1", "a (x) #2"]
