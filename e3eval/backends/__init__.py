"""Generation backends: one protocol, batch in and batch out, always returning the sampled token ids.

`Backend.generate(requests, spec)` takes `GenerationRequest`s (a prompt's token ids and one seed per wanted sample)
and returns, per request, one `Completion` per seed: token ids exactly as sampled (EOS included when the model stopped),
finish reason, and the sampled tokens' logprobs when asked. A failed request is a Completion with `error` set and
`finish_reason="error"`, never placeholder text. Engines (torch/transformers, vllm, sglang, httpx) are imported only
inside their backend module, so `import e3eval.backends` stays light. `open_backend` picks one by name;
`pick_backend` chooses from what is installed.

Each backend declares itself in its own module as `SPEC`, a `BackendSpec`: its name, the module whose presence means
its engine is installed, the class that builds it, the e3eval options it takes (and those it takes but does not pass
on), and whether its engine writes output of its own (then that goes to `RUN/logs/`). Adding a backend is one module
with a `SPEC` and its name in `BACKENDS`; nothing here branches on a backend's name. Engine settings (`--tp`,
`--engine-arg`, ...) are `settings.py`'s.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from e3eval import dependencies
from e3eval.backends.logs import EngineLog
from e3eval.backends.settings import EngineSettings, engine_kwargs
from e3eval.errors import EngineFailure, UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

BACKENDS = ("sglang", "vllm", "hf", "openai")  # each is the module e3eval.backends.<name>, with a SPEC


@dataclass(frozen=True)
class BackendSpec:
    """What a backend declares about itself (its module's `SPEC`)."""

    name: str
    engine_module: str  # installed when this imports: transformers, vllm, sglang, httpx
    factory: str  # the class in the backend's module: factory(model, **options, **engine kwargs) -> Backend
    options: frozenset[str]  # e3eval's own options it takes (`--dtype` -> dtype, `--base-url` -> base_url, ...)
    dropped: frozenset[str] = frozenset()  # options it takes but its factory does not (a server batches itself)
    logged: bool = False  # its engine prints on its own: that output goes to an `EngineLog` while it lives
    note: str = ""  # why options outside `options` do not apply, for the refusal


@cache
def spec(name: str) -> BackendSpec:
    """Backend `name`'s declaration; an unknown name is a UserError listing the known ones."""
    if name not in BACKENDS:
        raise UserError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    declared = importlib.import_module(f"e3eval.backends.{name}").SPEC
    assert declared.name == name, f"e3eval.backends.{name} declares {declared.name!r}"
    return declared


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


def installed(name: str) -> bool:
    """Whether backend `name`'s engine is installed."""
    return dependencies.installed(spec(name).engine_module)


def pick_backend(base_url: str | None) -> tuple[str, str]:
    """The default backend and why: openai with --base-url, else sglang > vllm > hf by what is installed."""
    if base_url:
        return "openai", "--base-url was given"
    for name in ("sglang", "vllm"):
        if installed(name):
            return name, f"{name} is installed"
    return "hf", "neither sglang nor vllm is installed"


# The flag of each backend option, for messages (`batch_size` is the generation batch, `--batch`).
FLAGS = {"base_url": "--base-url", "api_key": "--api-key", "concurrency": "--concurrency",
         "timeout_s": "--request-timeout", "tokenizer": "--tokenizer", "dtype": "--dtype", "device": "--device",
         "batch_size": "--batch"}  # fmt: skip


def check_options(name: str, options: dict[str, Any]) -> None:
    """Refuse options that the backend actually used would ignore (`--base-url` with hf, `--concurrency` with vllm);
    `--dtype auto` is no request, so every backend takes it."""
    declared = spec(name)
    given = {k for k, v in options.items() if v is not None and not (k == "dtype" and v == "auto")}
    ignored = sorted(given - declared.options)
    if ignored:
        flags = ", ".join(FLAGS.get(k, k) for k in ignored)
        why = f" ({declared.note})" if declared.note else ""
        raise UserError(f"{flags} do(es) not apply to the {name} backend{why}; drop it or choose another --backend")


def open_backend(
    name: str, model: str, options: dict[str, Any], engine: EngineSettings | None = None, log: EngineLog | None = None
) -> Backend:
    """Instantiate backend `name` for `model`; `options` are e3eval's backend options (dtype, base_url, ...),
    `engine` the engine settings (`settings.py`, checked with `check_settings` before), `log` where vLLM's and
    SGLang's output goes while the engine lives (default: the console)."""
    declared = spec(name)
    dependencies.require(declared.engine_module, f"backend {name!r}")
    engine = engine or EngineSettings()
    given = {k: v for k, v in _given(options).items() if k in declared.options and k not in declared.dropped}
    kwargs = {**given, **engine_kwargs(name, engine)}
    factory = getattr(importlib.import_module(f"e3eval.backends.{name}"), declared.factory)
    if not declared.logged:
        return factory(model, **kwargs)
    log = log or EngineLog(None, name)
    try:
        log.start()
        importlib.import_module(declared.engine_module)  # its log handlers exist from here on: into the log with them
        log.adopt_handlers()
        backend: Backend = factory(model, **kwargs)
    except (UserError, KeyboardInterrupt):
        log.stop()
        raise
    except Exception as exc:
        failure = log.start_failure(exc, settings_given=bool(engine.record()))
        log.stop()
        raise failure from None
    return LoggedEngine(backend, log)


class LoggedEngine:
    """A vLLM or SGLang backend whose engine output goes to its `EngineLog` until `close`; a failure while it
    generates is one line naming the engine's own error and the log."""

    def __init__(self, backend: Backend, log: EngineLog) -> None:
        self.backend = backend
        self.log = log
        self.name = backend.name
        self.token_ids_source = backend.token_ids_source

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        try:
            return self.backend.generate(requests, spec)
        except (UserError, KeyboardInterrupt, ValueError, TypeError):
            raise  # a refused request (a prompt over the context) leaves the engine running: callers handle it
        except Exception as exc:
            message = self.log.cause(exc)
            where = f" (log: {self.log.path})" if self.log.path is not None else ""
            raise EngineFailure(f"{self.name} failed while generating: {message[:400]}{where}; the batches "
                                "stored before it are kept: rerun the same command to go on") from None  # fmt: skip

    def describe(self) -> dict[str, Any]:
        described = self.backend.describe()
        if self.log.path is not None:
            described["log"] = str(self.log.path)
        return described

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            self.log.stop()


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
