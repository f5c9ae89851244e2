"""The p^k bigram model (paper App. C): the sampler, the advantages, the gradient, the dynamics, the command."""

import csv
import json

import numpy as np
import pytest
from conftest import run_cli

from e3eval.train.bigram_sim import (
    A_STAR,
    ACTIONS,
    CSV_COLUMNS,
    STOP,
    BigramConfig,
    Rollouts,
    group_advantages,
    initial_logits,
    policy_gradient,
    sample_rollouts,
    softmax,
    summarize_dynamics,
    train,
)


def test_initial_policy_is_the_one_of_appendix_f():
    logits = initial_logits(np.random.default_rng(0))
    assert logits.shape == (ACTIONS, ACTIONS + 1)
    assert (logits[:, STOP] == 4.0).all() and (logits[:, A_STAR] == -4.0).all()
    others = np.delete(logits, [A_STAR, STOP], axis=1)
    assert others.min() >= -3.0 and others.max() <= 3.0 and others.std() > 1.5


def test_rollouts_are_well_formed():
    rng = np.random.default_rng(1)
    probs = softmax(initial_logits(rng))
    probs[:, A_STAR] = 0.05  # make successes common enough to check them
    probs /= probs.sum(axis=1, keepdims=True)
    rollouts = sample_rollouts(probs, 5000, budget=12, rng=rng)
    order = np.argsort(rollouts.owner, kind="stable")  # tokens are stored step by step; regroup them by rollout
    owner, states, actions = rollouts.owner[order], rollouts.states[order], rollouts.actions[order]
    first = np.unique(owner, return_index=True)[1]
    assert A_STAR not in states[first], "pi_0 never plays a*"
    assert (np.bincount(owner, minlength=5000) == rollouts.lengths - 1).all()
    assert (states[1:][owner[1:] == owner[:-1]] == actions[:-1][owner[1:] == owner[:-1]]).all(), "bigram: s = a_prev"
    last_action = actions[np.r_[first[1:], len(owner)] - 1]
    assert ((last_action == A_STAR) == (rollouts.rewards == 1)).all()
    assert rollouts.lengths.max() == 12 and rollouts.lengths.min() == 2
    unfinished = (last_action != A_STAR) & (last_action != STOP)
    assert (rollouts.lengths[unfinished] == 12).all(), "only the budget ends a rollout on an ordinary action"
    assert 0 < rollouts.rewards.mean() < 1


def exact_mean_length(probs: np.ndarray, budget: int) -> float:
    """E[length] by propagating the state distribution through the absorbing chain (a* and stop absorb)."""
    alive = np.full(ACTIONS, 1 / (ACTIONS - 1))
    alive[A_STAR] = 0.0
    transition = probs[:, :ACTIONS].copy()
    transition[:, A_STAR] = 0.0
    expected = 1.0
    for _ in range(budget - 1):
        expected += alive.sum()  # every rollout still going takes one more action
        alive = alive @ transition
    return expected


def test_sampled_lengths_match_the_exact_expectation():
    rng = np.random.default_rng(2)
    probs = softmax(initial_logits(rng))
    lengths = sample_rollouts(probs, 40_000, budget=100, rng=rng).lengths
    assert abs(lengths.mean() - exact_mean_length(probs, 100)) < 4 * lengths.std() / np.sqrt(len(lengths))


def test_group_advantages_match_verl():
    torch = pytest.importorskip("torch")
    core_algos = pytest.importorskip("verl.trainer.ppo.core_algos")
    rewards = np.zeros(4 * 8)
    rewards[[3, 9, 10, 31]] = 1.0  # groups with one, two, none and one success
    ours = group_advantages(rewards, 8)
    index = np.repeat(np.arange(4), 8)
    theirs, _ = core_algos.compute_grpo_outcome_advantage(
        torch.tensor(rewards, dtype=torch.float64)[:, None], torch.ones(len(rewards), 1, dtype=torch.float64), index
    )
    np.testing.assert_allclose(ours, theirs[:, 0].numpy(), rtol=1e-9, atol=1e-12)
    assert (ours[16:24] == 0).all(), "a group without a success teaches nothing"


def objective(logits: np.ndarray, rollouts: Rollouts, advantages: np.ndarray, mask: bool) -> float:
    """The loss of App. F.3 summed over rollouts, written the slow way: sum_tau 1/|tau| sum_i A * log pi(a_i|s_i)."""
    log_probs = np.log(softmax(logits))
    total = 0.0
    for owner, state, action in zip(rollouts.owner, rollouts.states, rollouts.actions, strict=True):
        advantage = advantages[owner]
        if mask and advantage <= 0:
            continue
        total += advantage * log_probs[state, action] / (rollouts.lengths[owner] - 1)
    return total


