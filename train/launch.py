"""Running a curriculum's steps in order, and the dry run that prints them instead.

`run_steps` skips a step whose output exists (a stage's exported checkpoint, an evaluation's plot), so a rerun
resumes; refuses to start a stage before the checkpoint it starts from is there, with weights in it (one line naming
the folder); and keeps an interrupted attempt's metrics file. `dry_run` prints every command with every value it
would pass, then runs the same preflight as a real run (`preflight.py`) on this machine and reports every problem
together: a dry run fails (exit 2) exactly when a real run here would be refused, no GPU included, so run it where
the training will run. Commands are built by `curriculum.py`; this module only starts them.
"""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable
from pathlib import Path

from e3eval.errors import UserError
from e3eval.train.curriculum import Spec, Step
from e3eval.train.preflight import check_inputs, checkpoint_problem
from e3eval.train.topology import GpuCount, describe_topology


def dry_run(spec: Spec, steps: list[Step], gpus: GpuCount | None, echo: Callable[[str], None] = print) -> None:
    """Print the GPUs and every command, then the preflight's verdict; raise one UserError if a real run here would
    be refused."""
    echo(describe_topology(spec, gpus))
    echo("")
    echo(render_commands([step.command for step in steps]))
    echo("")
    check_inputs(spec, steps, gpus, refused="a real run here would be refused")
    pending = sum(not Path(step.output).exists() for step in steps)
    echo(f"{spec.name}: preflight passed; a real run would run {pending} of {len(steps)} step(s)")


def render_commands(commands: list[list[str]]) -> str:
    """Shell text, one override or option (with its value) per line."""
    blocks = []
    for command in commands:
        lines: list[str] = []
        for part in command:
            quoted = shlex.quote(part)
            starts_line = "=" in part or part.startswith("--")
            if lines and not starts_line and lines[-1].lstrip().startswith("--") and " " not in lines[-1].strip():
                lines[-1] += f" {quoted}"  # an option's value stays with it
            elif lines and (starts_line or len(lines) > 1):
                lines.append(f"    {quoted}")
            elif lines:
                lines[-1] += f" {quoted}"
            else:
                lines.append(quoted)
        blocks.append(" \\\n".join(lines))
    return "\n\n".join(blocks)


def run_steps(steps: list[Step], log: Callable[[str], None] = print) -> int:
    """Run the steps whose output is missing, in order; return how many ran. A failed step stops the curriculum."""
    ran = 0
    for step in steps:
        if Path(step.output).exists():
            log(f"{step.stage}: {step.kind} already done ({step.output} exists), skipping")
            continue
        problem = checkpoint_problem(step.requires) if step.requires is not None else None
        if problem is not None:
            raise UserError(f"{step.stage}: cannot start: the previous stage's {problem}")
        if step.metrics is not None:
            _keep_earlier_metrics(Path(step.metrics), log)
        log(f"{step.stage}: {step.kind}: {shlex.join(step.command[:3])} ...")
        completed = subprocess.run(step.command, check=False)
        if completed.returncode != 0:
            raise UserError(f"{step.stage}: {step.kind} step failed with exit code {completed.returncode}; "
                            "fix the cause and rerun: finished steps are skipped")  # fmt: skip
        if not Path(step.output).exists():
            raise UserError(f"{step.stage}: {step.kind} step finished but {step.output} is missing")
        ran += 1
    return ran


def _keep_earlier_metrics(path: Path, log: Callable[[str], None]) -> None:
    """Move an interrupted attempt's metrics file to `metrics-N.jsonl`: verl's file logger truncates its file, and
    a resumed run logs only the steps after its checkpoint (`figures/metrics_log.py` reads the attempts in order)."""
    if not path.is_file():
        return
    number = 1
    while (kept := path.with_name(f"{path.stem}-{number}{path.suffix}")).exists():
        number += 1
    path.rename(kept)
    log(f"kept the metrics of the earlier attempt as {kept}")
