"""The checks `e3train run` makes before launching anything (and `--dry-run` after printing the commands), all
problems reported together.

verl finds most mistakes only after Ray, the model and the rollout engine have started, and then dies with a
traceback (a text file given as training data ends in `ModuleNotFoundError: datasets`, or later in a pyarrow error).
So before the first step: every data file is a Parquet file with the columns verl's RL dataset and reward manager read
(verl 0.9.1 `verl/utils/dataset/rl_dataset.py` and `verl/workers/reward_manager/naive.py`: the chat `prompt` as a list
of {role, content} messages, `data_source` (the reward function's dispatch key), `reward_model.ground_truth`, and
`extra_info`, when present, a struct: verl calls `extra_info.get("index")` on every row), read from the file's footer
only; each stage has rows to train and validate on, at least one training batch of them (verl drops a partial batch);
every stage writes the checkpoint the next starts from (save_freq > 0, hf_model saved, no extra override moving it),
and a finished stage's checkpoint holds weights. When a training step is still to run: verl and the modules its
trainer imports at run time are installed (verl itself is installed without dependencies, `make engines`), as are the
stage's rollout engine (verl 0.9 requires it named) and logging backends; the GPUs are there (`topology.py`); the base
model is a model folder or a reachable Hub id whose tokenizer loads and has a chat template (verl renders every
prompt with it); and verl's own config checks pass (`trainer_config.py`). The output folder is not in an e3eval run
and every stage's folder resolves inside it. This module reads and launches nothing else; `curriculum.py` builds the
steps.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from e3eval.dependencies import INSTALL_HINTS, installed
from e3eval.errors import UserError
from e3eval.train.curriculum import Spec, Step, stage_dir
from e3eval.train.overrides import override_values
from e3eval.train.topology import GpuCount, topology_problems
from e3eval.train.write_guard import check_output_dir

# module verl's trainer imports at run time -> the pip distribution that provides it (verl 0.9.1's `verl-core` extra)
VERL_RUNTIME = {
    "torch": "torch",
    "transformers": "transformers",
    "ray": "'ray[default]'",
    "hydra": "hydra-core",
    "omegaconf": "omegaconf",
    "tensordict": "'tensordict>=0.8,<=0.10,!=0.9.0'",
    "codetiming": "codetiming",
    "datasets": "datasets",  # rl_dataset.py reads the Parquet files with it
    "PIL": "pillow",  # rl_dataset.py
    "torchdata": "torchdata",  # ray_trainer.py: StatefulDataLoader
    "transfer_queue": "TransferQueue",  # the v1 trainer (trainer.use_v1, on by default)
}
ROLLOUT_ENGINES = {"vllm": "vllm", "sglang": "sglang"}  # rollout_name -> module
GLOB_CHARACTERS = "*?["  # the `datasets` library reads a data file name as a glob pattern
VERL_TRAIN_BATCH_SIZE = 1024  # verl 0.9.1's data.train_batch_size default
LOGGER_MODULES = {"wandb": "wandb", "tensorboard": "tensorboard"}  # logger -> the module verl's Tracking imports
# Set by e3train for each stage: where its checkpoint goes and when it is written, and what the next stage starts from.
OWNED = ("trainer.default_local_dir", "trainer.total_training_steps", "trainer.total_epochs",
         "actor_rollout_ref.model.path")  # fmt: skip


def check_inputs(spec: Spec, steps: list[Step], gpus: GpuCount | None = None, refused: str = "cannot start") -> None:
    """Raise one UserError listing everything that would stop the curriculum once launched."""
    problems = preflight_problems(spec, steps, gpus)
    if problems:
        raise UserError(f"{spec.name}: {refused}: {len(problems)} problem(s):\n  " + "\n  ".join(problems))


def preflight_problems(spec: Spec, steps: list[Step], gpus: GpuCount | None) -> list[str]:
    """Everything that would stop the curriculum once launched, one line each, in the order of the spec."""
    overrides = override_values(spec.extra_overrides)
    keys = (overrides.get("data.prompt_key", "prompt"), overrides.get("data.reward_fn_key", "data_source"))
    problems = _output_problems(spec)
    pending = {step.stage for step in steps if step.kind == "train" and not Path(step.output).exists()}
    batches = {step.stage: override_values(step.command[3:]).get("data.train_batch_size", "") for step in steps}
    for i, stage in enumerate(spec.stages):
        batch = int(batches[stage.name]) if batches.get(stage.name, "").isdigit() else VERL_TRAIN_BATCH_SIZE
        for kind, files in (("train", stage.train_files), ("val", stage.val_files)):
            rows = 0
            for name in files:
                found, count = data_file_problems(name, *keys)
                problems += [f"stages[{i}].data.{kind}: {problem}" for problem in found]
                rows += count
            if any(p.startswith(f"stages[{i}].data.{kind}:") for p in problems):
                continue
            if rows == 0:
                problems.append(f"stages[{i}].data.{kind}: the files hold no rows")
            elif kind == "train" and rows < batch and stage.name in pending:
                problems.append(f"stages[{i}].data.train: {rows} rows, fewer than train_batch_size {batch}: verl "
                                "trains on whole batches only, so the stage would have no step")  # fmt: skip
    problems += _chaining_problems(spec, steps, overrides)
    if pending:
        problems += _runtime_problems(spec, pending, overrides)
        problems += topology_problems(spec, pending, gpus)
        problems += _logger_problems(spec)
        if any(step.kind == "train" and step.requires is None and step.stage in pending for step in steps):
            problems += model_problems(spec.model)
        problems += _config_problems(spec, steps, pending)
    return problems


def checkpoint_problem(path: str) -> str | None:
    """Why the Hugging Face checkpoint folder `path` cannot start a stage, or None when it holds a model."""
    folder = Path(path)
    if not folder.is_dir():
        return f"checkpoint {path} does not exist"
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("pytorch_model*.bin")):
        return f"checkpoint {path} holds no model weights (no *.safetensors)"
    return None


def model_problems(model: str) -> list[str]:
    """What stops verl loading `model` and rendering prompts with its tokenizer (verl applies its chat template)."""
    from e3eval.tokenizers import load_tokenizer, resolve_model_source

    try:
        source = resolve_model_source(model, "model")
    except UserError as exc:
        return [str(exc)]
    problems = []
    if source == "local" and not (Path(model).expanduser() / "config.json").is_file():
        problems.append(f"model {model}: no config.json there: not a Hugging Face model folder")
    if not installed("transformers"):
        return problems  # the runtime check names it
    try:
        tokenizer = load_tokenizer(model)
    except UserError as exc:
        return [*problems, str(exc).splitlines()[0]]
    if not getattr(tokenizer, "chat_template", None):
        problems.append(f"model {model}: its tokenizer has no chat template, and verl renders every prompt with "
                        "it; start from a chat model or add a template to its tokenizer_config.json")  # fmt: skip
    return problems


def data_file_problems(name: str, prompt_key: str = "prompt", reward_key: str = "data_source") -> tuple[list[str], int]:
    """What would stop verl reading `name` as RL training data, and its row count (read from the footer)."""
    path = Path(name)
    if not path.is_file():
        return [f"no such file {name}"], 0
    if any(c in name for c in GLOB_CHARACTERS):
        return [f"{name}: verl's loader reads {GLOB_CHARACTERS!r} in a file name as a glob pattern; rename it"], 0
    if path.suffix != ".parquet":
        return [f"{name}: not a .parquet file (verl picks its reader by extension; `e3train prepare` makes data)"], 0
    try:
        metadata = pq.read_metadata(path)
        schema = metadata.schema.to_arrow_schema()
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        return [f"{name}: not a Parquet file ({str(exc).splitlines()[0]})"], 0
    found = [f"{name}: {problem}" for problem in _column_problems(schema, prompt_key, reward_key)]
    return found, metadata.num_rows


def _column_problems(schema: pa.Schema, prompt_key: str, reward_key: str) -> list[str]:
    problems = []
    names = schema.names
    prompt = schema.field(prompt_key).type if prompt_key in names else None
    message = prompt.value_type if prompt is not None and pa.types.is_list(prompt) else None
    if message is None or not pa.types.is_struct(message) or not {"role", "content"} <= _fields(message):
        problems.append(f"column {prompt_key!r} must be a list of {{role, content}} chat messages")
    if reward_key not in names or not pa.types.is_string(schema.field(reward_key).type):
        problems.append(f"column {reward_key!r} must be a string (the reward function's data source)")
    reward = schema.field("reward_model").type if "reward_model" in names else None
    if reward is None or not pa.types.is_struct(reward) or "ground_truth" not in _fields(reward):
        problems.append("column 'reward_model' must be a struct with a 'ground_truth'")
    if "extra_info" in names and not pa.types.is_struct(schema.field("extra_info").type):
        problems.append("column 'extra_info' must be a struct (verl reads extra_info.index); a file from an earlier "
                        "`e3train prepare` has a JSON string there: prepare it again")  # fmt: skip
    if problems:
        problems[-1] += f" (columns: {', '.join(names) or 'none'})"
    return problems


def _fields(struct: pa.StructType) -> set[str]:
    return {struct.field(i).name for i in range(struct.num_fields)}


def _output_problems(spec: Spec) -> list[str]:
    out = Path(spec.output_dir)
    try:
        check_output_dir(out, "output_dir")
    except UserError as exc:
        return [str(exc)]
    problems = []
    root = out.resolve()
    for i, stage in enumerate(spec.stages):
        folder = Path(stage_dir(spec, stage)).resolve()
        if not folder.is_relative_to(root) or folder == root:
            problems.append(f"stages[{i}].name: {stage_dir(spec, stage)} resolves to {folder}, outside output_dir")
    return problems


def _chaining_problems(spec: Spec, steps: list[Step], overrides: dict[str, str]) -> list[str]:
    """What would leave a stage without the final checkpoint the next one starts from (and a rerun skips on)."""
    problems = [f"extra_overrides: {key} is set by e3train for each stage (its checkpoint, and where the next stage "
                "starts from); remove it" for key in OWNED if key in overrides]  # fmt: skip
    index = {stage.name: i for i, stage in enumerate(spec.stages)}
    for step in steps:
        if step.kind != "train" or Path(step.output).exists():
            continue
        i, values = index[step.stage], override_values(step.command[3:])
        save_freq = values.get("trainer.save_freq", "")
        if save_freq.lstrip("-").isdigit() and int(save_freq) <= 0:
            problems.append(f"stages[{i}]: save_freq {save_freq} saves no checkpoint, so {step.output} (the "
                            "next stage's start, and how a rerun knows a stage is done) is never written")  # fmt: skip
        if "hf_model" not in values.get("actor_rollout_ref.actor.checkpoint.save_contents", ""):
            problems.append(f"stages[{i}]: save_contents without hf_model: {step.output} would hold no weights")
        problem = checkpoint_problem(step.requires) if step.requires and Path(step.requires).exists() else None
        if problem is not None:  # the stage before is done (its checkpoint folder is there) but holds no model
            problems.append(f"stages[{i}]: starts from {problem}")
    return problems


def _logger_problems(spec: Spec) -> list[str]:
    problems = [f"logger {name}: not installed (pip install {module})" for name, module in LOGGER_MODULES.items()
                if name in spec.logger and not installed(module)]  # fmt: skip
    if "wandb" in spec.logger and not os.environ.get("WANDB_API_KEY") and not (Path.home() / ".netrc").is_file():
        problems.append("logger wandb: no WANDB_API_KEY and no `wandb login`; verl's Ray workers cannot ask for one")
    return problems


def _config_problems(spec: Spec, steps: list[Step], pending: set[str]) -> list[str]:
    """verl's own config checks on each stage still to train (`trainer_config.py`)."""
    from e3eval.train.trainer_config import config_problems

    index = {stage.name: i for i, stage in enumerate(spec.stages)}
    problems = []
    for step in steps:
        if step.kind == "train" and step.stage in pending:
            problems += [f"stages[{index[step.stage]}]: {problem}" for problem in config_problems(step.command[3:])]
    return problems


