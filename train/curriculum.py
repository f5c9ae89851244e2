"""Curricula as YAML: stages of (data mixture, training budget, steps, hyper-parameters) turned into verl runs.

A spec names a base model, an output directory and a list of stages. Each stage becomes one
`python -m verl.trainer.main_ppo` command with Hydra overrides (GRPO advantages, token-mean loss aggregation, the
e3 reward function, the stage's budget as `data.max_response_length`), starting from the previous stage's exported
Hugging Face checkpoint (`init: previous`, the default) or from the base model (`init: base`, for ablations run side
by side), and is followed by an `e3eval sweep` of the stage's checkpoint at the training budget and twice it.
Every stage saves its final checkpoint where the next one starts from (`trainer.save_freq` defaults to the stage's
steps; verl also saves on the last step whenever save_freq > 0) and validates about five times (`test_freq`
ceil(steps / 5), plus the last step); its GPUs come from the spec or this machine (`train/topology.py`). Every path
in a command is absolute: verl's workers are Ray actors whose working directory need not be ours.
verl's training metrics go to `OUTPUT_DIR/STAGE/metrics.jsonl` (its `file` logger, beside the console; `logger:`
names the backends), where the figures read them (`figures/metrics_log.py`); a rerun of an interrupted stage first
moves that file to `metrics-N.jsonl` (`train/launch.py`), since verl's file logger starts its file afresh.
`validate_spec` reports every problem of a spec at once, naming the field (and its YAML line): unknown fields
(a typo such as `stepz:` would otherwise be ignored), hyper-parameters of the wrong type (they become verl
overrides) and stage names that are not simple folder names (`../x` would put checkpoints outside output_dir).
Paths and names go into the overrides quoted for Hydra's grammar (`train/overrides.py`), so a comma in a data path
is not a second list item; `train/preflight.py` checks the files, verl, the GPUs and the output folder before
anything is launched. `load_spec` reads only small UTF-8 files and refuses YAML aliases, so a spec cannot expand
into billions of nodes (the "billion laughs" document). This module builds commands and runs nothing;
`train/launch.py` runs them.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e3eval.errors import UserError
from e3eval.specfile import read_spec
from e3eval.train.overrides import hydra_list, hydra_value
from e3eval.train.topology import GpuCount, stage_topology

ALGORITHMS = ("grpo", "grpo_mask")
HYPER = {  # spec key -> verl override
    "train_batch_size": "data.train_batch_size",
    "max_prompt_length": "data.max_prompt_length",
    "lr": "actor_rollout_ref.actor.optim.lr",
    "ppo_mini_batch_size": "actor_rollout_ref.actor.ppo_mini_batch_size",
    "ppo_micro_batch_size_per_gpu": "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
    "log_prob_micro_batch_size_per_gpu": "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu",
    "kl_coef": "actor_rollout_ref.actor.kl_loss_coef",
    "entropy_coeff": "actor_rollout_ref.actor.entropy_coeff",
    "temperature": "actor_rollout_ref.rollout.temperature",
    "rollout_n": "actor_rollout_ref.rollout.n",
    "rollout_name": "actor_rollout_ref.rollout.name",
    "rollout_tensor_parallel": "actor_rollout_ref.rollout.tensor_model_parallel_size",
    "n_gpus_per_node": "trainer.n_gpus_per_node",
    "nnodes": "trainer.nnodes",
    "save_freq": "trainer.save_freq",
    "test_freq": "trainer.test_freq",
}
# One spec key sets both log-prob micro batches verl requires: the rollout's and the reference policy's (the KL term).
HYPER_ALSO = {"log_prob_micro_batch_size_per_gpu": "actor_rollout_ref.ref.log_prob_micro_batch_size_per_gpu"}
# Placed by `stage_steps` itself, with their defaults, rather than in the sorted list of the others.
PLACED = ("n_gpus_per_node", "nnodes", "save_freq", "test_freq")
# What each hyper-parameter's value must be; "word" keeps override syntax (`,` sweeps, `=`, spaces) out of the command.
_HYPER_KINDS = {
    "train_batch_size": "count",
    "max_prompt_length": "count",
    "lr": "positive",
    "ppo_mini_batch_size": "count",
    "ppo_micro_batch_size_per_gpu": "count",
    "log_prob_micro_batch_size_per_gpu": "count",
    "kl_coef": "non_negative",
    "entropy_coeff": "non_negative",
    "temperature": "positive",
    "rollout_n": "count",
    "rollout_name": "word",
    "rollout_tensor_parallel": "count",
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
SPEC_FIELDS = ("name", "description", "model", "output_dir", "algorithm", "logger", "defaults", "stages",
               "extra_overrides")  # fmt: skip
# verl's `trainer.logger` backends a spec may name; wandb needs an account, tensorboard the tensorboard package.
LOGGERS = ("console", "file", "wandb", "tensorboard")
DEFAULT_LOGGER = ("console", "file")
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
    description: str = ""
    logger: tuple[str, ...] = DEFAULT_LOGGER


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
    if not isinstance(data.get("description", ""), str):
        errors.append("description: must be one line of text")
    logger = data.get("logger", list(DEFAULT_LOGGER))
    logger = [logger] if isinstance(logger, str) else logger
    if not isinstance(logger, list) or not logger or any(x not in LOGGERS or logger.count(x) > 1 for x in logger):
        errors.append(f"logger: must be a list of distinct backends from {', '.join(LOGGERS)}, not {logger!r}")
        logger = list(DEFAULT_LOGGER)
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
    return Spec(data["name"], data["model"], data["output_dir"], tuple(stages), tuple(extra),
                " ".join(str(data.get("description", "")).split()), tuple(logger))  # fmt: skip


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
    """The stage's folder in output_dir, as the spec writes it (messages name it so); commands get it absolute."""
    return f"{spec.output_dir}/{stage.name}"


