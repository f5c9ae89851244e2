"""Attempt-conditional probes (paper Fig. 13, App. F.1): how a new attempt depends on the attempts before it.

A response is split into attempts a_1..a_K with an analysis preset (`e3eval.segmentation`, the core's door into
`e3eval.analysis`); the attempts are mapped to token spans of the stored response ids, and for each k >= 2, with P
the prompt ids, three differences of log-probs (a sum over an attempt's tokens, teacher-forced) are computed:
- Fig. 13a: log p(a_k | P, a_1..k-1) - log p(a_k | P, a_1..k-2), about 0 when attempts are independent;
- Fig. 13b: log p(a_k | P, a_1..k-1) - log p(a_k-1 | P, a_1..k-2), the model more certain of what to try next;
- Fig. 13c: log p(a_k-1 | P, a_1..k-1), a_k-1 appended again after itself: the chance of repeating the latest one.
For k = 2, a_1..k-2 is empty: the context is the prompt alone. Per-token versions divide each log-prob by the token
count of its attempt, since attempts differ in length. The real-context terms of every k come from one teacher-forced
pass over prompt + response; each counterfactual context (a_k-1 removed, a_k-1 repeated) takes one pass of its own.

Token spans: a character boundary goes to the first response token whose decoded text starts at or after it. A token
that begins inside a multi-byte character (byte-level BPE splits them) counts as starting at that character, so a
boundary before the character goes to the first token that starts exactly there or inside it; a token that straddles
a boundary stays with the attempt it starts in. Start positions are read from exact prefix decodes
(`truncate.PrefixDecoder`, the same decode the run's texts came from); attempts left with no token are dropped.
This module does not run models (`forward.py` does), segment text (`e3eval.segmentation` does) or write tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

import numpy as np

from e3eval.errors import UserError
from e3eval.probes.forward import ProbeModel, span_logprob, token_stats
from e3eval.segmentation import attempt_spans
from e3eval.truncate import PrefixDecoder

# A prefix decode that ends inside a character ends in replacement characters: at most one per byte of the
# (at most 4-byte) character; more than that is a text that is not the decode of its ids.
_MAX_PARTIAL = 4


@dataclass(frozen=True)
class AttemptProbe:
    """One attempt index k (1-based, >= 2) of one response; log-probs are sums over the attempt's tokens (nats).

    `n_attempts` counts the response's attempts (with at least one token); `n_skipped` the indices k past
    `max_attempts + 1` that were not probed (the same on every row of a response)."""

    k: int
    n_attempts: int
    n_skipped: int
    tokens_k: int
    tokens_prev: int
    lp_k_given_prev: float  # log p(a_k | P, a_1..k-1): the real context
    lp_k_skip_prev: float  # log p(a_k | P, a_1..k-2)
    lp_prev_given_before: float  # log p(a_k-1 | P, a_1..k-2): the real context
    lp_repeat_prev: float  # log p(a_k-1 | P, a_1..k-1)

    @property
    def fig13a(self) -> float:
        return self.lp_k_given_prev - self.lp_k_skip_prev

    @property
    def fig13b(self) -> float:
        return self.lp_k_given_prev - self.lp_prev_given_before

    @property
    def fig13c(self) -> float:
        return self.lp_repeat_prev

    @property
    def fig13a_per_token(self) -> float:
        return self.fig13a / self.tokens_k

    @property
    def fig13b_per_token(self) -> float:
        return self.lp_k_given_prev / self.tokens_k - self.lp_prev_given_before / self.tokens_prev

    @property
    def fig13c_per_token(self) -> float:
        return self.lp_repeat_prev / self.tokens_prev

    def as_row(self) -> dict[str, float | int]:
        """The fields and the derived Fig. 13 columns, for a table row."""
        derived = ("fig13a", "fig13b", "fig13c", "fig13a_per_token", "fig13b_per_token", "fig13c_per_token")
        return asdict(self) | {name: getattr(self, name) for name in derived}


def token_spans(
    decoder: PrefixDecoder, response_ids: Sequence[int], text: str, spans: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Token spans `[start, end)` of `response_ids` for the contiguous character `spans` of `text` (its decode), by the
    boundary rule of this module; spans left with no token are dropped."""
    if not spans:
        return []
    if decoder.decode_prefix(response_ids, len(response_ids)) != text:
        raise UserError("response text is not the decode of its token ids: cannot place attempts on tokens")
    cuts = _first_tokens_at_or_after(decoder, response_ids, text, [spans[0][0], *(end for _, end in spans)])
    return [(a, b) for a, b in pairwise(cuts) if b > a]


