"""Teacher-forcing stored token ids through a transformers causal LM: per-token log-probs, entropy and KL to a ref.

This module owns the exact, memory-bounded forward pass behind `e3eval probe` (paper Fig. 3d entropy collapse, Fig. 11 /
App. E.3 token KL to the base model, Fig. 13 / App. F.1 attempt log-probs). The model body runs once over the sequence
(O(length x hidden)); only the vocabulary projection and a float32 log-softmax run in chunks of `chunk` positions, so
logits never take O(length x vocab) memory. When the body itself does not fit (`torch.OutOfMemoryError`), or when
`body_chunk` asks for it, the body runs in chunks that carry the KV cache instead; the numbers are the same. Token t
(t >= start) is scored with the distribution at position t - 1, softmax(logits / temperature) over the whole logit
dimension (which may be padded beyond the tokenizer's vocabulary): at temperature 1 the model's own distribution, at
the rollout temperature the one verl's actor and reference compute their log-probs, entropy and KL with. The head
is rebuilt from `get_output_embeddings()` plus the logit transforms the config names (Gemma's soft-capping, Cohere's
scale, Granite's divisor) and checked once per model against `model(...)`'s own logits: a head that cannot be
reproduced is refused, never approximated. This module does not read runs, choose budgets, segment attempts or
write tables.
"""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from e3eval.errors import UserError
from e3eval.weights import DTYPES

# The KV-cache fallback starts with chunks of this many positions and halves them on each out-of-memory error.
_FALLBACK_BODY_CHUNK = 4096
_MIN_BODY_CHUNK = 64
# Positions of the one-time head check: enough to exercise several rows of the head, cheap on any model.
_CHECK_POSITIONS = 16
# verl's low_var_kl clamps the log ratio before exp and the estimate after it.
_K3_RATIO_CLAMP = 20.0
_K3_CLAMP = 10.0


@dataclass(frozen=True, eq=False)
class TokenStats:
    """Per scored token (`len(ids) - start` entries, float32): log-prob, entropy and, with a ref, three KLs."""

    logprob: np.ndarray  # log pi(token_t | ids[:t]), pi = softmax(logits / temperature)
    entropy: np.ndarray  # full-vocabulary entropy of pi(. | ids[:t]), nats
    kl_exact: np.ndarray | None  # sum_v pi(v) (log pi(v) - log ref(v))
    kl_k1: np.ndarray | None  # log pi(token) - log ref(token) (verl "kl"/"k1")
    kl_k3: np.ndarray | None  # verl "low_var_kl"/"k3" of the sampled token


class ProbeModel:
    """A causal LM split into its body (up to the final norm) and its head (vocabulary projection + logit transform)."""

    def __init__(self, model: Any, name: str) -> None:
        self.model = model.eval()
        self.name = name
        parameter = next(model.parameters())
        self.device = str(parameter.device)
        self.dtype = str(parameter.dtype).removeprefix("torch.")
        self.body = _find_body(model, name)
        self.head = model.get_output_embeddings()
        if self.head is None or getattr(self.head, "weight", None) is None:
            raise UserError(f"model {name}: no vocabulary projection (get_output_embeddings) to score tokens with")
        self.vocab_size = int(self.head.weight.shape[0])
        embeddings = model.get_input_embeddings()
        self.input_vocab = int(embeddings.weight.shape[0]) if embeddings is not None else self.vocab_size
        self._scale, self._divisor, self._softcap = _logit_transform(model.config)
        self._head_checked = False
        # Out-of-memory history, so that later sequences skip the attempts known to fail.
        self._body_fits_below: int | None = None  # shortest sequence whose one-pass body ran out of memory
        self._fallback_chunk = _FALLBACK_BODY_CHUNK

    @classmethod
    def load(cls, path: str, dtype: str = "auto", device: str | None = None, *, flag: str = "--model") -> ProbeModel:
        """Load a transformers causal LM from a local path or hub id (bfloat16 on cuda, float32 on cpu by default)."""
        import torch
        from transformers.utils import logging as hf_logging

        from e3eval.backends import check_model
        from e3eval.backends.hf import load_causal_lm

        if dtype not in DTYPES:
            raise UserError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
        check_model(path, flag, needs_config=True)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        hf_logging.disable_progress_bar()
        model = load_causal_lm(path, dtype, flag)
        try:
            model = model.to(device)
        except (RuntimeError, AssertionError) as exc:  # no such device, or the weights do not fit on it
            raise UserError(f"--device {device}: cannot hold {path} ({' '.join(str(exc).split())[:300]})") from None
        return cls(model, path)

    @classmethod
    def wrap(cls, model: Any, name: str) -> ProbeModel:
        """An already loaded transformers causal LM (on its own device and dtype)."""
        return cls(model, name)

    def close(self) -> None:
        import torch

        on_cuda = self.device.startswith("cuda")
        del self.model, self.body, self.head
        gc.collect()
        if on_cuda:
            torch.cuda.empty_cache()

    def logits(self, hidden: Any) -> Any:
        """The head on final hidden states, as `model(...)` computes it (in the model's dtype)."""
        import torch

        logits = self.head(hidden)
        if self._scale is not None:
            logits = logits * self._scale
        if self._divisor is not None:
            logits = logits / self._divisor
        if self._softcap is not None:
            logits = torch.tanh(logits / self._softcap) * self._softcap
        return logits


