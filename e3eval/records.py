"""Shared record types and vocabularies: the contracts between stages.

This leaf module owns the frozen dataclasses that cross stage boundaries and the closed vocabularies (finish reasons,
grade statuses; scoring policies are registered in `policy.py`). It does no I/O; the Parquet schemas that mirror
these records live in `store.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

SCHEMA_VERSION = 1

FinishReason = Literal["stop", "length", "error"]
GradeStatus = Literal["ok", "no_answer", "timeout", "error"]
TokenIdsSource = Literal["engine", "imported", "retokenized"]

FINISH_REASONS: tuple[str, ...] = get_args(FinishReason)
GRADE_STATUSES: tuple[str, ...] = get_args(GradeStatus)


@dataclass(frozen=True)
class Problem:
    """One benchmark problem with its gold answer and, once rendered, its prompt."""

    problem_id: str
    answer: str
    problem: str = ""
    dataset: str = ""
    prompt: str = ""
    prompt_token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Rollout:
    """One sampled response, exactly as the engine produced it (token ids are the source of truth)."""

    problem_id: str
    sample_idx: int
    response: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    seed: int | None = None
    error: str | None = None
    logprobs: tuple[float, ...] | None = None
    source_score: float | None = None
    # Budget forcing: flat (start, end) pairs of the token spans inserted into the response (`budget_forcing.py`); None
    # when the run did not force, empty when it forced but the model never tried to end its thinking early.
    inserted: tuple[int, ...] | None = None

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class SamplingSpec:
    """Sampling settings shared by every request of a run (n is per request: one seed per sample)."""

    max_tokens: int
    temperature: float = 0.6
    top_p: float = 0.95
    logprobs: bool = False
    # Ids that end a completion like EOS does (kept as its last token, finish "stop"): budget forcing stops each round
    # at the end-of-thinking delimiter instead of generating past it. Not a run setting: a mechanism of one call.
    stop_token_ids: tuple[int, ...] = ()
    # Tokens a completion must have before EOS or a stop id may end it (vLLM's `min_tokens`): s1-style forcing asks
    # for one after each insertion, so an end right after "Wait" cannot use up an insertion. Also one call's mechanism.
    min_tokens: int = 0


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt and the seeds of the samples wanted from it (one sample per seed)."""

    key: str
    prompt: str
    prompt_token_ids: tuple[int, ...]
    seeds: tuple[int, ...]
    max_tokens: int | None = None  # this request's limit when not `SamplingSpec.max_tokens` (a forcing continuation)


@dataclass(frozen=True)
class Completion:
    """One sampled response as the engine produced it; `error` is set (and ids empty) when the request failed."""

    token_ids: tuple[int, ...]
    finish_reason: FinishReason
    text: str = ""
    logprobs: tuple[float, ...] | None = None
    error: str | None = None
    inserted: tuple[int, ...] | None = None  # budget forcing's inserted spans, as in `Rollout.inserted`


# `e3train bigram`'s per-iteration record and CSV columns: written by the training side, drawn by the figures side
# (`figures/bigram_curves.py`), so it lives below both.
BIGRAM_CSV_COLUMNS = ("iteration", "mean_length", "reward", "p_stop", "p_a_star", "entropy", "length_std")


@dataclass(frozen=True)
class IterationStats:
    """One iteration of the p^k bigram simulation (`e3train bigram`)."""

    iteration: int
    mean_length: float
    reward: float
    p_stop: float
    p_a_star: float
    entropy: float
    length_std: float  # spread of lengths across the iteration's rollouts, for confidence intervals
    rollouts: int