def checkpoint_dir(spec: Spec, stage: Stage) -> str:
    """Where verl leaves the stage's final Hugging Face export, absolute: `_save_checkpoint` writes
    default_local_dir/global_step_{N}/actor, and the FSDP checkpoint manager its `huggingface` folder in that
    (the weights too, as `save_contents` includes hf_model); N is the last step, `total_training_steps`."""
    return os.path.abspath(f"{stage_dir(spec, stage)}/global_step_{stage.steps}/actor/huggingface")


def metrics_path(spec: Spec, stage: Stage) -> str:
    """Where verl's file logger writes the stage's training metrics (absolute)."""
    return os.path.abspath(f"{stage_dir(spec, stage)}/metrics.jsonl")


HUB_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")  # `name` or `org/name`; anything else can only be a path


def model_reference(model: str) -> str:
    """The spec's model as verl gets it: a Hub id as written, a folder as an absolute path. The reading of
    `e3eval.tokenizers.resolve_model_source`, which the preflight asks: a name is a folder when it exists, starts
    with `/`, `.` or `~`, sits in an existing folder, or cannot be a Hub id."""
    path = Path(model).expanduser()
    local = path.exists() or model.startswith(("/", ".", "~")) or (path.parent != Path(".") and path.parent.is_dir())
    return os.path.abspath(path) if local or not HUB_ID.fullmatch(model) else model


def schedule(stage: Stage) -> tuple[int, int]:
    """(save_freq, test_freq): the spec's, else one save at the last step and about five validations."""
    return int(stage.hyper.get("save_freq", stage.steps)), int(stage.hyper.get("test_freq", math.ceil(stage.steps / 5)))


@dataclass(frozen=True)
class Step:
    """One command of a curriculum and the path that exists once it has finished (how a rerun resumes)."""

    stage: str
    kind: str  # train | eval
    command: list[str]
    output: str
    metrics: str | None = None  # train: verl's metrics file, kept aside (not overwritten) when the step reruns
    requires: str | None = None  # train: the previous stage's checkpoint this one starts from


