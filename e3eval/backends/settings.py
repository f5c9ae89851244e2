"""Engine settings: the flags every user of a large model sets, and `--engine-arg KEY=VALUE` for everything else.

`EngineSettings` carries `--tp`, `--dp`, `--gpu-memory-utilization`, `--max-model-len` and the `--engine-arg` pairs
from the command line to the engine constructor. `engine_kwargs` names them as each engine does (vLLM
`tensor_parallel_size`, SGLang `tp_size`, ...). `check_settings` refuses, before any engine loads, a setting the backend
would ignore and any `--engine-arg` key the engine does not take: keys are checked against the engine's own argument
definitions (vLLM's `EngineArgs` dataclass and `LLM.__init__`, SGLang's `ServerArgs`, a dataclass or msgspec Struct,
transformers' `from_pretrained` and the model's config), never a list kept here, and an unknown key is one line with
the closest key the engine does take.

A run records its settings (`record`); growing it later may change how the engine runs (parallelism, memory, batch
sizes: `THROUGHPUT_ARGS`) but not an `--engine-arg` that could change what is sampled (quantization, a revision, a
config override): `fixed_args` are those, a fixed setting of the run like its dtype.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from e3eval.errors import UserError

# The first-class flags, by field, and the keyword each engine takes for them (absent: the flag does not apply).
FLAGS = {"tp": "--tp", "dp": "--dp", "gpu_memory_utilization": "--gpu-memory-utilization",
         "max_model_len": "--max-model-len"}  # fmt: skip
NATIVE: dict[str, dict[str, str]] = {
    "vllm": {"tp": "tensor_parallel_size", "gpu_memory_utilization": "gpu_memory_utilization",
             "max_model_len": "max_model_len"},
    "sglang": {"tp": "tp_size", "dp": "dp_size", "gpu_memory_utilization": "mem_fraction_static",
               "max_model_len": "context_length"},
    "hf": {},
    "openai": {},
}  # fmt: skip
# Why a flag does not apply to a backend, where the reason is more than "it has no such setting".
_NOT_APPLICABLE = {  # vLLM's LLM(data_parallel_size > 1) refuses: "not supported for single-process usage"
    ("vllm", "dp"): "vLLM's offline engine runs one replica per process: run one `e3eval generate --shard i/N` per "
    "GPU group and join them with `e3eval merge`",
    ("openai", "*"): "the server was started with its own engine settings",
    ("hf", "*"): "the hf backend runs one model copy on one device",
}
# Keys e3eval sets itself, from its own flags: an --engine-arg may not set them a second way.
_OWN_KEYS = {"model": "--model", "model_path": "--model", "pretrained_model_name_or_path": "--model",
             "dtype": "--dtype", "torch_dtype": "--dtype", "seed": "--seed (each sample has its own seed)",
             "tokenizer": "--tokenizer", "tokenizer_path": "--tokenizer", "device": "--device"}  # fmt: skip
# --engine-arg keys that change how fast or on what the engine runs, never what it samples; a run may grow with other
# values of these. Every other key is fixed for a run, like its dtype (see `fixed_args`).
THROUGHPUT_ARGS = frozenset({
    # vLLM
    "max_num_seqs", "max_num_batched_tokens", "enforce_eager", "swap_space", "cpu_offload_gb", "block_size",
    "enable_prefix_caching", "pipeline_parallel_size", "distributed_executor_backend", "disable_log_stats",
    "kv_cache_memory_bytes", "num_gpu_blocks_override", "max_seq_len_to_capture", "compilation_config",
    "disable_custom_all_reduce", "max_parallel_loading_workers", "enable_expert_parallel", "max_num_active_seqs",
    "async_scheduling", "enable_chunked_prefill", "long_prefill_token_threshold", "max_num_partial_prefills",
    "max_long_partial_prefills", "scheduling_policy", "numa_bind_cpus", "max_logprobs",
    # SGLang
    "chunked_prefill_size", "max_running_requests", "max_total_tokens", "max_prefill_tokens", "cuda_graph_max_bs",
    "disable_cuda_graph", "disable_radix_cache", "schedule_policy", "schedule_conservativeness", "pp_size",
    "enable_dp_attention", "ep_size", "log_level", "attention_backend", "sampling_backend", "watchdog_timeout",
    "load_balance_method", "nnodes", "node_rank", "dist_init_addr", "base_gpu_id", "stream_interval",
    "enable_torch_compile", "torch_compile_max_bs",
    # transformers
    "attn_implementation", "device_map", "low_cpu_mem_usage", "max_memory", "offload_folder", "local_files_only",
})  # fmt: skip


@dataclass(frozen=True)
class EngineSettings:
    """What the engine is asked for beyond the model and dtype; None means the engine's own default."""

    tp: int | None = None
    dp: int | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    engine_args: Mapping[str, Any] = field(default_factory=dict)

    def given(self) -> dict[str, Any]:
        """The first-class settings the user set (flag field -> value)."""
        return {name: getattr(self, name) for name in FLAGS if getattr(self, name) is not None}

    def record(self) -> dict[str, Any]:
        """The settings as run.json records them (unset ones left out)."""
        recorded: dict[str, Any] = self.given()
        if self.engine_args:
            recorded["engine_args"] = dict(self.engine_args)
        return recorded

    @classmethod
    def from_record(cls, recorded: Any, where: str = "run.json") -> EngineSettings:
        """Settings read back from run.json (a run made before they were recorded has none); a value that is not
        one of a setting's is a UserError naming it."""
        if recorded is None:
            return cls()
        if not isinstance(recorded, Mapping):
            raise UserError(f"{where}: generation.engine_settings is not a mapping; fix or remove it")
        values = {name: recorded.get(name) for name in FLAGS}
        for name, value in values.items():
            number = (int, float) if name == "gpu_memory_utilization" else (int,)
            if value is not None and (isinstance(value, bool) or not isinstance(value, number)):
                raise UserError(f"{where}: generation.engine_settings.{name} is {value!r}, not a number; fix or "
                                "remove it")  # fmt: skip
        args = recorded.get("engine_args")
        if args is not None and not isinstance(args, Mapping):
            raise UserError(f"{where}: generation.engine_settings.engine_args is not a mapping; fix or remove it")
        return cls(**values, engine_args=dict(args or {}))

    def describe(self) -> str:
        """`--tp 2 --engine-arg max_num_seqs=64`, or `engine defaults`."""
        parts = [f"{FLAGS[name]} {value}" for name, value in self.given().items()]
        parts += [f"--engine-arg {key}={json.dumps(value)}" for key, value in self.engine_args.items()]
        return " ".join(parts) or "engine defaults"

    def over(self, base: EngineSettings) -> EngineSettings:
        """These settings where set, `base`'s elsewhere (engine args merged key by key)."""
        values = {name: getattr(self, name) if getattr(self, name) is not None else getattr(base, name)
                  for name in FLAGS}  # fmt: skip
        return EngineSettings(**values, engine_args={**base.engine_args, **self.engine_args})


