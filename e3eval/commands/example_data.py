"""The example data the example specs draw (`e3eval figures --examples DIR`), made without a GPU, a network or a model.

`write_examples(DIR)` writes into a new or empty folder (or one it wrote before) the data below and a copy of every
example spec (figures/examples/*.yaml, shipped with the package), so `e3eval figures DIR/all.yaml --out FIGS` draws
them; the specs in the repository draw the same data with `--root DIR`. It writes, through e3eval's own code wherever a
real path exists: scored run directories of three synthetic rollout pools (`e3eval.dev.synthetic`, imported and scored
for real with a tiny BPE tokenizer), a table in the published `aime_budget_table.csv` format, a short real p^k bigram
run of GRPO and GRPOMask (`train.bigram_sim`), verl-style rollout dumps per training step (Countdown runs with and
without negative gradients, MULT runs, and two Countdown curricula) with their `count-asymmetries` tables
(`analysis.asymmetries`, the command's own code), verl file-logger metrics (curriculum runs as two stages each), one
probe and attempt-probe table over six checkpoints (`e3eval.probes.table` schemas) and a chained-asymmetry grid in the
published table's format. Everything but the bigram run is synthetic: seeded random numbers shaped like the paper's
trends, for trying the figures, never for conclusions.
"""

from __future__ import annotations

import json
import math
import random
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

STEPS = (0, 20, 40, 60, 80, 100)  # training steps of the dumps, probes and checkpoints
RUNS = {"model-a": dict(samples=8, min_tokens=200, truncated_fraction=0.15, seed=0),
        "model-b": dict(samples=8, min_tokens=400, truncated_fraction=0.35, seed=1),
        "model-c": dict(samples=4, min_tokens=300, truncated_fraction=0.25, seed=2)}  # fmt: skip
BUDGETS = "256..2k"
# Countdown runs with negative gradients (GRPO) and without (GRPOMask): how fast attempts, verification and success
# grow with training, and how often an unsolved trace ends in a loop (paper Fig. 3, 12).
COUNTDOWN = {"grpo": 1.0, "grpo-mask": 0.3}
# MULT runs (paper Fig. 14): how often a verification ("Check:") follows a partial product, at the start and the end.
MULT = {"mult-v": (0.3, 0.9), "mult-v-mask": (0.15, 0.2), "mult": (0.05, 0.08)}
# Curricula (paper Fig. 17): 60 steps on easy problems (3 numbers), then 60 on hard ones (6 numbers); the mean
# equations per attempt on hard problems at the end of the second stage (2 = the over-exploratory short attempts).
CURRICULA = {"coupled": 4.0, "data": 2.2}
CURRICULUM_STEPS = (0, 20, 40, 60, 80, 100, 120)
STAGE_STEPS = 60
DEFAULT_DIR = "results/example-data"  # the folder the repository's example specs' comments name


def make_runs(out: Path, tokenizer_dir: Path) -> list[Path]:
    """Scored runs of synthetic pools whose accuracy rises with the budget (model-b is cut off more often)."""
    from e3eval.budgets import parse_budgets
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, write_pool
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run
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


def make_paper_table(out: Path) -> Path:
    """A table in the published aime_budget_table.csv format (AIME 2025 rows, pass@1 and pass@8 at 4k..32k, `_err_`
    a fixed 25% of the value and `_CI_low_`/`_CI_high_` columns), for four made-up models whose gains flatten."""
    rng = np.random.default_rng(7)
    budgets, samples = (4096, 8192, 16384, 32768), 30 * 16  # AIME 2025: 30 problems x 16 samples
    header, rows = None, []
    for name, start, gain in (("A-1.5B", 0.10, 0.06), ("B-1.7B", 0.18, 0.09), ("C-7B", 0.30, 0.07),
                              ("D-1.5B", 0.06, 0.003)):  # fmt: skip
        values: dict[str, float] = {}
        for index, budget in enumerate(budgets):
            pass1 = round((start + gain * math.log2(1 + index) + rng.normal(0, 0.005)) * samples) / samples
            for k, value in ((1, pass1), (8, 1 - (1 - pass1) ** 4)):
                half = 1.96 * math.sqrt(value * (1 - value) / 30)
                values |= {f"pass_at_{k}_{budget}": value, f"pass_at_{k}_err_{budget}": 0.25 * value,
                           f"pass_at_{k}_CI_low_{budget}": max(0.0, value - half),
                           f"pass_at_{k}_CI_high_{budget}": min(1.0, value + half)}  # fmt: skip
        header = header or [*values, "years", "model"]
        rows.append(",".join([*(f"{values[c]:.10g}" for c in header[:-2]), "2025", f"synthetic/{name}"]))
    path = out / "paper" / "aime_budget_table.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([",".join(header or []), *rows]) + "\n", encoding="utf-8")
    return path


