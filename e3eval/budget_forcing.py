"""Budget forcing (`--wait N`): s1's minimum-thinking protocol (Muennighoff et al. 2025), the baseline of the e3
paper's Fig. 6, as a loop above the backends, in two modes (`--forcing`):

- `e3eval` (the default): one forced generation at the largest budget that, like a plain one, serves every smaller
  budget by truncation; its rules are below.
- `s1`: s1's evaluation harness exactly (its lm-evaluation-harness fork, `lm_eval/models/vllm_causallms.py`, the code
  behind s1's published numbers), at one thinking budget per run; its rules follow the `e3eval` ones.

`e3eval` mode. Whenever a sample ends its thinking (emits the end-of-thinking delimiter of `thinking.py`) before its
budget and fewer than N insertions were made, the delimiter and anything after it are dropped, the wait text's token
ids are appended and the sample continues: a new request whose prompt is the prompt + the response so far. After N
insertions the sample continues without interference and may end normally. Backends stay batch in / batch out: each
round is at most two `generate` calls (samples that may still be forced stop at the delimiter via
`SamplingSpec.stop_token_ids`; samples done forcing run with the plain spec), every request carrying its sample's
remaining budget.

Rules, each chosen so that a forced rollout is as exact as a plain one:
- Budget: inserted tokens count toward `max_tokens` like sampled ones; a response never exceeds it. The wait text is
  inserted only if, after it, at least one token fits (`start + len(wait ids) < budget`); otherwise the delimiter is
  kept and the thinking ends where the model ended it (the sample then continues unforced in what budget is left).
- Seeds: round 0 uses the sample's own seed, so `--wait 0` is a plain generation token for token, and a forced sample
  equals the plain one up to its first delimiter; continuation j uses `continuation_seed(seed, j)`, a function of the
  sample alone, never of its batch.
- Records: the final token ids (insertions included), `inserted` = flat (start, end) pairs of the inserted spans,
  the text decoded from those ids, logprobs with NaN at inserted tokens (they were not sampled). A failed round fails
  the whole sample (an error completion, never a partial one); a sample nothing was done to keeps the engine's own
  completion.
- A multi-token delimiter (`--think-end` text of several tokens) cannot be a stop id: such rounds run on to EOS or the
  budget and are cut at the delimiter's first occurrence (correct, but the tokens after it are generated in vain).
- EOS that comes before the delimiter ends the sample: only the delimiter is suppressed (s1 replaces it too).
- No `min_tokens`: a delimiter right after an insertion uses up the next insertion (s1 asks for one token first).
- Nothing happens at the budget: a sample still thinking there is cut like a plain one (s1 ends its thinking and asks
  for a final answer; e3eval's `--policy forced` does that at scoring time, for every budget).

`s1` mode (`generate_s1`), for a thinking budget B (`generate --max-tokens`; each of `sweep --budgets`), N = `--wait`:
- Rounds 0..N, each with `max_tokens` B (not what is left of B), `min_tokens` 1 and the stop ids: the delimiter's
  first id (the harness stops at "<|im_start|>" and appends "<|im_start|>answer"; `</think>` is one id) and EOS. A
  round that ends by length, and round N, are final. Any other round ends by a stop (EOS too): a trailing delimiter
  id, then a trailing EOS, is dropped, the wait ids are appended and the sample goes on with the next round.
- After the rounds the thinking (inserted ids included) is cut to its first B ids and a trailing delimiter, then EOS,
  dropped once more. If the last round ended by length, "\n" (unless the thinking's text, the rounds' texts and wait
  texts joined, ends with one) + delimiter + "\nFinal Answer:" is appended, else the delimiter alone; both as ids.
- Then an answer phase of up to `--answer-tokens` that ends at EOS, sampled as the rounds are (the harness passes
  one set of sampling arguments to both phases; s1's tasks decode greedily) unless `--answer-temperature` is given.
  Its seed is `continuation_seed(seed, ANSWER_ROUND)`.
- The record is the whole sequence (thinking, appended ids, answer), with the appended ids marked `inserted` like the
  wait ids; `Insertions` counts the waits only. Rounds use the seeds of `e3eval` mode. The thinking of one round may
  reach B, so a request may hold up to (N + 1) x B + N x len(wait ids) thinking positions before the cut.
- The sample at budget B is its own generation (no run serves two budgets): `e3eval sweep --forcing s1` makes one run
  per budget, scored with `--policy s1` (`policy.py`). Where e3eval differs from the harness: it stores token ids and
  decodes the whole sequence from them, where the harness scores its texts joined (which keep the thinking past the
  cut); and its prompt is the model's chat template, where the harness appends s1's own thinking-start text.

One forced generation at the largest budget serves every smaller budget B in `e3eval` mode, as a plain one does, with
one exception.
The budget enters the forcing only through the rule `p + len(wait ids) < budget` for a delimiter at position p, so
the first B tokens of a rollout forced at Bmax are the rollout forced at B unless an insertion starts within the last
len(wait ids) positions before B (B - len(wait ids) <= p < B): forced at B, the delimiter would stay at p (then at
most len(wait ids) - 1 unforced tokens, or the end if the delimiter is EOS) where the truncation holds the wait text.
With the one-token "Wait" that is a delimiter at exactly position B - 1: too late for any answer, so `prefix` grades
agree; only an EOS delimiter there makes the sample finished at B under forcing-at-B and unfinished in the truncation.
`Insertions` counts what forcing did (waits inserted, samples with at least one) so a run says so, and
`Insertions.warning` names the likely cause when `--wait N` inserted nothing: a delimiter the model never writes
(`--think-end` of another model's convention) looks exactly like a plain generation otherwise.
It does not choose seeds for samples, write rollouts (`generation.py`) or score anything.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from e3eval.backends import Backend, regroup
from e3eval.errors import UserError
from e3eval.records import Completion, FinishReason, GenerationRequest, SamplingSpec

if TYPE_CHECKING:  # thinking.py needs numpy; the CLI imports this module for its defaults only
    from e3eval.thinking import ThinkEnd

DEFAULT_WAIT_TEXT = "Wait"  # s1's choice
MAX_WAIT = 100  # insertions per sample; each one costs an engine round
FORCING_MODES = ("e3eval", "s1")
S1_FINAL_ANSWER = "\nFinal Answer:"  # what s1's harness appends after the end of thinking at the cap
DEFAULT_S1_ANSWER_TOKENS = 2048  # s1's tasks allow the answer phase their whole max_gen_toks (32768)
MAX_S1_ANSWER_TOKENS = 2**20
ANSWER_ROUND = MAX_WAIT + 1  # the continuation index of the s1 answer phase's seed: after any round's


@dataclass(frozen=True)
class S1Answer:
    """What `--forcing s1` adds to the thinking rounds: the ids it strips and appends, and its answer phase."""

    strip_ids: tuple[int, ...]  # a round's stops, dropped from its end in this order: the delimiter's first id, EOS
    end_ids: tuple[int, ...]  # the delimiter's text, appended when the thinking ended by a stop
    final_ids: tuple[int, ...]  # delimiter + "\nFinal Answer:", appended when it ended by length
    newline_ids: tuple[int, ...]  # "\n", before `final_ids` when the thinking's text does not end a line
    answer_tokens: int
    answer_temperature: float | None  # None: the rounds' temperature and top-p (the harness's one set of arguments)


@dataclass(frozen=True)
class Forcing:
    """How samples are forced: up to `wait` insertions of `wait_ids` in place of the `end` delimiter, s1's way when
    `s1` is set."""

    wait: int
    wait_text: str
    wait_ids: tuple[int, ...]
    end: ThinkEnd
    s1: S1Answer | None = None

    @property
    def mode(self) -> str:
        return "e3eval" if self.s1 is None else "s1"

    @property
    def appended(self) -> int:
        """Inserted spans of a sample that are not waits: s1 mode's appended end of thinking."""
        return 0 if self.s1 is None else 1

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """Where a round that may still insert stops: a one-token delimiter other than EOS (EOS stops anyway)."""
        return self.end.token_ids if len(self.end.token_ids) == 1 and not self.end.is_eos else ()

    def settings(self) -> dict[str, Any]:
        """What run.json records (a run's fixed setting: runs forced differently are different runs). `e3eval` mode
        records no `mode`, as runs made before the modes existed."""
        settings: dict[str, Any] = {
            "wait": self.wait, "wait_text": self.wait_text, "wait_token_ids": list(self.wait_ids),
            "think_end": self.end.text, "think_end_token_ids": list(self.end.token_ids),
            "think_end_is_eos": self.end.is_eos,
        }  # fmt: skip
        if self.s1 is not None:
            settings |= {
                "mode": "s1", "final_answer_token_ids": list(self.s1.final_ids),
                "newline_token_ids": list(self.s1.newline_ids), "answer_tokens": self.s1.answer_tokens,
                "answer_temperature": self.s1.answer_temperature,
            }  # fmt: skip
        return settings


