"""Scoring policies: which answer a sample offers at budget B, and whether it may count.

- `prefix` (default; the e3 paper's evaluation protocol, App. D): the answer is the last complete box in the text
  of the first B tokens, whether or not the model stopped.
- `strict`: an answer counts only if the model finished (emitted EOS) within B tokens; for a response with a thinking
  section the answer must come after the last `</think>` (an unclosed thinking section has no answer).
- `length` (the e3 authors' training/eval scripts): the full response is graded and counts only if it is shorter
  than B tokens (`num_tokens < B`, strict, as in their `process_eval.py`).
- `forced` (s1-style forced answer at budget): a sample that ended (EOS) within B offers its answer as under
  `prefix`; any other offers the answer its forced continuation wrote (the first B tokens, the end-of-thinking
  delimiter when still thinking, an answer cue, a short greedy continuation: `forced_answer.py`), read from the decode
  of cue + continuation (only complete boxes count when the continuation ran out of tokens); a continuation with no
  box at all (s1's cue "Final Answer:" asks for none) offers the first line after its last "Answer:".
- `s1` (runs generated with `--forcing s1`, `budget_forcing.py`: one run per thinking budget B): the sample at B is the
  whole response (the thinking cut at B, the appended end of thinking, the answer phase), as s1's harness scores it: its
  last complete box (only complete boxes count when the answer phase ran out of tokens), else the first line after
  its last "Answer:" (s1 takes all the text after it, then asks an LLM judge when that is not a number).

Answers in several boxes (the same rule under every policy, and in the math reward of `train/reward.py`): when the
gold answer names several values (`extract.is_answer_list`: a top-level comma-separated list such as HMMT February
2025 #10's `\\frac{-1+\\sqrt{17}}{2}, \\frac{-1-\\sqrt{17}}{2}`, a set, or a top-level `\\pm`), the answer is every
complete box of the final answer, distinct contents joined by ", " in order of appearance (math-verify reads the
joined list as a set, so the order does not matter). The final answer is the text after the last `</think>` when that
comes before the last complete box, else the paragraph holding the last complete box (from the last blank line
before it). So `\\boxed{1} and \\boxed{2}` offers `1, 2`, while a box left behind in the thinking section or in an
earlier paragraph does not join in. A single-valued gold keeps the last complete box, exactly; only complete boxes
count under truncation. Reading the final answer stays linear in the text whatever it holds (issue 11): the boxes
come from `extract.py`, the last blank line before the last box is one backwards regex search, and the joined answer
is cut to `MAX_ANSWER_CHARS`. Each policy is a small object (`ScoringPolicy`) that declares the run tables it reads,
so a policy that needs more than the rollouts (stored continuations) plugs in without the scorer knowing it by name;
`get_policy` looks one up. This module neither decodes tokens nor grades answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from e3eval.errors import UserError
from e3eval.extract import MAX_ANSWER_CHARS, boxes, is_answer_list, last_boxed

if TYPE_CHECKING:
    from e3eval.forced_answer import ForcedConfig, ForcedOutcome
    from e3eval.records import Problem
    from e3eval.run import Run
    from e3eval.samples import SampleLedger

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# Everything up to the end of the last blank line: one backwards search in C (a loop over every blank line of a
# response made of 10^6 newlines was Python work per line). It ends where the last of `\n[ \t]*\n`'s
# non-overlapping matches ends or in the whitespace just after it, which no box can start in.
_UP_TO_LAST_BLANK_LINE = re.compile(r".*\n[ \t]*\n", re.DOTALL)


def check_policy(policy: str) -> str:
    get_policy(policy)
    return policy


def answer_part(text: str) -> str | None:
    """The part of a response that may hold the final answer: after `</think>` when there is a thinking section."""
    close = text.rfind(THINK_CLOSE)
    if close >= 0:
        return text[close + len(THINK_CLOSE) :]
    if THINK_OPEN in text:
        return None
    return text


def _joined_boxes(text: str, final: bool, whole: bool) -> str | None:
    """The distinct complete boxes of the final answer joined by ", " (see the module docstring); `whole` says all
    of `text` is the final answer (it is what follows `</think>`)."""
    found = boxes(text, final)
    if not found:
        return None
    start = 0
    if not whole:
        last = found[-1].start
        close = text.rfind(THINK_CLOSE, 0, last)
        if close >= 0:
            start = close + len(THINK_CLOSE)
        else:
            blank = _UP_TO_LAST_BLANK_LINE.match(text, 0, last)
            if blank is not None:
                start = blank.end()
    contents = dict.fromkeys(box.content for box in found if box.start >= start and box.content)
    return ", ".join(contents)[:MAX_ANSWER_CHARS] or None


def final_answer(text: str, final: bool = True, gold: str | None = None) -> str | None:
    """The answer `text` offers: its last complete box, or, when `gold` names several values, the boxes of its
    final answer joined by ", ". `final=False` says the text was cut at a budget (see `extract.last_boxed`)."""
    if gold is None or not is_answer_list(gold):
        return last_boxed(text, final)
    return _joined_boxes(text, final, whole=False)


@dataclass(frozen=True)
class SampleAtBudget:
    """What a policy may look at for one sample at one budget.

    `prefix_text` is the decode of the first `budget` tokens, `full_text` that of all tokens (empty unless the policy
    asks for it), `stopped` whether the engine stopped on EOS (finish reason `stop`), `gold` the gold answer (it
    decides how many boxes make the answer). `forced_text` is the decode of the answer cue + the forced continuation
    at this budget (policies that read `forced` only; None when the response ended within the budget), and
    `forced_final` whether that continuation stopped on its own.
    """

    prefix_text: str
    full_text: str
    num_tokens: int
    stopped: bool
    budget: int
    gold: str | None = None
    forced_text: str | None = None
    forced_final: bool = True


@dataclass(frozen=True)
class ScoringContext:
    """What a policy's `prepare` may use before the scoring loop: the run, its samples, the budgets, the tokenizer,
    who writes forced answers (`score --model ...`), and where to report."""

    run: Run
    problems: Sequence[Problem]
    samples: SampleLedger
    budgets: Sequence[int]
    tokenizer: Any
    tokenizer_name: str
    forced: ForcedConfig | None = None
    progress: Any = None
    log: Callable[[str], None] = lambda _: None


@dataclass(frozen=True)
class Prepared:
    """What a policy made before the loop: the extra rollout columns it reads, the forced answers (`forced`) and
    their setting, the length of the end of thinking that s1's harness appends (`s1`), and run.json's record."""

    columns: tuple[str, ...] = ()
    forced: ForcedOutcome | None = None
    forced_config: ForcedConfig | None = None
    s1_end: int | None = None

    def record(self) -> dict[str, Any] | None:
        """What run.json's scoring section records under `forced` (None for policies without forced answers)."""
        if self.forced is None or self.forced_config is None:
            return None
        return self.forced.describe(self.forced_config)


