"""The shipped presets as verl would run them: every stage's overrides composed onto verl's own trainer config (Hydra's
compose API, as `verl.trainer.main_ppo` does) and passed through verl's own `validate_config`; each chained stage
starting exactly where verl's `_save_checkpoint` leaves the stage before's final Hugging Face export; checkpoints,
validation points, GPUs, loggers and absolute paths; presets by name; and `--dry-run` on a machine without a GPU
(real processes, real prepared data, the tiny model)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from e3eval.errors import UserError
from e3eval.train.catalog import PRESET_DIR, find_spec, list_presets, preset_names
from e3eval.train.curriculum import checkpoint_dir, load_spec, stage_steps, validate_spec
from e3eval.train.launch import run_steps
from e3eval.train.preflight import model_problems, preflight_problems
from e3eval.train.prepare import prepare_countdown
from e3eval.train.topology import GpuCount

PRESETS = sorted(PRESET_DIR.glob("*.yaml"))
GPU_COUNTS = (1, 2, 4, 8)


def _compose(overrides: list[str]):
    import verl
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def _train_configs(spec, gpus: int) -> list:
    """verl's composed config of each stage's training command, in order."""
    steps = [step for step in stage_steps(spec, GpuCount(gpus)) if step.kind == "train"]
    return [_compose(step.command[step.command.index("verl.trainer.main_ppo") + 1 :]) for step in steps]


def _e3train(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """A real `e3train` process, offline, with wide output and `env` added (CUDA_VISIBLE_DEVICES="" hides GPUs)."""
    bin_dir = Path(sys.executable).parent
    base = {"COLUMNS": "200", "PATH": str(bin_dir), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(bin_dir / "e3train"), *args], capture_output=True, text=True, cwd=cwd, timeout=300,
                          env={**base, **env})  # fmt: skip


SPEC = {
    "name": "tiny",
    "model": "MODEL",
    "output_dir": "out",
    "defaults": {
        "rollout_name": "vllm",
        "train_batch_size": 2,
        "rollout_n": 2,
        "ppo_mini_batch_size": 2,
        "ppo_micro_batch_size_per_gpu": 1,
        "log_prob_micro_batch_size_per_gpu": 1,
        "rollout_tensor_parallel": 1,
    },
    "stages": [
        {
            "name": "s1",
            "data": {"train": "data/train-3.parquet", "val": "data/test-3.parquet"},
            "budget": 64,
            "steps": 7,
        },
        {
            "name": "s2",
            "data": {"train": "data/train-6.parquet", "val": "data/test-6.parquet"},
            "budget": 128,
            "steps": 3,
            "hyper": {"save_freq": 2, "test_freq": -1},
        },
    ],
}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_preset_composes_onto_verls_config_and_passes_its_checks(preset, tmp_path, monkeypatch):
    """Hydra rejects an unknown key; verl's validate_config the batch sizes it cannot split over the GPUs."""
    pytest.importorskip("verl", reason="verl is not installed: `make engines`")
    pytest.importorskip("hydra")
    pytest.importorskip("torch")
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    monkeypatch.chdir(tmp_path)
    spec = load_spec(preset)
    for gpus in GPU_COUNTS:
        for stage, config in zip(spec.stages, _train_configs(spec, gpus), strict=True):
            trainer = config.trainer
            assert (trainer.n_gpus_per_node, trainer.nnodes) == (gpus, 1)
            assert trainer.save_freq == stage.steps == trainer.total_training_steps, "one save, at the last step"
            assert trainer.test_freq == math.ceil(stage.steps / 5) and stage.steps / trainer.test_freq <= 5
            assert trainer.total_epochs >= trainer.total_training_steps, "the epoch limit never ends a stage early"
            assert list(trainer.logger) == ["console", "file"]
            assert config.actor_rollout_ref.rollout.tensor_model_parallel_size <= gpus
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                validate_config(config, use_reference_policy=need_reference_policy(config),
                                use_critic=need_critic(config))  # fmt: skip