def forcing_for(
    tokenizer: Any,
    wait: int,
    wait_text: str = DEFAULT_WAIT_TEXT,
    think_end_text: str | None = None,
    mode: str = "e3eval",
    answer_tokens: int = DEFAULT_S1_ANSWER_TOKENS,
    answer_temperature: float | None = None,
) -> Forcing:
    """The forcing of `tokenizer`'s model: the delimiter (`--think-end`, else `</think>`, else EOS) and the wait text's
    ids, and for `mode` s1 what it strips and appends. A wait text that is empty, or holds the delimiter or EOS (it
    would end what it extends), is a UserError; so is s1 mode with a delimiter that is EOS or several tokens."""
    from e3eval.thinking import think_end

    if not 0 <= wait <= MAX_WAIT:
        raise UserError(f"--wait must be between 0 and {MAX_WAIT}")
    end = think_end(tokenizer, think_end_text)
    ids = _ids(tokenizer, wait_text) if wait_text else ()
    if not ids:
        raise UserError(f"--wait-text {wait_text!r} tokenizes to no token ids")
    if end.find(ids) is not None or tokenizer.eos_token_id in ids:
        raise UserError(f"--wait-text {wait_text!r} holds the end of thinking ({end.text!r}) or EOS: it would end the "
                        "thinking it is meant to extend")  # fmt: skip
    if mode == "e3eval":
        return Forcing(wait, wait_text, ids, end)
    if mode != "s1":
        raise UserError(f"--forcing {mode!r}: choose one of {', '.join(FORCING_MODES)}")
    if end.is_eos:
        which = f"--think-end {think_end_text!r} is EOS" if think_end_text is not None else (
            "this model's thinking ends with EOS (its tokenizer has no </think>)")  # fmt: skip
        raise UserError(f"--forcing s1 appends the end of thinking before its answer phase, and {which}: name the "
                        "text that ends the thinking with --think-end TEXT, or use --forcing e3eval")  # fmt: skip
    # Rounds stop at the delimiter's first token, as the harness's `until_thinking` ("<|im_start|>") is the first
    # token of its appended `thinking_end` ("<|im_start|>answer"); for `</think>` the two are one token.
    eos = [int(tokenizer.eos_token_id)] if tokenizer.eos_token_id is not None else []
    strip = tuple(dict.fromkeys((end.token_ids[0], *eos)))
    s1 = S1Answer(strip, _ids(tokenizer, end.text), _ids(tokenizer, end.text + S1_FINAL_ANSWER), _ids(tokenizer, "\n"),
                  answer_tokens, answer_temperature)  # fmt: skip
    return Forcing(wait, wait_text, ids, end, s1)


