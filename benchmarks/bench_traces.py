"""Benchmark: `count-asymmetries` throughput on a large JSONL against a naive per-marker baseline.

Input: `--mb` megabytes of JSONL, one synthetic reasoning trace per line (`e3eval/dev/synthetic.py`: paragraphs of LaTeX
arithmetic with "Wait", "Let me double-check", "Alternatively", boxed guesses; 10-60 KB per trace), with a
`correct` flag. Both sides read and parse the same file in this one process run:
- ours: `analysis.asymmetries.count_asymmetries` with the `math` preset: per-trace verification / attempt /
  chained-asymmetry counts, the e3 repetition rule and the n-gram loop detector;
- naive: `json.loads` per line, then one case-insensitive regex pass per marker phrase of the same lexicon
  (`len(pattern.findall(text))`), which is how ad hoc notebooks count.
Prints `bench_traces: ours=<MB/s> naive=<MB/s> ratio=<x>`; targets: ours >= 50 MB/s and ratio >= 3.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import time
from pathlib import Path

from e3eval.analysis.asymmetries import CountConfig, count_asymmetries
from e3eval.analysis.traces import TraceFields
from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import reasoning_trace


def write_traces(path: Path, megabytes: float, seed: int = 0) -> int:
    rng = random.Random(seed)
    problems = demo_problems()
    target = int(megabytes * 1024 * 1024)
    written = lines = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < target:
            problem = rng.choice(problems)
            text = reasoning_trace(problem, 0.5, rng.randint(10_000, 60_000), rng)
            line = json.dumps({"id": f"{problem.problem_id}-{lines}", "response": text, "correct": rng.random() < 0.4})
            handle.write(line + "\n")
            written += len(line) + 1
            lines += 1
    return lines


def naive(path: Path) -> int:
    lexicon = json.loads((Path(__file__).resolve().parent.parent / "analysis/data/math_lexicon.json").read_text())
    patterns = [re.compile(p, re.IGNORECASE) for p in lexicon["verify"] + lexicon["attempt"]]
    total = 0
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["response"]
            for pattern in patterns:
                total += len(pattern.findall(text))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=128.0, help="size of the generated JSONL")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes for ours")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "traces.jsonl"
        lines = write_traces(path, args.mb)
        size_mb = path.stat().st_size / 1024 / 1024
        print(f"input: {size_mb:.1f} MB, {lines} traces", flush=True)
        started = time.perf_counter()
        config = CountConfig(path, "math", TraceFields(correct_field="correct", id_field="id"))
        result = count_asymmetries(config, jobs=args.jobs)
        ours = time.perf_counter() - started
        print(f"ours: {ours:.2f}s for {result.traces} traces", flush=True)
        started = time.perf_counter()
        naive(path)
        baseline = time.perf_counter() - started
        print(f"naive: {baseline:.2f}s", flush=True)
    print(f"bench_traces: ours={size_mb / ours:.1f} naive={size_mb / baseline:.1f} ratio={baseline / ours:.1f}")


if __name__ == "__main__":
    main()