def test_verl_saves_the_hf_checkpoint_where_we_say():
    """The layout `checkpoint_dir` relies on, read from verl's own source: the trainer's `_save_checkpoint` writes
    default_local_dir/global_step_{step}/actor and saves on the last step whenever save_freq > 0; the FSDP checkpoint
    manager puts the Hugging Face export in `huggingface` under that."""
    verl = pytest.importorskip("verl", reason="verl is not installed: `make engines`")

    def source(module: str, function: str) -> str:
        """One function's text, whitespace collapsed (read, not imported: the v1 trainer needs transfer_queue)."""
        text = (Path(verl.__file__).parent / module).read_text()
        start = text.index(f"    def {function}(")
        end = text.find("\n    def ", start + 1)
        return " ".join(text[start : end if end > 0 else None].split())

    # the v1 trainer (trainer.use_v1 is verl's default) and the FSDP engine's checkpoint manager (the default strategy)
    save = source("trainer/ppo/v1/trainer_base.py", "_save_checkpoint")
    assert 'os.path.join( self.config.trainer.default_local_dir, f"global_step_{self.global_steps}" )' in save
    assert 'actor_local_path = os.path.join(local_global_step_folder, "actor")' in save
    loop = source("trainer/ppo/v1/trainer_base.py", "fit")
    assert "is_last_step = self.global_steps >= self.total_training_steps" in loop
    assert "if self.config.trainer.save_freq > 0 and ( is_last_step or" in loop
    assert "if self.config.trainer.test_freq > 0 and ( is_last_step or" in loop
    assert "while current_epoch < self.config.trainer.total_epochs and" in loop, "why total_epochs is set"
    manager = source("utils/checkpoint/fsdp_checkpoint_manager.py", "save_checkpoint")
    assert 'hf_local_path = os.path.join(local_path, "huggingface")' in manager


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_each_stage_starts_where_verl_saved_the_stage_before(preset, tmp_path, monkeypatch):
    pytest.importorskip("verl", reason="verl is not installed: `make engines`")
    pytest.importorskip("hydra")
    monkeypatch.chdir(tmp_path)
    spec = load_spec(preset)
    configs = _train_configs(spec, 8)
    for i, (stage, config) in enumerate(zip(spec.stages, configs, strict=True)):
        assert "hf_model" in config.actor_rollout_ref.actor.checkpoint.save_contents, "the export holds weights"
        saved = os.path.join(config.trainer.default_local_dir, f"global_step_{config.trainer.total_training_steps}",
                             "actor", "huggingface")  # fmt: skip
        assert saved == checkpoint_dir(spec, stage) and os.path.isabs(saved)
        if i + 1 < len(spec.stages):
            following = configs[i + 1].actor_rollout_ref.model.path
            assert following == (saved if spec.stages[i + 1].init == "previous" else spec.model)
    assert configs[0].actor_rollout_ref.model.path == spec.model, "a Hub id is passed as written"


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_every_path_in_the_commands_is_absolute(preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(preset)
    for step in stage_steps(spec, GpuCount(1)):
        if step.kind == "eval":
            for flag in ("--model", "--out"):
                assert os.path.isabs(step.command[step.command.index(flag) + 1])
            continue
        values = dict(part.lstrip("+").split("=", 1) for part in step.command[3:])
        for key in ("data.train_files", "data.val_files"):
            assert all(os.path.isabs(p) for p in values[key].strip("[]").split(",")), values[key]
        for key in ("trainer.default_local_dir", "custom_reward_function.path",
                    "ray_kwargs.ray_init.runtime_env.env_vars.VERL_FILE_LOGGER_PATH"):  # fmt: skip
            assert os.path.isabs(values[key]) and values[key].startswith(("/", str(tmp_path))), key
        assert os.path.isabs(step.output) and os.path.isabs(step.metrics or "")


def test_save_test_freq_gpus_and_loggers_from_the_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = validate_spec({**SPEC, "logger": ["console", "tensorboard"],
                          "defaults": {**SPEC["defaults"], "nnodes": 2, "n_gpus_per_node": 4}})  # fmt: skip
    first, second = (step.command for step in stage_steps(spec, GpuCount(1)) if step.kind == "train")
    assert {"trainer.save_freq=7", "trainer.test_freq=2", "trainer.n_gpus_per_node=4", "trainer.nnodes=2"} <= set(first)
    assert {"trainer.save_freq=2", "trainer.test_freq=-1"} <= set(second), "explicit values are honoured"
    assert "trainer.logger=[console,tensorboard]" in first
    assert f"+ray_kwargs.ray_init.runtime_env.env_vars.TENSORBOARD_DIR={tmp_path}/out/s1/tensorboard" in first
    assert not any("VERL_FILE_LOGGER_PATH" in part for part in first), "no file logger, no metrics file"
    assert sum("n_gpus_per_node" in part for part in first) == 1, "placed once, not again among the hyper-parameters"
    machine = validate_spec(SPEC)
    assert "trainer.n_gpus_per_node=3" in stage_steps(machine, GpuCount(3))[0].command
    assert "trainer.n_gpus_per_node=0" in stage_steps(machine, GpuCount(None, "cannot count"))[0].command
    for bad in ("mlflow", ["console", "console"], []):
        with pytest.raises(UserError, match="logger: must be a list of distinct backends"):
            validate_spec({**SPEC, "logger": bad})


def test_the_gpus_a_stage_needs_are_checked_against_this_machine():
    from e3eval.train.topology import topology_problems

    one_node = validate_spec({**SPEC, "defaults": {**SPEC["defaults"], "n_gpus_per_node": 8}})
    assert topology_problems(one_node, {"s1", "s2"}, GpuCount(2)) == [
        f"stages[{i}]: n_gpus_per_node 8 on one node, but this machine has 2 GPU(s): Ray would wait for the missing "
        "ones forever"
        for i in (0, 1)
    ]
    assert topology_problems(one_node, {"s2"}, GpuCount(8)) == []
    cluster = validate_spec({**SPEC, "defaults": {**SPEC["defaults"], "n_gpus_per_node": 8, "nnodes": 2}})
    assert topology_problems(cluster, {"s1"}, GpuCount(0)) == [], "a cluster's GPUs are not this machine's to count"
    machine = validate_spec(SPEC)
    [line] = topology_problems(machine, {"s1", "s2"}, GpuCount(0))
    assert line.startswith("no GPU on this machine (torch.cuda.device_count() is 0")
    assert topology_problems(machine, {"s1"}, GpuCount(None, "cannot count GPUs: torch is not installed")) == [
        "cannot count GPUs: torch is not installed, and the spec sets no n_gpus_per_node: set it under defaults"
    ]
    assert topology_problems(machine, set(), GpuCount(0)) == [], "nothing left to train needs no GPU"


def test_presets_are_found_by_name_and_listed(tmp_path, monkeypatch):
    assert preset_names() == [p.stem for p in PRESETS]
    assert find_spec("countdown-coupled") == PRESET_DIR / "countdown-coupled.yaml"
    assert find_spec("e3-math.yaml") == PRESET_DIR / "e3-math.yaml"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "e3-math").write_text("mine")
    assert find_spec("e3-math") == Path("e3-math"), "a file of one's own comes first"
    with pytest.raises(UserError, match=r"no such file, nor a preset; did you mean countdown-data\?"):
        find_spec("countdown-dta")
    lines = list_presets()
    assert len(lines) == len(PRESETS)
    for line, preset in zip(lines, PRESETS, strict=True):
        spec = load_spec(preset)
        assert line.startswith(f"{preset.stem}: {spec.description} Stages: ") and spec.description
        assert all(f"{stage.name} ({stage.budget} tok x {stage.steps} steps)" in line for stage in spec.stages)
    proc = _e3train("presets", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout.splitlines() == lines


def test_dry_run_by_name_prints_absolute_commands_and_every_problem(tmp_path):
    """No data, no GPU, an unreachable Hub model: all reported together after the commands, exit 2, nothing made."""
    proc = _e3train("run", "countdown-coupled", "--dry-run", cwd=tmp_path, CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "trainer.n_gpus_per_node=0 trainer.nnodes=1 (detected on this machine: torch.cuda.device_count() = 0)" \
        in proc.stdout  # fmt: skip
    assert f"'data.train_files=[{tmp_path}/data/cdown/train-3.parquet]'" in proc.stdout
    assert f"trainer.default_local_dir={tmp_path}/checkpoints/countdown-coupled/cdown3-256" in proc.stdout
    assert f"actor_rollout_ref.model.path={tmp_path}/checkpoints/countdown-coupled/cdown3-256/global_step_60/actor/" \
           "huggingface" in proc.stdout  # fmt: skip
    assert proc.stdout.count("trainer.save_freq=60") == 2 and proc.stdout.count("trainer.test_freq=12") == 2
    for expected in ("countdown-coupled: a real run here would be refused", "problem(s):",
                     "stages[0].data.train: no such file data/cdown/train-3.parquet",
                     "stages[1].data.val: no such file data/cdown/test-6.parquet",
                     "model meta-llama/Llama-3.2-3B: no such local folder, and the hub is unreachable",
                     "no GPU on this machine (torch.cuda.device_count() is 0"):  # fmt: skip
        assert expected in proc.stderr, proc.stderr
    assert proc.stderr.count("no GPU on this machine") == 1, "one line, not one per stage"
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a dry run writes nothing"


def _tiny_spec(tmp_path: Path, tiny_model_dir: Path, **changes) -> Path:
    prepare_countdown(tmp_path / "data", [3, 6], train=4, test=2, seed=0)
    (tmp_path / "spec.yaml").write_text(json.dumps({**SPEC, "model": str(tiny_model_dir), **changes}))
    return tmp_path / "spec.yaml"


def test_dry_run_of_a_sound_spec_reports_only_what_this_machine_lacks(tmp_path, tiny_model_dir):
    pytest.importorskip("torch")
    _tiny_spec(tmp_path, tiny_model_dir)
    proc = _e3train("run", "spec.yaml", "--dry-run", cwd=tmp_path, CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    problems = [line.strip() for line in proc.stderr.splitlines()[1:]]
    assert any(line.startswith("no GPU on this machine") for line in problems)
    assert not any(word in proc.stderr for word in ("data.", "model ", "save_freq", "checkpoint")), proc.stderr
    assert f"actor_rollout_ref.model.path={tiny_model_dir}" in proc.stdout
    assert "trainer.total_epochs=7" in proc.stdout and "trainer.test_freq=-1" in proc.stdout


def test_dry_run_passes_when_nothing_is_left_to_train(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(_tiny_spec(tmp_path, tiny_model_dir))
    for stage in spec.stages:  # as verl leaves a finished stage
        Path(checkpoint_dir(spec, stage)).mkdir(parents=True)
        (Path(checkpoint_dir(spec, stage)) / "model.safetensors").write_bytes(b"weights")
    proc = _e3train("run", "spec.yaml", "--dry-run", cwd=tmp_path, CUDA_VISIBLE_DEVICES="")
    assert proc.returncode == 0, proc.stderr
    assert "tiny: preflight passed; a real run would run 0 of 2 step(s)" in proc.stdout


def test_preflight_finds_what_would_leave_a_stage_without_its_checkpoint(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = load_spec(_tiny_spec(tmp_path, tiny_model_dir, extra_overrides=["trainer.default_local_dir=/elsewhere"],
                                defaults={**SPEC["defaults"], "save_freq": -1, "train_batch_size": 8}))  # fmt: skip
    problems = "\n".join(preflight_problems(spec, stage_steps(spec, GpuCount(1)), GpuCount(1)))
    for expected in ("extra_overrides: trainer.default_local_dir is set by e3train for each stage",
                     "stages[0]: save_freq -1 saves no checkpoint",
                     "stages[0].data.train: 4 rows, fewer than train_batch_size 8"):  # fmt: skip
        assert expected in problems, problems


def test_preflight_runs_verls_own_config_checks(tmp_path, tiny_model_dir, monkeypatch):
    pytest.importorskip("verl", reason="verl is not installed: `make engines`")
    pytest.importorskip("hydra")
    pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    defaults = {key: value for key, value in SPEC["defaults"].items() if key != "log_prob_micro_batch_size_per_gpu"}
    spec = load_spec(_tiny_spec(tmp_path, tiny_model_dir, defaults={**defaults, "rollout_tensor_parallel": 2}))
    problems = "\n".join(preflight_problems(spec, stage_steps(spec, GpuCount(3)), GpuCount(3)))
    assert "stages[0]: verl's validate_config: real_train_batch_size (4) must be divisible by minimal possible batch " \
           "size (3)" in problems  # fmt: skip
    assert "stages[0]: the rollout's tensor_model_parallel_size is 2" not in problems  # 2 of 3 GPUs fit
    problems = "\n".join(preflight_problems(spec, stage_steps(spec, GpuCount(1)), GpuCount(1)))
    assert "stages[0]: verl's validate_config: [actor_rollout_ref.ref] Please set at least one of" in problems
    assert "stages[0]: the rollout's tensor_model_parallel_size is 2, more than the stage's 1 GPU(s)" in problems


def test_the_base_model_must_load_with_a_chat_template(tmp_path, tiny_model_dir):
    assert model_problems(str(tiny_model_dir)) == []
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model_dir, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    assert model_problems(str(plain)) == [f"model {plain}: its tokenizer has no chat template, and verl renders "
                                          "every prompt with it; start from a chat model or add a template to its "
                                          "tokenizer_config.json"]  # fmt: skip
    (plain / "config.json").unlink()
    assert f"model {plain}: no config.json there" in model_problems(str(plain))[0]


def test_a_stage_does_not_start_before_the_checkpoint_it_starts_from(tmp_path, monkeypatch):
    """run_steps names the missing folder in one line and launches nothing (the command would write a marker)."""
    monkeypatch.chdir(tmp_path)
    spec = validate_spec(SPEC)
    steps = stage_steps(spec, GpuCount(1))
    marker = tmp_path / "launched"
    steps = [step.__class__(step.stage, step.kind, ["touch", str(marker)], step.output, None, step.requires)
             for step in steps]  # fmt: skip
    with pytest.raises(UserError) as info:
        run_steps(steps[1:], log=lambda _: None)
    first = checkpoint_dir(spec, spec.stages[0])
    assert str(info.value) == f"s2: cannot start: the previous stage's checkpoint {first} does not exist"
    Path(checkpoint_dir(spec, spec.stages[0])).mkdir(parents=True)  # s1 "done", but verl saved no weights there
    with pytest.raises(UserError, match=r"s2: cannot start: .* holds no model weights \(no \*.safetensors\)"):
        run_steps(steps, log=lambda _: None)
    assert not marker.exists()
    (Path(checkpoint_dir(spec, spec.stages[0])) / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(UserError, match=r"s2: train step finished but .* is missing"):
        run_steps(steps, log=lambda _: None)
    assert marker.exists(), "with the checkpoint there, stage 2 starts"