def _find_body(model: Any, name: str) -> Any:
    body = model.get_decoder() if hasattr(model, "get_decoder") else None
    if body is None or body is model:
        body = getattr(model, getattr(model, "base_model_prefix", ""), None)
    if body is None or body is model:
        raise UserError(f"model {name}: cannot separate its body from its head ({type(model).__name__})")
    return body


def _logit_transform(config: Any) -> tuple[float | None, float | None, float | None]:
    """(multiplier, divisor, soft cap) of the logits after the projection: the config keys transformers' heads read."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config

    def number(*keys: str) -> float | None:
        values = [getattr(text, key, None) for key in keys]
        return next((float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)), None)

    scale = number("logit_scale")  # Cohere multiplies
    divisor = number("logits_scaling")  # Granite divides
    softcap = number("final_logit_softcapping", "logits_soft_cap")  # Gemma: cap * tanh(logits / cap)
    return (scale if scale != 1 else None, divisor if divisor not in (0, 1) else None, softcap or None)


def _check_head(model: ProbeModel, ids: Any) -> None:
    """Refuse a model whose logits our body + head split does not reproduce (an unknown logit transform)."""
    import torch

    short = ids[: min(len(ids), _CHECK_POSITIONS)][None]
    expected = model.model(input_ids=short, use_cache=False).logits[0].float()
    ours = model.logits(model.body(input_ids=short, use_cache=False).last_hidden_state[0]).float()
    # Same kernels on the same shapes: only an unknown transform, or a dtype's rounding of a known one, differs.
    tolerance = (1e-4 if model.dtype == "float32" else 2e-2) * max(1.0, float(expected.abs().max()))
    if ours.shape != expected.shape or not torch.allclose(ours, expected, rtol=0, atol=tolerance):
        raise UserError(
            f"model {model.name}: its logits are not its vocabulary projection plus a known transform "
            f"({type(model.model).__name__}); probing it would give wrong numbers"
        )
    model._head_checked = True


def _hidden_states(model: ProbeModel, ids: Any, first: int, body_chunk: int | None) -> Any:
    """Final hidden states of positions first .. len(ids) - 1 (the body sees ids up to each position)."""
    import torch

    if body_chunk is None and (model._body_fits_below is None or len(ids) < model._body_fits_below):
        try:
            return model.body(input_ids=ids[None], use_cache=False).last_hidden_state[0, first:]
        except torch.OutOfMemoryError:
            model._body_fits_below = len(ids)
            _release(model)
            warnings.warn(
                f"probe: the body of {model.name} does not fit in {model.device} memory over {len(ids)} positions "
                "at once; running it in chunks that carry the KV cache (same numbers, slower)",
                RuntimeWarning,
                stacklevel=3,
            )
    size = body_chunk or model._fallback_chunk
    while True:
        try:
            hidden = _cached_hidden_states(model, ids, first, size)
        except torch.OutOfMemoryError:
            _release(model)
            if body_chunk is not None or size // 2 < _MIN_BODY_CHUNK:
                raise UserError(
                    f"probe: {model.name} does not fit in {model.device} memory over {len(ids)} positions even in "
                    f"body chunks of {size}; use a device with more memory"
                ) from None
            size //= 2
            continue
        if body_chunk is None:
            model._fallback_chunk = size
        return hidden


def _cached_hidden_states(model: ProbeModel, ids: Any, first: int, size: int) -> Any:
    import torch

    past, parts = None, []
    for begin in range(0, len(ids), size):
        out = model.body(input_ids=ids[None, begin : begin + size], past_key_values=past, use_cache=True)
        past = out.past_key_values
        hidden = out.last_hidden_state[0]
        if begin + hidden.shape[0] > first:
            parts.append(hidden[max(first - begin, 0) :])
    return torch.cat(parts)


def _release(model: ProbeModel) -> None:
    import torch

    gc.collect()
    if model.device.startswith("cuda"):
        torch.cuda.empty_cache()


def _prepare(model: ProbeModel, ids: Sequence[int], start: int, end: int) -> tuple[Any, Any]:
    """(body input ids[:end - 1], targets ids[start:end]) on the model's device, after validation."""
    import torch

    array = np.asarray(ids, dtype=np.int64)
    if array.ndim != 1 or not 1 <= start <= end <= len(array):
        raise ValueError(f"need 1 <= start <= end <= len(ids), got start={start}, end={end}, len(ids)={len(array)}")
    if len(array) and (array.min() < 0 or array.max() >= model.input_vocab):
        bad = int(array.max() if array.max() >= model.input_vocab else array.min())
        raise UserError(f"model {model.name}: token id {bad} is outside its vocabulary of {model.input_vocab}")
    tensor = torch.from_numpy(array[:end]).to(model.device)
    if not model._head_checked:
        _check_head(model, tensor)
    return tensor[: end - 1], tensor[start:end]


