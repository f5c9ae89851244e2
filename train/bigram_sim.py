"""The p^k bigram model (paper App. C and F.3): negative gradients lengthen traces when verification is perfect.

A softmax bigram policy pi(a_{t+1} | a_t) over 100 actions plus `stop`, trained with GRPO or GRPOMask, in seeded
numpy (no torch, no verl, no GPU). Initial logits are uniform in [-3, 3] in every state, with the `stop` logit at 4
and the optimal action a* (action 0) at -4. A rollout's first action comes from a fixed pi_0, uniform over the
actions other than a*; the learner then samples until it plays a* (reward 1), plays `stop` (reward 0) or has taken
`budget` actions in all (reward 0). Lengths count every action of a rollout, the first and the last included.

Advantages are group-normalised as in verl's GRPO, `(r - mean) / (std + 1e-6)` over groups of `group_size`
rollouts (the model has no prompts, so a group is just `group_size` independent rollouts), which makes them zero in
any group without a success. The loss of one rollout averages `log pi(a_i | a_{i-1}) * A` over the tokens the
learner sampled (App. F.3), and each rollout is one SGD step of learning rate `lr` taken at the iteration's
parameters, i.e. the per-rollout gradients of an iteration are summed. GRPOMask removes tokens with advantage <= 0
before that average, which here leaves only successful rollouts.

Every iteration records statistics of the rollouts it sampled (mean length, reward) and of the policy it sampled
them from: the marginal p(stop) and p(a*) (the conditional probabilities averaged over the 100 states) and the mean
conditional entropy in nats; `write_history` saves them as CSV (with the spread of lengths, for confidence
intervals). The Fig. 8 panels are drawn by `figures/bigram_curves.py`.

Sizes are bounded (`BigramConfig`): an iteration holds every sampled token in memory, so rollouts x budget is capped,
and the learning rate is at most 100 (10,000 times the paper's 1e-2: larger steps saturate the softmax in one update).
Training stops with a UserError naming the iteration if the policy stops being finite (a probability that underflows
to 0, or a logit that overflows), instead of writing NaN statistics.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from e3eval.errors import UserError
from e3eval.records import BIGRAM_CSV_COLUMNS as CSV_COLUMNS
from e3eval.records import IterationStats

ACTIONS = 100
STOP = ACTIONS  # column of the stop action; states are the 100 ordinary actions
A_STAR = 0
ALGOS = ("grpo", "grpo_mask")
# length_std comes last: readers of the first six columns (by name or position) are unaffected.
MAX_ITERATIONS = 1_000_000
MAX_ROLLOUTS = 1 << 20  # per iteration (256 times the default 4,096)
MAX_TOKENS = 1 << 25  # rollouts x budget: the most tokens an iteration can hold (0.8 GiB of token arrays)
MAX_LR = 100.0


@dataclass(frozen=True)
class BigramConfig:
    """One training run. The defaults are the run documented in the README (seed 0: a* is found around it. 1,300)."""

    algo: Literal["grpo", "grpo_mask"] = "grpo"
    iterations: int = 2000
    group_size: int = 64
    groups: int = 64  # groups per iteration: 4,096 rollouts
    budget: int = 100
    lr: float = 1e-2
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.algo not in ALGOS:
            problems.append(f"algo must be one of {', '.join(ALGOS)}, got {self.algo!r}")
        for name in ("iterations", "group_size", "groups"):
            if getattr(self, name) < (2 if name == "group_size" else 1):
                problems.append(f"{name} must be at least {2 if name == 'group_size' else 1}")
        if self.iterations > MAX_ITERATIONS:
            problems.append(f"iterations must be at most {MAX_ITERATIONS:,}")
        if self.budget < 2:
            problems.append("budget must be at least 2 (the first action is not the learner's)")
        if self.rollouts > MAX_ROLLOUTS:
            problems.append(f"groups x group_size is {self.rollouts:,} rollouts an iteration; at most {MAX_ROLLOUTS:,}")
        elif self.rollouts * self.budget > MAX_TOKENS:
            problems.append(f"rollouts x budget is {self.rollouts * self.budget:,} tokens per iteration (held in "
                            f"memory); at most {MAX_TOKENS:,}: lower groups, group_size or budget")  # fmt: skip
        if not 0 < self.lr <= MAX_LR:  # NaN fails both comparisons
            problems.append(f"lr must be positive and at most {MAX_LR:g}, not {self.lr:g} (the paper's is 1e-2)")
        if self.seed < 0:
            problems.append("seed must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def rollouts(self) -> int:
        return self.group_size * self.groups


@dataclass(frozen=True)
class Rollouts:
    """An iteration's rollouts as flat token arrays: token j was `actions[j]` sampled in `states[j]` by `owner[j]`."""

    owner: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    lengths: np.ndarray  # actions per rollout, the first (from pi_0) included
    rewards: np.ndarray


def initial_logits(rng: np.random.Generator) -> np.ndarray:
    """The (100 states) x (100 actions + stop) logit matrix of App. F.3."""
    logits = rng.uniform(-3.0, 3.0, size=(ACTIONS, ACTIONS + 1))
    logits[:, STOP] = 4.0
    logits[:, A_STAR] = -4.0
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def sample_rollouts(probs: np.ndarray, n: int, budget: int, rng: np.random.Generator) -> Rollouts:
    """Sample `n` rollouts in lock-step; a rollout leaves the batch when it plays a* or stop."""
    cumulative = probs.cumsum(axis=1)
    state = rng.integers(1, ACTIONS, size=n)  # pi_0: uniform over the actions other than a* (= 0)
    alive = np.arange(n)
    lengths = np.ones(n, dtype=np.int64)
    rewards = np.zeros(n)
    owners, states, actions = [], [], []
    for _ in range(budget - 1):
        if not len(alive):
            break
        here = state[alive]
        draw = rng.random(len(alive))
        chosen = np.minimum((cumulative[here] < draw[:, None]).sum(axis=1), STOP)  # inverse CDF, rounding-safe
        owners.append(alive)
        states.append(here)
        actions.append(chosen)
        lengths[alive] += 1
        rewards[alive[chosen == A_STAR]] = 1.0
        state[alive] = chosen
        alive = alive[(chosen != A_STAR) & (chosen != STOP)]
    return Rollouts(np.concatenate(owners), np.concatenate(states), np.concatenate(actions), lengths, rewards)


