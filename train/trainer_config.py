"""A stage's command checked the way verl checks it: its overrides composed onto verl's own trainer config.

`python -m verl.trainer.main_ppo` composes `verl/trainer/config/ppo_trainer.yaml` with the command's Hydra overrides,
then runs `verl.utils.config.validate_config` (batch sizes divisible by the GPUs, micro batch sizes set for the actor,
the rollout and the reference policy) only after Ray has started. Doing both here, before anything is launched, turns
those failures into preflight lines. One check verl leaves to its workers is added: the rollout's tensor-parallel
size must fit in the GPUs, or no rollout replica can be placed. This module needs verl, Hydra and torch; without them
it reports nothing (`preflight.py` names what is missing). It launches nothing.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

from e3eval.dependencies import installed

NEEDED = ("verl", "hydra", "omegaconf", "torch")


def can_compose() -> bool:
    """Whether verl's config can be composed and validated in this environment."""
    return all(installed(module) for module in NEEDED)


def compose_config(overrides: list[str]) -> Any:
    """verl's ppo_trainer config (an OmegaConf DictConfig) with `overrides`, as main_ppo composes it; Hydra raises on
    an unknown key."""
    import verl
    from hydra import compose, initialize_config_dir

    config_dir = Path(verl.__file__).parent / "trainer" / "config"
    with initialize_config_dir(config_dir=str(config_dir), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


def config_problems(overrides: list[str]) -> list[str]:
    """What verl's own config checks find in a stage's overrides, one line each (nothing when it cannot check)."""
    if not can_compose():
        return []
    try:
        config = compose_config(overrides)
    except Exception as exc:  # Hydra's and OmegaConf's errors share no base class worth naming
        return [f"verl's config refuses the overrides: {_one_line(exc)}"]
    try:
        from verl.trainer.ppo.utils import need_critic, need_reference_policy
        from verl.utils.config import validate_config
    except ImportError as exc:  # a verl dependency missing: preflight's runtime check names it
        return [] if exc.name else [f"verl's config checks cannot be imported: {_one_line(exc)}"]
    problems: list[str] = []
    gpus = int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes)
    if gpus == 0:  # verl divides by it; `topology.py` reports the missing GPUs
        return problems
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # "Disabled critic as algorithm.adv_estimator != gae": GRPO has none
        try:
            validate_config(config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))
        except Exception as exc:  # AssertionError, ValueError, Hydra's InstantiationException wrapping either
            problems.append(f"verl's validate_config: {_one_line(exc)}")
    tensor_parallel = int(config.actor_rollout_ref.rollout.tensor_model_parallel_size)
    if tensor_parallel > gpus:
        problems.append(f"the rollout's tensor_model_parallel_size is {tensor_parallel}, more than the stage's {gpus} "
                        "GPU(s): no rollout replica fits; set rollout_tensor_parallel (e.g. 1)")  # fmt: skip
    return problems


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line: Hydra wraps the cause (`full_key: ...` lines follow it)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip() and "full_key" not in line)
    return text or type(exc).__name__
