"""Make the data that the example specs in figures/examples/ draw, without a GPU, a network or a model.

Usage (from the repository root): `python figures/examples/make_data.py [OUT]`, OUT defaulting to
results/example-data (the folder the specs' `root:` names). It writes, through e3eval's own code wherever a real path
exists: scored run directories of two synthetic rollout pools (`e3eval.synthetic`, imported and scored for real with
a tiny BPE tokenizer), a short real p^k bigram run of GRPO and GRPOMask (`train.bigram`), verl-style Countdown
rollout dumps per training step and their `count-asymmetries` tables (`analysis.asymmetries`), verl file-logger
metrics for two training runs, probe and attempt-probe Parquet tables per checkpoint (`e3eval.probes.table`
schemas) and a chained-asymmetry grid in the published table's format. The training curves, probes and grid are
synthetic: seeded random numbers shaped like the paper's trends, for trying the figures, never for conclusions.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

STEPS = (0, 20, 40, 60, 80, 100)  # training steps of the dumps, probes and checkpoints
RUNS = {"model-a": dict(samples=8, min_tokens=200, truncated_fraction=0.15, seed=0),
        "model-b": dict(samples=8, min_tokens=400, truncated_fraction=0.35, seed=1)}  # fmt: skip
BUDGETS = "256..2k"


def make_runs(out: Path, tokenizer_dir: Path) -> list[Path]:
    """Two scored runs of synthetic pools whose accuracy rises with the budget (model-b is cut off more often)."""
    from e3eval.budgets import parse_budgets
    from e3eval.datasets import demo_problems
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run
    from e3eval.synthetic import PoolSpec, write_pool
    from e3eval.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(str(tokenizer_dir))
    runs = []
    for name, settings in RUNS.items():
        pool = out / "pools" / f"{name}.jsonl"
        pool.parent.mkdir(parents=True, exist_ok=True)
        write_pool(pool, demo_problems(), PoolSpec(max_tokens=2048, **settings), tokenizer)
        run = out / "runs" / name
        import_run(ImportConfig(source=pool, out=run, tokenizer=str(tokenizer_dir), token_ids_field="token_ids",
                                sample_field="sample_idx", finish_reason_field="finish_reason", force=True,
                                name=name))  # fmt: skip
        score_run(run, ScoreConfig(budgets=tuple(parse_budgets(BUDGETS)), workers=1))
        runs.append(run)
    return runs


def make_bigram(out: Path) -> list[Path]:
    """A real, short p^k bigram run (paper App. C) of GRPO and GRPOMask; a step size large enough to find a* fast."""
    from train.bigram import BigramConfig, train, write_history

    paths = []
    for algo in ("grpo", "grpo_mask"):
        config = BigramConfig(algo=algo, iterations=700, groups=32, lr=0.04)
        path = out / "bigram" / f"{algo}.csv"
        write_history(train(config), path, config)
        paths.append(path)
    return paths


def _countdown_problem(rng: random.Random) -> tuple[list[int], int]:
    numbers = [rng.randint(2, 25) for _ in range(rng.choice((3, 4)))]
    a, b, c = numbers[:3]
    return numbers, (a + b) * c if rng.random() < 0.5 else a * b - c


def _attempt(numbers: list[int], rng: random.Random) -> tuple[str, int]:
    a, b = rng.sample(numbers, 2)
    op = rng.choice("+-*")
    value = a + b if op == "+" else a - b if op == "-" else a * b
    c = rng.choice(numbers)
    op2 = rng.choice("+*")
    final = value + c if op2 == "+" else value * c
    return f"{a} {op} {b} = {value}, then {value} {op2} {c} = {final}.", final


def _countdown_trace(numbers: list[int], target: int, step: int, rng: random.Random) -> tuple[str, bool]:
    """A Countdown trace whose number of attempts, verifications and success rate grow with the training step, and
    which ends in a loop less often as training goes on."""
    attempts = 1 + min(12, np.random.default_rng(rng.randrange(2**32)).poisson(0.5 + step / 25))
    solve = rng.random() < 0.15 + 0.5 * step / max(STEPS)
    lines = ["<think>Let me find a way to reach the target."]
    for i in range(attempts):
        text, value = _attempt(numbers, rng)
        lines.append(f"Try {text}")
        if rng.random() < 0.3 + 0.5 * step / max(STEPS):  # verifying grows with training (chained asymmetries)
            lines.append(f"Wait, let me check: {value} is not {target}. That does not work.")
        if i < attempts - 1:
            lines.append("")
    if not solve and rng.random() < 0.5 * (1 - step / max(STEPS)):  # a loop that runs out of tokens (Fig. 12)
        lines += [f"Try {text} Wait, let me check: {value} is not {target}."] * 10
        return "\n".join(lines), False
    a, b, c = numbers[:3]
    answer = f"({a} + {b}) * {c}" if target == (a + b) * c else f"{a} * {b} - {c}"
    if solve:
        lines += ["", f"Try {answer} = {target}. That is the target!"]
    lines.append("</think>")
    lines.append(f"<answer>{answer if solve else text.split(' = ')[0]}</answer>")
    return "\n".join(lines), solve


def make_countdown(out: Path, tokenizer_dir: Path) -> tuple[list[Path], list[Path]]:
    """verl rollout dumps (`{step}.jsonl`: input, output, score, gts) and their count-asymmetries tables."""
    from analysis.asymmetries import CountConfig, count_asymmetries, write_rows

    rng = random.Random(0)
    problems = [_countdown_problem(rng) for _ in range(12)]
    dumps, tables = [], []
    for step in STEPS:
        records = []
        for numbers, target in problems:
            prompt = f"Using the numbers {numbers}, create an equation that equals {target}."
            for _ in range(8):
                output, solved = _countdown_trace(numbers, target, step, rng)
                records.append({"input": prompt, "output": output, "score": float(solved), "step": step,
                                "gts": json.dumps({"target": target, "numbers": numbers})})  # fmt: skip
        dump = out / "rollouts" / f"{step}.jsonl"
        dump.parent.mkdir(parents=True, exist_ok=True)
        dump.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        table = out / "asymmetries" / f"{step}.parquet"
        table.parent.mkdir(parents=True, exist_ok=True)
        result = count_asymmetries(CountConfig(dump, "countdown", tokenizer=str(tokenizer_dir)))
        write_rows(table, result.table)
        dumps.append(dump)
        tables.append(table)
    return dumps, tables


def make_metrics(out: Path) -> list[Path]:
    """verl file-logger JSONL (`{"step", "data"}` per line) of two 100-step runs, shaped like the paper's Fig. 3."""
    rng = np.random.default_rng(0)
    paths = []
    for name, length_growth, kl_scale in (("grpo", 1.0, 1.0), ("grpo-mask", 1.6, 0.7)):
        path = out / "train" / name / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for step in range(1, 101):
            reward = 0.15 + 0.55 / (1 + math.exp(-(step - 45) / 12)) + rng.normal(0, 0.02)
            data = {
                "critic/score/mean": reward,
                "response_length/mean": 420 + 6.0 * length_growth * step + rng.normal(0, 25),
                "actor/entropy": 0.62 * math.exp(-step / 140) + rng.normal(0, 0.01),
                "actor/kl_loss": kl_scale * 0.0009 * step + abs(rng.normal(0, 0.002)),
                "actor/ppo_kl": abs(rng.normal(0, 0.001)),
                "training/global_step": step,
            }
            if step % 10 == 0:
                data["val-core/countdown/reward/mean@1"] = reward - 0.05 + rng.normal(0, 0.01)
            lines.append(json.dumps({"step": step, "data": data}))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def make_probes(out: Path) -> list[Path]:
    """probes.parquet and attempt_probes.parquet per checkpoint: entropy falls and KL to the base rises with the
    step; the previous attempt helps the next one more as training goes on (Fig. 13)."""
    import pyarrow.parquet as pq

    from e3eval.probes.table import ATTEMPT_SCHEMA, PROBE_SCHEMA

    rng = np.random.default_rng(1)
    folders = []
    for step in STEPS:
        progress = step / max(STEPS)
        probes, attempts = [], []
        for p in range(16):
            for s in range(4):
                key = {"run_id": f"step-{step}", "model": f"checkpoints/global_step_{step}", "step": step,
                       "ref": "checkpoints/base", "problem_id": f"countdown-{p}", "sample_idx": s}  # fmt: skip
                correct = bool(rng.random() < 0.15 + 0.5 * progress)
                for budget in (256, 512, 1024):
                    kl = max(0.0, 0.02 + 0.12 * progress + rng.normal(0, 0.02)) if step else 0.0
                    probes.append({**key, "budget": budget, "n_tokens": budget, "correct": correct,
                                   "mean_logprob": -0.45 + 0.2 * progress + rng.normal(0, 0.05),
                                   "mean_entropy": 0.65 - 0.25 * progress + rng.normal(0, 0.04),
                                   "kl_exact": kl, "kl_k1": kl + rng.normal(0, 0.01), "kl_k3": kl * 0.9})  # fmt: skip
                n_attempts = int(rng.integers(2, 7))
                for k in range(2, n_attempts + 1):
                    given = -1.2 + 0.6 * progress - 0.05 * k + rng.normal(0, 0.08)
                    skip = -1.1 + 0.1 * progress + rng.normal(0, 0.08)
                    before = -1.0 + 0.2 * progress + rng.normal(0, 0.08)
                    repeat = -2.0 - 1.5 * progress + 0.1 * k + rng.normal(0, 0.1)
                    tokens = int(rng.integers(30, 50))
                    attempts.append({**key, "preset": "countdown", "k": k, "n_attempts": n_attempts,
                                     "tokens_k": tokens, "tokens_prev": int(rng.integers(30, 50)),
                                     "lp_k_given_prev": given * tokens, "lp_k_skip_prev": skip * tokens,
                                     "lp_prev_given_before": before * tokens, "lp_repeat_prev": repeat * tokens,
                                     "fig13a": (given - skip) * tokens, "fig13b": (given - before) * tokens,
                                     "fig13c": repeat * tokens, "fig13a_per_token": given - skip,
                                     "fig13b_per_token": given - before, "fig13c_per_token": repeat,
                                     "correct": correct})  # fmt: skip
        folder = out / "probes" / f"step-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(probes, PROBE_SCHEMA), folder / "probes.parquet")
        pq.write_table(pa.Table.from_pylist(attempts, ATTEMPT_SCHEMA), folder / "attempt_probes.parquet")
        folders.append(folder)
    return folders


