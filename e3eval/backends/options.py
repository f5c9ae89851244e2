"""Backend options: e3eval's own flags that configure a backend (`--dtype`, `--batch`, `--base-url`, ...), typed.

`BackendOptions` is what `generate`, `sweep` and forced answers hand a backend, one frozen dataclass whose fields
carry their flag (`field(metadata={"flag": ...})`, for messages) and whose `problems` hold every check of their values,
once: generation and forced answers both ask it. Which options a backend takes is its own `BackendSpec.options`
(`backends/__init__.py`); whether the backend actually used ignores one is `check_options`'s, not this module's.
Engine settings (`--tp`, `--engine-arg`, ...) are `settings.py`'s. Configs keep the options as a plain mapping of
the options given (`GenerateConfig.backend_options`; forced answers record theirs in run.json); `of` reads one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from e3eval.errors import UserError
from e3eval.weights import DTYPES


def _flag(flag: str | None) -> dict[str, str | None]:
    return {"flag": flag}


@dataclass(frozen=True)
class BackendOptions:
    """e3eval's backend options; None is the backend's own default (an option the user did not give)."""

    dtype: str | None = field(default=None, metadata=_flag("--dtype"))  # `auto` is no request: every backend takes it
    batch_size: int | None = field(default=None, metadata=_flag("--batch"))  # samples per engine call
    device: str | None = field(default=None, metadata=_flag("--device"))
    base_url: str | None = field(default=None, metadata=_flag("--base-url"))
    api_key: str | None = field(default=None, metadata=_flag("--api-key"))
    concurrency: int | None = field(default=None, metadata=_flag("--concurrency"))
    timeout_s: float | None = field(default=None, metadata=_flag("--request-timeout"))
    tokenizer: str | None = field(default=None, metadata=_flag("--tokenizer"))
    retries: int | None = field(default=None, metadata=_flag(None))  # library callers only: no flag
    backoff_s: float | None = field(default=None, metadata=_flag(None))

    @classmethod
    def of(cls, options: Mapping[str, Any] | BackendOptions | None) -> BackendOptions:
        """The options of a mapping (a config's `backend_options`); a key that is no option is a UserError."""
        if isinstance(options, BackendOptions):
            return options
        unknown = sorted(set(options or {}) - NAMES)
        if unknown:
            raise UserError(f"{', '.join(unknown)}: not a backend option; choose from {', '.join(sorted(NAMES))}")
        return cls(**(options or {}))

    @staticmethod
    def flag(name: str) -> str:
        """The flag of option `name` (`batch_size` -> `--batch`); an option without a flag is named as it is."""
        return _FLAGS.get(name) or name

    def given(self) -> dict[str, Any]:
        """The options set (field -> value), in field order."""
        return {name: getattr(self, name) for name in _FLAGS if getattr(self, name) is not None}

    def requested(self) -> set[str]:
        """The options that ask a backend for something: those set, less `--dtype auto` (the engine's own choice)."""
        return {name for name, value in self.given().items() if not (name == "dtype" and value == "auto")}

    def problems(self) -> list[str]:
        """What is wrong with the values themselves (any backend), one phrase each."""
        problems = []
        if (self.dtype or "auto") not in DTYPES:
            problems.append(f"--dtype {self.dtype!r}: choose one of {', '.join(DTYPES)}")
        for name in ("batch_size", "concurrency"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{self.flag(name)} must be at least 1")
        if self.timeout_s is not None and not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            problems.append(f"{self.flag('timeout_s')} must be a positive number of seconds")
        return problems

    def check(self) -> None:
        """Raise one UserError naming every problem (`problems`)."""
        problems = self.problems()
        if problems:
            raise UserError("; ".join(problems))


_FLAGS: dict[str, str | None] = {f.name: f.metadata["flag"] for f in dataclasses.fields(BackendOptions)}
NAMES = frozenset(_FLAGS)  # every option's name: a backend's `BackendSpec.options` are some of these
