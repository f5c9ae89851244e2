"""The `hf` backend: transformers models on CPU or GPU, batched, with per-sample seeds (the reference backend).

Sampling is a small explicit loop over the model's forward pass with a KV cache (left-padded batches). A sample
depends only on its prompt and seed, never on its batch-mates (up to floating-point differences of batched matmuls):
the random noise is counter-based, a splitmix64 hash of (sample seed, step, vocabulary index) computed on the device
for the whole batch at once in wrapping int64 arithmetic, and a token is drawn by the Gumbel-max rule
(argmax of logits / T + Gumbel noise over the top-p set), which samples exactly softmax(logits / T) restricted to the
smallest prefix of tokens whose mass reaches top-p, as in vLLM. So the loop keeps no per-row generator state and makes
no Python round trip per row per token: token ids, lengths and finish flags stay on the device and come to the CPU
once per batch (a GPU is asked whether every row has finished once every `_SYNC_EVERY` steps). A row ends at EOS or
at one of the spec's `stop_token_ids` (kept as its last token), or at its own request's token limit; neither EOS nor
a stop id is drawn before the spec's `min_tokens` (vLLM's rule). Temperature 0 is greedy. Logprobs are those of the
raw model distribution (log-softmax of the logits before temperature and top-p), matching vLLM's default
`raw_logprobs`. When a batch runs out of GPU memory, the batch is halved for the rest of the backend's life (one
`RuntimeWarning` via `warnings` says so); one sample that does not fit is a `UserError`.
"""

from __future__ import annotations

import gc
import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from e3eval.backends import BackendSpec
from e3eval.backends.settings import EngineSpec, keyword_parameters
from e3eval.errors import UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

# On a GPU each "has every row finished?" check stalls the launch queue; checking every few steps costs at most that
# many wasted forward passes at the end of a batch. A CPU runs in step with Python, so it checks every step.
_SYNC_EVERY = 32
_Row = tuple[tuple[int, ...], int, int]  # prompt ids, seed, the row's token limit


def _signed(value: int) -> int:
    """A 64-bit pattern as the int64 torch stores (torch has no uint64 arithmetic)."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


_GAMMA = _signed(0x9E3779B97F4A7C15)  # splitmix64's increment
_MIX1 = _signed(0xBF58476D1CE4E5B9)
_MIX2 = _signed(0x94D049BB133111EB)


def _shr(x: Any, bits: int) -> Any:
    # torch's >> on int64 is arithmetic; masking off the sign copies makes it the logical shift splitmix64 needs.
    return (x >> bits) & ((1 << (64 - bits)) - 1)


def mix64(x: Any) -> Any:
    """splitmix64's finaliser, in place on an int64 tensor (multiplication wraps modulo 2^64); returns it."""
    x ^= _shr(x, 30)
    x *= _MIX1
    x ^= _shr(x, 27)
    x *= _MIX2
    x ^= _shr(x, 31)
    return x


def seed_keys(seeds: Sequence[int], device: Any = "cpu") -> Any:
    """One int64 key per sample, from its seed (any int; taken modulo 2^64)."""
    import torch

    return mix64(torch.tensor([_signed(s) for s in seeds], dtype=torch.long, device=device))


def gumbel_noise(keys: Any, step: int, vocab: int) -> Any:
    """Standard Gumbel noise of shape (rows, vocab), a pure function of (row key, step, vocabulary index)."""
    import torch

    row = mix64(keys + _signed((step + 1) * 0xD1B54A32D192ED03))
    bits = mix64(row[:, None] + torch.arange(vocab, device=keys.device) * _GAMMA)
    # 23 random bits as an odd multiple of 2^-24: exact in float32 and strictly inside (0, 1), so both logs are finite.
    uniform = _shr(bits, 41).mul_(2).add_(1).to(torch.float32).mul_(2.0**-24)
    return uniform.log_().neg_().log_().neg_()


def choose_tokens(logits: Any, temperature: float, top_p: float, keys: Any, step: int) -> Any:
    """The next token of every row: argmax at temperature 0, else a draw from softmax(logits / T) within top-p.

    Top-p keeps the smallest set of most likely tokens whose mass reaches `top_p` (tokens tied with its least likely
    member too). Row i's draw uses only `logits[i]`, `keys[i]` and `step`, never the other rows.
    """
    import torch

    if temperature <= 0:
        return logits.argmax(dim=-1)
    scores = logits.float() / temperature
    noisy = scores + gumbel_noise(keys, step, scores.shape[-1])
    if top_p >= 1.0:
        return noisy.argmax(dim=-1)
    probs = torch.softmax(scores, dim=-1)
    if logits.device.type != "cpu":
        return _top_p_argmax(noisy, probs, top_p)
    # On a CPU sorting the vocabulary costs more than the model step. The unrestricted draw is the top-p draw whenever
    # it lands inside the top-p set (the mass more likely than it is <= top_p); only the other rows need the sort.
    # (On a GPU the sort is cheap and this data-dependent branch would stall the launch queue.)
    chosen = noisy.argmax(dim=-1)
    chosen_prob = probs.gather(1, chosen[:, None])
    outside = probs.masked_fill(probs <= chosen_prob, 0.0).sum(dim=-1) > top_p
    if bool(outside.any()):
        rows = outside.nonzero()[:, 0]
        chosen[rows] = _top_p_argmax(noisy[rows], probs[rows], top_p)
    return chosen


