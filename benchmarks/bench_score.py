"""Benchmark: `e3eval score` against a naive per-(sample, budget) grading loop, on one synthetic pool.

Pool (documented in `e3eval/dev/synthetic.py`): the 16 bundled demo problems x `--samples` samples of synthetic
reasoning traces written with the tiny model's byte-level BPE tokenizer: a `<think>` section of paragraphs with LaTeX
arithmetic, self-checks ("Wait, let me verify"), intermediate `\\boxed{}` guesses (right with probability p/2), then
`</think>` and a final boxed answer in a varied equivalent form; finished responses are 5k-40k tokens long, and 15% of
samples run past 40k and are cut at exactly 40,960 tokens before any final answer (finish_reason `length`).

Scored at 10 budgets (4k..40k:4k) three ways, all in this one process run:
- floor: read the store's token ids and decode every prefix once (our fast decode path), nothing else;
- ours: `score_run` with one grader worker, end to end (tokenizer load, worker start, grading, summary, writes);
- naive: for every (sample, budget): `tokenizer.decode(ids[:B])`, `math_verify.parse` of the whole prefix,
  `math_verify.verify` against the gold (parsed once per problem), one at a time in one process.
The last line is `bench_score: ours=<s> naive=<s> ratio=<x>`; the target ratio is >= 30.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from e3eval.budgets import parse_budgets
from e3eval.datasets import demo_problems
from e3eval.dev.synthetic import PoolSpec, write_pool
from e3eval.dev.tiny_model import build_tiny_model
from e3eval.ingest import ImportConfig, import_run
from e3eval.score import ScoreConfig, score_run
from e3eval.store import iter_rollout_batches, read_problems
from e3eval.tokenizers import load_tokenizer
from e3eval.truncate import PrefixDecoder


def floor_seconds(run_dir: Path, tokenizer_dir: Path, budgets: list[int]) -> float:
    started = time.perf_counter()
    decoder = PrefixDecoder(load_tokenizer(str(tokenizer_dir)))
    for batch in iter_rollout_batches(run_dir, ["token_ids"]):
        lists = batch.column("token_ids")
        offsets, flat = lists.offsets.to_numpy(), lists.values.to_numpy(zero_copy_only=False)
        for i in range(batch.num_rows):
            decoder.decode_prefixes(flat[offsets[i] : offsets[i + 1]], budgets)
    return time.perf_counter() - started


def naive_seconds(run_dir: Path, tokenizer_dir: Path, budgets: list[int]) -> tuple[float, dict]:
    import math_verify

    started = time.perf_counter()
    tokenizer = load_tokenizer(str(tokenizer_dir))
    gold = {p.problem_id: math_verify.parse(f"${p.answer}$") for p in read_problems(run_dir)}
    verdicts = {}
    for batch in iter_rollout_batches(run_dir, ["problem_id", "sample_idx", "token_ids"]):
        for row in batch.to_pylist():
            for budget in budgets:
                text = tokenizer.decode(row["token_ids"][:budget], skip_special_tokens=True)
                pred = math_verify.parse(text)
                verdicts[(row["problem_id"], row["sample_idx"], budget)] = math_verify.verify(
                    gold[row["problem_id"]], pred
                )
    return time.perf_counter() - started, verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=32, help="samples per problem (16 problems)")
    parser.add_argument("--budgets", default="4k..40k:4k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the pool and run here")
    args = parser.parse_args()
    budgets = parse_budgets(args.budgets)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        model_dir = work / "tiny-model"
        if not (model_dir / "tokenizer.json").is_file():
            build_tiny_model(model_dir)
        tokenizer = load_tokenizer(str(model_dir))
        spec = PoolSpec(samples=args.samples, min_tokens=5000, max_tokens=max(budgets), seed=args.seed)
        pool = work / "pool.jsonl"
        n = write_pool(pool, demo_problems(), spec, tokenizer)
        run_dir = work / "run"
        config = ImportConfig(pool, run_dir, str(model_dir), token_ids_field="token_ids", sample_field="sample_idx",
                              finish_reason_field="finish_reason", force=True)  # fmt: skip
        import_run(config)
        tokens = sum(sum(b.column("num_tokens").to_pylist()) for b in iter_rollout_batches(run_dir, ["num_tokens"]))
        print(f"pool: {n} samples, {tokens:,} tokens, {len(budgets)} budgets ({args.budgets}), "
              f"{n * len(budgets)} (sample, budget) items", flush=True)  # fmt: skip

        floor = floor_seconds(run_dir, model_dir, budgets)
        print(f"floor (read store + decode each prefix once): {floor:.2f}s", flush=True)
        started = time.perf_counter()
        result = score_run(run_dir, ScoreConfig(budgets=tuple(budgets), workers=1))
        ours = time.perf_counter() - started
        print(f"ours (e3eval score, 1 worker): {ours:.2f}s, {result.distinct_pairs} distinct answers graded, "
              f"{ours / floor:.1f}x the floor", flush=True)  # fmt: skip
        naive, verdicts = naive_seconds(run_dir, model_dir, budgets)
        print(f"naive (decode + parse whole prefix + verify per item): {naive:.2f}s", flush=True)
        ours_correct = {
            (g["problem_id"], g["sample_idx"], g["budget"]): bool(g["correct"]) for g in result.grades.to_pylist()
        }
        agree = sum(ours_correct[k] == v for k, v in verdicts.items()) / len(verdicts)
        print(f"agreement on correctness, ours vs naive: {100 * agree:.1f}% of {len(verdicts)} items "
              "(naive also accepts unboxed expressions and boxes cut by the budget)")  # fmt: skip
        print(f"bench_score: ours={ours:.2f} naive={naive:.2f} ratio={naive / ours:.1f}")
    sys.exit(0)


if __name__ == "__main__":
    main()