@pytest.mark.parametrize("mask", [False, True])
def test_policy_gradient_matches_finite_differences(mask):
    rng = np.random.default_rng(3)
    logits = initial_logits(rng)
    logits[:, A_STAR] = 1.0
    rollouts = sample_rollouts(softmax(logits), 16, budget=10, rng=rng)
    advantages = rng.normal(size=16)
    gradient = policy_gradient(softmax(logits), rollouts, advantages, mask)
    step = 1e-6
    visited = np.unique(rollouts.states)
    for state, action in [(s, a) for s in visited[:4] for a in (A_STAR, STOP, 7, int(rollouts.actions[0]))]:
        up, down = logits.copy(), logits.copy()
        up[state, action] += step
        down[state, action] -= step
        numeric = (objective(up, rollouts, advantages, mask) - objective(down, rollouts, advantages, mask)) / (2 * step)
        assert gradient[state, action] == pytest.approx(numeric, rel=1e-5, abs=1e-8)
    unvisited = np.setdiff1d(np.arange(ACTIONS), visited)
    assert (gradient[unvisited] == 0).all()


def test_grpo_mask_learns_nothing_from_failures_alone():
    rng = np.random.default_rng(4)
    probs = softmax(initial_logits(rng))
    rollouts = sample_rollouts(probs, 64, budget=100, rng=rng)
    failures = np.where(rollouts.rewards == 1, 0.0, -0.5)
    assert (policy_gradient(probs, rollouts, failures, mask=True) == 0).all()
    assert np.abs(policy_gradient(probs, rollouts, failures, mask=False)).sum() > 0


def test_negative_gradients_lengthen_traces_until_a_star_is_found():
    """The acceptance run: the default configuration (64 groups of 64 rollouts per iteration, lr 1e-2), seed 0.

    Both algorithms run until a* is found (mean reward >= 0.01, about ten times its starting rate; the phase
    transition then takes some ten iterations), and the dynamics are read 25 iterations before that. Measured on this
    seed: GRPO 8.0 -> 14.7 actions and p(stop) 0.144 -> 0.075 by iteration 1202; GRPOMask 8.0 -> 10.1 and
    0.144 -> 0.113 by iteration 1243. GRPOMask's p(stop) does fall somewhat: with group-normalised advantages its
    only updates reinforce successful rollouts, which by construction contain no stop action.
    """
    results = {}
    for algo in ("grpo", "grpo_mask"):
        history = train(BigramConfig(algo=algo, seed=0), until_reward=0.01)
        found = summarize_dynamics(history, found_at_reward=0.01).found_at
        assert found is not None and found > 500, f"{algo}: a* found at {found}"
        before = history[: found - 25]
        assert np.mean([s.reward for s in before]) < 0.003, "no gradual climb: a* is found in a phase transition"
        results[algo] = summarize_dynamics(before, found_at_reward=1.0)
    grpo, mask = results["grpo"], results["grpo_mask"]
    assert grpo.peak_length >= 1.75 * grpo.start_length
    assert grpo.p_stop_before <= 0.55 * grpo.start_p_stop
    assert grpo.peak_entropy > grpo.start_entropy + 0.1
    assert mask.peak_length <= 1.35 * mask.start_length
    assert mask.p_stop_before >= 0.7 * mask.start_p_stop
    assert (grpo.start_p_stop - grpo.p_stop_before) >= 2 * (mask.start_p_stop - mask.p_stop_before)


def test_config_reports_every_problem():
    with pytest.raises(ValueError) as info:
        BigramConfig(algo="ppo", group_size=1, lr=0.0, budget=1)  # type: ignore[arg-type]
    for text in ("algo must be one of grpo, grpo_mask", "group_size must be at least 2", "lr must be positive",
                 "budget must be at least 2"):  # fmt: skip
        assert text in str(info.value)


def test_bigram_command_writes_the_documented_csv_and_plot(tmp_path):
    sizes = ("--iterations", "5", "--groups", "4", "--group-size", "8")
    files = ("--out", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png"))
    proc = run_cli("e3train", "bigram", "--algo", "grpo", "--algo", "grpo_mask", *sizes, *files)
    assert proc.returncode == 0, proc.stderr
    for algo in ("grpo", "grpo_mask"):
        with (tmp_path / f"b-{algo}.csv").open() as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == CSV_COLUMNS
        assert [int(r[0]) for r in rows[1:]] == list(range(6))
        assert all(0 <= float(r[3]) <= 1 and float(r[1]) >= 2 for r in rows[1:])
        provenance = json.loads((tmp_path / f"b-{algo}.csv.json").read_text())
        assert provenance["config"] == {"algo": algo, "iterations": 5, "group_size": 8, "groups": 4, "budget": 100,
                                        "lr": 0.01, "seed": 0}  # fmt: skip
    assert (tmp_path / "b.png").stat().st_size > 10_000
    assert "32 rollouts per iteration" in proc.stdout


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (("--algo", "ppo"), "algo must be one of grpo, grpo_mask"),
        (("--algo", "grpo", "--group-size", "1"), "group_size must be at least 2"),
        (("--algo", "grpo", "--algo", "grpo"), "--algo given twice"),
    ],
)
def test_bigram_command_rejects_bad_settings(tmp_path, args, text):
    proc = run_cli("e3train", "bigram", *args, "--out", str(tmp_path / "b.csv"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert text in proc.stderr
    assert not (tmp_path / "b.csv").exists()
