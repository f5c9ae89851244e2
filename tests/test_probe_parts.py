"""The parts an interrupted `e3eval probe` leaves: named by the one part writer (`PREFIX-NNNNN.parquet`), read in the
order written, and the timestamp-named parts of older versions (`probes-<time_ns>.parquet`) still read and resumed from.

Real components: a tiny-model hf run, real forward passes, real Parquet parts; the interruption is a
KeyboardInterrupt raised from inside the probe's forward pass, as a killed process would stop there.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import generate_small

BUDGETS = (4, 16)
OLD_PART = "probes-1733000000000000000.parquet"  # as versions before the one part writer named parts


@pytest.fixture(scope="module")
def small_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_small(tiny_model_dir, tmp_path_factory.mktemp("parts") / "run", max_tokens=16)


def interrupt_at(monkeypatch: pytest.MonkeyPatch, call: int) -> None:
    """The forward pass of the `call`-th probed sample never finishes."""
    from e3eval.probes import forward

    real, calls = forward.token_stats, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(forward, "token_stats", interrupted)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_old_timestamp_parts_are_read_and_resumed_from(small_run, tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from e3eval.probes import forward, job

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    full = job.run_probe(job.ProbeConfig(run_dir=run, models=(str(tiny_model_dir),), budgets=BUDGETS,
                                         out=tmp_path / "full.parquet")).table.to_pylist()  # fmt: skip
    first = (full[0]["problem_id"], full[0]["sample_idx"])
    # An older version was killed after saving the first sample: its part holds that sample's rows, marked so that
    # the final table shows whether they were taken from the part (resumed) or computed again.
    old = [{**r, "mean_logprob": -123.0} for r in full if (r["problem_id"], r["sample_idx"]) == first]
    parts = run / ".probes.parquet.parts"
    parts.mkdir()
    pq.write_table(pa.Table.from_pylist(old, job.PROBE_SCHEMA), parts / OLD_PART)
    config = job.ProbeConfig(run_dir=run, models=(str(tiny_model_dir),), budgets=BUDGETS)

    monkeypatch.setattr(job, "_FLUSH_SAMPLES", 1)
    real = forward.token_stats
    interrupt_at(monkeypatch, 2)  # this version saves one more sample, then is killed too
    with pytest.raises(KeyboardInterrupt):
        job.run_probe(config)
    assert names(parts) == [OLD_PART, "probes-1733000000000000001.parquet"], "numbered past the old part"

    monkeypatch.setattr(forward, "token_stats", real)
    outcome = job.run_probe(config)
    assert (outcome.computed, outcome.reused) == (2, 2)
    assert not parts.exists()
    marked = [{**r, "mean_logprob": -123.0} if (r["problem_id"], r["sample_idx"]) == first else r for r in full]
    assert [{**r, "run_id": None} for r in pq.read_table(run / "probes.parquet").to_pylist()] == [
        {**r, "run_id": None} for r in marked
    ]


def test_new_parts_are_numbered_attempts_before_probes(small_run, tiny_model_dir, tmp_path, monkeypatch):
    import shutil

    from e3eval.probes import forward, job

    run = tmp_path / "run"
    shutil.copytree(small_run, run)
    config = job.ProbeConfig(run_dir=run, models=(str(tiny_model_dir),), budgets=BUDGETS, attempts="countdown")
    monkeypatch.setattr(job, "_FLUSH_SAMPLES", 1)
    real = forward.token_stats
    interrupt_at(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        job.run_probe(config)
    parts = run / ".probes.parquet.parts"
    assert names(parts) == [
        "attempts-00000.parquet", "attempts-00001.parquet", "probes-00000.parquet", "probes-00001.parquet",
    ]  # fmt: skip
    assert not (run / "probes.parquet").exists()

    monkeypatch.setattr(forward, "token_stats", real)
    outcome = job.run_probe(config)
    assert (outcome.computed, outcome.reused) == (2, 2)
    assert not parts.exists()
    probed = {(r["problem_id"], r["sample_idx"]) for r in pq.read_table(run / "probes.parquet").to_pylist()}
    attempted = {(r["problem_id"], r["sample_idx"]) for r in pq.read_table(run / "attempt_probes.parquet").to_pylist()}
    assert len(probed) == 4 and attempted == probed