def parse_engine_args(pairs: Sequence[str]) -> dict[str, Any]:
    """`--engine-arg KEY=VALUE` pairs -> {key: value}; a value is JSON when it parses as JSON (`4`, `true`,
    `{"a": 1}`), a string otherwise (`fp8`)."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip().replace("-", "_")  # max-num-seqs, as engines' own command lines spell it
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise UserError(f"--engine-arg {pair!r}: expected KEY=VALUE, e.g. --engine-arg max_num_seqs=64")
        if key in parsed:
            raise UserError(f"--engine-arg {key} is given twice")
        try:
            parsed[key] = json.loads(text, parse_constant=_no_constant)
        except _NotANumber:
            raise UserError(f"--engine-arg {key}={text}: NaN and Infinity are not values an engine can use") from None
        except (ValueError, RecursionError):
            parsed[key] = text
    return parsed


class _NotANumber(Exception):
    pass


def _no_constant(name: str) -> Any:
    raise _NotANumber(name)


def check_bounds(settings: EngineSettings) -> list[str]:
    """Problems with the values themselves (any backend), one phrase each."""
    problems = []
    for name in ("tp", "dp"):
        value = getattr(settings, name)
        if value is not None and not 1 <= value <= 1024:
            problems.append(f"{FLAGS[name]} must be between 1 and 1024")
    fraction = settings.gpu_memory_utilization
    if fraction is not None and not 0 < fraction <= 1:
        problems.append("--gpu-memory-utilization must be a fraction in (0, 1]")
    if settings.max_model_len is not None and not 1 <= settings.max_model_len < 2**31:
        problems.append("--max-model-len must be between 1 and 2^31 - 1")
    return problems


def check_settings(backend: str, settings: EngineSettings, model_config: Mapping[str, Any] | None = None) -> None:
    """Refuse, before the engine loads, flags `backend` would ignore and --engine-arg keys its engine does not take
    (`model_config`: the model's config.json, whose attributes the hf backend's `from_pretrained` also takes)."""
    problems = check_bounds(settings)
    for name in settings.given():
        if name not in NATIVE[backend]:
            why = _NOT_APPLICABLE.get((backend, name)) or _NOT_APPLICABLE.get((backend, "*"), "")
            problems.append(f"{FLAGS[name]} does not apply to the {backend} backend" + (f" ({why})" if why else ""))
    if settings.engine_args:
        problems += _check_keys(backend, settings, model_config)
    if problems:
        raise UserError("; ".join(problems))


def _check_keys(backend: str, settings: EngineSettings, model_config: Mapping[str, Any] | None) -> list[str]:
    if backend == "openai":
        return [f"--engine-arg does not apply to the openai backend ({_NOT_APPLICABLE[('openai', '*')]})"]
    problems = []
    flags_by_key = {key: FLAGS[name] for name, key in NATIVE[backend].items()}
    accepted = accepted_keys(backend, model_config)
    if backend == "vllm":  # vLLM's offline LLM refuses data_parallel_size > 1 (see `--dp`)
        flags_by_key["data_parallel_size"] = "--shard i/N and `e3eval merge` (one vLLM engine per process)"
    for key in settings.engine_args:
        if key in flags_by_key:
            problems.append(f"--engine-arg {key}: set it with {flags_by_key[key]}")
        elif key in _OWN_KEYS:
            problems.append(f"--engine-arg {key}: set it with {_OWN_KEYS[key]}")
        elif key not in accepted:
            close = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"--engine-arg {key}: not an argument of the {backend} engine ({_SOURCE[backend]}){hint}")
    return problems


_SOURCE = {
    "vllm": "vllm.engine.arg_utils.EngineArgs and vllm.LLM",
    "sglang": "sglang.srt.server_args.ServerArgs",
    "hf": "transformers from_pretrained and the model config",
}


def accepted_keys(backend: str, model_config: Mapping[str, Any] | None = None) -> set[str]:
    """The keyword arguments `backend`'s engine constructor takes, read from the engine itself."""
    if backend == "vllm":
        from e3eval.backends.logs import silenced

        with silenced():  # vLLM's import prints platform notes
            from vllm import LLM
            from vllm.engine.arg_utils import EngineArgs

        return {f.name for f in dataclasses.fields(EngineArgs)} | _parameters(LLM.__init__)
    if backend == "sglang":
        from sglang.srt.server_args import ServerArgs

        if dataclasses.is_dataclass(ServerArgs):
            return {f.name for f in dataclasses.fields(ServerArgs)}
        import msgspec  # SGLang 0.5.2x defines ServerArgs as a msgspec Struct

        return {f.name for f in msgspec.structs.fields(ServerArgs)}
    if backend == "hf":
        return hf_keys(model_config)
    return set()