def _first_tokens_at_or_after(decoder: PrefixDecoder, ids: Sequence[int], text: str, chars: Sequence[int]) -> list[int]:
    """For each character offset, the first token index whose start is at or after it (len(ids) if none): a binary
    search per offset over token starts, all offsets advanced together so that one batch of prefix decodes serves
    each round."""
    targets = np.asarray(chars, dtype=np.int64)
    lo = np.zeros(len(targets), dtype=np.int64)
    hi = np.full(len(targets), len(ids), dtype=np.int64)
    while (open_ := lo < hi).any():
        mid = (lo + hi) // 2
        prefixes = decoder.decode_prefixes(ids, mid[open_].tolist())
        starts = np.array([_start(prefix, text) for prefix in prefixes], dtype=np.int64)
        after = np.zeros(len(targets), dtype=bool)
        after[open_] = starts >= targets[open_]
        hi = np.where(open_ & after, mid, hi)
        lo = np.where(open_ & ~after, mid + 1, lo)
    return lo.tolist()


def _start(prefix: str, text: str) -> int:
    """The character of `text` where the token that follows `prefix` (the decode of the tokens before it) starts:
    for a token that starts inside a character, that character (the prefix then ends in replacement marks)."""
    if text.startswith(prefix):
        return len(prefix)
    for cut in range(1, min(_MAX_PARTIAL, len(prefix)) + 1):
        if text.startswith(prefix[:-cut]):
            return len(prefix) - cut
    raise UserError("response text is not the decode of its token ids: cannot place attempts on tokens")


def attempt_probes(
    model: ProbeModel,
    prompt_ids: Sequence[int],
    response_ids: Sequence[int],
    text: str,
    preset: str,
    tokenizer: Any,
    chunk: int = 4096,
    max_attempts: int | None = None,
    temperature: float = 1.0,
) -> list[AttemptProbe]:
    """One `AttemptProbe` per attempt index k = 2..K of a response (k <= max_attempts + 1 when capped); none when it
    has fewer than two attempts. `text` is the decode of `response_ids` (`skip_special_tokens=True`, as runs store
    it); `tokenizer` is the model's tokenizer or a `PrefixDecoder` built from it (build it once per tokenizer)."""
    if max_attempts is not None and max_attempts < 1:
        raise UserError(f"max_attempts must be at least 1, got {max_attempts}")
    if not prompt_ids:
        raise UserError("attempt probes need the prompt's token ids: the first attempt has no context without them")
    decoder = tokenizer if isinstance(tokenizer, PrefixDecoder) else PrefixDecoder(tokenizer)
    spans = token_spans(decoder, response_ids, text, attempt_spans(text, preset))
    n_attempts = len(spans)
    last = n_attempts if max_attempts is None else min(n_attempts, max_attempts + 1)
    if last < 2:
        return []
    prompt, response = list(prompt_ids), list(response_ids)
    base = len(prompt)
    needed = spans[last - 1][1]
    real = np.asarray(token_stats(model, prompt + response[:needed], base, chunk, temperature=temperature).logprob,
                      dtype=np.float64)  # fmt: skip
    cumulative = np.concatenate([[0.0], np.cumsum(real[:needed])])
    probes = []
    for k in range(2, last + 1):
        (prev_start, prev_end), (k_start, k_end) = spans[k - 2], spans[k - 1]
        # Spans are contiguous from token 0, so response[:prev_start] is a_1..k-2 and response[:prev_end] a_1..k-1.
        skip = prompt + response[:prev_start] + response[k_start:k_end]
        repeat = prompt + response[:prev_end] + response[prev_start:prev_end]
        probes.append(
            AttemptProbe(
                k=k,
                n_attempts=n_attempts,
                n_skipped=n_attempts - last,
                tokens_k=k_end - k_start,
                tokens_prev=prev_end - prev_start,
                lp_k_given_prev=float(cumulative[k_end] - cumulative[k_start]),
                lp_k_skip_prev=span_logprob(model, skip, base + prev_start, len(skip), chunk, temperature),
                lp_prev_given_before=float(cumulative[prev_end] - cumulative[prev_start]),
                lp_repeat_prev=span_logprob(model, repeat, base + prev_end, len(repeat), chunk, temperature),
            )
        )
    return probes