def _top_p_argmax(noisy: Any, probs: Any, top_p: float) -> Any:
    sorted_probs = probs.sort(dim=-1, descending=True).values
    kept = (sorted_probs.cumsum(dim=-1) - sorted_probs <= top_p).sum(dim=-1, keepdim=True)  # a prefix, >= 1 long
    floor = sorted_probs.gather(1, kept - 1)
    return noisy.masked_fill(probs < floor, float("-inf")).argmax(dim=-1)


def load_causal_lm(path: str, dtype: str, flag: str = "--model", **pretrained: Any) -> Any:
    """A transformers causal LM from a local folder or hub id, in `dtype` (a torch dtype name), with `pretrained`
    passed on to `from_pretrained` (`--engine-arg`, e.g. attn_implementation). Weights that cannot be read (a
    half-written checkpoint export, a file that is not safetensors) are one UserError naming the path."""
    import safetensors
    import torch
    from transformers import AutoModelForCausalLM

    given = "".join(f" --engine-arg {key}={value!r}" for key, value in pretrained.items())
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype), **pretrained)
    except Exception as exc:
        # Unreadable weights, or a config value of the wrong type or size given with --engine-arg (huggingface_hub's
        # strict dataclass checks): the user's to fix. Anything else without --engine-arg is a bug: its traceback.
        readable = (OSError, ValueError, KeyError, ImportError, TypeError, safetensors.SafetensorError)
        if not (isinstance(exc, readable) or pretrained):
            raise
        reason = " ".join(str(exc).split())
        raise UserError(f"{flag} {path}{given}: cannot load the model ({type(exc).__name__}: {reason[:300]})") from None


