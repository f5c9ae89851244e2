"""The curricula shipped with e3train (`train/presets/*.yaml`): found by name and listed.

`e3train run countdown-coupled` runs `train/presets/countdown-coupled.yaml`; a path to a YAML file of one's own is
taken first, so a local file never loses to a preset of the same name. `e3train presets` lists them, one line each.
A preset's data and output paths are relative to the folder `e3train run` starts in, like any spec's. This module
reads specs (`curriculum.load_spec`) and runs nothing.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from e3eval.errors import UserError
from e3eval.train.curriculum import Spec, load_spec

PRESET_DIR = Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(path.stem for path in PRESET_DIR.glob("*.yaml"))


def find_spec(name_or_path: str) -> Path:
    """A spec file: `name_or_path` itself when it is a file, else the preset of that name (`.yaml` optional)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = name_or_path.removesuffix(".yaml")
    if "/" not in name_or_path and (PRESET_DIR / f"{stem}.yaml").is_file():
        return PRESET_DIR / f"{stem}.yaml"
    if path.exists():
        raise UserError(f"{name_or_path}: not a file; give a curriculum YAML file or a preset name")
    names = preset_names()
    close = difflib.get_close_matches(stem, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise UserError(f"{name_or_path}: no such file, nor a preset; {hint}presets: {', '.join(names)} "
                    "(`e3train presets` describes them)")  # fmt: skip


def describe_preset(name: str, spec: Spec) -> str:
    """One line: the name to run it by, its description and its stages (budget in tokens x steps)."""
    stages = " -> ".join(f"{stage.name} ({stage.budget} tok x {stage.steps} steps)" for stage in spec.stages)
    return f"{name}: {spec.description or '(no description)'} Stages: {stages}"


def list_presets() -> list[str]:
    """One line per shipped preset, by name."""
    return [describe_preset(name, load_spec(PRESET_DIR / f"{name}.yaml")) for name in preset_names()]
