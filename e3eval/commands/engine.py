"""The engine flags of every command that starts an engine (`generate`, `sweep`, `score --policy forced`).

One help text per flag and one parser (`engine_settings`), so the flags read and mean the same on every command; the
values are checked against the backend actually used in `e3eval.backends.settings.check_settings`.
"""

from __future__ import annotations

from e3eval.backends.settings import EngineSettings, parse_engine_args

ENGINE_HELP = {
    "tp": "vllm / sglang: tensor-parallel GPUs per model copy (vLLM tensor_parallel_size, SGLang tp_size; default: "
    "the engine's, 1).",
    "dp": "sglang: data-parallel model copies (dp_size). vLLM: run one --shard per GPU group and `e3eval merge`.",
    "gpu_memory_utilization": "vllm / sglang: fraction of GPU memory the engine may take (SGLang mem_fraction_static; "
    "default: the engine's).",
    "max_model_len": "vllm / sglang: context the engine reserves, e.g. 36k (default: longest prompt + largest budget).",
    "engine_arg": "KEY=VALUE for the engine constructor (vLLM LLM/EngineArgs, SGLang ServerArgs, hf from_pretrained); "
    "VALUE is JSON when it parses (4, true, {...}), else text; repeatable; unknown keys are refused.",
    "context_check": "Refuse, before loading anything, a prompt plus the largest budget beyond the model's context "
    "(config.json max_position_embeddings and rope scaling).",
    "verbose": "vllm / sglang: the engine's own log on the console instead of in RUN/logs/engine-<time>.log.",
}


def engine_settings(
    tp: int | None, dp: int | None, gpu_memory_utilization: float | None, max_model_len: str | None,
    engine_arg: list[str] | None,
) -> EngineSettings:  # fmt: skip
    """EngineSettings from the flags (`--max-model-len` takes sizes such as 41k, like budgets)."""
    from e3eval.budgets import parse_size

    length = parse_size(max_model_len, "--max-model-len") if max_model_len is not None else None
    return EngineSettings(tp, dp, gpu_memory_utilization, length, parse_engine_args(engine_arg or ()))
