"""Curriculum specs, presets, the verl commands they produce (composed against verl's real Hydra config), and data
preparation into verl-format Parquet read back by the reward function."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import run_cli

from e3eval.errors import UserError
from e3eval.train.curriculum import checkpoint_dir, load_spec, stage_commands, validate_spec
from e3eval.train.launch import render_commands
from e3eval.train.prepare import SplitRule, prepare_countdown, prepare_math, prepare_mult
from e3eval.train.reward import compute_score

PRESETS = sorted((Path(__file__).resolve().parent.parent / "train" / "presets").glob("*.yaml"))


def test_all_four_presets_exist_and_validate():
    assert {p.stem for p in PRESETS} == {"e3-math", "countdown-coupled", "countdown-data", "grpo-vs-mask"}
    for preset in PRESETS:
        spec = load_spec(preset)
        header = preset.read_text().splitlines()[:6]
        assert any(f"e3train run {preset.stem} " in line for line in header), "launch command in header"
        assert stage_commands(spec)


def test_e3_math_preset_is_the_papers_recipe():
    spec = load_spec(next(p for p in PRESETS if p.stem == "e3-math"))
    easy, hard = spec.stages
    assert (easy.budget, hard.budget) == (8192, 16384)
    assert easy.hyper["ppo_mini_batch_size"] == 32 and hard.hyper["ppo_mini_batch_size"] == 64
    assert easy.hyper["entropy_coeff"] == 0.002 and hard.hyper["entropy_coeff"] == 0.001
    assert easy.hyper["lr"] == 1e-6 and easy.hyper["kl_coef"] == 0.001 and easy.hyper["train_batch_size"] == 128
    commands = stage_commands(spec)
    second = next(c for c in commands[1:] if "verl.trainer.main_ppo" in c)
    assert f"actor_rollout_ref.model.path={checkpoint_dir(spec, easy)}" in second, "stage 2 starts from stage 1"
    sweeps = [c for c in commands if c[:2] == ["e3eval", "sweep"]]
    assert sweeps[0][sweeps[0].index("--budgets") + 1] == "8192,16384", "validated at B and 2B"


def test_grpo_vs_mask_runs_both_from_the_base_model():
    spec = load_spec(next(p for p in PRESETS if p.stem == "grpo-vs-mask"))
    grpo, mask = [c for c in stage_commands(spec) if "verl.trainer.main_ppo" in c]
    assert f"actor_rollout_ref.model.path={spec.model}" in grpo and f"actor_rollout_ref.model.path={spec.model}" in mask
    assert "actor_rollout_ref.actor.policy_loss.loss_mode=grpo_mask" in mask
    assert not any("loss_mode" in part for part in grpo)
    assert "+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=e3eval.train.grpo_mask.register" in mask
    assert "python" in render_commands([grpo]).splitlines()[0] and "\\" in render_commands([grpo])


def test_every_override_exists_in_verls_own_config():
    """Compose verl's real ppo_trainer config with each preset's overrides: Hydra rejects any unknown key."""
    pytest.importorskip("verl", reason="verl is not installed: `make engines`")
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    for preset in PRESETS:
        for command in stage_commands(load_spec(preset)):
            if "verl.trainer.main_ppo" not in command:
                continue
            overrides = command[command.index("verl.trainer.main_ppo") + 1 :]
            with initialize_config_dir(config_dir=str(config_dir), version_base=None):
                config = compose(config_name="ppo_trainer", overrides=overrides)
            assert config.data.max_response_length in (256, 1024, 2048, 8192, 16384)
            assert config.custom_reward_function.name == "compute_score"


def test_validation_reports_every_problem_at_once(tmp_path):
    bad = {
        "name": "x",
        "model": "m",
        "defaults": {"lr": 1e-6, "learning_rate": 1},
        "stages": [
            {"name": "a", "data": {"train": ["t.parquet"]}, "budget": -1, "steps": 10, "algorithm": "ppo"},
            {"name": "a", "data": {"train": "t.parquet", "val": ["v.parquet"]}, "budget": 8, "steps": 1},
            "oops",
        ],
    }
    with pytest.raises(UserError) as info:
        validate_spec(bad)
    message = str(info.value)
    for expected in (
        "output_dir: required string",
        "defaults.learning_rate: unknown hyper-parameter",
        "stages[0].data.val: required list",
        "stages[0].budget: must be a positive integer",
        "stages[0].algorithm: must be one of grpo, grpo_mask",
        "stages[2]: must be a mapping",
    ):
        assert expected in message, message
    with pytest.raises(UserError, match="not valid YAML"):
        (tmp_path / "bad.yaml").write_text("stages: [unclosed")
        load_spec(tmp_path / "bad.yaml")


def test_validation_errors_from_a_file_carry_line_numbers(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: x\nmodel: m\noutput_dir: o\ndefaults:\n  lr: 1\n  foo: 2\nstages:\n  - name: a\n"
        "    data: {train: [t.parquet], val: [v.parquet]}\n    budget: -1\n    steps: 3\n  - oops\n"
    )
    with pytest.raises(UserError) as info:
        load_spec(spec)
    message = str(info.value)
    assert f"{spec}: 3 problem(s)" in message
    for expected in ("defaults.foo (line 6): unknown", "stages[0].budget (line 10): must be", "stages[1] (line 12)"):
        assert expected in message, message


def test_prepare_countdown_and_mult_round_trip_through_the_reward(tmp_path):
    paths = prepare_countdown(tmp_path / "cd", [3, 6], train=20, test=5, seed=0)
    assert sorted(p.name for p in paths) == ["test-3.parquet", "test-6.parquet", "train-3.parquet", "train-6.parquet"]
    rows = pq.read_table(tmp_path / "cd" / "train-6.parquet").to_pylist()
    assert len(rows) == 20 and rows[0]["data_source"] == "countdown" and rows[0]["ability"] == "math"
    assert rows[0]["prompt"][0]["role"] == "user" and "<answer>" in rows[0]["prompt"][0]["content"]
    truth = json.loads(rows[0]["reward_model"]["ground_truth"])
    assert len(truth["numbers"]) == 6
    assert compute_score("countdown", "<answer>0</answer>", rows[0]["reward_model"]["ground_truth"]) == 0.0
    prepare_mult(tmp_path / "mult", (3, 2), train=10, test=2, seed=0, verify=True)
    row = pq.read_table(tmp_path / "mult" / "train.parquet").to_pylist()[0]
    product = json.loads(row["reward_model"]["ground_truth"])
    answer = f"<answer>{product['a'] * product['b']}</answer>"
    assert (
        row["data_source"] == "mult_v"
        and compute_score(row["data_source"], answer, row["reward_model"]["ground_truth"]) == 1.0
    )


def test_prepare_math_difficulty_split(tmp_path):
    from e3eval.records import Problem

    problems = [Problem(f"q{i}", str(i), f"What is {i}?") for i in range(4)]
    rates = {"q0": 1.0, "q1": 11 / 16, "q2": 10 / 16, "q3": 0.0}
    counts = prepare_math(tmp_path, problems, rates, SplitRule(), validation=problems[:1])
    assert counts == {"easy": 2, "medium": 1, "hard": 1, "val": 1}
    hard = pq.read_table(tmp_path / "hard.parquet").to_pylist()
    assert hard[0]["reward_model"]["ground_truth"] == "3"
    assert hard[0]["prompt"][0]["content"].endswith(
        "Let's think step by step and output the final answer within \\boxed{}."
    )
    with pytest.raises(UserError, match="no pass rate"):
        prepare_math(tmp_path, problems, {"q0": 1.0}, SplitRule())


def test_train_imports_without_verl_or_torch():
    code = (
        "import sys\n"
        "for name in ('verl', 'torch', 'ray', 'vllm'): sys.modules[name] = None\n"
        "import e3eval.train, e3eval.train.reward, e3eval.train.curriculum, e3eval.train.prepare, e3eval.train.budget\n"
        "import e3eval.commands.e3train, e3eval.train.grpo_mask\n"
        "import e3eval.train.catalog, e3eval.train.launch, e3eval.train.preflight, e3eval.train.topology\n"
        "import e3eval.train.trainer_config\n"
        "from e3eval.train.reward import compute_score\n"
        "assert compute_score('countdown', '<answer>(3+5)*3</answer>', {'target': 24, 'numbers': [3, 5, 3]}) == 1.0\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


SPEC = """name: tiny
model: base-model
output_dir: out
stages:
  - name: s1
    data: {train: [data/train-3.parquet], val: [data/test-3.parquet]}
    budget: 64
    steps: 2
  - name: s2
    data: {train: [data/train-6.parquet], val: [data/test-missing.parquet]}
    budget: 128
    steps: 2
    val_dataset: demo