def _ids(tokenizer: Any, text: str) -> tuple[int, ...]:
    """`text`'s ids without special tokens (s1's harness: `tok_encode`)."""
    return tuple(int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True)
class Insertions:
    """What forcing did to some samples: waits inserted in all, samples with at least one, samples counted (failed
    requests are not samples), samples that ended (`stop`) within their budget, and samples that used every wait
    allowed (`at_limit`: counted when the wait limit is known, see `of`)."""

    waits: int = 0
    samples_forced: int = 0
    samples: int = 0
    ended: int = 0
    at_limit: int = 0

    @classmethod
    def of(cls, inserted: Sequence[int] | None, finish_reason: str, appended: int = 0, wait: int = 0) -> Insertions:
        """One sample's count from its stored `inserted` spans (flat (start, end) pairs) and finish reason; the last
        `appended` spans are not waits (s1 mode's end of thinking); `wait` is the run's limit (0: not counted)."""
        if finish_reason == "error":
            return cls()
        waits = max(len(inserted or ()) // 2 - appended, 0)
        return cls(waits, int(waits > 0), 1, int(finish_reason == "stop"), int(0 < wait <= waits))

    def __add__(self, other: Insertions) -> Insertions:
        return Insertions(self.waits + other.waits, self.samples_forced + other.samples_forced,
                          self.samples + other.samples, self.ended + other.ended,
                          self.at_limit + other.at_limit)  # fmt: skip

    def describe(self, forcing: Forcing | None = None) -> str:
        """`inserted 37 waits in 16 of 16 samples`; with the run's `forcing`, headed by what it was and followed by
        how far it went: `budget forcing (wait=2, "Wait" for "</think>"): inserted 37 waits in 16 of 16 samples; 12
        used all 2 waits; 3 ran to the budget`."""
        waits = f"{self.waits} wait{'' if self.waits == 1 else 's'}"
        line = f"inserted {waits} in {self.samples_forced} of {self.samples} samples"
        if forcing is None:
            return line
        head = forcing_head(forcing.mode, forcing.wait, forcing.wait_text, forcing.end.text)
        if forcing.wait and self.waits:
            line += f"; {self.at_limit} used all {forcing.wait} wait{'' if forcing.wait == 1 else 's'}"
        # Not a partition: a sample that used all its waits may still run to the budget after the last one.
        return f"{head}: {line}; {self.samples - self.ended} of all {self.samples} ran to the budget without ending"

    def record(self) -> dict[str, int]:
        """What run.json records (beside the fixed `forcing` setting, which a rerun must match)."""
        return {"waits": self.waits, "samples_forced": self.samples_forced, "samples": self.samples}

    def warning(self, forcing: Forcing) -> str | None:
        """Why `--wait N` inserted nothing, or None when it inserted something (or there was no sample to force).

        Nothing inserted is a correct outcome when every sample spent its budget thinking, so it is a warning, not a
        failure; but the usual cause is a delimiter the model never writes, and then the run is a plain generation
        recorded as a forced one.
        """
        if not forcing.wait or self.waits or not self.samples or forcing.s1 is not None:
            return None  # s1 mode forces every sample (its end of thinking) and turns EOS into a wait too
        ended = (f" ({self.ended} of them ended with EOS without writing it)"
                 if self.ended and not forcing.end.is_eos else "")  # fmt: skip
        return (
            f"--wait {forcing.wait} inserted nothing: none of the {self.samples} samples ended its thinking with "
            f"{forcing.end.text!r} before its budget{ended}. If the model ends its thinking with another text, name it "
            "with --think-end TEXT (in a new --out); as it is, these samples are plain, unforced ones"
        )


def forcing_head(mode: str, wait: int, wait_text: str | None, think_end: str | None) -> str:
    """`budget forcing (wait=2, "Wait" for "</think>")`: the texts in double quotes, newlines escaped."""

    def quoted(text: str | None) -> str:
        return json.dumps(text, ensure_ascii=False) if text is not None else "?"

    prefix = "s1 " if mode == "s1" else ""
    return f"budget forcing ({prefix}wait={wait}, {quoted(wait_text)} for {quoted(think_end)})"


def continuation_seed(seed: int, index: int) -> int:
    """The 63-bit seed of a sample's `index`-th continuation (index >= 1): a function of the sample's seed alone."""
    digest = hashlib.sha256(f"{seed}\x1fcontinuation\x1f{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class _Sample:
    """One sample's state across rounds: the response so far and what was inserted into it."""

    request: GenerationRequest
    seed: int
    budget: int
    logprobs: list[float] | None
    ids: list[int] = field(default_factory=list)
    inserted: list[int] = field(default_factory=list)
    insertions: int = 0
    rounds: int = 0
    forced_out: bool = False  # done forcing: the next round runs with the plain spec
    finish: FinishReason = "length"
    error: str | None = None
    first: Completion | None = None

    def extend(self, ids: Sequence[int], logprobs: Sequence[float] | None) -> None:
        self.ids.extend(ids)
        if self.logprobs is not None and logprobs is not None:
            self.logprobs.extend(logprobs)
        else:
            self.logprobs = None  # one round without logprobs (a server that gave none): none at all

    def continuation(self) -> GenerationRequest:
        # The text stays the original prompt's (no backend reads it); the ids carry the response so far.
        seeds = (continuation_seed(self.seed, self.rounds),)
        ids = self.request.prompt_token_ids + tuple(self.ids)
        return GenerationRequest(self.request.key, self.request.prompt, ids, seeds, self.budget - len(self.ids))

    def completion(self, tokenizer: Any) -> Completion:
        if self.error is not None:
            return Completion((), "error", "", None, self.error)
        assert self.first is not None
        if self.rounds == 1 and not self.inserted and self.finish == self.first.finish_reason:
            return replace(self.first, inserted=())
        logprobs = tuple(self.logprobs) if self.logprobs is not None else None
        text = tokenizer.decode(self.ids, skip_special_tokens=True)
        return Completion(tuple(self.ids), self.finish, text, logprobs, None, tuple(self.inserted))


def generate_forced(
    backend: Backend, requests: Sequence[GenerationRequest], spec: SamplingSpec, forcing: Forcing
) -> list[list[Completion]]:
    """`backend.generate(requests, spec)` with budget forcing: per request one Completion per seed, each with its
    `inserted` spans; the rounds run until every sample has ended or spent its budget."""
    samples = [
        _Sample(r, seed, r.max_tokens or spec.max_tokens, [] if spec.logprobs else None)
        for r in requests
        for seed in r.seeds
    ]
    stops = tuple(dict.fromkeys((*spec.stop_token_ids, *forcing.stop_ids)))
    forcing_spec = replace(spec, stop_token_ids=stops)
    first = [c for group in backend.generate(requests, forcing_spec if forcing.wait else spec) for c in group]
    if len(first) != len(samples):
        raise RuntimeError(f"engine returned {len(first)} completions for {len(samples)} requested samples")
    if getattr(backend, "token_ids_source", "engine") != "engine":
        # Re-tokenized text lacks a stop token the server left out of it: forcing would silently do nothing.
        raise UserError(f"budget forcing needs the engine's token ids, and the {backend.name} backend gave only text; "
                        "use a server that returns token_ids (vLLM) or an offline backend")  # fmt: skip
    for sample, completion in zip(samples, first, strict=True):
        sample.first = completion
    pending = [s for s, c in zip(samples, first, strict=True) if _absorb(s, c, forcing)]
    while pending:
        # Split before either call: absorbing a round may finish a sample's forcing, which starts in the next round.
        groups = [
            ([s for s in pending if not s.forced_out], forcing_spec),
            ([s for s in pending if s.forced_out], spec),
        ]
        pending = []
        for group, round_spec in groups:
            if group:
                outputs = backend.generate([s.continuation() for s in group], round_spec)
                pending += [s for s, [c] in zip(group, outputs, strict=True) if _absorb(s, c, forcing)]
    return regroup([s.completion(backend.tokenizer) for s in samples], requests)


def _absorb(sample: _Sample, completion: Completion, forcing: Forcing) -> bool:
    """Fold one round's completion into `sample`; True when the sample needs another round."""
    sample.rounds += 1
    if completion.finish_reason == "error" or completion.error is not None:
        where = f" (budget forcing, round {sample.rounds})" if sample.rounds > 1 else ""
        sample.error = f"{completion.error or 'failed (no error message)'}{where}"
        return False
    new = list(completion.token_ids)
    logprobs = completion.logprobs
    forcing_now = not sample.forced_out and sample.insertions < forcing.wait
    at = forcing.end.find(new) if forcing_now else None
    if at is None:
        sample.extend(new, logprobs)
        sample.finish = completion.finish_reason
        return False
    start = len(sample.ids) + at
    width = len(forcing.wait_ids)
    if start + width < sample.budget:
        sample.extend(new[:at], logprobs[:at] if logprobs is not None else None)
        sample.inserted += [start, start + width]
        sample.extend(forcing.wait_ids, [math.nan] * width)
        sample.insertions += 1
        sample.forced_out = sample.insertions == forcing.wait
        return True
    # No room for the wait text and one more token: the thinking ends where the model ended it.
    sample.extend(new, logprobs)
    stopped_by_us = bool(forcing.stop_ids) and completion.finish_reason == "stop" and at + 1 == len(new)
    if not stopped_by_us:  # the round ran on past the delimiter (EOS or multi-token delimiter): it is the answer
        sample.finish = completion.finish_reason
        return False
    if len(sample.ids) >= sample.budget:
        sample.finish = "length"  # a plain generation would have been cut here too
        return False
    sample.forced_out = True
    return True


@dataclass
class _S1Sample(_Sample):
    """One sample's thinking across s1 rounds: ids, the harness's joined text (rounds' texts and wait texts), spans."""

    text: str = ""
    finish: FinishReason = "length"
    error: str | None = None

    def extend(self, ids: Sequence[int], logprobs: Sequence[float] | None) -> None:
        self.ids.extend(ids)
        if self.logprobs is not None and logprobs is not None:
            self.logprobs.extend(logprobs)
        else:
            self.logprobs = None

    def insert(self, ids: Sequence[int]) -> None:
        self.inserted += [len(self.ids), len(self.ids) + len(ids)]
        self.extend(ids, [math.nan] * len(ids))

    def strip(self, stops: Sequence[int]) -> None:
        """The harness's `cont[-len(toks):] == toks` loop over its one-token stops, in order."""
        for stop in stops:
            if self.ids and self.ids[-1] == stop:
                self.ids.pop()
                if self.logprobs is not None:
                    self.logprobs.pop()

    def cut(self) -> None:
        """The thinking's first `budget` ids (the harness cuts once, after the rounds); spans past it go."""
        self.ids = self.ids[: self.budget]
        if self.logprobs is not None:
            self.logprobs = self.logprobs[: self.budget]
        spans = [(a, min(b, self.budget)) for a, b in zip(self.inserted[::2], self.inserted[1::2], strict=True)]
        self.inserted = [x for a, b in spans if a < self.budget for x in (a, b)]

    def request_after(self, index: int, max_tokens: int) -> GenerationRequest:
        seeds = (self.seed if index == 0 else continuation_seed(self.seed, index),)
        ids = self.request.prompt_token_ids + tuple(self.ids)
        return GenerationRequest(self.request.key, self.request.prompt, ids, seeds, max_tokens)

    def fail(self, completion: Completion, where: str) -> None:
        self.error = f"{completion.error or 'failed (no error message)'} (s1 budget forcing, {where})"


def generate_s1(
    backend: Backend, requests: Sequence[GenerationRequest], spec: SamplingSpec, forcing: Forcing
) -> list[list[Completion]]:
    """`backend.generate(requests, spec)` the way s1's harness forces it (the module's `s1` rules), at the thinking
    budget `spec.max_tokens` (a request's own `max_tokens` when set): per request one Completion per seed holding
    thinking, appended end of thinking and answer, the appended ids and waits in `inserted`."""
    s1 = forcing.s1
    if s1 is None:
        raise ValueError("generate_s1 needs a Forcing in s1 mode")
    if getattr(backend, "token_ids_source", "engine") != "engine":
        raise UserError(f"budget forcing needs the engine's token ids, and the {backend.name} backend gives only "
                        "text; use a server that returns token_ids (vLLM) or an offline backend")  # fmt: skip
    samples = [
        _S1Sample(r, seed, r.max_tokens or spec.max_tokens, [] if spec.logprobs else None)
        for r in requests
        for seed in r.seeds
    ]
    thinking = replace(spec, stop_token_ids=tuple(dict.fromkeys((*spec.stop_token_ids, *s1.strip_ids))), min_tokens=1)
    active = samples
    for index in range(forcing.wait + 1):
        if not active:
            break
        outputs = backend.generate([s.request_after(index, s.budget) for s in active], thinking)
        going = []
        for sample, [completion] in zip(active, outputs, strict=True):
            if completion.finish_reason == "error" or completion.error is not None:
                sample.fail(completion, f"round {index + 1}")
                continue
            sample.extend(completion.token_ids, completion.logprobs)
            sample.text += completion.text
            if completion.finish_reason == "length" or index == forcing.wait:
                sample.finish = completion.finish_reason
                continue
            sample.strip(s1.strip_ids)
            sample.insert(forcing.wait_ids)
            sample.text += forcing.wait_text
            going.append(sample)
        active = going
    answering = [s for s in samples if s.error is None]
    for sample in answering:
        sample.cut()
        sample.strip(s1.strip_ids)
        if sample.finish == "length":
            sample.insert(s1.final_ids if sample.text.endswith("\n") else s1.newline_ids + s1.final_ids)
        else:
            sample.insert(s1.end_ids)
    answer_spec = replace(spec, max_tokens=s1.answer_tokens)
    if s1.answer_temperature is not None:
        answer_spec = replace(answer_spec, temperature=s1.answer_temperature)
    answers = backend.generate([s.request_after(ANSWER_ROUND, s1.answer_tokens) for s in answering], answer_spec)
    done: dict[int, Completion] = {}
    for sample, [completion] in zip(answering, answers, strict=True):
        if completion.finish_reason == "error" or completion.error is not None:
            sample.fail(completion, "answer phase")
            continue
        sample.extend(completion.token_ids, completion.logprobs)
        logprobs = tuple(sample.logprobs) if sample.logprobs is not None else None
        text = backend.tokenizer.decode(sample.ids, skip_special_tokens=True)
        done[id(sample)] = Completion(tuple(sample.ids), completion.finish_reason, text, logprobs, None,
                                      tuple(sample.inserted))  # fmt: skip
    completions = [done.get(id(s)) or Completion((), "error", "", None, s.error) for s in samples]
    return regroup(completions, requests)
