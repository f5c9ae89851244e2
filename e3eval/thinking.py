"""Where a response's thinking ends: the end-of-thinking delimiter of a tokenizer, as text and token ids.

Budget forcing (`--wait N`, s1) suppresses this delimiter and the forced-answer policy appends it, so both need the
same answer to "which ids end the thinking?": `--think-end TEXT` when given; otherwise the tokenizer's `</think>`
token (Qwen3, DeepSeek-R1 distills and every chat template that thinks in `<think>...</think>`); otherwise, for models
without a thinking section, the end-of-sequence token. This module finds delimiters in token ids; it neither
generates nor scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from e3eval.errors import UserError

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


@dataclass(frozen=True)
class ThinkEnd:
    text: str
    token_ids: tuple[int, ...]
    is_eos: bool  # the model has no thinking section: ending the thinking is ending the response

    def find(self, ids: Sequence[int], start: int = 0) -> int | None:
        """Index of the first occurrence of the delimiter's ids in `ids[start:]`, or None."""
        pattern = self.token_ids
        width = len(pattern)
        array = np.asarray(ids[start:], dtype=np.int64)
        for index in np.flatnonzero(array == pattern[0]):  # candidates in C; a 32k-token response is one pass
            if index + width <= len(array) and tuple(array[index : index + width].tolist()) == pattern:
                return start + int(index)
        return None


def think_end(tokenizer: Any, override: str | None = None) -> ThinkEnd:
    """The delimiter for `tokenizer`: `override` (tokenized without special tokens), else `</think>` when it is
    one token of the vocabulary, else EOS. A delimiter that tokenizes to nothing, or no EOS either, is a UserError."""
    if override is not None:
        ids = tuple(tokenizer(override, add_special_tokens=False)["input_ids"])
        if not override or not ids:
            raise UserError(f"--think-end {override!r} tokenizes to no token ids")
        return ThinkEnd(override, ids, is_eos=ids == (tokenizer.eos_token_id,))
    close = tokenizer.get_vocab().get(THINK_CLOSE)
    if close is not None:
        return ThinkEnd(THINK_CLOSE, (int(close),), is_eos=False)
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError("the tokenizer has no </think> token and no EOS token: pass --think-end TEXT")
    return ThinkEnd(tokenizer.convert_ids_to_tokens(eos), (int(eos),), is_eos=True)
