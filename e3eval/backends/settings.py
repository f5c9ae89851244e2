"""Engine settings: the flags every user of a large model sets, and `--engine-arg KEY=VALUE` for everything else.

`EngineSettings` carries `--tp`, `--dp`, `--gpu-memory-utilization`, `--max-model-len` and the `--engine-arg` pairs
from the command line to the engine constructor. How an engine takes them is its backend's `EngineSpec`, declared in
the backend's own module (`BackendSpec.engine`): `engine_kwargs` names the flags as that engine does (vLLM
`tensor_parallel_size`, SGLang `tp_size`, ...), and `check_settings` refuses, before any engine loads, a setting the
backend would ignore and any `--engine-arg` key the engine does not take: keys are checked against the engine's own
argument definitions (vLLM's `EngineArgs` dataclass and `LLM.__init__`, SGLang's `ServerArgs`, transformers'
`from_pretrained` and the model's config), never a list kept here, and an unknown key is one line with the closest key
the engine does take. This module names no backend: a new one declares its `EngineSpec` and nothing here changes.

A run records its settings (`record`); growing it later may change how the engine runs (parallelism, memory, batch
sizes: each engine's `EngineSpec.throughput`) but not an `--engine-arg` that could change what is sampled
(quantization, a revision, a config override): `fixed_args` are those, a fixed setting of the run like its dtype.
"""

from __future__ import annotations

import difflib
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from e3eval.errors import UserError

# The first-class flags, by field (each engine's `EngineSpec.native` names the keyword it takes for them).
FLAGS = {"tp": "--tp", "dp": "--dp", "gpu_memory_utilization": "--gpu-memory-utilization",
         "max_model_len": "--max-model-len"}  # fmt: skip
# Keys e3eval sets itself, from its own flags: an --engine-arg may not set them a second way.
_OWN_KEYS = {"model": "--model", "model_path": "--model", "pretrained_model_name_or_path": "--model",
             "dtype": "--dtype", "torch_dtype": "--dtype", "seed": "--seed (each sample has its own seed)",
             "tokenizer": "--tokenizer", "tokenizer_path": "--tokenizer", "device": "--device"}  # fmt: skip


@dataclass(frozen=True)
class EngineSpec:
    """How a backend's engine takes settings: declared in the backend's own module, as its `BackendSpec.engine`.

    The engine-specific imports (vllm, sglang, transformers) stay inside `accepted` and `overrides`, which run only
    when a setting is checked or read."""

    native: Mapping[str, str] = field(default_factory=dict)  # flag field (`tp`, ...) -> its keyword; absent: n/a
    not_applicable: Mapping[str, str] = field(default_factory=dict)  # flag field, or "*" for all, -> why it is n/a
    reserved: Mapping[str, str] = field(default_factory=dict)  # engine keys set another way -> how to set them
    source: str = ""  # where `accepted` reads the keys from, for the refusal
    accepted: Callable[[Mapping[str, Any] | None], set[str]] | None = None  # its keywords; None: no --engine-arg
    reads_config: bool = False  # `accepted` takes the model's config (its attributes are keywords too)
    overrides: Callable[[Mapping[str, Any]], Any] | None = None  # the model-config values the engine args override
    throughput: frozenset[str] = frozenset()  # --engine-arg keys that change speed or placement, never the samples

    @property
    def reserves_context(self) -> bool:
        """Whether the engine sizes its memory for a context length it is given (`--max-model-len`)."""
        return "max_model_len" in self.native


def engine_spec(backend: str) -> EngineSpec:
    """Backend `backend`'s `EngineSpec` (resolved here, not at import: the backends import this module)."""
    from e3eval.backends import spec

    return spec(backend).engine


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
    (`model_config`: the model's config.json, whose attributes an engine that `reads_config` also takes)."""
    engine = engine_spec(backend)
    problems = check_bounds(settings)
    for name in settings.given():
        if name not in engine.native:
            why = engine.not_applicable.get(name) or engine.not_applicable.get("*", "")
            problems.append(f"{FLAGS[name]} does not apply to the {backend} backend" + (f" ({why})" if why else ""))
    if settings.engine_args:
        problems += _check_keys(backend, engine, settings, model_config)
    if problems:
        raise UserError("; ".join(problems))


def _check_keys(
    backend: str, engine: EngineSpec, settings: EngineSettings, model_config: Mapping[str, Any] | None
) -> list[str]:
    if engine.accepted is None:
        why = engine.not_applicable.get("*", "")
        return [f"--engine-arg does not apply to the {backend} backend" + (f" ({why})" if why else "")]
    problems = []
    flags_by_key = {**{key: FLAGS[name] for name, key in engine.native.items()}, **engine.reserved}
    accepted = engine.accepted(model_config)
    for key in settings.engine_args:
        if key in flags_by_key:
            problems.append(f"--engine-arg {key}: set it with {flags_by_key[key]}")
        elif key in _OWN_KEYS:
            problems.append(f"--engine-arg {key}: set it with {_OWN_KEYS[key]}")
        elif key not in accepted:
            close = difflib.get_close_matches(key, sorted(accepted), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            problems.append(f"--engine-arg {key}: not an argument of the {backend} engine ({engine.source}){hint}")
    return problems


def accepted_keys(backend: str, model_config: Mapping[str, Any] | None = None) -> set[str]:
    """The keyword arguments `backend`'s engine constructor takes, read from the engine itself."""
    engine = engine_spec(backend)
    return engine.accepted(model_config) if engine.accepted is not None else set()


def keyword_parameters(function: Any) -> set[str]:
    """The names `function` takes as keywords (an engine constructor's arguments, for `EngineSpec.accepted`)."""
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in inspect.signature(function).parameters.values() if p.kind in kinds} - {"self", "cls"}


def engine_kwargs(backend: str, settings: EngineSettings) -> dict[str, Any]:
    """The constructor keywords for `backend`: the first-class settings under the engine's names, then the engine
    args (already checked by `check_settings`)."""
    native = engine_spec(backend).native
    kwargs = {native[name]: value for name, value in settings.given().items() if name in native}
    return {**kwargs, **settings.engine_args}


def throughput_args() -> frozenset[str]:
    """The --engine-arg keys that change how fast or on what an engine runs, never what it samples (every
    backend's `EngineSpec.throughput`): a run may grow with other values of these."""
    from e3eval.backends import names

    return frozenset().union(*(engine_spec(name).throughput for name in names()))


def fixed_args(settings: EngineSettings) -> dict[str, Any]:
    """The --engine-arg pairs that may change the sampled distribution: fixed for a run, like its dtype."""
    throughput = throughput_args() if settings.engine_args else frozenset()
    return {key: value for key, value in sorted(settings.engine_args.items()) if key not in throughput}


def config_overrides(backend: str, settings: EngineSettings) -> dict[str, Any]:
    """The model-config values an `--engine-arg` overrides (vLLM `hf_overrides`, SGLang `json_model_override_args`,
    a config attribute given to hf's `from_pretrained`), so that the context preflight sees a rope scaling set there."""
    engine = engine_spec(backend)
    overrides = engine.overrides(settings.engine_args) if engine.overrides is not None else None
    return dict(overrides) if isinstance(overrides, Mapping) else {}