"""


def test_run_checks_every_input_before_launching(tmp_path):
    prepare_countdown(tmp_path / "data", [3, 6], train=4, test=2, seed=0)
    (tmp_path / "spec.yaml").write_text(SPEC)
    proc = run_cli("e3train", "run", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "stages[1].data.val: no such file data/test-missing.parquet" in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing was launched"


def test_run_resumes_by_skipping_finished_steps(tmp_path, monkeypatch):
    pytest.importorskip("verl")
    monkeypatch.chdir(tmp_path)  # checkpoint_dir is absolute, from the working directory as `e3train run` sees it
    prepare_countdown(tmp_path / "data", [3, 6], train=4, test=2, seed=0)
    (tmp_path / "spec.yaml").write_text(SPEC.replace("test-missing", "test-6"))
    spec = load_spec(tmp_path / "spec.yaml")
    for stage in spec.stages:  # as verl and e3eval leave them when a stage has finished
        Path(checkpoint_dir(spec, stage)).mkdir(parents=True)
    (tmp_path / "out/s2/eval/figures").mkdir(parents=True)
    (tmp_path / "out/s2/eval/figures/sweep.png").write_bytes(b"\x89PNG")
    proc = run_cli("e3train", "run", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("already done (") == 3
    assert "tiny: done (0 step(s) run, 3 already done)" in proc.stdout


def test_run_stops_at_a_failed_step_with_a_clear_error(tmp_path, monkeypatch):
    """Both stages are trained; stage 2's real `e3eval sweep` fails (on a validation set that does not exist). verl
    is not launched: without its runtime dependencies the preflight refuses a training step (test_hostile_train)."""
    pytest.importorskip("verl")
    monkeypatch.chdir(tmp_path)
    prepare_countdown(tmp_path / "data", [3, 6], train=4, test=2, seed=0)
    (tmp_path / "spec.yaml").write_text(SPEC.replace("test-missing", "test-6").replace("demo", "missing.jsonl"))
    spec = load_spec(tmp_path / "spec.yaml")
    for stage in spec.stages:
        Path(checkpoint_dir(spec, stage)).mkdir(parents=True)
    proc = run_cli("e3train", "run", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr.split("error:")[-1]
    assert "s1: train already done" in proc.stdout and "s2: eval: " in proc.stdout
    assert "s2: eval step failed with exit code 2; fix the cause and rerun" in proc.stderr


def test_unknown_fields_and_bad_hyper_values_are_reported_together_with_lines(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: x\nmodel: m\noutput_dir: o\nalgoritm: grpo_mask\ndefaults:\n  lr: fast\n  kl_coef: -1\nstages:\n"
        "  - name: a\n    data: {train: [t.parquet], val: [v.parquet]}\n    budget: 8\n    steps: 3\n    stepz: 9\n"
        "    hyper: {rollout_n: 2.5, save_freq: 0, temperature: .nan, rollout_name: 'vllm trainer.x=1'}\n"
        "    val_dataset: [aime25]\n"
    )
    with pytest.raises(UserError) as info:
        load_spec(spec)
    message = str(info.value)
    assert f"{spec}: 9 problem(s)" in message, message
    for expected in (
        "algoritm (line 4): unknown field (did you mean 'algorithm'?)",
        "defaults.lr (line 6): must be a positive number, not 'fast'",
        "defaults.kl_coef (line 7): must be a number >= 0, not -1",
        "stages[0].stepz (line 13): unknown field (did you mean 'steps'?)",
        "stages[0].hyper.rollout_n (line 14): must be a positive integer, not 2.5",
        "stages[0].hyper.save_freq (line 14): must be a positive integer, or -1 for never, not 0",
        "stages[0].hyper.temperature (line 14): must be a positive number, not nan",
        "stages[0].hyper.rollout_name (line 14): must be a plain name such as vllm",
        "stages[0].val_dataset (line 15): must be a dataset name or file",
    ):
        assert expected in message, message
    # YAML 1.1 reads `1e-6` (no dot) as a string: it is still a learning rate, and goes to verl as written.
    spec.write_text(
        "name: x\nmodel: m\noutput_dir: o\ndefaults: {lr: 1e-6, save_freq: -1, entropy_coeff: 0, kl_coef: 0.001}\n"
        "stages:\n  - name: a\n    data: {train: t.parquet, val: v.parquet}\n    budget: 8\n    steps: 3\n"
        "    hyper: {rollout_name: sglang}\n"
    )
    command = stage_commands(load_spec(spec))[0]
    for override in ("actor_rollout_ref.actor.optim.lr=1e-6", "trainer.save_freq=-1",
                     "actor_rollout_ref.rollout.name=sglang"):  # fmt: skip
        assert override in command


def test_an_empty_math_split_keeps_the_columns(tmp_path):
    from e3eval.records import Problem

    problems = [Problem(f"q{i}", str(i), f"What is {i}?") for i in range(2)]
    counts = prepare_math(tmp_path, problems, {"q0": 1.0, "q1": 1.0}, SplitRule())
    assert counts == {"easy": 2, "medium": 0, "hard": 0}
    hard = pq.read_table(tmp_path / "hard.parquet")
    assert hard.num_rows == 0
    assert hard.schema.names == pq.read_table(tmp_path / "easy.parquet").schema.names
    assert "reward_model" in hard.schema.names
