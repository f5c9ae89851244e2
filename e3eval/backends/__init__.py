"""Generation backends: one protocol, batch in and batch out, always returning the sampled token ids.

`Backend.generate(requests, spec)` takes `GenerationRequest`s (a prompt's token ids and one seed per wanted sample)
and returns, per request, one `Completion` per seed: token ids exactly as sampled (EOS included when the model stopped),
finish reason, and the sampled tokens' logprobs when asked. A failed request is a Completion with `error` set and
`finish_reason="error"`, never placeholder text. Engines (torch/transformers, vllm, sglang, httpx) are imported only
inside their backend module, so `import e3eval.backends` stays light. `open_backend` picks one by name;
`pick_backend` chooses from what is installed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from e3eval import dependencies
from e3eval.errors import UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

BACKENDS = ("sglang", "vllm", "hf", "openai")


class Backend(Protocol):
    name: str
    token_ids_source: str  # "engine" or "retokenized"

    @property
    def tokenizer(self) -> Any:
        """The tokenizer prompts are rendered with (the model's own, or the one named for a served model)."""
        ...

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


_ENGINE_MODULE = {"hf": "transformers", "vllm": "vllm", "sglang": "sglang", "openai": "httpx"}


def installed(name: str) -> bool:
    """Whether backend `name`'s engine is installed."""
    return dependencies.installed(_ENGINE_MODULE[name])


def pick_backend(base_url: str | None) -> tuple[str, str]:
    """The default backend and why: openai with --base-url, else sglang > vllm > hf by what is installed."""
    if base_url:
        return "openai", "--base-url was given"
    for name in ("sglang", "vllm"):
        if installed(name):
            return name, f"{name} is installed"
    return "hf", "neither sglang nor vllm is installed"


# Which options each backend takes; `batch_size` is the generation batch for engines that batch on their own.
_OPTIONS: dict[str, set[str]] = {
    "hf": {"dtype", "batch_size", "device"},
    "vllm": {"dtype", "batch_size", "tensor_parallel_size", "max_model_len", "enforce_eager",
             "gpu_memory_utilization", "enable_chunked_prefill", "long_prefill_token_threshold"},
    "sglang": {"dtype", "batch_size", "dp_size", "tp_size"},
    "openai": {"base_url", "api_key", "concurrency", "timeout_s", "retries", "backoff_s", "tokenizer", "batch_size",
               "dtype"},
}  # fmt: skip
_FLAGS = {"dp_size": "--dp-size", "base_url": "--base-url", "api_key": "--api-key", "concurrency": "--concurrency",
          "timeout_s": "--request-timeout", "tokenizer": "--tokenizer", "dtype": "--dtype"}  # fmt: skip


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse options that the backend actually used would ignore (`--dp-size` with vllm, `--base-url` with hf...)."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    ignored = sorted(k for k, v in options.items() if v is not None and k not in _OPTIONS[name])
    if name == "openai" and options.get("dtype") not in (None, "auto"):
        ignored.append("dtype")  # the server chose its dtype
    if ignored:
        flags = ", ".join(_FLAGS.get(k, k) for k in ignored)
        raise UserError(f"{flags} do(es) not apply to the {name} backend; drop it or choose another --backend")


def open_backend(name: str, model: str, options: dict[str, Any]) -> Backend:
    """Instantiate backend `name` for `model`; `options` are backend-specific (dtype, dp_size, base_url, ...)."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    dependencies.require(_ENGINE_MODULE[name], f"backend {name!r}")
    if name == "hf":
        from e3eval.backends.hf import HFBackend

        return HFBackend(model, **_given(options))
    if name == "vllm":
        from e3eval.backends.vllm import VLLMBackend

        return VLLMBackend(model, **_given(options))
    if name == "sglang":
        from e3eval.backends.sglang import SGLangBackend

        return SGLangBackend(model, **_given(options))
    from e3eval.backends.openai import OpenAIBackend

    # The server chose its dtype and batches requests itself.
    return OpenAIBackend(model, **{k: v for k, v in _given(options).items() if k not in ("dtype", "batch_size")})


def _given(options: dict[str, Any]) -> dict[str, Any]:
    """Options the user set (None means: the backend's own default)."""
    return {k: v for k, v in options.items() if v is not None}


def regroup(flat: Sequence[Completion], requests: Sequence[GenerationRequest]) -> list[list[Completion]]:
    """Split a flat list of completions (one per seed, in request order) back into one list per request."""
    expected = sum(len(r.seeds) for r in requests)
    if len(flat) != expected:
        raise RuntimeError(f"engine returned {len(flat)} completions for {expected} requested samples")
    grouped: list[list[Completion]] = []
    start = 0
    for request in requests:
        grouped.append(list(flat[start : start + len(request.seeds)]))
        start += len(request.seeds)
    return grouped


def check_model(name: str, flag: str, needs_config: bool = False) -> None:
    """A local path must exist; a hub name must resolve (from the cache when offline), before any work starts.

    `tokenizers.resolve_model_source` tells a local path from a hub id and fails at once when neither can load (a
    missing path; a hub id while the hub is unreachable). For a model (`needs_config`) in a local folder or on the hub,
    fetching its `config.json` (what loading it would do first) is the cheap test that it exists.
    """
    from e3eval.tokenizers import resolve_model_source

    source = resolve_model_source(name, flag)
    if not needs_config or (source == "local" and not Path(name).expanduser().is_dir()):
        return  # a tokenizer by hub name: loading it reports its own failure as a UserError
    try:
        from transformers.utils import cached_file

        cached_file(name, "config.json")
    except Exception as exc:  # HFValidationError, OSError (offline, not found, gated): all say why in one line
        reason = " ".join(str(exc).split())
        raise UserError(f"{flag} {name}: cannot load the model ({type(exc).__name__}: {reason[:300]})") from None
