"""count-asymmetries streams: peak memory stays flat from a 200 MB to a 2 GB JSONL (slow: opt in with -m slow)."""

import json
import subprocess
import sys

import pytest

from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import reasoning_trace

PROBE = """
import resource, sys
from pathlib import Path
from e3eval.analysis.asymmetries import CountConfig, count_asymmetries
from e3eval.analysis.traces import TraceFields
config = CountConfig(Path(sys.argv[1]), "math", TraceFields(correct_field="ok"))
result = count_asymmetries(config, jobs=int(sys.argv[2]))
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(result.traces, max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children))
"""


def _write(path, megabytes: int) -> int:
    import random

    rng = random.Random(0)
    lines = [json.dumps({"response": reasoning_trace(p, 0.5, 40_000, rng), "ok": i % 2 == 0}) + "\n"
             for i, p in enumerate(demo_problems())]  # fmt: skip
    block = "".join(lines)
    count = 0
    with path.open("w") as handle:
        while handle.tell() < megabytes * 1024 * 1024:
            handle.write(block)
            count += len(lines)
    return count


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [1, 2])
def test_memory_is_flat_as_input_grows(tmp_path, jobs):
    peaks = {}
    for megabytes in (200, 2048):
        path = tmp_path / f"t{megabytes}.jsonl"
        expected = _write(path, megabytes)
        proc = subprocess.run([sys.executable, "-c", PROBE, str(path), str(jobs)], capture_output=True, text=True,
                              timeout=1800, check=True)  # fmt: skip
        traces, peak_kb = map(int, proc.stdout.split())
        assert traces == expected
        peaks[megabytes] = peak_kb / 1024
        if megabytes == 2048:
            path.unlink()
    # Ten times the input, a few MB more of per-trace counts: never the input itself.
    assert peaks[2048] - peaks[200] < 150, peaks