def engine_keys(model_config: Mapping[str, Any] | None = None) -> set[str]:
    """What `from_pretrained` takes: its parameters, the keywords it reads from `**kwargs` (read from its source, so
    this follows the installed transformers), and the config's attributes (a keyword that names one overrides it)."""
    from transformers import PretrainedConfig, PreTrainedModel

    source = inspect.getsource(PreTrainedModel.from_pretrained)
    popped = set(re.findall(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']", source))
    config_keys = set(PretrainedConfig().to_dict()) | set(model_config or {})
    return keyword_parameters(PreTrainedModel.from_pretrained) | popped | config_keys


ENGINE = EngineSpec(
    not_applicable={"*": "the hf backend runs one model copy on one device"},
    source="transformers from_pretrained and the model config",
    accepted=engine_keys,
    reads_config=True,
    overrides=dict,  # every --engine-arg reaches from_pretrained, where a config attribute's name overrides it
    throughput=frozenset({"attn_implementation", "device_map", "low_cpu_mem_usage", "max_memory", "offload_folder",
                          "local_files_only"}),
)  # fmt: skip
# The loop batches exactly what it is given (no scheduler of its own): 64 samples per call by default.
SPEC = BackendSpec("hf", "transformers", "HFBackend", frozenset({"dtype", "batch_size", "device"}),
                   note="it runs the model in this process", engine=ENGINE, default_batch=64)  # fmt: skip


class HFBackend:
    name = "hf"
    token_ids_source = "engine"

    def __init__(
        self, model: str, dtype: str = "auto", device: str | None = None, batch_size: int = 16, **pretrained: Any
    ) -> None:
        import torch
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype == "auto":
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = dtype
        self.model_name = model
        self.pretrained = pretrained
        self.model = load_causal_lm(model, dtype, **pretrained)
        if "device_map" in pretrained:  # transformers placed the layers; inputs go where the first one is
            self.device = str(self.model.device)
        else:
            self.model = self.model.to(self.device)
        self.model.eval()
        self.tokenizer = AutoTokenizer.from_pretrained(model)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(self.tokenizer.eos_token_id)
        self.eos_ids = sorted(eos_ids)
        pad = self.tokenizer.pad_token_id
        self.pad_id = pad if pad is not None else (self.eos_ids[0] if self.eos_ids else 0)
        self.batch_size = batch_size
        self._fits = batch_size  # lowered for good after an out-of-memory error
        # The prefill needs only the last position's logits; full (batch x prompt x vocab) logits can exhaust memory.
        self._prefill_kwargs = (
            {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(self.model.forward).parameters else {}
        )

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        gpu = torch.cuda.get_device_name(0) if self.device.startswith("cuda") else None
        return {"engine": "transformers", "version": transformers.__version__, "torch": torch.__version__,
                "dtype": self.dtype, "device": self.device, "gpu": gpu, "batch_size": self.batch_size,
                "sampler": "gumbel-max, splitmix64(seed, step, token)",
                **({"from_pretrained": self.pretrained} if self.pretrained else {})}  # fmt: skip

    def close(self) -> None:
        del self.model

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        from e3eval.backends import regroup

        rows = [(r.prompt_token_ids, seed, r.max_tokens or spec.max_tokens) for r in requests for seed in r.seeds]
        flat: list[Completion] = []
        start = 0
        while start < len(rows):
            chunk = rows[start : start + self._fits]
            completions = self._sample_fitting(chunk, spec)
            if completions is None:
                self._shrink(chunk, spec)
                continue
            flat.extend(completions)
            start += len(chunk)
        return regroup(flat, requests)

    def _sample_fitting(self, rows: list[_Row], spec: SamplingSpec) -> list[Completion] | None:
        """The batch's completions, or None when it ran out of memory (its tensors are released on return)."""
        import torch

        try:
            return self._sample(rows, spec)
        except torch.OutOfMemoryError:
            return None

    def _shrink(self, rows: list[_Row], spec: SamplingSpec) -> None:
        import torch

        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        if len(rows) == 1:
            raise UserError(
                f"hf backend: one sample does not fit in {self.device} memory ({self.model_name}, {self.dtype}, "
                f"prompt of {len(rows[0][0])} tokens + up to {rows[0][2]} new tokens); use a GPU with more "
                "memory, a lower --max-tokens (sweep: a smaller largest --budgets), or the vllm/sglang backend"
            )
        if self._fits == self.batch_size:
            warnings.warn(
                f"hf backend: out of {self.device} memory with {len(rows)} samples per batch; halving the batch "
                "until it fits (samples do not depend on batch size; pass a smaller --batch to skip the retries)",
                RuntimeWarning,
                stacklevel=3,
            )
        self._fits = max(1, len(rows) // 2)

    def _sample(self, rows: list[_Row], spec: SamplingSpec) -> list[Completion]:
        import torch

        device, count = self.device, len(rows)
        steps = max(limit for _, _, limit in rows)
        width = max(len(p) for p, _, _ in rows)
        ids = torch.full((count, width), self.pad_id, dtype=torch.long)
        # The attention mask of every step is a prefix of this one, so no step reallocates it.
        mask = torch.ones((count, width + steps), dtype=torch.long)
        for i, (prompt, _, _) in enumerate(rows):
            ids[i, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[i, : width - len(prompt)] = 0
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask[:, :width].cumsum(-1) - 1).clamp(min=0)
        last_position = positions[:, -1:]
        keys = seed_keys([seed for _, seed, _ in rows], device)
        # A stop id ends a row exactly like EOS (budget forcing stops at the end of thinking).
        eos = torch.tensor(sorted({*self.eos_ids, *spec.stop_token_ids}), dtype=torch.long, device=device)
        limits = torch.tensor([limit for _, _, limit in rows], dtype=torch.long, device=device)
        tokens = torch.full((count, steps), self.pad_id, dtype=torch.long, device=device)
        logprobs = torch.zeros((count, steps), dtype=torch.float32, device=device) if spec.logprobs else None
        lengths = torch.zeros(count, dtype=torch.long, device=device)
        stopped = torch.zeros(count, dtype=torch.bool, device=device)
        done = stopped.clone()  # stopped, or at its own token limit
        sync_every = 1 if device == "cpu" else _SYNC_EVERY
        past, step_ids = None, ids[:, -1:]
        with torch.inference_mode():
            for step in range(steps):
                if step == 0:
                    out = self.model(input_ids=ids, attention_mask=mask[:, :width], position_ids=positions,
                                     use_cache=True, **self._prefill_kwargs)  # fmt: skip
                else:
                    out = self.model(input_ids=step_ids, attention_mask=mask[:, : width + step],
                                     position_ids=last_position + step, past_key_values=past,
                                     use_cache=True)  # fmt: skip
                past = out.past_key_values
                logits = out.logits[:, -1, :].float()
                # vLLM's min_tokens: no EOS or stop id before it (the logprobs stay those of the raw logits).
                allowed = logits.index_fill(1, eos, float("-inf")) if step < spec.min_tokens else logits
                chosen = choose_tokens(allowed, spec.temperature, spec.top_p, keys, step)
                tokens[:, step] = chosen
                if logprobs is not None:
                    logprobs[:, step] = logits.gather(1, chosen[:, None])[:, 0] - logits.logsumexp(dim=-1)
                lengths += ~done
                stopped |= torch.isin(chosen, eos) & ~done
                done = stopped | (lengths >= limits)
                if (step + 1) % sync_every == 0 and bool(done.all()):
                    break
                step_ids = chosen.masked_fill(done, self.pad_id)[:, None]
        token_rows, length_list, stopped_list = tokens.tolist(), lengths.tolist(), stopped.tolist()
        logprob_rows = logprobs.tolist() if logprobs is not None else None
        completions = []
        for i, length in enumerate(length_list):
            ids_i = token_rows[i][:length]
            completions.append(
                Completion(
                    token_ids=tuple(ids_i),
                    finish_reason="stop" if stopped_list[i] else "length",
                    text=self.tokenizer.decode(ids_i, skip_special_tokens=True),
                    logprobs=tuple(logprob_rows[i][:length]) if logprob_rows is not None else None,
                )
            )
        return completions
