"""Developer commands (`e3eval dev ...`): the tiny test model and synthetic rollout pools."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from e3eval.commands import panels
from e3eval.commands.output import deprecated_alias, say
from e3eval.errors import UserError


def tiny_model(
    out_dir: Annotated[Path, typer.Argument(metavar="OUT_DIR", help="Directory to write the model and tokenizer to.")],
    seed: Annotated[int, typer.Option(help="Seed for tokenizer corpus and weights.", rich_help_panel=panels.MODEL)] = 0,
    stop_after: Annotated[
        int | None,
        typer.Option(
            help="Instead, a hand-set model that thinks for exactly N tokens, then writes </think>, "
            "'The answer is \\boxed{7}' and EOS; after any other token (an inserted 'Wait') it thinks again, after a "
            "cue ending in '\\boxed{' it answers '7}'. For testing budget forcing.",
            metavar="N",
            rich_help_panel=panels.MODEL,
        ),
    ] = None,
) -> None:
    """Build a ~1M-parameter Qwen3 test model (random, or hand-set with --stop-after) and its BPE tokenizer, offline.

    The folder loads like any hub model: give it to --model and --tokenizer.

    Examples:
      e3eval dev tiny-model models/tiny
      e3eval dev tiny-model models/stops --stop-after 64
    """
    from e3eval.dev.tiny_model import build_stopping_model, build_tiny_model
    from e3eval.outputs import claim_folder

    claim_folder(out_dir, "OUT_DIR")
    if stop_after is None:
        build_tiny_model(out_dir, seed)
        say(f"wrote tiny model and tokenizer to {out_dir}")
    else:
        build_stopping_model(out_dir, stop_after, seed)
        say(f"wrote tiny model that stops thinking after {stop_after} tokens, and its tokenizer, to {out_dir}")


def example_pool(
    out: Annotated[Path, typer.Argument(metavar="OUT", help="JSONL file to write.")],
    tokenizer: Annotated[
        str,
        typer.Option(help="Tokenizer for token ids (e.g. a tiny-model directory).", rich_help_panel=panels.MODEL),
    ],
    n: Annotated[
        int | None, typer.Option(help="Samples per problem (default 8).", rich_help_panel=panels.BUDGETS)
    ] = None,
    samples: Annotated[int | None, typer.Option(hidden=True, help="Deprecated spelling of --n.")] = None,
    min_tokens: Annotated[int, typer.Option(help="Shortest finished response.", rich_help_panel=panels.BUDGETS)] = 200,
    max_tokens: Annotated[
        int,
        typer.Option(help="Generation limit; longer responses are cut (length).", rich_help_panel=panels.BUDGETS),
    ] = 2048,
    seed: Annotated[int, typer.Option(help="Seeds the responses.", rich_help_panel=panels.BUDGETS)] = 0,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a file e3eval did not write.", rich_help_panel=panels.OUTPUT),
    ] = False,
) -> None:
    """Write a synthetic rollout pool over the bundled demo problems (for demos, tests, benchmarks).

    One JSON line per rollout, with token ids and finish reasons: ready for e3eval import.

    Examples:
      e3eval dev example-pool pool.jsonl --tokenizer models/tiny --n 4
      e3eval import pool.jsonl --out runs/pool --tokenizer models/tiny
    """
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, write_pool
    from e3eval.tokenizers import load_tokenizer

    if not 0 < min_tokens <= max_tokens:
        raise UserError("need 0 < --min-tokens <= --max-tokens")
    from e3eval.outputs import check_replaceable, write_output

    check_replaceable(out, force, "OUT")
    flag, count = deprecated_alias("--n", n, "--samples", samples)
    if count is not None and count < 0:
        raise UserError(f"{flag} {count}: a number of samples per problem is 0 or more")
    spec = PoolSpec(samples=8 if count is None else count, min_tokens=min_tokens, max_tokens=max_tokens, seed=seed)
    counts = []
    write_output(out, lambda temp: counts.append(write_pool(temp, demo_problems(), spec, load_tokenizer(tokenizer))),
                 force, "OUT")  # fmt: skip
    say(f"wrote {counts[0]} synthetic rollouts to {out}")
