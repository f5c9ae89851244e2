"""Curricula as YAML: stages of (data mixture, training budget, steps, hyper-parameters) turned into verl runs.

A spec names a base model, an output directory and a list of stages. Each stage becomes one
`python -m verl.trainer.main_ppo` command with Hydra overrides (GRPO advantages, token-mean loss aggregation, the
e3 reward function, the stage's budget as `data.max_response_length`), starting from the previous stage's exported
Hugging Face checkpoint (`init: previous`, the default) or from the base model (`init: base`, for ablations run side
by side), and is followed by an `e3eval sweep` of the stage's checkpoint at the training budget and twice it.
verl's training metrics go to `OUTPUT_DIR/STAGE/metrics.jsonl` (its `file` logger, beside the console), where the
figures read them (`figures/metrics_log.py`); a rerun of an interrupted stage first moves that file to
`metrics-N.jsonl`, since verl's file logger starts its file afresh.
`validate_spec` reports every problem of a spec at once, naming the field (and its YAML line): unknown fields
(a typo such as `stepz:` would otherwise be ignored), hyper-parameters of the wrong type (they become verl
overrides) and stage names that are not simple folder names (`../x` would put checkpoints outside output_dir).
Paths and names go into the overrides quoted for Hydra's grammar (`_hydra_value`), so a comma in a data path is not
a second list item; `train/preflight.py` checks the files, verl and the output folder before anything is launched.
`load_spec` reads only small UTF-8 files and refuses YAML aliases, so a spec cannot expand into billions of nodes
(the "billion laughs" document). This module runs nothing itself except in `run_steps`, which skips steps
whose output already exists so that a rerun resumes; `e3train run SPEC --dry-run` prints the commands.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e3eval.errors import UserError
from e3eval.specfile import read_spec

ALGORITHMS = ("grpo", "grpo_mask")
HYPER = {  # spec key -> verl override
    "train_batch_size": "data.train_batch_size",
    "max_prompt_length": "data.max_prompt_length",
    "lr": "actor_rollout_ref.actor.optim.lr",
    "ppo_mini_batch_size": "actor_rollout_ref.actor.ppo_mini_batch_size",
    "ppo_micro_batch_size_per_gpu": "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
    "kl_coef": "actor_rollout_ref.actor.kl_loss_coef",
    "entropy_coeff": "actor_rollout_ref.actor.entropy_coeff",
    "temperature": "actor_rollout_ref.rollout.temperature",
    "rollout_n": "actor_rollout_ref.rollout.n",
    "rollout_name": "actor_rollout_ref.rollout.name",
    "n_gpus_per_node": "trainer.n_gpus_per_node",
    "nnodes": "trainer.nnodes",
    "save_freq": "trainer.save_freq",
    "test_freq": "trainer.test_freq",
}
# What each hyper-parameter's value must be; "word" keeps override syntax (`,` sweeps, `=`, spaces) out of the command.
_HYPER_KINDS = {
    "train_batch_size": "count",
    "max_prompt_length": "count",
    "lr": "positive",
    "ppo_mini_batch_size": "count",
    "ppo_micro_batch_size_per_gpu": "count",
    "kl_coef": "non_negative",
    "entropy_coeff": "non_negative",
    "temperature": "positive",
    "rollout_n": "count",
    "rollout_name": "word",
    "n_gpus_per_node": "count",
    "nnodes": "count",
    "save_freq": "every",
    "test_freq": "every",
}
_KIND_TEXT = {
    "count": "a positive integer",
    "positive": "a positive number",
    "non_negative": "a number >= 0",
    "every": "a positive integer, or -1 for never",
    "word": "a plain name such as vllm",
}
SPEC_FIELDS = ("name", "model", "output_dir", "algorithm", "defaults", "stages", "extra_overrides")
STAGE_FIELDS = ("name", "data", "budget", "steps", "algorithm", "init", "hyper", "val_dataset")
DATA_FIELDS = ("train", "val")
# A stage's name is a folder of output_dir: no separators, no `..`, no leading `-` or `.` (hidden, or read as a flag).
STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
MAX_SPEC_BYTES = 1 << 20  # a curriculum is a page of YAML; anything near this is not one
REWARD_PATH = Path(__file__).resolve().parent / "reward.py"


@dataclass(frozen=True)
class Stage:
    name: str
    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    budget: int
    steps: int
    algorithm: str
    init: str
    hyper: dict[str, Any] = field(default_factory=dict)
    val_dataset: str | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    model: str
    output_dir: str
    stages: tuple[Stage, ...]
    extra_overrides: tuple[str, ...] = ()


def load_spec(path: Path) -> Spec:
    """Read and validate a curriculum YAML file; every problem is one UserError naming the file."""
    data, lines = read_spec(Path(path), "curriculum spec", MAX_SPEC_BYTES)
    return validate_spec(data, str(path), lines)


def _locate(error: str, lines: dict[str, int]) -> str:
    """`stages[0].budget: ...` -> `stages[0].budget (line 7): ...`, using the nearest enclosing field present."""
    path, _, message = error.partition(": ")
    candidate = path
    while candidate and candidate not in lines:
        candidate = candidate.rpartition(".")[0] if "." in candidate else candidate.rpartition("[")[0]
    return f"{path} (line {lines[candidate]}): {message}" if candidate else error


def validate_spec(data: Any, where: str = "spec", lines: dict[str, int] | None = None) -> Spec:
    """Check a parsed spec; raise one UserError listing every problem, each naming its field (and line, if known)."""
    errors: list[str] = []
    if not isinstance(data, dict):
        raise UserError(f"{where}: a curriculum spec is a mapping with name, model, output_dir and stages")
    errors += _unknown_fields(data, SPEC_FIELDS, "")
    for key in ("name", "model", "output_dir"):
        if not isinstance(data.get(key), str) or not data.get(key):
            errors.append(f"{key}: required string")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        errors.append("defaults: must be a mapping of hyper-parameters")
        defaults = {}
    errors += [f"defaults.{k}: unknown hyper-parameter (known: {', '.join(HYPER)})" for k in defaults if k not in HYPER]
    errors += _hyper_value_errors(defaults, "defaults")
    stages: list[Stage] = []
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, list) or not raw_stages:
        errors.append("stages: required non-empty list")
        raw_stages = []
    for i, raw in enumerate(raw_stages):
        prefix = f"stages[{i}]"
        if not isinstance(raw, dict):
            errors.append(f"{prefix}: must be a mapping")
            continue
        stage_errors = _unknown_fields(raw, STAGE_FIELDS, f"{prefix}.")
        if isinstance(raw.get("data"), dict):
            stage_errors += _unknown_fields(raw["data"], DATA_FIELDS, f"{prefix}.data.")
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            stage_errors.append(f"{prefix}.name: required string")
        elif not STAGE_NAME.fullmatch(name):
            stage_errors.append(f"{prefix}.name: {name!r} is not a simple name (letters, digits, '-', '_', '.', "
                                "starting with a letter or digit): it names a folder in output_dir")  # fmt: skip
        files = {}
        for kind in ("train", "val"):
            value = (raw.get("data") or {}).get(kind) if isinstance(raw.get("data"), dict) else None
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
                stage_errors.append(f"{prefix}.data.{kind}: required list of Parquet files")
                value = []
            files[kind] = tuple(value)
        for key in ("budget", "steps"):
            value = raw.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                stage_errors.append(f"{prefix}.{key}: must be a positive integer")
        algorithm = raw.get("algorithm", data.get("algorithm", "grpo"))
        if algorithm not in ALGORITHMS:
            stage_errors.append(f"{prefix}.algorithm: must be one of {', '.join(ALGORITHMS)}")
        init = raw.get("init", "previous" if i else "base")
        if init not in ("previous", "base"):
            stage_errors.append(f"{prefix}.init: must be previous or base")
        hyper = raw.get("hyper") or {}
        if not isinstance(hyper, dict):
            stage_errors.append(f"{prefix}.hyper: must be a mapping")
            hyper = {}
        stage_errors += [f"{prefix}.hyper.{k}: unknown hyper-parameter" for k in hyper if k not in HYPER]
        stage_errors += _hyper_value_errors(hyper, f"{prefix}.hyper")
        val_dataset = raw.get("val_dataset")
        if val_dataset is not None and (not isinstance(val_dataset, str) or not val_dataset):
            stage_errors.append(f"{prefix}.val_dataset: must be a dataset name or file")
        errors += stage_errors
        if not stage_errors:
            stages.append(Stage(name, files["train"], files["val"], raw["budget"], raw["steps"], algorithm, init,
                                {**defaults, **hyper}, raw.get("val_dataset")))  # fmt: skip
    names = [s.name for s in stages]
    errors += [f"stages: duplicate stage name {n!r}" for n in sorted({n for n in names if names.count(n) > 1})]
    extra = data.get("extra_overrides") or []
    if not isinstance(extra, list) or not all(isinstance(x, str) and "=" in x for x in extra):
        errors.append("extra_overrides: must be a list of key=value strings")
        extra = []
    if errors:
        located = [_locate(e, lines) for e in errors] if lines else errors
        raise UserError(f"{where}: {len(errors)} problem(s):\n  " + "\n  ".join(located))
    return Spec(data["name"], data["model"], data["output_dir"], tuple(stages), tuple(extra))


def _unknown_fields(mapping: dict[Any, Any], known: tuple[str, ...], prefix: str) -> list[str]:
    """An error for each key of `mapping` that is not a field here, with the closest known field when one is near."""
    errors = []
    for key in mapping:
        if key in known:
            continue
        close = difflib.get_close_matches(str(key), known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
        errors.append(f"{prefix}{key}: unknown field ({hint})")
    return errors


def _hyper_value_errors(hyper: dict[Any, Any], prefix: str) -> list[str]:
    """An error for each known hyper-parameter whose value verl could not take (it is written into an override)."""
    return [
        f"{prefix}.{key}: must be {_KIND_TEXT[_HYPER_KINDS[key]]}, not {value!r}"
        for key, value in hyper.items()
        if key in _HYPER_KINDS and not _fits(value, _HYPER_KINDS[key])
    ]


def _fits(value: Any, kind: str) -> bool:
    if kind == "word":
        return isinstance(value, str) and re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value) is not None
    if isinstance(value, bool):
        return False
    if kind in ("count", "every"):
        return isinstance(value, int) and (value >= 1 or (kind == "every" and value == -1))
    # YAML 1.1 reads `1e-6` (no dot) as a string; it is still the number the user meant.
    try:
        number = float(value) if isinstance(value, (int, float, str)) else math.nan
    except ValueError:
        return False
    return math.isfinite(number) and (number > 0 if kind == "positive" else number >= 0)


def stage_dir(spec: Spec, stage: Stage) -> str:
    """The stage's folder in output_dir: verl's checkpoints and metrics, the sweep of its checkpoint."""
    return f"{spec.output_dir}/{stage.name}"


def checkpoint_dir(spec: Spec, stage: Stage) -> str:
    """Where verl leaves the stage's final Hugging Face export (`save_contents` includes hf_model)."""
    return f"{stage_dir(spec, stage)}/global_step_{stage.steps}/actor/huggingface"