class ScoringPolicy(Protocol):
    """Which answer a sample offers at a budget. `reads` names the run's tables the policy needs (`forced` reads the
    stored forced continuations, which the scorer makes first); `needs_full_text` asks the scorer to decode whole
    responses too; `whole_response` says the whole response is the sample at the run's one budget (`s1`)."""

    name: str
    reads: tuple[str, ...]
    needs_full_text: bool
    whole_response: bool

    def prepare(self, context: ScoringContext) -> Prepared:
        """Make what the policy reads besides the rollouts, once, before the scoring loop."""
        ...

    def answer(self, sample: SampleAtBudget) -> str | None: ...


class _RolloutsOnly:
    """`prepare` of the policies that read the rollouts alone."""

    def prepare(self, context: ScoringContext) -> Prepared:
        return Prepared()


@dataclass(frozen=True)
class PrefixPolicy(_RolloutsOnly):
    name: str = "prefix"
    reads: tuple[str, ...] = ("rollouts",)
    needs_full_text: bool = False
    whole_response: bool = False

    def answer(self, sample: SampleAtBudget) -> str | None:
        return final_answer(sample.prefix_text, final=sample.num_tokens <= sample.budget, gold=sample.gold)


@dataclass(frozen=True)
class StrictPolicy(_RolloutsOnly):
    name: str = "strict"
    reads: tuple[str, ...] = ("rollouts",)
    needs_full_text: bool = True
    whole_response: bool = False

    def answer(self, sample: SampleAtBudget) -> str | None:
        if not (sample.stopped and sample.num_tokens <= sample.budget):
            return None
        section = answer_part(sample.full_text)
        if section is None:
            return None
        if sample.gold is not None and is_answer_list(sample.gold):
            return _joined_boxes(section, True, whole=THINK_CLOSE in sample.full_text)
        return last_boxed(section)


