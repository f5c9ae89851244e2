"""Token-exact truncation: the text of a response at budget B is the decode of its first B stored token ids.

The reference is `tokenizer.decode(ids[:B], skip_special_tokens=True)`. For byte-level BPE tokenizers (GPT-2 style,
as used by Qwen, Llama 3, DeepSeek) this module also builds a per-token byte table: the text at B is then the lossy
UTF-8 decode of the concatenated bytes of the first B tokens, computed from one gather of the whole response and a
cumulative byte offset per token, which is what the tokenizer's ByteLevel decoder does internally. The fast path is
enabled only for tokenizers whose decode pipeline is exactly that, and only after a self-check against the reference
decode on sequences covering every added token and split multi-byte characters; otherwise the reference decode is
used. This module never re-encodes text and never extracts answers.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

import numpy as np


def _byte_level_char_map() -> dict[str, int]:
    # The GPT-2 byte <-> unicode-char bijection used by byte-level BPE vocabularies.
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def _is_plain_byte_level(tokenizer: Any) -> bool:
    """True when the tokenizer's decode is exactly ByteLevel bytes -> lossy UTF-8 (plus optional space cleanup)."""
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        return False
    try:
        spec = json.loads(backend.to_str())
    except Exception:
        return False
    decoder = spec.get("decoder") or {}
    return decoder.get("type") == "ByteLevel"


class PrefixDecoder:
    """Decodes the prefixes of token-id sequences exactly as `tokenizer.decode(ids[:B], skip_special_tokens=True)`.

    `path` says which implementation is in use: "byte-table" (fast, self-checked) or "tokenizer" (reference).
    """

    def __init__(self, tokenizer: Any, allow_fast: bool = True, check_seed: int = 0) -> None:
        self.tokenizer = tokenizer
        self.cleanup = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
        self._pieces: list[bytes] | None = None
        self._lengths: np.ndarray | None = None
        self._starts: np.ndarray | None = None
        self._flat: np.ndarray | None = None
        self.path = "tokenizer"
        if allow_fast and _is_plain_byte_level(tokenizer):
            self._build_byte_table()
            if self._self_check(check_seed):
                self.path = "byte-table"
            else:
                self._pieces = self._lengths = self._starts = self._flat = None

    def _build_byte_table(self) -> None:
        tok = self.tokenizer
        char_map = _byte_level_char_map()
        size = max(len(tok), max(tok.get_vocab().values()) + 1)
        special = set(tok.all_special_ids)
        pieces: list[bytes] = []
        for token_id in range(size):
            token = tok.convert_ids_to_tokens(token_id)
            if token is None or token_id in special:
                pieces.append(b"")
                continue
            try:
                pieces.append(bytes(char_map[c] for c in token))
            except KeyError:
                # Same rule as the ByteLevel decoder: a token with a char outside the byte alphabet (an added
                # token such as "<think>" written with other chars) contributes its own UTF-8 bytes.
                pieces.append(token.encode("utf-8"))
        self._pieces = pieces
        self._lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
        self._starts = np.concatenate([[0], np.cumsum(self._lengths)[:-1]]).astype(np.int64)
        self._flat = np.frombuffer(b"".join(pieces), dtype=np.uint8)

    def _self_check(self, seed: int) -> bool:
        rng = random.Random(seed)
        tok = self.tokenizer
        added = sorted(getattr(tok, "added_tokens_decoder", {}) or {})
        size = len(self._pieces or [])
        samples = ["日本語のテキスト 🙂 é ß ∑ → \\boxed{42}", "plain ascii text, with punctuation: 1/2!"]
        for text in samples:
            ids = tok.encode(text, add_special_tokens=False)
            for cut in range(len(ids) + 1):
                if self.decode_prefix(ids, cut) != self._reference(ids, cut):
                    return False
        for _ in range(20):
            ids = [rng.randrange(size) for _ in range(200)] + list(added)
            rng.shuffle(ids)
            for cut in (len(ids), rng.randrange(len(ids))):
                if self.decode_prefix(ids, cut) != self._reference(ids, cut):
                    return False
        return True

    def _reference(self, token_ids: Sequence[int], budget: int) -> str:
        return self.tokenizer.decode(list(token_ids[:budget]), skip_special_tokens=True)

    def decode_prefix(self, token_ids: Sequence[int], budget: int) -> str:
        """Text of the first `budget` tokens."""
        return self.decode_prefixes(token_ids, [budget])[0]

    def decode_prefixes(self, token_ids: Sequence[int] | np.ndarray, budgets: Sequence[int]) -> list[str]:
        """Texts of the first B tokens for every B in `budgets`; one gather of the response serves them all."""
        if self._pieces is None:
            return [self._reference(token_ids, b) for b in budgets]
        ids = np.asarray(token_ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(self._pieces)):
            raise IndexError(f"token id out of range for a vocabulary of {len(self._pieces)}")
        lengths = self._lengths[ids]
        ends = np.cumsum(lengths)
        # One vectorised gather of every byte of the response: byte j of token t sits at starts[t] + j.
        total = int(ends[-1]) if len(ids) else 0
        index = np.repeat(self._starts[ids] - (ends - lengths), lengths) + np.arange(total, dtype=np.int64)
        data = self._flat[index].tobytes()
        texts: list[str] = []
        for budget in budgets:
            cut = min(budget, len(ids))
            end = int(ends[cut - 1]) if cut > 0 else 0
            texts.append(self._finish(data[:end]))
        return texts

    def char_offsets(self, token_ids: Sequence[int] | np.ndarray) -> np.ndarray | None:
        """Per token, the char offset in the full decode where it ends: token t's text is `text[ends[t-1]:ends[t]]`.
        A character split across tokens belongs to the token that completes it (as an incremental UTF-8 decoder
        emits it). None on the "tokenizer" path, and when space cleanup rewrites the text (offsets would not hold)."""
        if self._pieces is None or self.cleanup:
            return None
        ids = np.asarray(token_ids, dtype=np.int64)
        if not len(ids):
            return np.zeros(0, dtype=np.int64)
        if ids.min() < 0 or ids.max() >= len(self._pieces):
            raise IndexError(f"token id out of range for a vocabulary of {len(self._pieces)}")
        lengths = self._lengths[ids]
        ends = np.cumsum(lengths)
        index = np.repeat(self._starts[ids] - (ends - lengths), lengths) + np.arange(int(ends[-1]), dtype=np.int64)
        data = self._flat[index]
        try:
            data.tobytes().decode("utf-8")
        except UnicodeDecodeError:
            return self._replaced_offsets(ids)
        if not len(data):
            return np.zeros(len(ids), dtype=np.int64)
        # Valid UTF-8: a character ends before every byte that is not a continuation byte (10xxxxxx), and at the end.
        char_end = np.ones(len(data), dtype=np.int64)
        char_end[:-1] = (data[1:] & 0xC0) != 0x80
        chars = np.concatenate([[0], np.cumsum(char_end)])
        return chars[ends]

    def _replaced_offsets(self, ids: np.ndarray) -> np.ndarray:
        """`char_offsets` of bytes that are not valid UTF-8: the lossy decode's U+FFFD placement is the codec's, so
        it is asked token by token."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        ends = np.empty(len(ids), dtype=np.int64)
        total = 0
        for t, token in enumerate(ids.tolist()):
            total += len(decoder.decode(self._pieces[token]))
            ends[t] = total
        ends[-1] += len(decoder.decode(b"", final=True))
        return ends

    def _finish(self, data: bytes) -> str:
        text = data.decode("utf-8", errors="replace")
        if self.cleanup:
            text = self.tokenizer.clean_up_tokenization(text)
        return text