def _log_softmax(model: ProbeModel, hidden: Any, tokens: Any, temperature: float = 1.0) -> tuple[Any, Any, Any]:
    """(log pi floored at float32's min, pi, log pi of `tokens`) of a chunk of positions, in float32, for
    pi = softmax(logits / temperature).

    One exp gives both pi and log pi (log_softmax then exp takes two; exp dominates the head's time besides the
    matmul). A model and its ref go through the same arithmetic, so the KL of a model with itself is exactly 0.
    """
    import torch

    logits = model.logits(hidden).float()
    if temperature != 1.0:
        logits.div_(temperature)
    top = logits.amax(dim=-1, keepdim=True)
    probs = torch.sub(logits, top).exp_()
    total = probs.sum(dim=-1, keepdim=True)
    probs.div_(total)
    logp = logits.sub_(total.log_().add_(top))
    picked = logp.gather(1, tokens)[:, 0]
    # A -inf log-prob (a masked token) would make 0 * -inf = nan; the floor keeps p * log p at 0 there.
    return logp.clamp_(min=torch.finfo(torch.float32).min), probs, picked


def low_var_kl(logprob: Any, ref_logprob: Any) -> Any:
    """verl's `low_var_kl` (k3) of the sampled tokens: r = ref - logprob clamped to +-20, exp(r) - r - 1 to +-10."""
    import torch

    ratio = torch.clamp(ref_logprob - logprob, min=-_K3_RATIO_CLAMP, max=_K3_RATIO_CLAMP)
    return torch.clamp(ratio.exp() - ratio - 1, min=-_K3_CLAMP, max=_K3_CLAMP)


