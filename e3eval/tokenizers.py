"""Loading tokenizers: one place for every stage that needs one (prompts, import, truncation, servers' outputs).

A tokenizer is loaded by local path, or by hub name when online; a failure is a `UserError` naming it. Its
`fingerprint` (a hash of everything that maps ids to text: vocabulary, merges, added tokens, decoder) is recorded
with every run, so a later `--tokenizer` that would decode the stored ids to other text is caught even when it has
the same vocabulary size. What a tokenizer is used for (rendering prompts, exact truncation) is the business of the
stages that call this.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from e3eval.errors import UserError


def load_tokenizer(name_or_path: str) -> Any:
    """Load a tokenizer from a local path (or the hub when online); failures are user errors."""
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as exc:
        raise UserError(f"cannot load tokenizer {name_or_path!r}: {type(exc).__name__}: {exc}") from None


def fingerprint(tokenizer: Any) -> str:
    """A short hash of what decides how ids decode; equal for the same tokenizer loaded from different paths."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        for runtime in ("truncation", "padding"):  # settings of a call, not of the vocabulary
            spec.pop(runtime, None)
    else:
        spec = {"vocab": sorted(tokenizer.get_vocab().items())}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]
