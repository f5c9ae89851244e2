"""GRPOMask against verl's own policy loss (the real verl package, CPU tensors)."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl", reason="verl is not installed: `make engines`")

from verl.trainer.ppo.core_algos import compute_policy_loss_vanilla, get_policy_loss_fn  # noqa: E402
from verl.workers.config import ActorConfig  # noqa: E402

from e3eval.train.grpo_mask import LOSS_NAME, compute_policy_loss_grpo_mask, register  # noqa: E402


@pytest.fixture
def batch():
    generator = torch.Generator().manual_seed(0)
    old = torch.randn(5, 7, generator=generator)
    new = old + 0.05 * torch.randn(5, 7, generator=generator)  # ratios inside the clip range: every kept token learns
    advantages = torch.tensor([1.2, -0.7, 0.0, 0.4, -2.0])[:, None].expand(5, 7).clone()
    mask = torch.ones(5, 7)
    mask[0, -3:] = 0  # padding
    mask[3, -1:] = 0
    return old, new, advantages, mask


def config() -> ActorConfig:
    return ActorConfig(
        strategy="fsdp", rollout_n=5, clip_ratio=0.2, ppo_mini_batch_size=5, ppo_micro_batch_size_per_gpu=5
    )


def test_registered_under_its_name():
    register()
    register()  # idempotent
    assert get_policy_loss_fn(LOSS_NAME) is compute_policy_loss_grpo_mask


def test_masked_tokens_get_exactly_zero_gradient(batch):
    old, new, advantages, mask = batch
    log_prob = new.clone().requires_grad_()
    loss, metrics = compute_policy_loss_grpo_mask(old, log_prob, advantages, mask, "token-mean", config())
    loss.backward()
    dropped = (advantages <= 0) | (mask == 0)
    assert torch.count_nonzero(log_prob.grad[dropped]) == 0
    assert torch.count_nonzero(log_prob.grad[~dropped]) == int((~dropped).sum())
    assert metrics["actor/grpo_mask_kept_frac"] == pytest.approx(float((~dropped).sum() / mask.sum()))


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum"])
def test_equals_verl_loss_on_the_kept_tokens(batch, mode):
    old, new, advantages, mask = batch
    log_prob = new.clone().requires_grad_()
    loss, _ = compute_policy_loss_grpo_mask(old, log_prob, advantages, mask, mode, config())
    loss.backward()
    rows = advantages[:, 0] > 0  # the kept sequences, as their own batch
    reference = new[rows].clone().requires_grad_()
    expected, _ = compute_policy_loss_vanilla(old[rows], reference, advantages[rows], mask[rows], mode, config())
    expected.backward()
    assert torch.allclose(loss, expected)
    assert torch.allclose(log_prob.grad[rows], reference.grad)


def test_grpo_keeps_the_negative_gradient(batch):
    old, new, advantages, mask = batch
    log_prob = new.clone().requires_grad_()
    loss, _ = compute_policy_loss_vanilla(old, log_prob, advantages, mask, "token-mean", config())
    loss.backward()
    assert torch.count_nonzero(log_prob.grad[advantages < 0]) > 0