def token_stats(
    model: ProbeModel,
    ids: Sequence[int],
    start: int,
    chunk: int = 4096,
    ref: ProbeModel | None = None,
    body_chunk: int | None = None,
    temperature: float = 1.0,
) -> TokenStats:
    """Teacher-force `ids` and score tokens start .. len(ids) - 1 under softmax(logits / temperature); with `ref`,
    also KL(model || ref) per token (the ref's logits divided by the same temperature, as verl does)."""
    import torch

    if chunk < 1 or (body_chunk is not None and body_chunk < 1):
        raise ValueError(f"chunk and body_chunk must be >= 1, got {chunk} and {body_chunk}")
    _check_temperature(temperature)
    if ref is not None:
        if ref.vocab_size != model.vocab_size:
            raise UserError(
                f"--ref {ref.name} has vocabulary {ref.vocab_size}, the model {model.name} {model.vocab_size}"
            )
        if ref.device != model.device:
            raise UserError(f"--ref {ref.name} is on {ref.device}, the model {model.name} on {model.device}")
    with torch.inference_mode():
        inputs, targets = _prepare(model, ids, start, len(ids))
        count = len(targets)
        logprob = torch.empty(count, dtype=torch.float32, device=model.device)
        entropy = torch.empty_like(logprob)
        kl = ref_logprob = None
        if count == 0:
            return _to_stats(logprob, entropy, *((logprob,) * 3 if ref is not None else (None,) * 3))
        hidden = _hidden_states(model, inputs, start - 1, body_chunk)
        if ref is not None:
            if not ref._head_checked:
                _check_head(ref, inputs)
            ref_hidden = _hidden_states(ref, inputs, start - 1, body_chunk)
            kl, ref_logprob = torch.empty_like(logprob), torch.empty_like(logprob)
        for begin in range(0, count, chunk):
            span = slice(begin, begin + chunk)
            tokens = targets[span, None]
            logp, probs, logprob[span] = _log_softmax(model, hidden[span], tokens, temperature)
            if ref is not None:
                logq, ref_probs, ref_logprob[span] = _log_softmax(ref, ref_hidden[span], tokens, temperature)
                del ref_probs
                # In place: log p - log q, then p * (log p - log q); no further chunk x vocab buffer.
                kl[span] = logq.neg_().add_(logp).mul_(probs).sum(dim=-1)
                del logq
            entropy[span] = logp.mul_(probs).sum(dim=-1).neg_()
            del logp, probs
        if ref_logprob is None:
            return _to_stats(logprob, entropy, None, None, None)
        return _to_stats(logprob, entropy, kl, logprob - ref_logprob, low_var_kl(logprob, ref_logprob))


def _to_stats(logprob: Any, entropy: Any, kl: Any, k1: Any, k3: Any) -> TokenStats:
    def host(tensor: Any) -> np.ndarray | None:
        return None if tensor is None else tensor.cpu().numpy().astype(np.float32, copy=False)

    return TokenStats(host(logprob), host(entropy), host(kl), host(k1), host(k3))


def span_logprob(
    model: ProbeModel, ids: Sequence[int], start: int, end: int, chunk: int = 4096, temperature: float = 1.0
) -> float:
    """sum over t in [start, end) of log pi(ids[t] | ids[:t]), pi = softmax(logits / temperature); the head runs
    only over that span, ids[end:] unused."""
    import torch

    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    _check_temperature(temperature)
    with torch.inference_mode():
        inputs, targets = _prepare(model, ids, start, end)
        if len(targets) == 0:
            return 0.0
        hidden = _hidden_states(model, inputs, start - 1, None)
        total = 0.0
        for begin in range(0, len(targets), chunk):
            logits = model.logits(hidden[begin : begin + chunk]).float() / temperature
            picked = logits.gather(1, targets[begin : begin + chunk, None])[:, 0] - logits.logsumexp(dim=-1)
            total += math.fsum(picked.double().cpu().tolist())
        return total


def _check_temperature(temperature: float) -> None:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a positive number, got {temperature}")