def hf_keys(model_config: Mapping[str, Any] | None = None) -> set[str]:
    """What `from_pretrained` takes: its parameters, the keywords it reads from `**kwargs` (read from its source, so
    this follows the installed transformers), and the config's attributes (a keyword that names one overrides it)."""
    from transformers import PretrainedConfig, PreTrainedModel

    source = inspect.getsource(PreTrainedModel.from_pretrained)
    popped = set(re.findall(r"kwargs\.(?:pop|get)\(\s*[\"'](\w+)[\"']", source))
    config_keys = set(PretrainedConfig().to_dict()) | set(model_config or {})
    return _parameters(PreTrainedModel.from_pretrained) | popped | config_keys


def _parameters(function: Any) -> set[str]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds} - {"self", "cls"}


def engine_kwargs(backend: str, settings: EngineSettings) -> dict[str, Any]:
    """The constructor keywords for `backend`: the first-class settings under the engine's names, then the engine
    args (already checked by `check_settings`)."""
    kwargs = {NATIVE[backend][name]: value for name, value in settings.given().items() if name in NATIVE[backend]}
    return {**kwargs, **settings.engine_args}


def fixed_args(settings: EngineSettings) -> dict[str, Any]:
    """The --engine-arg pairs that may change the sampled distribution: fixed for a run, like its dtype."""
    return {key: value for key, value in sorted(settings.engine_args.items()) if key not in THROUGHPUT_ARGS}


def config_overrides(backend: str, settings: EngineSettings) -> dict[str, Any]:
    """The model-config values an `--engine-arg` overrides (vLLM `hf_overrides`, SGLang `json_model_override_args`,
    a config attribute given to hf's `from_pretrained`), so that the context preflight sees a rope scaling set there."""
    args = settings.engine_args
    if backend == "vllm":
        overrides = args.get("hf_overrides")
    elif backend == "sglang":
        overrides = args.get("json_model_override_args")
        if isinstance(overrides, str):
            try:
                overrides = json.loads(overrides)
            except ValueError:
                overrides = None
    else:
        overrides = dict(args) if backend == "hf" else None
    return dict(overrides) if isinstance(overrides, Mapping) else {}
