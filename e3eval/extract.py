"""Answer extraction: the complete `\\boxed{...}` / `\\fbox{...}` boxes of a text, with brace matching, and the last
`<answer>...</answer>` span.

Only complete boxes count: a box whose closing brace lies beyond a truncation point is not an answer at that budget,
and the search moves on to the previous complete box. Escaped braces (`\\{`, `\\}`) do not take part in matching.
`\\boxed 5` (argument without braces) is read up to the next whitespace or `$`. `last_boxed` gives the last complete
box; `boxes` lists every complete box (a box nested in another counts once, as its innermost last box, the one
`last_boxed` would read). `is_answer_list` says whether an answer names several values (a top-level comma-separated
list, a set, or a top-level `\\pm`), which is what lets a response give them in several boxes. `last_tag_span` finds
the last `<answer>...</answer>` exactly as `re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)[-1]` would.

Model output is hostile input, so the work per text is bounded (issue 11): every function here takes time linear in
the text, whatever it holds (`\\boxed{` x 12,000 unclosed, 10^6 nested braces, 10^5 `<answer>` tags without a close),
with a small constant: the brace scan steps over the gaps between braces and over whole runs of `{` in C, reads a run
of `}` only as far as the depth it closes, a nested box's text is copied only when it is the answer, and the tag
search is four `str.find`/`str.rfind` calls. An answer is cut to `MAX_ANSWER_CHARS` characters (longer is runaway text,
not an answer). None of these bounds changes which box or tag is found. This module does not decide which part of a
response may hold the answer (that is the scoring policy) and does not judge answers (that is the grader).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

_BARE_ARG = re.compile(r"[ \t]+([^\s$]+)")
# Longest answer we hand to the grader; anything longer is almost surely runaway text, not an answer.
MAX_ANSWER_CHARS = 2000


@dataclass(frozen=True)
class Box:
    """A complete box: `text[start:end]` is the command with its argument, `content` the stripped argument."""

    start: int
    end: int
    content: str


# What brace matching looks at: an escape that hides a brace or a backslash (`\{`, `\\`; any other escape, `\frac`,
# cannot change a depth, so it is skipped with the text between braces), a whole run of `{`, and a `}`.
_BRACE_TOKEN = re.compile(r"\\[\\{}]|\{+|\}")
_CLOSE_RUN = re.compile(r"\}+")


class _Groups:
    """Where the brace group opening at a box's `{` closes, memoised per text.

    Asked for later boxes first, a scan jumps over the group of any later box it meets, or stops there when that
    group never closes (then neither does its own), so no character is scanned twice: linear time in all, while the
    common case (a few short boxes near the end of a long text) reads only the boxes themselves. A box's `{` follows
    the command's last letter, so it always opens a run of `{`; a run of `}` is read only as far as the depth it
    can close (reading all of it would read the closing braces of every outer box again: quadratic on deep nests).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.closes: dict[int, int | None] = {}
        # No group opening after the last `}` can close: the scan stops there, and boxes after it are skipped.
        self.last_brace = text.rfind("}")

    def close(self, start: int) -> int | None:
        """Index just past the `}` closing the group that opens at `text[start] == "{"`, or None."""
        text, closes, stop = self.text, self.closes, self.last_brace + 1
        depth, i = 0, start
        while (token := _BRACE_TOKEN.search(text, i, stop)) is not None:
            at, i = token.start(), token.end()
            first = text[at]
            if first == "{":
                if at != start and at in closes:
                    end = closes[at]
                    if end is None:
                        break
                    # The rest of this run lies inside that box's group: skip it whole.
                    i = end
                    continue
                depth += i - at
            elif first == "}":
                i = _CLOSE_RUN.match(text, at, at + depth).end()  # type: ignore[union-attr]
                depth -= i - at
                if depth == 0:
                    closes[start] = i
                    return i
        closes[start] = None
        return None


# A complete box before its content is copied: `text[start:end]` is the box, `text[inner:outer]` its argument.
_Span = tuple[int, int, int, int]


def _box(text: str, span: _Span) -> Box:
    start, end, inner, outer = span
    return Box(start, end, text[inner:outer].strip()[:MAX_ANSWER_CHARS])


def _complete_backwards(text: str, final: bool) -> Iterator[_Span]:
    """Every complete box of `text`, nested ones included, from the last to the first.

    Commands are found backwards with `str.rfind` (one pass per command name), so `last_boxed` reads no further back
    than its answer, and a command that cannot be complete costs no allocation (a cut through thousands of unclosed
    boxes is scored at every budget).
    """
    groups = _Groups(text)
    size = len(text)
    boxed, fbox = text.rfind("\\boxed"), text.rfind("\\fbox")
    while boxed >= 0 or fbox >= 0:
        if boxed > fbox:
            pos, after = boxed, boxed + len("\\boxed")
            boxed = text.rfind("\\boxed", 0, boxed)
        else:
            pos, after = fbox, fbox + len("\\fbox")
            fbox = text.rfind("\\fbox", 0, fbox)
        if after < size and text[after] == "{":
            if after < groups.last_brace:
                end = groups.close(after)
                if end is not None:
                    yield pos, end, after + 1, end - 1
            continue
        bare = _BARE_ARG.match(text, after)
        # A bare argument that runs into the end of a truncated text may still be growing: not an answer yet.
        if bare and (final or bare.end() < size):
            yield pos, bare.end(), bare.start(1), bare.end(1)


