"""What `e3eval probe` takes from the run when its flags leave a setting out: the model run.json names, the dtype
and sampling temperature the run was generated with, and where the default budgets came from. Every choice is logged
as one line ("model: ... (the run's, from run.json; --model overrides)"), so a user sees what was probed without
reading run.json. This module reads the run record; it loads no model and probes nothing (`job.py` does).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from e3eval.errors import UserError
from e3eval.manifest import GenerationRecord

if TYPE_CHECKING:
    from e3eval.probes.job import ProbeConfig
    from e3eval.run import Run


def recorded_model(run: Run, log: Callable[[str], None] = lambda _: None) -> str:
    """The model run.json says generated the run (`--model` left out), logged: its resolved folder while that is
    still there, else the name it was generated with when that is a hub name. An imported run records no model, a
    served one (`--backend openai`) only the server's name for it, and a moved folder is gone: each is a UserError
    that asks for `--model`."""
    generation = run.record.generation
    recorded = (generation.model_path or generation.model) if generation is not None else None
    if generation is None or recorded is None:
        raise UserError(f"{run.path}: run.json names no model (an imported run): give --model, the weights the "
                        "samples came from")  # fmt: skip
    name = generation.model or recorded
    if Path(recorded).expanduser().is_dir():
        log(f"model: {recorded} (the run's, from run.json; --model overrides)")
        return recorded
    if generation.backend == "openai":
        raise UserError(f"{run.path}: the run was generated through a server (--backend openai) as {name!r}: give "
                        "--model, that model's folder or hub name")  # fmt: skip
    if recorded != name or Path(name).is_absolute() or name.startswith("."):
        raise UserError(f"{run.path}: run.json names the model folder {recorded}, which is not there any more: give "
                        "--model")  # fmt: skip
    log(f"model: {name} (the run's hub name, from run.json; --model overrides)")
    return name


def with_run_settings(config: ProbeConfig, run: Run, log: Callable[[str], None] = lambda _: None) -> ProbeConfig:
    """What the flags leave unset, from how the run was generated (run.json), each choice logged:
    - dtype: the run's (`auto` when it records none: bfloat16 on CUDA, float32 on CPU);
    - temperature: the run's sampling temperature, as verl divides the logits by the rollout temperature (the
      samples were drawn from that distribution cut to top-p); 1 when the run records none or sampled greedily."""
    generation = run.record.generation or GenerationRecord()
    dtype, temperature = config.dtype, config.temperature
    if dtype is None:
        recorded = generation.dtype
        dtype = recorded if recorded in ("float32", "bfloat16", "float16") else "auto"
        if dtype != "auto":
            log(f"dtype: {dtype} (the run's, from run.json; --dtype overrides)")
    if temperature is None:
        sampled = generation.sampling.temperature
        if sampled is not None and 0 < sampled <= 100:
            temperature = float(sampled)
            log(
                f"temperature: {temperature:g} (the run's sampling temperature, from run.json; --temperature overrides)"
            )
        else:
            temperature = 1.0
            why = "sampled greedily" if sampled == 0 else "records no sampling temperature"
            log(f"temperature: 1 (the run {why}; --temperature overrides)")
    return dataclasses.replace(config, dtype=dtype, temperature=temperature)


def budget_source(run: Run) -> str:
    """Where `job._budgets` took the budgets from when `--budgets` was left out."""
    if run.record.scoring is not None and run.record.scoring.budgets:
        return "the run's scored budgets, from run.json"
    generation = run.record.generation
    if generation is not None and (generation.sampling.max_tokens or 0) > 0:
        return "the run's generation limit, from run.json"
    return "the longest response: the run records neither scored budgets nor a generation limit"
