"""Loading tokenizers: one place for every stage that needs one (prompts, import, truncation, servers' outputs).

A tokenizer is loaded by local path, or by hub name when online; a failure is a `UserError` naming it. What a
tokenizer is used for (rendering prompts, exact truncation) is the business of the stages that call this.
"""

from __future__ import annotations

from typing import Any

from e3eval.errors import UserError


def load_tokenizer(name_or_path: str) -> Any:
    """Load a tokenizer from a local path (or the hub when online); failures are user errors."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise UserError(f"cannot load tokenizer {name_or_path!r}: {type(exc).__name__}: {exc}") from None