def last_boxed(text: str, final: bool = True) -> str | None:
    """The content of the last complete `\\boxed{}`/`\\fbox{}` in `text`, stripped, or None (also when it is empty).

    `final=False` says the text was cut at a budget, so a bare `\\boxed 12` touching the end is not complete.
    """
    last = next(_complete_backwards(text, final), None)
    return (_box(text, last).content or None) if last is not None else None


def boxes(text: str, final: bool = True) -> list[Box]:
    """Every complete box of `text` in order, contents stripped (empty ones kept); linear time.

    A box nested in a complete box is not listed on its own: the outer box is listed with the content of the last
    complete box inside it, as `last_boxed` reads it. `final` is as for `last_boxed`.
    """
    found: list[_Span] = []
    for span in reversed(list(_complete_backwards(text, final))):
        if found and span[0] < found[-1][1]:  # nested: it gives the content of the box that holds it
            found[-1] = (*found[-1][:2], *span[2:])
        else:
            found.append(span)
    # Copied only now: listed boxes do not overlap, so this is linear however deep the nesting.
    return [_box(text, span) for span in found]


_OPEN_TAG, _CLOSE_TAG = "<answer>", "</answer>"


def last_tag_span(text: str) -> tuple[int, int] | None:
    """`(start, end)` of the content of the last `<answer>...</answer>` of `text`, or None; linear time.

    The same span as the last match of `re.findall(r"<answer>(.*?)</answer>", text, re.DOTALL)`, which is quadratic
    on `<answer>` x N. Read forward, a tag is open after any `<answer>` and closed after any `</answer>`, so the last
    match closes at the first `</answer>` after the last `<answer>` that has one, and opens at the first `<answer>`
    after the `</answer>` before that: four searches in C.
    """
    last_open = text.rfind(_OPEN_TAG, 0, max(text.rfind(_CLOSE_TAG), 0))
    if last_open < 0:
        return None
    close = text.find(_CLOSE_TAG, last_open + len(_OPEN_TAG))
    previous = text.rfind(_CLOSE_TAG, 0, close)
    opening = text.find(_OPEN_TAG, previous + len(_CLOSE_TAG) if previous >= 0 else 0, close)
    return opening + len(_OPEN_TAG), close


_OPEN = {"(", "[", "{"}
_CLOSE = {")", "]", "}"}
_THOUSANDS_TAIL = re.compile(r"(?:\\[!,]|\s)*\d{3}(?!\d)")
_SET = re.compile(r"^(?:\\left)?\\\{(.*)(?:\\right)?\\\}$|^\{(.*)\}$", re.DOTALL)


def _top_level(text: str) -> tuple[list[int], bool, bool]:
    """The commas outside every bracket, whether a `\\pm`/`\\mp` stands outside every bracket, and whether no
    bracket closes that was not opened in `text`."""
    commas: list[int] = []
    plus_minus = False
    depth = lowest = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if depth == 0 and text.startswith(("\\pm", "\\mp"), i) and not text[i + 3 : i + 4].isalpha():
                plus_minus = True
            # `\{` and `\}` are brackets (a set); `\,`, `\!` and other escapes are not.
            nxt = text[i + 1 : i + 2]
            depth += 1 if nxt == "{" else -1 if nxt == "}" else 0
            i += 2
        else:
            if ch in _OPEN:
                depth += 1
            elif ch in _CLOSE:
                depth -= 1
            elif ch == "," and depth == 0:
                commas.append(i)
            i += 1
        lowest = min(lowest, depth)
    return commas, plus_minus, lowest >= 0


@lru_cache(maxsize=4096)
def is_answer_list(answer: str) -> bool:
    """Whether `answer` (a gold answer) names several values, so a response may give them in several boxes.

    Yes for a top-level comma-separated list (`1, 2`, `(2, 2), (6, 2)`), a set with several elements (`\\{1, 2\\}`,
    `{1,2,3}`) and a top-level `\\pm` (`1 \\pm \\sqrt{19}`); no for tuples and intervals (`(1, 2)`, `[1, 3)`) and for
    thousands separators (`10,\\!080`, `58,500`, `\\$32,\\!348`).
    """
    text = answer.strip().strip("$").strip()
    found = _SET.match(text)
    if found:
        inner = found.group(1) if found.group(1) is not None else found.group(2)
        if _top_level(inner)[2]:  # the outer braces pair with each other: `\\{1\\} \\cup \\{2\\}` is no one set
            text = inner
    commas, plus_minus, _ = _top_level(text)
    if plus_minus:
        return True
    return any(not (text[i - 1 : i].isdigit() and _THOUSANDS_TAIL.match(text, i + 1)) for i in commas)
