"""GRPOMask: the e3 authors' negative-gradient ablation as a verl policy loss (paper Sec. 3).

`compute_policy_loss_grpo_mask` removes every token whose advantage is <= 0 from the loss mask, then computes verl's
own clipped policy loss (`compute_policy_loss_vanilla`) on what is left, so the aggregation (token-mean, ...) never
sees the removed tokens and they receive exactly zero gradient. `register()` adds it to verl's policy-loss registry
under the name `grpo_mask`; select it with `actor_rollout_ref.actor.policy_loss.loss_mode=grpo_mask`. verl's Ray
workers are separate processes, so the registration must run in each of them: `e3train` passes
`+ray_kwargs.ray_init.runtime_env.worker_process_setup_hook=e3eval.train.grpo_mask.register`. Plain GRPO is verl's
`vanilla` loss with `algorithm.adv_estimator=grpo` and `loss_agg_mode=token-mean`. verl is imported only here.
"""

from __future__ import annotations

from typing import Any

LOSS_NAME = "grpo_mask"


def compute_policy_loss_grpo_mask(
    old_log_prob: Any,
    log_prob: Any,
    advantages: Any,
    response_mask: Any,
    loss_agg_mode: str = "token-mean",
    config: Any = None,
    rollout_is_weights: Any = None,
) -> tuple[Any, dict[str, Any]]:
    from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla

    keep = response_mask * (advantages > 0).to(response_mask.dtype)
    loss, metrics = compute_policy_loss_vanilla(
        old_log_prob, log_prob, advantages, keep, loss_agg_mode, config, rollout_is_weights
    )
    total = response_mask.sum().clamp(min=1)
    metrics["actor/grpo_mask_kept_frac"] = float((keep.sum() / total).detach().item())
    return loss, metrics


def register() -> None:
    """Add `grpo_mask` to verl's policy-loss registry in this process (idempotent)."""
    from verl.trainer.ppo.core_algos import POLICY_LOSS_REGISTRY, register_policy_loss

    if LOSS_NAME not in POLICY_LOSS_REGISTRY:
        register_policy_loss(LOSS_NAME)(compute_policy_loss_grpo_mask)