def metrics_path(spec: Spec, stage: Stage) -> str:
    """Where verl's file logger writes the stage's training metrics (absolute: see `stage_steps`)."""
    return os.path.abspath(f"{stage_dir(spec, stage)}/metrics.jsonl")


_HYDRA_NON_STRINGS = {"null", "true", "false", "inf", "nan"}


def _hydra_value(text: str) -> str:
    """A string as a Hydra override value that Hydra reads back as exactly that string.

    Left bare only when it is plainly a path or a name (Hydra would read `123`, `1e5`, `null` or `true` as another
    type); otherwise single-quoted. Inside quotes, `${` would still be an OmegaConf interpolation, so it is written
    `\\${`, and backslashes are doubled where they precede a quote, `${` or the closing quote (elsewhere they are
    literal). `tests/test_hostile_train.py` checks the round trip through verl's real Hydra config.
    """
    if re.fullmatch(r"[A-Za-z0-9_./-]+", text) and (
        "/" in text or (text[0].isalpha() and text.lower() not in _HYDRA_NON_STRINGS)
    ):
        return text
    body = re.sub(r"(\\*)\$\{", lambda m: m.group(1) * 2 + "\\${", text)
    body = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), body)
    return "'" + body + "'"


def _list(values: tuple[str, ...]) -> str:
    return "[" + ",".join(_hydra_value(v) for v in values) + "]"