def make_bigram(out: Path) -> list[Path]:
    """A real, short p^k bigram run (paper App. C) of GRPO and GRPOMask; a step size large enough to find a* fast."""
    from e3eval.train.bigram_sim import BigramConfig, train, write_history

    paths = []
    for algo in ("grpo", "grpo_mask"):
        config = BigramConfig(algo=algo, iterations=700, groups=32, lr=0.04)
        path = out / "bigram" / f"{algo}.csv"
        write_history(train(config), path, config)
        paths.append(path)
    return paths


# Rollout dumps ------------------------------------------------------------------------------------------------------


def _countdown_problem(rng: random.Random, size: int) -> tuple[list[int], int]:
    numbers = [rng.randint(2, 25) for _ in range(size)]
    a, b, c = numbers[:3]
    return numbers, (a + b) * c if rng.random() < 0.5 else a * b - c


def _attempt(numbers: list[int], equations: int, rng: random.Random) -> tuple[str, int]:
    """An attempt of `equations` equations, each combining the last result with an unused number (no negatives, so
    that the countdown preset's `a op b = c` counts every one)."""
    pool = rng.sample(numbers, len(numbers))
    value, steps = pool[0], []
    for number in pool[1 : 1 + equations]:
        op = rng.choice("+*" if value < number else "+-*")
        result = value + number if op == "+" else value - number if op == "-" else value * number
        steps.append(f"{value} {op} {number} = {result}")
        value = result
    return ", then ".join(steps) + ".", value


def _countdown_trace(numbers: list[int], target: int, progress: float, explore: float, equations: float,
                     rng: random.Random) -> tuple[str, bool]:  # fmt: skip
    """A Countdown trace whose attempts, verifications and success rate grow with training progress (0..1) as fast
    as `explore` says, with about `equations` equations per attempt, ending in a loop less often as training goes on."""
    attempts = 1 + min(12, np.random.default_rng(rng.randrange(2**32)).poisson(0.5 + 4 * explore * progress))
    solve = rng.random() < 0.15 + (0.3 + 0.2 * explore) * progress
    lines = ["Let me find a way to reach the target."]
    for i in range(attempts):
        count = max(1, min(len(numbers) - 1, round(rng.gauss(equations, 0.6))))
        text, value = _attempt(numbers, count, rng)
        lines.append(f"Try {text}")
        if rng.random() < 0.3 + 0.5 * explore * progress:  # verifying grows with training (chained asymmetries)
            lines.append(f"Wait, let me check: {value} is not {target}. That does not work.")
        if i < attempts - 1:
            lines.append("")
    if not solve and rng.random() < 0.5 * (1 - explore * progress):  # a loop that runs out of tokens (Fig. 12)
        # The loop repeats a sentence with no equation and no comparison: no attempt, equation or verification.
        lines += ["Hmm, so maybe I should look at these numbers once more."] * 10
        return "\n".join(lines), False
    a, b, c = numbers[:3]
    answer = f"({a} + {b}) * {c}" if target == (a + b) * c else f"{a} * {b} - {c}"
    if solve:
        lines += ["", f"Try {answer} = {target}. That is the target!"]
    lines.append("</think>")  # verl's prompt opens the thinking; the dump holds the response
    lines.append(f"<answer>{answer if solve else text.split(' = ')[0]}</answer>")
    return "\n".join(lines), solve