def make_chained(out: Path) -> Path:
    """A grid in chained_asymmetry_grids.csv's format: pass@k after C chained asymmetries grows with C, k and step."""
    rows = ["train_step,chained_asymmetries,k,pass_at_k"]
    for step in (0, 30, 60):
        for c in (2, 4, 8, 16):
            p1 = 0.01 * (1 + step / 15) * math.log2(2 * c)
            rows += [f"{step},{c},{k},{1 - (1 - p1) ** k:.6f}" for k in (1, 2, 4, 8, 16)]
    path = out / "chained" / "grid.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def make_all(out: Path) -> None:
    from e3eval.tiny_model import build_tokenizer

    started = time.monotonic()
    tokenizer_dir = out / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        build_tokenizer().save_pretrained(tokenizer_dir)
    made = {"runs": make_runs(out, tokenizer_dir), "bigram": make_bigram(out)}
    made["rollouts"], made["asymmetries"] = make_countdown(out, tokenizer_dir)
    made |= {"train": make_metrics(out), "probes": make_probes(out), "chained": [make_chained(out)]}
    for label, paths in made.items():
        print(f"{label}: {', '.join(str(p.relative_to(out)) for p in paths)}")
    print(f"example data in {out} ({time.monotonic() - started:.0f}s)")


if __name__ == "__main__":
    make_all(Path(sys.argv[1] if len(sys.argv) > 1 else "results/example-data"))
