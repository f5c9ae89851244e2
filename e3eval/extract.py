"""Answer extraction: the complete `\\boxed{...}` / `\\fbox{...}` boxes of a text, with brace matching.

Only complete boxes count: a box whose closing brace lies beyond a truncation point is not an answer at that budget,
and the search moves on to the previous complete box. Escaped braces (`\\{`, `\\}`) do not take part in matching.
`\\boxed 5` (argument without braces) is read up to the next whitespace or `$`. `last_boxed` gives the last complete
box; `boxes` lists every complete box (a box nested in another counts once, as its innermost last box, the one
`last_boxed` would read). Both take time linear in the text, however many unclosed boxes it holds. `is_answer_list`
says whether an answer names several values (a top-level comma-separated list, a set, or a top-level `\\pm`), which
is what lets a response give them in several boxes. This module does not decide which part of a response may hold
the answer (that is the scoring policy) and does not judge answers (that is the grader).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

_COMMAND = re.compile(r"\\boxed|\\fbox")
_BARE_ARG = re.compile(r"[ \t]+([^\s$]+)")
# Longest answer we hand to the grader; anything longer is almost surely runaway text, not an answer.
MAX_ANSWER_CHARS = 2000


@dataclass(frozen=True)
class Box:
    """A complete box: `text[start:end]` is the command with its argument, `content` the stripped argument."""

    start: int
    end: int
    content: str


_BRACE_OR_ESCAPE = re.compile(r"\\.|[{}]", re.DOTALL)


class _Groups:
    """Where the brace group opening at a box's `{` closes, memoised per text.

    Asked for later boxes first, a scan jumps over the group of any later box it meets, or stops there when that
    group never closes (then neither does its own), so no character is scanned twice: linear time in all, while the
    common case (a few short boxes near the end of a long text) reads only the boxes themselves. A backslash escapes
    the next character (`\\{` is no brace).
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.closes: dict[int, int | None] = {}

    def close(self, start: int) -> int | None:
        """Index just past the `}` closing the group that opens at `text[start] == "{"`, or None."""
        text, closes = self.text, self.closes
        depth, i = 0, start
        while (token := _BRACE_OR_ESCAPE.search(text, i)) is not None:
            at, i = token.start(), token.end()
            if token.group() == "{":
                if at != start and at in closes:
                    end = closes[at]
                    if end is None:
                        break
                    i = end
                    continue
                depth += 1
            elif token.group() == "}":
                depth -= 1
                if depth == 0:
                    closes[start] = i
                    return i
        closes[start] = None
        return None


def _complete_backwards(text: str, final: bool) -> Iterator[Box]:
    """Every complete box of `text`, nested ones included, from the last to the first."""
    groups = _Groups(text)
    for match in reversed(list(_COMMAND.finditer(text))):
        pos, after = match.start(), match.end()
        if after < len(text) and text[after] == "{":
            end = groups.close(after)
            if end is not None:
                yield Box(pos, end, text[after + 1 : end - 1].strip()[:MAX_ANSWER_CHARS])
            continue
        bare = _BARE_ARG.match(text, after)
        # A bare argument that runs into the end of a truncated text may still be growing: not an answer yet.
        if bare and (final or bare.end() < len(text)):
            yield Box(pos, bare.end(), bare.group(1).strip()[:MAX_ANSWER_CHARS])


def last_boxed(text: str, final: bool = True) -> str | None:
    """The content of the last complete `\\boxed{}`/`\\fbox{}` in `text`, stripped, or None (also when it is empty).

    `final=False` says the text was cut at a budget, so a bare `\\boxed 12` touching the end is not complete.
    """
    last = next(_complete_backwards(text, final), None)
    return (last.content or None) if last is not None else None


def boxes(text: str, final: bool = True) -> list[Box]:
    """Every complete box of `text` in order, contents stripped (empty ones kept); linear time.

    A box nested in a complete box is not listed on its own: the outer box is listed with the content of the last
    complete box inside it, as `last_boxed` reads it. `final` is as for `last_boxed`.
    """
    found: list[Box] = []
    for box in reversed(list(_complete_backwards(text, final))):
        if found and box.start < found[-1].end:  # nested: it gives the content of the box that holds it
            found[-1] = Box(found[-1].start, found[-1].end, box.content)
        else:
            found.append(box)
    return found


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