def _mult_trace(a: int, b: int, check: float, rng: random.Random) -> tuple[str, bool]:
    """A MULT(-V) trace: partial products and their sum, a `Check:` line after each with probability `check`."""
    lines, partials = [f"Multiply {a} by {b}."], []
    for i, digit in enumerate(reversed(str(b))):
        if digit != "0":
            factor = int(digit) * 10**i
            partials.append(a * factor)
            lines.append(f"{a} x {factor} = {a * factor}")
            if rng.random() < check:
                lines.append(f"Check: {a * factor} / {factor} = {a}")
    total = sum(partials)
    correct = rng.random() < 0.4 + check / 2
    answer = total if correct else total + rng.choice((-10, 10, 100))
    lines += [f"{' + '.join(map(str, partials))} = {answer}", "</think>", f"The answer is {answer}."]
    return "\n".join(lines), correct


def _write_dump(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _count(dump: Path, table: Path, preset: str, tokenizer_dir: Path) -> Path:
    """`e3eval count-asymmetries DUMP --preset PRESET --tokenizer T --out TABLE`, through the command's library."""
    from e3eval.analysis.asymmetries import CountConfig, count_asymmetries, write_rows

    table.parent.mkdir(parents=True, exist_ok=True)
    write_rows(table, count_asymmetries(CountConfig(dump, preset, tokenizer=str(tokenizer_dir))).table)
    return table


def _countdown_records(problems: list[tuple[list[int], int]], step: int, progress: float, explore: float,
                       equations: float, rng: random.Random) -> list[dict]:  # fmt: skip
    records = []
    for numbers, target in problems:
        prompt = f"Using the numbers {numbers}, create an equation that equals {target}.\n<think>"
        for _ in range(8):
            output, solved = _countdown_trace(numbers, target, progress, explore, equations, rng)
            records.append({"input": prompt, "output": output, "score": float(solved), "step": step,
                            "gts": json.dumps({"target": target, "numbers": numbers})})  # fmt: skip
    return records


def make_countdown(out: Path, tokenizer_dir: Path) -> list[Path]:
    """countdown/RUN/rollouts/STEP.jsonl (verl dumps: input, output, score, gts) and their count-asymmetries tables
    countdown/RUN/asymmetries/STEP.parquet, for GRPO and GRPOMask."""
    rng = random.Random(0)
    problems = [_countdown_problem(rng, rng.choice((3, 4))) for _ in range(12)]
    tables = []
    for run, explore in COUNTDOWN.items():
        for step in STEPS:
            records = _countdown_records(problems, step, step / max(STEPS), explore, 2.0, rng)
            dump = _write_dump(out / "countdown" / run / "rollouts" / f"{step}.jsonl", records)
            tables.append(_count(dump, out / "countdown" / run / "asymmetries" / f"{step}.parquet", "countdown",
                                 tokenizer_dir))  # fmt: skip
    return tables


def make_mult(out: Path, tokenizer_dir: Path) -> list[Path]:
    """mult/RUN/rollouts/STEP.jsonl and mult/RUN/asymmetries/STEP.parquet (the `mult` preset) for MULT-V with and
    without negative gradients and MULT."""
    rng = random.Random(3)
    problems = [(rng.randint(100, 999), rng.randint(10, 999)) for _ in range(12)]
    tables = []
    for run, (start, end) in MULT.items():
        for step in STEPS:
            check = start + (end - start) * step / max(STEPS)
            records = []
            for a, b in problems:
                for _ in range(8):
                    output, correct = _mult_trace(a, b, check, rng)
                    records.append({"input": f"What is {a} x {b}?\n<think>", "output": output,
                                    "score": float(correct), "step": step, "gts": str(a * b)})  # fmt: skip
            dump = _write_dump(out / "mult" / run / "rollouts" / f"{step}.jsonl", records)
            tables.append(_count(dump, out / "mult" / run / "asymmetries" / f"{step}.parquet", "mult", tokenizer_dir))
    return tables


def make_curricula(out: Path, tokenizer_dir: Path) -> list[Path]:
    """curricula/RUN/: rollout dumps and count-asymmetries tables per step (easy problems in stage 1, hard ones in
    stage 2), and verl metrics per stage (stage-1/, stage-2/), for the coupled and the data curriculum (Fig. 17)."""
    rng = random.Random(17)
    easy = [_countdown_problem(rng, 3) for _ in range(12)]
    hard = [_countdown_problem(rng, 6) for _ in range(12)]
    paths = []
    for run, equations_end in CURRICULA.items():
        for step in CURRICULUM_STEPS:
            second = step > STAGE_STEPS
            progress = (step - STAGE_STEPS if second else step) / STAGE_STEPS  # within the stage
            equations = 1.8 + (equations_end - 1.8) * progress if second else 1.8
            explore = 1.0 if run == "coupled" else 1.6  # the data curriculum's many short attempts
            records = _countdown_records(hard if second else easy, step, progress, explore, equations, rng)
            dump = _write_dump(out / "curricula" / run / "rollouts" / f"{step}.jsonl", records)
            paths.append(_count(dump, out / "curricula" / run / "asymmetries" / f"{step}.parquet", "countdown",
                                tokenizer_dir))  # fmt: skip
        noise = np.random.default_rng(len(run))
        for stage in (1, 2):
            lines = []
            for step in range(1, STAGE_STEPS + 1):
                t = step / STAGE_STEPS
                if stage == 1:  # easy problems: both learn them; the coupled run at a 256-token budget a little slower
                    reward = 0.3 + (0.5 if run == "coupled" else 0.6) * (1 - math.exp(-4 * t))
                else:  # hard problems: the coupled run reinforces what it finds faster
                    reward = 0.05 + (0.45 if run == "coupled" else 0.18) * t
                data = {
                    "critic/score/mean": reward + noise.normal(0, 0.02),
                    "response_length/mean": (300 if run == "coupled" and stage == 1 else 700) + 200 * t,
                }
                lines.append(json.dumps({"step": step, "data": data}))
            path = out / "curricula" / run / f"stage-{stage}" / "metrics.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            paths.append(path)
    return paths


# Training metrics, probes, grid -------------------------------------------------------------------------------------


def make_metrics(out: Path) -> list[Path]:
    """verl file-logger JSONL (`{"step", "data"}` per line) of 100-step runs: GRPO and GRPOMask shaped like the
    paper's Fig. 3, and Countdown at training budgets 512, 1k and 2k shaped like Fig. 2 and 11 (a larger budget:
    longer responses, a smaller KL to the base model)."""
    rng = np.random.default_rng(0)
    runs = {"grpo": (0.15, 1.0, 180), "grpo-mask": (0.05, 0.7, 180),  # about the lengths of the Countdown dumps
            "budget-512": (0.3, 1.6, 250), "budget-1k": (0.6, 1.2, 420), "budget-2k": (1.2, 0.8, 600)}  # fmt: skip
    paths = []
    for name, (length_growth, kl_scale, length) in runs.items():
        path = out / "train" / name / "metrics.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = []
        for step in range(1, 101):
            reward = 0.15 + 0.55 / (1 + math.exp(-(step - 45) / 12)) + rng.normal(0, 0.02)
            data = {
                "critic/score/mean": reward,
                "response_length/mean": length * (1 + 0.03 * length_growth * step) + rng.normal(0, 0.05 * length),
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
    """probes/countdown/probes.parquet and attempt_probes.parquet: the samples of one run probed with every
    checkpoint of one training run (as `e3eval probe RUN --model checkpoints/countdown` writes them): entropy falls
    and KL to the base rises with the step; the previous attempt helps the next one more as training goes on."""
    import pyarrow.parquet as pq

    from e3eval.probes.table import ATTEMPT_SCHEMA, PROBE_SCHEMA

    rng = np.random.default_rng(1)
    samples = {(p, s): (bool(rng.random() < 0.4), int(rng.integers(2, 7))) for p in range(16) for s in range(4)}
    probes, attempts = [], []
    for step in STEPS:
        progress = step / max(STEPS)
        for (p, s), (correct, n_attempts) in samples.items():
            key = {"run_id": "countdown-samples", "model": f"checkpoints/countdown/global_step_{step}", "step": step,
                   "ref": "checkpoints/base", "dtype": "bfloat16", "temperature": 1.0,
                   "problem_id": f"countdown-{p}", "sample_idx": s}  # fmt: skip
            for budget in (256, 512, 1024):
                kl = max(0.0, 0.02 + 0.12 * progress + rng.normal(0, 0.02)) if step else 0.0
                probes.append({**key, "budget": budget, "n_tokens": budget, "correct": correct,
                               "mean_logprob": -0.45 + 0.2 * progress + rng.normal(0, 0.05),
                               "mean_entropy": 0.65 - 0.25 * progress + rng.normal(0, 0.04),
                               "kl_exact": kl, "kl_k1": kl + rng.normal(0, 0.01), "kl_k3": kl * 0.9})  # fmt: skip
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
    folder = out / "probes" / "countdown"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(probes, PROBE_SCHEMA), folder / "probes.parquet")
    pq.write_table(pa.Table.from_pylist(attempts, ATTEMPT_SCHEMA), folder / "attempt_probes.parquet")
    return [folder / "probes.parquet", folder / "attempt_probes.parquet"]


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


EXAMPLES = Path(__file__).resolve().parents[2] / "figures" / "examples"  # the example specs (e3eval.figures)


def write_examples(out: Path, say: Callable[[str], None] = print) -> list[Path]:
    """Write the example data and a copy of every example spec into `out` (see the module text); returns the specs.

    The folder must be new, empty or one this wrote before with its files unchanged (`examples_folder`)."""
    from e3eval.commands import examples_folder
    from e3eval.dev.tiny_model import build_tokenizer

    out = Path(out)
    examples_folder.claim(out)
    started = time.monotonic()
    tokenizer_dir = out / "tokenizer"
    if not (tokenizer_dir / "tokenizer.json").is_file():
        build_tokenizer().save_pretrained(tokenizer_dir)
    makers: dict[str, Callable[[], list[Path]]] = {
        "runs": lambda: make_runs(out, tokenizer_dir), "paper": lambda: [make_paper_table(out)],
        "bigram": lambda: make_bigram(out), "countdown": lambda: make_countdown(out, tokenizer_dir),
        "mult": lambda: make_mult(out, tokenizer_dir), "curricula": lambda: make_curricula(out, tokenizer_dir),
        "train": lambda: make_metrics(out), "probes": lambda: make_probes(out), "chained": lambda: [make_chained(out)],
    }  # fmt: skip
    for label, make in makers.items():
        made = make()
        say(f"{label + ':':<11}{len(made):>3} file(s), e.g. {made[0].relative_to(out)}")
    specs = [_copy_spec(spec, out) for spec in sorted(EXAMPLES.glob("*.yaml"))]
    examples_folder.record(out, examples_folder.written_files(out))
    say(f"example data and {len(specs)} specs in {out} ({time.monotonic() - started:.0f}s)")
    return specs


def _copy_spec(spec: Path, out: Path) -> Path:
    """The spec beside the data it draws: inputs resolve against the spec's folder, so it needs no --root; its
    comments' commands are rewritten to the copy's path."""
    text = spec.read_text(encoding="utf-8")
    text = text.replace(f"figures/examples/{spec.name} --root {DEFAULT_DIR}", str(out / spec.name))
    text = text.replace(f"e3eval figures --examples {DEFAULT_DIR}", f"e3eval figures --examples {out}")
    text = re.sub(r"(?m)^root: .*\n", "", text)
    text = re.sub(r"(?m)^prepare: .*$", f"prepare: e3eval figures --examples {out}", text)
    copy = out / spec.name
    copy.write_text(text, encoding="utf-8")
    return copy
