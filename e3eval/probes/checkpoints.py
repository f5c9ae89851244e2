"""Which models a probe runs: `--model` paths, or folders of training checkpoints, in step order.

A `--model` is either a model (a folder with `config.json`, or a hub name when online) or a folder of checkpoints:
verl's exported `global_step_N/actor/huggingface` folders (an e3train stage's output is one such folder per stage).
Each checkpoint's step is the N of the nearest `global_step_N` in its path (None for a plain model), so the probes
of a training run line up against gradient steps (paper Fig. 3d, Fig. 11). This module finds and orders models; it
does not load them (`forward.py` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from e3eval.errors import UserError

_STEP = re.compile(r"global_step_(\d+)$")
_VERL_EXPORT = ("actor", "huggingface")


@dataclass(frozen=True)
class Checkpoint:
    model: str  # the absolute path (or hub name) the model loads from, as the probe tables record it
    step: int | None  # verl's global step when the path names one


def step_of(path: str) -> int | None:
    """The N of the last `global_step_N` component of a path, or None."""
    for part in reversed(Path(path).parts):
        found = _STEP.match(part)
        if found:
            return int(found.group(1))
    return None


def checkpoints(models: list[str]) -> list[Checkpoint]:
    """Expand `--model` arguments into checkpoints: models as given, folders of checkpoints sorted by step.

    A path that does not exist is a UserError unless it looks like a hub name (`org/name`, no local folder of that
    name), which transformers may load when online.
    """
    if not models:
        raise UserError("give at least one --model")
    found: list[Checkpoint] = []
    for model in models:
        path = Path(model)
        if (path / "config.json").is_file():
            found.append(Checkpoint(str(path.resolve()), step_of(model)))
        elif path.is_dir():
            exports = _exports(path)
            if not exports:
                raise UserError(
                    f"--model {model}: neither a model (no config.json) nor a folder of checkpoints "
                    "(no global_step_N/actor/huggingface inside)"
                )
            found.extend(exports)
        elif path.exists():
            raise UserError(f"--model {model}: a file, not a model folder")
        elif _looks_like_hub_name(model):
            found.append(Checkpoint(model, None))
        else:
            raise UserError(f"--model {model}: no such folder")
    seen: set[str] = set()
    unique = []
    for checkpoint in found:
        if checkpoint.model not in seen:
            seen.add(checkpoint.model)
            unique.append(checkpoint)
    return unique


def experiment_of(model: str) -> str:
    """The folder a checkpoint's `global_step_N` sits in (its experiment), or the model itself."""
    parts = Path(model).parts
    for i in range(len(parts) - 1, -1, -1):
        if _STEP.match(parts[i]):
            return str(Path(*parts[:i])) if i else model
    return model


def describe_checkpoints(found: list[Checkpoint]) -> str:
    """What a probe found, one experiment folder per line with its steps: two experiments under one `--model` are
    two series, never one."""
    by_experiment: dict[str, list[str]] = {}
    for checkpoint in found:
        step = str(checkpoint.step) if checkpoint.step is not None else "-"
        by_experiment.setdefault(experiment_of(checkpoint.model), []).append(step)
    lines = [f"  {folder}: step {', '.join(steps)}" for folder, steps in by_experiment.items()]
    return f"{len(found)} model(s) in {len(by_experiment)} folder(s), probed as separate series:\n" + "\n".join(lines)


def _exports(folder: Path) -> list[Checkpoint]:
    exports = []
    for config in folder.resolve().glob(f"**/global_step_*/{'/'.join(_VERL_EXPORT)}/config.json"):
        model = str(config.parent)
        exports.append(Checkpoint(model, step_of(model)))
    return sorted(exports, key=lambda c: (c.step if c.step is not None else -1, c.model))


def _looks_like_hub_name(model: str) -> bool:
    return model.count("/") == 1 and not model.startswith((".", "/", "~")) and " " not in model
