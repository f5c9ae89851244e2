"""The `sglang` backend: offline `sglang.Engine` (data parallel with `dp_size`), one request per sample.

Every (prompt, seed) is one entry of a batched `Engine.generate(input_ids=[...], sampling_params=[...])` call with
`max_new_tokens` (the request's own when it has one), `temperature`, `top_p`, the sample's `sampling_seed` and the
spec's `stop_token_ids`; SGLang answers with a flat list in input order (it would also be flat for n > 1), which
`regroup` splits back per prompt explicitly. Token ids come from each output's `output_ids` (with the matched stop or
EOS token of `meta_info.finish_reason.matched` as the last id), the finish reason from `meta_info.finish_reason.type`,
logprobs from `meta_info.output_token_logprobs` (tuples whose first item is the logprob). SGLang needs a GPU:
`build_inputs` and `to_completion` hold all the logic and are tested on CPU; the engine call itself is tested on a GPU
machine.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from e3eval.backends import BackendSpec
from e3eval.backends.settings import EngineSpec
from e3eval.records import Completion, GenerationRequest, SamplingSpec


def build_inputs(requests: Sequence[GenerationRequest], spec: SamplingSpec) -> tuple[list[list[int]], list[dict]]:
    """The `input_ids` and per-sample `sampling_params` lists for one batched Engine.generate call."""
    input_ids: list[list[int]] = []
    params: list[dict[str, Any]] = []
    for request in requests:
        for seed in request.seeds:
            input_ids.append(list(request.prompt_token_ids))
            entry = {"max_new_tokens": request.max_tokens or spec.max_tokens, "temperature": spec.temperature,
                     "top_p": spec.top_p, "sampling_seed": seed, "skip_special_tokens": True}  # fmt: skip
            if spec.stop_token_ids:
                entry["stop_token_ids"] = list(spec.stop_token_ids)
            if spec.min_tokens:
                entry["min_new_tokens"] = spec.min_tokens
            params.append(entry)
    return input_ids, params


def to_completion(output: dict[str, Any], want_logprobs: bool) -> Completion:
    """One SGLang output dict -> Completion (an aborted request becomes an error row)."""
    meta = output.get("meta_info", {})
    finish = meta.get("finish_reason") or {}
    kind = finish.get("type") if isinstance(finish, dict) else str(finish)
    ids = tuple(int(i) for i in output.get("output_ids", ()))
    matched = finish.get("matched") if isinstance(finish, dict) else None
    if kind == "stop" and isinstance(matched, int) and not isinstance(matched, bool) and ids[-1:] != (matched,):
        ids += (matched,)  # the stop token was sampled; versions that trim it from output_ids lose what forcing needs
    if kind not in ("stop", "length"):
        message = finish.get("message") if isinstance(finish, dict) else None
        return Completion((), "error", "", None, f"sglang finish reason {kind!r}: {message}")
    logprobs = None
    if want_logprobs and meta.get("output_token_logprobs"):
        logprobs = tuple(float(entry[0]) for entry in meta["output_token_logprobs"])
    return Completion(ids, kind, output.get("text", ""), logprobs)


def engine_keys(model_config: Mapping[str, Any] | None = None) -> set[str]:
    """What the engine takes: the fields of SGLang's `ServerArgs` (a dataclass, or a msgspec Struct)."""
    from sglang.srt.server_args import ServerArgs

    if dataclasses.is_dataclass(ServerArgs):
        return {f.name for f in dataclasses.fields(ServerArgs)}
    import msgspec  # SGLang 0.5.2x defines ServerArgs as a msgspec Struct

    return {f.name for f in msgspec.structs.fields(ServerArgs)}


def config_overrides(engine_args: Mapping[str, Any]) -> Any:
    """The model-config values `json_model_override_args` sets (a JSON text, or already a mapping)."""
    overrides = engine_args.get("json_model_override_args")
    if isinstance(overrides, str):
        try:
            return json.loads(overrides)
        except ValueError:
            return None
    return overrides


ENGINE = EngineSpec(
    native={"tp": "tp_size", "dp": "dp_size", "gpu_memory_utilization": "mem_fraction_static",
            "max_model_len": "context_length"},
    source="sglang.srt.server_args.ServerArgs",
    accepted=engine_keys,
    overrides=config_overrides,
    throughput=frozenset({
        "chunked_prefill_size", "max_running_requests", "max_total_tokens", "max_prefill_tokens", "cuda_graph_max_bs",
        "disable_cuda_graph", "disable_radix_cache", "schedule_policy", "schedule_conservativeness", "pp_size",
        "enable_dp_attention", "ep_size", "log_level", "attention_backend", "sampling_backend", "watchdog_timeout",
        "load_balance_method", "nnodes", "node_rank", "dist_init_addr", "base_gpu_id", "stream_interval",
        "enable_torch_compile", "torch_compile_max_bs",
    }),
)  # fmt: skip
SPEC = BackendSpec("sglang", "sglang", "SGLangBackend", frozenset({"dtype", "batch_size"}), logged=True,
                   note="an offline engine in this process", engine=ENGINE)  # fmt: skip


class SGLangBackend:
    name = "sglang"
    token_ids_source = "engine"

    def __init__(self, model: str, dp_size: int = 1, tp_size: int = 1, dtype: str = "auto", **engine_kwargs: Any):
        import sglang

        engine_kwargs.pop("batch_size", None)
        self.dtype = dtype
        self.engine = sglang.Engine(model_path=model, dp_size=dp_size, tp_size=tp_size, dtype=dtype, **engine_kwargs)
        self.model_name = model
        self._tokenizer: Any = None
        self.dp_size = dp_size

    @property
    def tokenizer(self) -> Any:
        """The model's own tokenizer, loaded on first use (the engine's lives in its own process)."""
        if self._tokenizer is None:
            from e3eval.tokenizers import load_tokenizer

            self._tokenizer = load_tokenizer(self.model_name)
        return self._tokenizer

    def describe(self) -> dict[str, Any]:
        import sglang

        return {"engine": "sglang", "version": sglang.__version__, "dtype": self.dtype, "dp_size": self.dp_size}

    def close(self) -> None:
        self.engine.shutdown()

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        from e3eval.backends import regroup

        input_ids, params = build_inputs(requests, spec)
        outputs = self.engine.generate(input_ids=input_ids, sampling_params=params, return_logprob=spec.logprobs)
        return regroup([to_completion(o, spec.logprobs) for o in outputs], requests)