def group_advantages(rewards: np.ndarray, group_size: int) -> np.ndarray:
    """verl's GRPO outcome advantage: rewards normalised within consecutive groups of `group_size` rollouts."""
    grouped = rewards.reshape(-1, group_size)
    centred = grouped - grouped.mean(axis=1, keepdims=True)
    return (centred / (grouped.std(axis=1, ddof=1, keepdims=True) + 1e-6)).ravel()


def policy_gradient(probs: np.ndarray, rollouts: Rollouts, advantages: np.ndarray, mask: bool) -> np.ndarray:
    """Sum over rollouts of the gradient (w.r.t. the logits) of each rollout's token-averaged PG objective.

    With `mask`, tokens of advantage <= 0 leave the loss (GRPOMask). Advantages are per rollout here, so a rollout
    keeps all of its tokens or none, and the average is over the same tokens either way.
    """
    token_advantage = advantages[rollouts.owner]
    weight = token_advantage / (rollouts.lengths[rollouts.owner] - 1)
    keep = token_advantage > 0 if mask else token_advantage != 0
    states, actions, weight = rollouts.states[keep], rollouts.actions[keep], weight[keep]
    gradient = np.zeros_like(probs)
    np.add.at(gradient, (states, actions), weight)
    # d log softmax(M_s)[a] / d M_s = onehot(a) - pi_s; the -pi_s part only needs each state's total weight.
    gradient -= np.bincount(states, weights=weight, minlength=ACTIONS)[:, None] * probs
    return gradient


def iterate(config: BigramConfig) -> Iterator[IterationStats]:
    """Train and yield statistics for iterations 0..`iterations` (the last one is measured but not trained on)."""
    rng = np.random.default_rng(config.seed)
    logits = initial_logits(rng)
    for iteration in range(config.iterations + 1):
        probs = softmax(logits)
        check_finite(iteration, logits, probs, config.lr)
        rollouts = sample_rollouts(probs, config.rollouts, config.budget, rng)
        yield IterationStats(
            iteration=iteration,
            mean_length=float(rollouts.lengths.mean()),
            reward=float(rollouts.rewards.mean()),
            p_stop=float(probs[:, STOP].mean()),
            p_a_star=float(probs[:, A_STAR].mean()),
            entropy=float(-(probs * np.log(probs)).sum(axis=1).mean()),
            length_std=float(rollouts.lengths.std()),
            rollouts=config.rollouts,
        )
        if iteration < config.iterations:
            advantages = group_advantages(rollouts.rewards, config.group_size)
            logits += config.lr * policy_gradient(probs, rollouts, advantages, mask=config.algo == "grpo_mask")


def check_finite(iteration: int, logits: np.ndarray, probs: np.ndarray, lr: float) -> None:
    """Stop when the policy can no longer be represented: a logit overflowed, or a probability underflowed to 0
    (the analysis of App. H needs pi > 0, and the entropy of such a row is NaN in floating point)."""
    if not np.isfinite(logits).all():
        what = "a logit is no longer finite"
    elif not (probs > 0).all():
        what = "a probability underflowed to 0, so the entropy is NaN"
    else:
        return
    raise UserError(f"training diverged at iteration {iteration}: {what}; lr {lr:g} is too large for this model, "
                    "rerun with a smaller --lr (the paper trains at 1e-2)")  # fmt: skip


def train(config: BigramConfig, until_reward: float | None = None) -> list[IterationStats]:
    """All iterations, or up to and including the first whose mean reward reaches `until_reward`."""
    history = []
    for stats in iterate(config):
        history.append(stats)
        if until_reward is not None and stats.reward >= until_reward:
            break
    return history


@dataclass(frozen=True)
class Dynamics:
    """What happened before a* was found: the first iteration whose mean reward reached `found_at_reward`."""

    found_at: int | None
    start_length: float
    peak_length: float  # the largest mean length before `found_at`
    start_p_stop: float
    p_stop_before: float  # p(stop) at the last iteration before `found_at`
    start_entropy: float
    peak_entropy: float


def summarize_dynamics(history: list[IterationStats], found_at_reward: float = 0.01) -> Dynamics:
    found = next((s.iteration for s in history if s.reward >= found_at_reward), None)
    before = [s for s in history if found is None or s.iteration < found] or history[:1]
    return Dynamics(found, history[0].mean_length, max(s.mean_length for s in before), history[0].p_stop,
                    before[-1].p_stop, history[0].entropy, max(s.entropy for s in before))  # fmt: skip


def write_history(history: list[IterationStats], path: Path, config: BigramConfig | None = None) -> None:
    """The documented columns only, written atomically; with `config`, provenance goes to `path`.json beside it."""
    import pyarrow as pa

    from e3eval.provenance import environment
    from e3eval.store import write_csv as write_table_csv
    from e3eval.store import write_json

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if config is not None:
            record = {"config": asdict(config), "rollouts_per_iteration": config.rollouts, **environment()}
            write_json(path.with_name(path.name + ".json"), record)
        write_table_csv(path, pa.table({column: [getattr(s, column) for s in history] for column in CSV_COLUMNS}))
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
