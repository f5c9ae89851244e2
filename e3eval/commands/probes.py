"""`e3eval probe`: the policy's token log-probs, entropy and KL to a base model on a run's stored samples.

Parses flags into a `ProbeConfig`, calls `e3eval.probes.job.run_probe` and prints a summary per model and budget
(mean over problems with a bootstrap CI and n, split by correct / incorrect where the run is scored).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from e3eval.commands import panels
from e3eval.commands.output import console, progress, say, warn, warnings_shown

# The printed table keeps to three columns; verl's k1 / k3 estimators are in the table file.
_METRIC_NAMES = {"mean_entropy": "entropy", "mean_logprob": "log-prob", "kl_exact": "KL to ref"}


def probe(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="Run directory (generated or imported, with token ids).")
    ],
    model: Annotated[
        list[str] | None,
        typer.Option(
            metavar="MODEL",
            help="Model folder or hub name (default: the model run.json names; imported runs need it). Repeat it, or "
            "give a folder of verl / e3train checkpoints (global_step_N/actor/huggingface), probed in step order.",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    ref: Annotated[
        str | None,
        typer.Option(
            metavar="MODEL",
            help="Reference (base) model: adds exact token KL(model || ref) and verl's k1, k3.",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cuda | cpu (default: cuda when available).", rich_help_panel=panels.MODEL)
    ] = None,
    dtype: Annotated[
        str | None,
        typer.Option(
            help="Model weights: auto (bf16 on GPU, fp32 on CPU) | bfloat16 | float16 | float32 (default: the dtype "
            "the run was generated in, else auto).",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
    chunk: Annotated[
        int,
        typer.Option(
            help="Positions per vocabulary-projection chunk: memory is O(chunk x vocab).", rich_help_panel=panels.MODEL
        ),
    ] = 4096,
    budgets: Annotated[
        str | None,
        typer.Option(
            metavar="SPEC",
            help="Token budgets to average over: 4k..32k, 4096,8192 (default: the run's scored budgets, else its "
            "generation limit).",
            rich_help_panel=panels.BUDGETS,
        ),
    ] = None,
    temperature: Annotated[
        float | None,
        typer.Option(
            help="Probe softmax(logits / T) (default: the run's sampling temperature, as verl's logged actor metrics "
            "use the rollout temperature; 1 for the model's own distribution).",
            rich_help_panel=panels.BUDGETS,
        ),
    ] = None,
    aggregate: Annotated[
        str,
        typer.Option(
            help="sample: per-sample token means, averaged per problem, then over problems | token: one mean over "
            "all tokens (verl's token-mean).",
            rich_help_panel=panels.SCORING,
        ),
    ] = "sample",
    attempts: Annotated[
        str | None,
        typer.Option(
            metavar="PRESET",
            help="Attempt-conditional probes (paper Fig. 13) with this analysis preset: countdown | math | e3-math | "
            "mult.",
            rich_help_panel=panels.SCORING,
        ),
    ] = None,
    max_attempts: Annotated[
        int | None,
        typer.Option(
            metavar="N",
            help="With --attempts: probe attempts k = 2..N+1 of each sample only.",
            rich_help_panel=panels.SCORING,
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output Parquet (default: RUN/probes.parquet).", rich_help_panel=panels.OUTPUT)
    ] = None,
    per_token: Annotated[
        bool,
        typer.Option(
            "--per-token", help="Also store per-token lists (log-prob, entropy, KL).", rich_help_panel=panels.OUTPUT
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Take an --out table e3eval did not write (or that was changed since) as it is.",
            rich_help_panel=panels.OUTPUT,
        ),
    ] = False,
) -> None:
    """Teacher-force a run's stored token ids through models: log-prob, entropy, KL per (sample, budget).

    An interrupted probe keeps what it measured: the same command resumes.

    Examples:
      e3eval probe runs/aime25                    # the run's model, budgets
      e3eval probe runs/aime25 --ref Qwen/Qwen3-1.7B-Base --budgets 4k..16k
      e3eval probe runs/countdown --model ckpts/ --attempts countdown
    """
    import pyarrow as pa

    from e3eval.budgets import parse_budgets
    from e3eval.errors import UserError
    from e3eval.probes.job import ProbeConfig, run_probe
    from e3eval.probes.probe_summary import AGGREGATES, summarize

    if aggregate not in AGGREGATES:
        raise UserError(f"--aggregate {aggregate!r}: choose {' or '.join(AGGREGATES)}")
    config = ProbeConfig(
        run_dir=run_dir, models=tuple(model or ()), ref=ref, budgets=tuple(parse_budgets(budgets)) if budgets else (),
        chunk=chunk, per_token=per_token, attempts=attempts, max_attempts=max_attempts, device=device, dtype=dtype,
        temperature=temperature, out=out, force=force,
    )  # fmt: skip
    with warnings_shown(), progress() as bar:
        outcome = run_probe(config, bar, lambda line: console.print(line, markup=False, highlight=False))
    for line in outcome.warnings:
        warn(line)
    if outcome.excluded:
        warn(f"{outcome.excluded}: probes cover the {outcome.samples} samples only")
    say(
        f"probed {outcome.computed} (model, sample) pair(s), {outcome.reused} already there; "
        f"{len(outcome.models)} model(s) x {outcome.samples} samples -> {outcome.out}"
    )
    if outcome.attempts_out:
        say(f"attempt probes -> {outcome.attempts_out}")
    table = outcome.table
    wanted, models = set(outcome.budgets), {c.model for c in outcome.models}
    columns = ("budget", "model", "run_id", "ref", "dtype", "temperature")
    keep = [b in wanted and m in models and r == outcome.run_id and ref == outcome.ref and d == outcome.dtype
            and t == outcome.temperature
            for b, m, r, ref, d, t in zip(*(table[c].to_pylist() for c in columns), strict=True)]  # fmt: skip
    shown = table.filter(pa.array(keep))
    policies = sorted({p for p in shown["grade_policy"].to_pylist() if p})
    _show(summarize(shown, aggregate=aggregate), outcome.ref is not None, policies, outcome.temperature, aggregate)


def _show(rows: list, with_ref: bool, policies: list[str], temperature: float, aggregate: str) -> None:
    """One table per model: budget x split, each metric as mean [CI] and the n it rests on."""
    from rich.table import Table
    from rich.text import Text

    by_model: dict[tuple, list] = {}
    for row in rows:
        by_model.setdefault((row.model, row.step, row.ref), []).append(row)
    for (model, step, ref), group in by_model.items():
        metrics = [m for m in _METRIC_NAMES if any(r.metric == m for r in group)]
        title = f"{model}" + (f" (step {step})" if step is not None else "") + (f" vs ref {ref}" if ref else "")
        table = Table(title=Text(title), title_justify="left")  # a path is text, never markup
        table.add_column("budget", justify="right")
        table.add_column("split")
        for metric in metrics:
            table.add_column(_METRIC_NAMES[metric] + " [95% CI]", justify="right")
        table.add_column("n problems / samples", justify="right")
        cells: dict[tuple, dict[str, object]] = {}
        for row in group:
            if row.metric in _METRIC_NAMES:
                cells.setdefault((row.budget, row.split), {})[row.metric] = row
        for (budget, split), found in cells.items():
            first = next(iter(found.values()))
            table.add_row(
                str(budget), split, *(_cell(found.get(m)) for m in metrics), f"{first.n_problems} / {first.n_samples}"
            )
        console.print(table)
    kl = "; KL = exact full-vocabulary KL(model || ref)" if with_ref else ""
    split = (
        f"; correct / incorrect split by the grade at that budget under the run's last scoring ({', '.join(policies)})"
        if policies
        else "; the run is not scored: no correct / incorrect split"
    )
    averaged = (
        "token means per sample, averaged per problem, then over problems"
        if aggregate == "sample"
        else "one token mean over all samples' tokens (verl's token-mean)"
    )
    console.print(
        "over the policy's own tokens of each budget's response prefix (tokens budget forcing inserted are left out): "
        f"{averaged} (95% bootstrap CI over problems); entropy and log-prob of softmax(logits / {temperature:g}), nats "
        f"per token{kl}{split}",
        highlight=False,
    )


def _cell(row: object) -> str:
    if row is None:
        return "-"
    value, low, high = row.value, row.ci_low, row.ci_high  # type: ignore[attr-defined]
    if math.isnan(low):
        return f"{value:.4g}"
    return f"{value:.4g} [{low:.4g}, {high:.4g}]"