def stage_steps(spec: Spec, gpus: GpuCount | None = None) -> list[Step]:
    """Every step of the curriculum, in order: per stage a verl run, then an e3eval sweep at B and 2B.

    `gpus` is this machine's count, for stages whose spec leaves n_gpus_per_node out (0 when not given)."""
    steps: list[Step] = []
    previous: Stage | None = None
    for stage in spec.stages:
        chained = checkpoint_dir(spec, previous) if stage.init == "previous" and previous is not None else None
        model = chained or model_reference(spec.model)
        metrics = metrics_path(spec, stage) if "file" in spec.logger else None
        topology = stage_topology(stage, gpus)
        save_freq, test_freq = schedule(stage)
        folder = os.path.abspath(stage_dir(spec, stage))
        overrides = [
            "algorithm.adv_estimator=grpo",
            f"data.train_files={hydra_list(tuple(os.path.abspath(f) for f in stage.train_files))}",
            f"data.val_files={hydra_list(tuple(os.path.abspath(f) for f in stage.val_files))}",
            f"data.max_response_length={stage.budget}",
            f"actor_rollout_ref.model.path={hydra_value(model)}",
            "actor_rollout_ref.actor.use_kl_loss=True",
            "actor_rollout_ref.actor.loss_agg_mode=token-mean",
            "actor_rollout_ref.actor.checkpoint.save_contents=[model,optimizer,extra,hf_model]",
            f"custom_reward_function.path={hydra_value(str(REWARD_PATH))}",
            "custom_reward_function.name=compute_score",
            f"trainer.total_training_steps={stage.steps}",
            # verl also stops after total_epochs passes over the data (30 by default), which could come before the
            # last step and its checkpoint; a pass is at least one step, so `steps` passes never do.
            f"trainer.total_epochs={stage.steps}",
            f"trainer.save_freq={save_freq}",
            f"trainer.test_freq={test_freq}",
            f"trainer.n_gpus_per_node={topology.n_gpus_per_node}",
            f"trainer.nnodes={topology.nnodes}",
            f"trainer.default_local_dir={hydra_value(folder)}",
            f"trainer.project_name={hydra_value(spec.name)}",
            f"trainer.experiment_name={hydra_value(stage.name)}",
            # wandb (verl's default) needs an account; the file logger leaves the metrics beside the checkpoints.
            f"trainer.logger=[{','.join(spec.logger)}]",
        ]
        # The loggers run in a Ray actor, which gets variables from the runtime env, not from this process.
        if metrics is not None:
            overrides.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH={hydra_value(metrics)}")
        if "tensorboard" in spec.logger:
            tensorboard = hydra_value(f"{folder}/tensorboard")
            overrides.append(f"+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR={tensorboard}")
        if stage.algorithm == "grpo_mask":
            overrides += [
                "actor_rollout_ref.actor.policy_loss.loss_mode=grpo_mask",
                "+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=e3eval.train.grpo_mask.register",
            ]
        hyper = sorted((key, value) for key, value in stage.hyper.items() if key not in PLACED)
        overrides += [f"{HYPER[key]}={value}" for key, value in hyper]
        overrides += [f"{HYPER_ALSO[key]}={value}" for key, value in hyper if key in HYPER_ALSO]
        overrides += list(spec.extra_overrides)
        steps.append(Step(stage.name, "train", [sys.executable, "-m", "verl.trainer.main_ppo", *overrides],
                          checkpoint_dir(spec, stage), metrics, chained))  # fmt: skip
        if stage.val_dataset:
            eval_dir = f"{folder}/eval"
            sweep = ["e3eval", "sweep", "--model", checkpoint_dir(spec, stage), "--dataset",
                     _dataset_reference(stage.val_dataset),
                     "--budgets", f"{stage.budget},{2 * stage.budget}", "--n", "8",
                     "--train-budget", str(stage.budget), "--out", eval_dir]  # fmt: skip
            steps.append(Step(stage.name, "eval", sweep, f"{eval_dir}/figures/sweep.png"))  # the sweep's last write
        previous = stage
    return steps


def _dataset_reference(dataset: str) -> str:
    """A named benchmark as written, a file as an absolute path."""
    from e3eval.datasets import BENCHMARKS, DEMO

    return dataset if dataset in BENCHMARKS or dataset == DEMO else os.path.abspath(dataset)


def stage_commands(spec: Spec, gpus: GpuCount | None = None) -> list[list[str]]:
    """The commands of `stage_steps`, in order."""
    return [step.command for step in stage_steps(spec, gpus)]
