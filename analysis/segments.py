"""Attempt segmentation: where each successive attempt a_1..a_K of a response lies, as character spans.

The attempt probes of the paper (Fig. 13, App. F.1) condition a new attempt on the earlier ones, so they need the
attempts as pieces of text, not only their number. A new attempt starts where a preset of `steps.py` sees one, and
the first attempt starts at 0; the spans are contiguous (each attempt runs up to where the next starts), so that
joined in order they reproduce the segmented part of the text exactly:
- `countdown`: each non-empty `\\n\\n`-separated paragraph of the thinking (the text before `</think>`) is an
  attempt, as `count_steps` counts them. An attempt starts at the first character of its paragraph and keeps the
  separator after it and any blank paragraphs that follow, so the blanks belong to the attempt they close. Only the
  thinking is segmented: the spans end at `</think>` (or the text's end).
- `math`: a new attempt starts at each sentence that matches one of the lexicon's `attempt` phrases, at the sentence's
  first non-space character; `e3-math`: at the start of each line that preset flags; `mult`: at the start of each
  line with a partial product or sum (its generation steps; a `Check:` line stays in the attempt it checks). Like
  `count_steps`, these scan the whole text, so the spans end at the text's end.
A flagged start with only blanks before it opens the first attempt rather than a second one. This module does not
define the presets (`steps.py` does), match phrases (`phrases.py` does), or map spans to tokens (the probes do).
"""

from __future__ import annotations

from e3eval.analysis.phrases import char_offsets, match_sentences
from e3eval.analysis.steps import PRESETS, Lexicon, e3_flagged_lines, is_blank, load_lexicon, mult_lines, thinking_part
from e3eval.errors import UserError


def attempt_spans(text: str, preset: str, lexicon: Lexicon | None = None) -> list[tuple[int, int]]:
    """Character spans `(start, end)` of the successive attempts of `text` under `preset`: contiguous, the first
    starting at 0, the last ending at the end of the segmented part; empty when that part is blank. `lexicon` is
    the `math` preset's (default: the bundled one)."""
    if preset == "countdown":
        region = thinking_part(text)
        starts = _paragraph_starts(region)
    elif preset == "math":
        starts = _flagged_sentences(text, lexicon or load_lexicon())
        region = text
    elif preset == "e3-math":
        starts = sorted(e3_flagged_lines(text))
        region = text
    elif preset == "mult":
        starts = sorted(mult_lines(text)[1])
        region = text
    else:
        raise UserError(f"unknown attempt preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return _spans(region, starts)


def _spans(region: str, starts: list[int]) -> list[tuple[int, int]]:
    if is_blank(region):
        return []
    cuts = [0, *(s for s in starts if not is_blank(region[:s]))]
    return [(a, b) for a, b in zip(cuts, [*cuts[1:], len(region)], strict=True)]


def _paragraph_starts(thinking: str) -> list[int]:
    starts: list[int] = []
    at = 0
    for paragraph in thinking.split("\n\n"):
        if not is_blank(paragraph):
            starts.append(at)
        at += len(paragraph) + 2
    return starts


def _flagged_sentences(text: str, lexicon: Lexicon) -> list[int]:
    """Character offsets of the sentences that match an `attempt` phrase (the scanner works on UTF-8 bytes)."""
    byte_starts, found = match_sentences(text, lexicon.phrases)
    return char_offsets(text, sorted(byte_starts[i] for i in found[lexicon.phrases.kinds.index("attempt")]))