def _runtime_problems(spec: Spec, pending: set[str], overrides: dict[str, str]) -> list[str]:
    if not installed("verl"):
        return [f"verl is not installed ({INSTALL_HINTS['verl']})"]
    needed = dict(VERL_RUNTIME)
    if overrides.get("trainer.use_v1", "true").lower() == "false":
        del needed["transfer_queue"]
    missing = [module for module in needed if not installed(module)]
    problems = []
    if missing:
        problems.append(f"verl's trainer needs {', '.join(missing)}, not installed: "
                        f"pip install {' '.join(needed[m] for m in missing)}")  # fmt: skip
    default = overrides.get("actor_rollout_ref.rollout.name")
    for i, stage in enumerate(spec.stages):
        if stage.name not in pending:
            continue
        engine = stage.hyper.get("rollout_name", default)
        if engine is None:
            problems.append(f"stages[{i}]: no rollout engine: verl 0.9 has no default; set rollout_name (vllm or "
                            "sglang) under defaults or the stage's hyper")  # fmt: skip
        elif engine in ROLLOUT_ENGINES and not installed(ROLLOUT_ENGINES[engine]):
            hint = INSTALL_HINTS.get(engine, f"pip install {engine}")
            problems.append(f"stages[{i}]: rollout engine {engine} is not installed ({hint})")
    return problems
