"""What `generate` and `sweep` print once the work is done or interrupted: counts, budget forcing, the sweep's table.

After generating, the commands say what budget forcing did (`Insertions.describe`: wait text, delimiter, insertions)
and warn, on stderr and again under a sweep's table, when `--wait N` inserted nothing; above a sweep's report (which
labels the run: model · dataset · forcing · policy · subset) come the run's forcing totals when this call did not
generate them all. A Ctrl-C ends with the samples stored and how to resume (`resumable`), before `cli.py`'s generic
line, which cannot count them. The work itself is `generation.py`'s and `sweep.py`'s.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.markup import escape

from e3eval.commands.output import err_console, say, show_comparison, warn


@contextmanager
def resumable() -> Iterator[None]:
    """Ctrl-C during a generation (or a sweep's scoring): one line with the samples stored and how to go on, exit
    130 (before `cli.py`'s generic `interrupted` line, which cannot count them)."""
    from e3eval.generation import Interrupted

    try:
        yield
    except Interrupted as stop:
        err_console.print(f"[bold yellow]{escape(stop.describe())}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except KeyboardInterrupt:  # before the run was opened (loading the tokenizer, the dataset): nothing new stored
        err_console.print("[bold yellow]interrupted after 0 samples (before generating); rerun the same command to "
                          "resume[/]", highlight=False, soft_wrap=True)  # fmt: skip
        raise typer.Exit(130) from None


def show_forcing(result: Any, warning: bool = True) -> None:
    """What budget forcing did to the new samples (`budget forcing (wait=2, "Wait" for "</think>"): inserted 37 waits
    in 16 of 16 samples; ...`) and, with `warning`, the warning when `--wait N` inserted nothing. It keeps exit code
    0: nothing to insert is also what a model that spends every budget thinking gives, and its samples are valid; the
    warning (yellow, on stderr, repeated under a sweep's table and in its plot) names the delimiter never seen."""
    if result.insertions is None or not result.insertions.samples:
        return
    say(result.insertions.describe(result.forcing))
    if warning and result.forcing_warning():
        warn(result.forcing_warning())


def show_sweep(outcome: Any) -> None:
    """What a sweep did: generation counts and forcing (the run's totals too, when they are not this call's), scoring
    warnings, the report (each run's label names its model, dataset, forcing, policy and subset), and the plots."""
    generated = outcome.generation
    if generated.generated:
        say(
            f"generated {generated.generated} samples ({generated.tokens:,} tokens) in {generated.seconds:.1f}s; "
            f"{generated.skipped} were already there"
        )
    show_forcing(generated, warning=False)
    if outcome.scoring is not None:
        for warning in outcome.scoring.warnings:
            warn(warning)
        forcing = _run_forcing(outcome)
        if forcing:
            say(forcing)
        show_comparison(outcome.comparison)
        say(f"plots: {', '.join(str(p) for p in outcome.plots)}")
    if generated.forcing_warning():  # last, below the table: the numbers above are those of plain sampling
        warn(generated.forcing_warning())


def _run_forcing(outcome: Any) -> str | None:
    """`budget forcing (wait=2, "Wait" for "</think>"), the run's 64 samples: inserted 37 waits in 20 of 64 samples`:
    run.json's totals, which the table rests on, when they are not the ones just printed (a rerun, a grown run)."""
    from e3eval.budget_forcing import Insertions, forcing_head

    generated = outcome.generation
    if generated.generated and not generated.skipped:
        return None  # the new samples are the run's: `show_forcing` said it
    generation = outcome.comparison.runs[0].run.record.generation
    counted = generation.fields.get("insertions") if generation is not None else None
    if generation is None or generation.forcing is None or not isinstance(counted, dict):
        return None
    forcing = generation.forcing
    total = Insertions(*(int(counted.get(k) or 0) for k in ("waits", "samples_forced", "samples")))
    head = forcing_head(forcing.mode, forcing.wait, forcing.wait_text, forcing.think_end)
    line = f"{head}, the run's {total.samples} samples: {total.describe()}"
    if forcing.wait and total.samples and not total.waits and forcing.mode != "s1":
        line += " (NOTHING was forced: these are plain samples)"
    return line