@dataclass(frozen=True)
class Step:
    """One command of a curriculum and the path that exists once it has finished (how a rerun resumes)."""

    stage: str
    kind: str  # train | eval
    command: list[str]
    output: str
    metrics: str | None = None  # train: verl's metrics file, kept aside (not overwritten) when the step reruns


def stage_steps(spec: Spec) -> list[Step]:
    """Every step of the curriculum, in order: per stage a verl run, then an e3eval sweep at B and 2B."""
    steps: list[Step] = []
    previous: Stage | None = None
    for stage in spec.stages:
        model = checkpoint_dir(spec, previous) if stage.init == "previous" and previous is not None else spec.model
        metrics = metrics_path(spec, stage)
        overrides = [
            "algorithm.adv_estimator=grpo",
            f"data.train_files={_list(stage.train_files)}",
            f"data.val_files={_list(stage.val_files)}",
            f"data.max_response_length={stage.budget}",
            f"actor_rollout_ref.model.path={_hydra_value(model)}",
            "actor_rollout_ref.actor.use_kl_loss=True",
            "actor_rollout_ref.actor.loss_agg_mode=token-mean",
            "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
            f"custom_reward_function.path={_hydra_value(str(REWARD_PATH))}",
            "custom_reward_function.name=compute_score",
            f"trainer.total_training_steps={stage.steps}",
            f"trainer.default_local_dir={_hydra_value(stage_dir(spec, stage))}",
            f"trainer.project_name={_hydra_value(spec.name)}",
            f"trainer.experiment_name={_hydra_value(stage.name)}",
            # wandb (verl's default) needs an account; the file logger leaves the metrics beside the checkpoints.
            "trainer.logger=[console,file]",
            # The logger runs in a Ray actor, which gets the variable from the runtime env, not from this process;
            # an absolute path, because an actor's working directory need not be ours.
            f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={_hydra_value(metrics)}",
        ]
        if stage.algorithm == "grpo_mask":
            overrides += [
                "actor_rollout_ref.actor.policy_loss.loss_mode=grpo_mask",
                "+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=train.grpo_mask.register",
            ]
        overrides += [f"{HYPER[key]}={value}" for key, value in sorted(stage.hyper.items())]
        overrides += list(spec.extra_overrides)
        steps.append(Step(stage.name, "train", [sys.executable, "-m", "verl.trainer.main_ppo", *overrides],
                          checkpoint_dir(spec, stage), metrics))  # fmt: skip
        if stage.val_dataset:
            eval_dir = f"{stage_dir(spec, stage)}/eval"
            sweep = ["e3eval", "sweep", "--model", checkpoint_dir(spec, stage), "--dataset", stage.val_dataset,
                     "--budgets", f"{stage.budget},{2 * stage.budget}", "--n", "8",
                     "--train-budget", str(stage.budget), "--out", eval_dir]  # fmt: skip
            steps.append(Step(stage.name, "eval", sweep, f"{eval_dir}/figures/sweep.png"))  # the sweep's last write
        previous = stage
    return steps


def stage_commands(spec: Spec) -> list[list[str]]:
    """The commands of `stage_steps`, in order."""
    return [step.command for step in stage_steps(spec)]


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
