"""Generation backends: one protocol, batch in and batch out, always returning the sampled token ids.

`Backend.generate(requests, spec)` takes `GenerationRequest`s (a prompt's token ids and one seed per wanted sample)
and returns, per request, one `Completion` per seed: token ids exactly as sampled (EOS included when the model stopped),
finish reason, and the sampled tokens' logprobs when asked. A failed request is a Completion with `error` set and
`finish_reason="error"`, never placeholder text. Engines (torch/transformers, vllm, sglang, httpx) are imported only
inside their backend module, so `import e3eval.backends` stays light. `open_backend` picks one by name;
`pick_backend` chooses from what is installed.

Each backend declares itself in its own module as `SPEC`, a `BackendSpec`: its name, the module whose presence means
its engine is installed, the class that builds it, the `BackendOptions` it takes (and those it takes but does not pass
on), whether its engine writes output of its own (then that goes to `RUN/logs/`), whether `--model` names a model on a
server, and how its engine takes engine settings (`settings.EngineSpec`). The built-in backends are the modules
`e3eval.backends.<name>` named in `BACKENDS`; another is one module with a `SPEC`, added with `register(module)` or,
from an installed package, an entry point in the group `e3eval.backends` (`name = "package.module"`).
Nothing here, in `settings.py` or in the commands branches on a backend's name (`pick_backend`'s preference order
aside). The options' values are `options.py`'s to check, engine settings (`--tp`, `--engine-arg`, ...) `settings.py`'s.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from e3eval import dependencies
from e3eval.backends.logs import EngineLog
from e3eval.backends.options import NAMES, BackendOptions
from e3eval.backends.settings import EngineSettings, EngineSpec, engine_kwargs
from e3eval.errors import EngineFailure, UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

BACKENDS = ("sglang", "vllm", "hf", "openai")  # the built-in ones: each is the module e3eval.backends.<name>
_REGISTERED: dict[str, str] = {}  # backends added with `register`: name -> the module that declares it


@dataclass(frozen=True)
class BackendSpec:
    """What a backend declares about itself (its module's `SPEC`)."""

    name: str
    engine_module: str  # installed when this imports: transformers, vllm, sglang, httpx
    factory: str  # the class in the backend's module: factory(model, **options, **engine kwargs) -> Backend
    options: frozenset[str]  # the `BackendOptions` fields it takes (`--dtype` -> dtype, `--base-url` -> base_url, ...)
    dropped: frozenset[str] = frozenset()  # options it takes but its factory does not (a server batches itself)
    logged: bool = False  # its engine prints on its own: that output goes to an `EngineLog` while it lives
    note: str = ""  # why options outside `options` do not apply, for the refusal
    engine: EngineSpec = field(default_factory=EngineSpec)  # how its engine takes --tp, --engine-arg, ...
    served: bool = False  # --model names a model on a server: prompts need --tokenizer, no weights are read here
    # Samples per engine call (and per stored part) without --batch: engines that schedule requests themselves run
    # faster the more they see at once; a loop that batches exactly what it is given keeps it smaller.
    default_batch: int = 256

    def __post_init__(self) -> None:
        unknown = sorted((self.options | self.dropped) - NAMES)
        if unknown:
            raise ValueError(f"backend {self.name!r} takes {', '.join(unknown)}, which are not BackendOptions fields")
        if not self.dropped <= self.options:
            raise ValueError(f"backend {self.name!r} drops options it does not take")


PLUGIN_GROUP = "e3eval.backends"  # an installed package's entry points here name backend modules (name = module)


def names() -> tuple[str, ...]:
    """Every backend's name: the built-in ones, then those registered, then installed plugins'."""
    return tuple(dict.fromkeys((*BACKENDS, *_REGISTERED, *_plugins())))


@cache
def _plugins() -> dict[str, str]:
    """Backends of installed packages: entry points of group `e3eval.backends`, `name = "their.module"`, so that
    `e3eval generate --backend NAME` finds them without any code of the user's."""
    from importlib.metadata import entry_points

    return {point.name: point.value for point in entry_points(group=PLUGIN_GROUP)}


@cache
def spec(name: str) -> BackendSpec:
    """Backend `name`'s declaration; an unknown name is a UserError listing the known ones."""
    if name not in names():
        raise UserError(f"unknown backend {name!r}; choose one of {', '.join(names())}")
    module = _module(name)
    try:
        declared = importlib.import_module(module).SPEC
    except Exception as exc:
        if name in BACKENDS:
            raise
        # A plugin's module: its own failure, in one line.
        raise UserError(f"backend {name!r}: its module {module} does not load or declares no SPEC "
                        f"({type(exc).__name__}: {str(exc)[:200]})") from None  # fmt: skip
    if not isinstance(declared, BackendSpec) or declared.name != name:
        got = declared.name if isinstance(declared, BackendSpec) else type(declared).__name__
        raise UserError(f"backend {name!r}: {module}.SPEC declares {got!r}, not a BackendSpec named {name!r}")
    return declared


def register(module: str) -> BackendSpec:
    """Add the backend that `module` (importable by that name) declares as its `SPEC`; returns the spec. A plugin's
    module calls `register(__name__)`, or its user does; its name must not be taken by another module."""
    declared: BackendSpec = importlib.import_module(module).SPEC
    if declared.name in names() and _module(declared.name) != module:
        raise ValueError(f"backend {declared.name!r} is already declared by {_module(declared.name)}")
    _REGISTERED[declared.name] = module
    spec.cache_clear()
    return declared


def unregister(name: str) -> None:
    """Forget a backend added with `register` (the built-in ones stay)."""
    _REGISTERED.pop(name, None)
    spec.cache_clear()


def _module(name: str) -> str:
    if name in BACKENDS:
        return f"e3eval.backends.{name}"
    return _REGISTERED.get(name) or _plugins().get(name) or f"e3eval.backends.{name}"


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


def check_options(name: str, options: Mapping[str, Any] | BackendOptions) -> None:
    """Refuse options that the backend actually used would ignore (`--base-url` with hf, `--concurrency` with vllm);
    `--dtype auto` is no request, so every backend takes it."""
    declared = spec(name)
    ignored = sorted(BackendOptions.of(options).requested() - declared.options)
    if ignored:
        flags = ", ".join(BackendOptions.flag(k) for k in ignored)
        why = f" ({declared.note})" if declared.note else ""
        raise UserError(f"{flags} do(es) not apply to the {name} backend{why}; drop it or choose another --backend")


def open_backend(
    name: str,
    model: str,
    options: Mapping[str, Any] | BackendOptions,
    engine: EngineSettings | None = None,
    log: EngineLog | None = None,
) -> Backend:
    """Instantiate backend `name` for `model`; `options` are e3eval's backend options (dtype, base_url, ...; checked
    with `check_options` before), `engine` the engine settings (`settings.py`, checked with `check_settings` before),
    `log` where the output of an engine that is `logged` goes while the engine lives (default: the console)."""
    declared = spec(name)
    dependencies.require(declared.engine_module, f"backend {name!r}")
    engine = engine or EngineSettings()
    passed = declared.options - declared.dropped
    given = {k: v for k, v in BackendOptions.of(options).given().items() if k in passed}
    kwargs = {**given, **engine_kwargs(name, engine)}
    factory = getattr(importlib.import_module(_module(name)), declared.factory, None)
    if factory is None:
        raise UserError(f"backend {name!r}: {_module(name)} has no {declared.factory} (its SPEC's factory)")
    if not declared.logged:
        try:
            return CheckedBackend(factory(model, **kwargs))
        except (UserError, KeyboardInterrupt):
            raise
        except Exception as exc:
            if name in BACKENDS:
                raise
            # A plugin's constructor: its failure is one line naming it.
            raise EngineFailure(f"backend {name!r} did not start: {type(exc).__name__}: {str(exc)[:300]}") from None
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
    return CheckedBackend(LoggedEngine(backend, log))


class CheckedBackend:
    """Any backend, held to the protocol's promises: one list of completions per request with one completion per
    seed, and never more tokens than a request's limit (a plugin that ignored `max_tokens` would otherwise store
    samples longer than the run says, and every budget above the limit would score them). A completion over the
    limit fails alone, saying so; a wrong shape is an EngineFailure. Ids re-tokenized from text are not held to the
    limit (re-tokenizing may give more ids than the engine sampled)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = backend.name

    @property
    def token_ids_source(self) -> str:  # an OpenAI-compatible server's may change to "retokenized" as it answers
        return self.backend.token_ids_source

    @property
    def tokenizer(self) -> Any:
        return self.backend.tokenizer

    def __getattr__(self, name: str) -> Any:  # what a backend offers beyond the protocol (its engine, for tests)
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        outputs = self.backend.generate(requests, spec)
        if len(outputs) != len(requests) or any(
            len(done) != len(r.seeds) for r, done in zip(requests, outputs, strict=False)
        ):
            got = [len(done) for done in outputs]
            wanted = [len(r.seeds) for r in requests]
            raise EngineFailure(f"backend {self.name!r} returned completions {got} for requests of {wanted} seeds; "
                                "the batches stored before it are kept")  # fmt: skip
        if self.backend.token_ids_source == "retokenized":
            return outputs
        return [[_within_limit(done, r.max_tokens or spec.max_tokens, self.name) for done in completions]
                for r, completions in zip(requests, outputs, strict=True)]  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return self.backend.describe()

    def close(self) -> None:
        self.backend.close()


def _within_limit(done: Completion, limit: int | None, name: str) -> Completion:
    if limit is None or done.error is not None or len(done.token_ids) <= limit:
        return done
    reason = f"backend {name!r} returned {len(done.token_ids)} tokens for a limit of {limit}: not stored as a sample"
    return Completion((), "error", "", None, reason)


class LoggedEngine:
    """A backend whose engine output goes to its `EngineLog` until `close` (vLLM, SGLang); a failure while it
    generates is one line naming the engine's own error and the log."""

    def __init__(self, backend: Backend, log: EngineLog) -> None:
        self.backend = backend
        self.log = log
        self.name = backend.name

    @property
    def token_ids_source(self) -> str:
        return self.backend.token_ids_source

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