@dataclass(frozen=True)
class LengthPolicy(_RolloutsOnly):
    name: str = "length"
    reads: tuple[str, ...] = ("rollouts",)
    needs_full_text: bool = True
    whole_response: bool = False

    def answer(self, sample: SampleAtBudget) -> str | None:
        return final_answer(sample.full_text, gold=sample.gold) if sample.num_tokens < sample.budget else None


@dataclass(frozen=True)
class ForcedPolicy:
    name: str = "forced"
    reads: tuple[str, ...] = ("rollouts", "forced")
    needs_full_text: bool = False
    whole_response: bool = False

    def prepare(self, context: ScoringContext) -> Prepared:
        """The forced answers: generated where missing, else read back (`forced_answer.ensure_answers`)."""
        from e3eval.forced_answer import ensure_answers, with_run_engine

        if context.forced is None:  # `ScoreConfig.check` refuses this before any work: a caller's mistake
            raise ValueError("ForcedPolicy.prepare needs the ScoringContext's `forced` settings")
        config, note = with_run_engine(context.forced, context.run)
        context.log(note)
        forced = ensure_answers(context, config)
        return Prepared(forced=forced, forced_config=config)

    def answer(self, sample: SampleAtBudget) -> str | None:
        if sample.stopped and sample.num_tokens <= sample.budget:
            return PrefixPolicy().answer(sample)
        if sample.forced_text is None:
            return None
        boxed = final_answer(sample.forced_text, final=sample.forced_final, gold=sample.gold)
        if boxed is not None or "\\boxed" in sample.forced_text:
            return boxed
        return labelled_answer(sample.forced_text)


@dataclass(frozen=True)
class S1Policy:
    name: str = "s1"
    reads: tuple[str, ...] = ("rollouts",)
    needs_full_text: bool = True
    whole_response: bool = True

    def prepare(self, context: ScoringContext) -> Prepared:
        """Where each thinking stopped, and how: the last `inserted` span is the appended end of thinking."""
        generation = context.run.record.generation
        forcing = generation.forcing if generation is not None else None
        if forcing is None or forcing.mode != "s1":
            raise UserError(f"{context.run.path}: --policy s1 scores runs generated with --forcing s1")
        return Prepared(columns=("inserted",), s1_end=len(forcing.think_end_token_ids))

    def answer(self, sample: SampleAtBudget) -> str | None:
        boxed = final_answer(sample.full_text, final=sample.stopped, gold=sample.gold)
        if boxed is not None or "\\boxed" in sample.full_text:
            return boxed
        return labelled_answer(sample.full_text)


_ANSWER_LABEL = re.compile(r"answer\s*:\s*", re.IGNORECASE)


def labelled_answer(text: str) -> str | None:
    """An unboxed forced answer (the s1 cue "Final Answer:" asks for none): the first line after the last "Answer:",
    without `$` and a final period; None when there is none. s1's scorer takes everything after it instead (and asks
    an LLM judge when that is not a number); a line is what a grader can compare."""
    found = list(_ANSWER_LABEL.finditer(text))
    if not found:
        return None
    line = text[found[-1].end() :].strip().split("\n", 1)[0].strip().removesuffix(".").strip()
    return line.strip("$").strip()[:MAX_ANSWER_CHARS] or None


REGISTERED: dict[str, ScoringPolicy] = {
    p.name: p for p in (PrefixPolicy(), StrictPolicy(), LengthPolicy(), ForcedPolicy(), S1Policy())
}


def get_policy(name: str) -> ScoringPolicy:
    """The policy called `name`, or a UserError listing the known ones."""
    if name not in REGISTERED:
        raise UserError(f"unknown policy {name!r}; choose one of {', '.join(REGISTERED)}")
    return REGISTERED[name]


def answer_at_budget(
    policy: str,
    prefix_text: str,
    full_text: str,
    num_tokens: int,
    stopped: bool,
    budget: int,
    gold: str | None = None,
) -> str | None:
    """The answer `policy` lets a sample offer at `budget`, or None (see `SampleAtBudget` for the arguments)."""
    return get_policy(policy).answer(SampleAtBudget(prefix_text, full_text, num_tokens, stopped, budget, gold))
