"""The context preflight: every prompt plus the largest budget must fit the model, checked before any engine loads.

A model's context is what its `config.json` allows: `max_position_embeddings` (or the older names of it), times the
rope scaling factor where the scaling extends the context (YaRN from its `original_max_position_embeddings`, linear),
as vLLM derives its own limit. `check_fits` compares the longest rendered prompt plus the largest budget with that
limit and with `--max-model-len`, and names the longest problem when they do not fit (one `UserError`, exit 2): the
hf backend would otherwise generate past the positions the model was trained on, and vLLM would refuse after loading.
What `check_fits` returns is what vLLM and SGLang are asked to reserve when `--max-model-len` is not given: what the
sweep needs, not the model's whole context (128k for R1-Distill-Qwen).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.errors import UserError

# The names models use for their number of positions, as vLLM reads them (the smallest present wins).
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                  "max_seq_length", "seq_len", "model_max_length", "max_target_positions")  # fmt: skip
_EXTENDING = ("yarn", "linear")  # rope scalings whose factor multiplies the positions the config states


@dataclass(frozen=True)
class ContextLimit:
    """A model's number of positions and where it was read."""

    tokens: int
    source: str  # e.g. "max_position_embeddings 32768 x yarn factor 4.0"


@dataclass(frozen=True)
class Longest:
    """The longest prompt of the problems to generate."""

    problem_id: str
    tokens: int


def read_model_config(model: str) -> dict[str, Any] | None:
    """A model's config.json as a dict: from a local folder, else the hub cache (offline: None when absent)."""
    local = Path(model).expanduser() / "config.json"
    if local.is_file():
        return _json(local)
    try:
        from transformers.utils import cached_file

        found = cached_file(model, "config.json", _raise_exceptions_for_missing_entries=False)
    except Exception:  # no hub, no cache, not a hub id: the model check reports it in its own words
        return None
    return _json(Path(found)) if found else None


def _json(path: Path) -> dict[str, Any] | None:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot read the model config ({exc})") from None
    return loaded if isinstance(loaded, dict) else None


def context_limit(config: Mapping[str, Any] | None) -> ContextLimit | None:
    """The number of positions `config` allows, or None when it states none."""
    if not config:
        return None
    text = config.get("text_config")
    if isinstance(text, Mapping) and not any(key in config for key in _POSITION_KEYS):
        config = text  # a multimodal wrapper: the language model's own config holds the positions
    stated = [(key, config[key]) for key in _POSITION_KEYS if _positive_int(config.get(key))]
    if not stated:
        return None
    key, positions = min(stated, key=lambda item: item[1])
    source = f"{key} {positions}"
    rope = config.get("rope_scaling") or config.get("rope_parameters")
    if isinstance(rope, Mapping):
        kind = rope.get("rope_type") or rope.get("type")
        factor = rope.get("factor")
        finite = isinstance(factor, (int, float)) and not isinstance(factor, bool) and math.isfinite(factor)
        if kind in _EXTENDING and finite and 1 < factor < 2**20:
            original = rope.get("original_max_position_embeddings")
            if kind == "yarn" and _positive_int(original):
                key, positions = "original_max_position_embeddings", original
            source = f"{key} {positions} x {kind} factor {factor}"
            positions = int(positions * factor)
    return ContextLimit(min(int(positions), 2**31 - 1), source)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def longest_prompt(rendered: Mapping[str, tuple[str, list[int]] | tuple[str, tuple[int, ...]]]) -> Longest:
    """The longest of the rendered prompts (problem id -> (text, ids))."""
    problem_id, (_, ids) = max(rendered.items(), key=lambda item: len(item[1][1]))
    return Longest(problem_id, len(ids))


@dataclass(frozen=True)
class AfterPrompt:
    """What follows the prompt in the longest request when it is not just the budget (s1 forcing: its rounds or its
    thinking + answer phase): `label` names it, `largest` maps the positions left after the prompt to the largest
    budget that fits them."""

    label: str
    largest: Callable[[int], int]


def check_fits(
    longest: Longest,
    budget: int,
    limit: ContextLimit | None,
    max_model_len: int | None,
    model: str,
    extra: int = 0,
    after: AfterPrompt | None = None,
) -> int:
    """Positions the longest request needs (prompt + budget + `extra`, e.g. a forced answer; `after` says when the
    budget stands for more); refuses, in one line, what does not fit the model's context or `--max-model-len`."""
    needed = longest.tokens + budget + extra
    label = after.label if after is not None else "the budget"
    what = f"problem {longest.problem_id}'s prompt ({longest.tokens:,} tokens) plus {label} ({budget:,})" + (
        f" plus the forced answer ({extra:,})" if extra else ""
    )
    if limit is not None and needed > limit.tokens:
        left = limit.tokens - longest.tokens - extra
        fits = after.largest(left) if after is not None else left
        lower = f"the largest budget that fits is {fits:,}" if fits > 0 else "no budget fits"
        raise UserError(
            f"{what} needs {needed:,} positions; {model} has {limit.tokens:,} ({limit.source} in its config.json): "
            f"{lower}; or extend the context (rope scaling, e.g. vLLM --engine-arg hf_overrides=...) or pass "
            "--no-context-check"
        )
    if max_model_len is not None and needed > max_model_len:
        raise UserError(f"{what} needs {needed:,} positions, more than --max-model-len {max_model_len:,}: raise it "
                        "or leave it out (the default is what the longest request needs)")  # fmt: skip
    if limit is not None and max_model_len is not None and max_model_len > limit.tokens:
        raise UserError(f"--max-model-len {max_model_len:,} exceeds what {model} allows ({limit.tokens:,}, "
                        f"{limit.source}); pass --no-context-check if the engine extends the context")  # fmt: skip
    return needed


def context_for(
    model: str,
    longest: Longest,
    budget: int,
    max_model_len: int | None,
    check: bool = True,
    extra: int = 0,
    overrides: Mapping[str, Any] | None = None,
    after: AfterPrompt | None = None,
) -> dict[str, Any]:
    """The context preflight of one generation (`check`: refuse what does not fit), as run.json records it: the
    longest prompt, the positions needed, the model's limit and where it was read (`overrides`: config values an
    engine argument sets, such as a rope scaling)."""
    config = read_model_config(model)
    limit = context_limit({**config, **overrides} if config is not None and overrides else config)
    if limit is not None and overrides and limit != context_limit(config):
        limit = ContextLimit(limit.tokens, f"{limit.source}, as --engine-arg overrides it")
    needed = longest.tokens + budget + extra
    if check:
        check_fits(longest, budget, limit, max_model_len, model, extra, after)
    return {"longest_prompt": {"problem_id": longest.problem_id, "tokens": longest.tokens}, "budget": budget,
            "answer_tokens": extra, "needed": needed, "limit": limit.tokens if limit else None,
            "limit_source": limit.source if limit else None, "checked": check}  # fmt: skip
