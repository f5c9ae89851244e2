"""The demo's hand-set tiny model: a Qwen3 checkpoint whose chance of a correct boxed answer grows with its tokens.

`build_explorer_model(dir)` saves a one-layer Qwen3 model whose weights are set by hand (no training), with the tiny
tokenizer (`tiny_model.build_tokenizer`) at a quarter of its vocabulary. The model is a Markov chain over tokens: it
thinks in a random walk over words, and after every word it closes its thinking with a per-problem chance `1 / thinking`
(so its thinking length is geometric with mean `thinking`); then it writes `</think>So \\boxed{X}` and EOS, where X is
the problem's right answer with chance `accuracy` and a fixed wrong one (its slip) otherwise. Cut to a budget of B
tokens (the e3 prefix policy), a sample holds the right answer with chance `accuracy * (1 - (1 - 1/thinking) ** (B -
answer tokens))` (`chance_correct`): pass@1 rises with B and flattens towards the mean accuracy, late for the problems
that think long. The problem reaches the model through its prompt: an attention head finds the one token that only that
problem's prompt holds (its marker) and copies the problem's code to every later position, and MLP neurons turn (token,
problem) into the problem's answer states, so each problem has its own answers. The logits are set for temperature 1 and
top-p 1 (the checkpoint's generation config says so); at the CLI's defaults (0.6, 0.95) top-p cuts the close away on
every problem that thinks over 10 words on average, and those never answer. It is no model of reasoning, and this module
does not evaluate it: `dev/demo.py` runs the real pipeline on it. Only the bundled `demo` problems have a difficulty
(`DIFFICULTIES`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.records import Problem

EXPLORER_BUILDER = "e3eval dev explorer-model v1"  # in e3eval_tiny.json: the demo rebuilds a model not made by this
ANSWER_PREFIX = "So \\boxed{"
# A quarter of the tiny model's vocabulary: the output layer and the sampler's noise, most of a CPU step, shrink with
# it, and the answers still fit (numbers split into more tokens).
VOCAB_SIZE = 1024
TEMPERATURE = 1.0  # the sampling the logits are set for
TOP_P = 1.0
LOGIT = 40.0  # an allowed successor's logit (before its log-chance); every other token's is about 0
THINKING_WORDS = 32
THINKING_FANOUT = (1, 7, 19)  # a thinking word's successors: the words this far along the list (a random walk)
_GATE = 10.0  # an MLP neuron's pre-activation when its token is present: silu is linear enough there
# q/k norm weight on the marker dimension: the marker's attention score is _QK^2 * sqrt(32) = 40, so it takes all the
# weight (the rest get e^-40 each, on values of 0); a higher score makes the others' weights denormal floats, which
# slow a CPU's attention fourfold.
_QK = 2.66
_ROPE_DIM = 15  # the head dimension RoPE turns slowest (theta^(-30/32) per position), so the score ignores distance


@dataclass(frozen=True)
class Difficulty:
    """How the model does on one problem."""

    problem_id: str
    written: str  # the right answer as the model writes it inside \boxed{} (graded equal to the gold)
    slip: str  # the wrong answer it writes otherwise
    thinking: float  # mean thinking tokens before it answers
    accuracy: float  # chance that its answer, once written, is right


# The answers are written without nested braces (`3/4`, not `\frac{3}{4}`): the model's state is (token, problem),
# so a token cannot be followed by one thing inside an answer and another later in the same answer.
DIFFICULTIES = (
    Difficulty("demo-01", "391", "381", 6, 0.95),
    Difficulty("demo-02", "2", "4", 8, 0.9),
    Difficulty("demo-03", "720", "540", 10, 0.95),
    Difficulty("demo-04", "3/4", "0.6", 12, 0.9),
    Difficulty("demo-05", "9", "8", 16, 0.85),
    Difficulty("demo-06", "\\sqrt2", "2", 20, 0.9),
    Difficulty("demo-07", "56", "336", 24, 0.8),
    Difficulty("demo-08", "2\\pi", "\\pi", 30, 0.85),
    Difficulty("demo-09", "97", "91", 40, 0.8),
    Difficulty("demo-10", "7", "6", 50, 0.75),
    Difficulty("demo-11", "1/8", "8", 60, 0.8),
    Difficulty("demo-12", "24", "16", 80, 0.7),
    Difficulty("demo-13", "1275", "2550", 100, 0.7),
    Difficulty("demo-14", "1", "49", 150, 0.6),
    Difficulty("demo-15", "24", "48", 200, 0.65),
    Difficulty("demo-16", "17", "37", 300, 0.6),
)


@dataclass(frozen=True)
class Plan:
    """The token-level design: what follows what, for which problem, before it is written into weights."""

    thinking: tuple[int, ...]  # the thinking words, in walk order
    markers: tuple[int, ...]  # per difficulty, the token only that problem's prompt holds
    prefix: tuple[int, ...]  # `</think>` and ANSWER_PREFIX's tokens, up to `{`
    # Per difficulty, (right, wrong): the tokens from ANSWER_PREFIX's last (`{`) to the closing `}`, both included.
    answers: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    close: int  # `}` then EOS


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_tokens(tokenizer: Any, written: str) -> tuple[int, ...]:
    """The tokens of `written` as the model writes it after ANSWER_PREFIX (the closing `}` not included)."""
    from e3eval.errors import UserError

    prefix, full = _ids(tokenizer, ANSWER_PREFIX), _ids(tokenizer, ANSWER_PREFIX + written + "}")
    close = _ids(tokenizer, "}")
    if full[: len(prefix)] != prefix or full[-len(close) :] != close or len(close) != 1:
        raise UserError(f"the tokenizer merges {written!r} with the text around it; pick another spelling")
    return tuple(full[len(prefix) : -1])


def _markers(tokenizer: Any, problems: Sequence[Problem], avoid: set[int]) -> tuple[int, ...]:
    """Per problem, a token in its prompt under every template and in no other problem's prompt under any."""
    from e3eval.errors import UserError
    from e3eval.prompts import TEMPLATES, PromptSpec, render_prompt

    specs = [PromptSpec(template=t, chat=c, thinking=k) for t in TEMPLATES for c, k in ((True, None), (True, False),
                                                                                      (False, None))]  # fmt: skip
    always, ever = [], []
    for problem in problems:
        seen = [set(render_prompt(problem, spec, tokenizer)[1]) for spec in specs]
        always.append(set.intersection(*seen))
        ever.append(set.union(*seen))
    markers = []
    for i, problem in enumerate(problems):
        others = set().union(*(e for j, e in enumerate(ever) if j != i))
        # The longest text first: a word is a safer marker than a digit (and the choice stays fixed).
        unique = sorted(always[i] - others - avoid, key=lambda t: (-len(tokenizer.decode([t])), t))
        if not unique:
            raise UserError(f"problem {problem.problem_id}: no token of its prompt is its own")
        markers.append(unique[0])
    return tuple(markers)


def explorer_plan(tokenizer: Any, problems: Sequence[Problem], difficulties: Sequence[Difficulty] = DIFFICULTIES,
                  seed: int = 0) -> Plan:  # fmt: skip
    """The design for `problems` (each needs a difficulty); a UserError when the tokenizer makes it impossible."""
    from e3eval.dev.tiny_model import CORPUS_WORDS, chain_candidates
    from e3eval.errors import UserError
    from e3eval.grade import grade_answer

    by_id = {d.problem_id: d for d in difficulties}
    missing = [p.problem_id for p in problems if p.problem_id not in by_id]
    if missing:
        raise UserError(f"the hand-set model has no difficulty for {', '.join(missing)}")
    chosen = [by_id[p.problem_id] for p in problems]
    prefix = (tokenizer.convert_tokens_to_ids("</think>"), *_ids(tokenizer, ANSWER_PREFIX))
    close = _ids(tokenizer, "}")[0]
    answers = []
    for problem, difficulty in zip(problems, chosen, strict=True):
        if (
            not grade_answer(problem.answer, difficulty.written).correct
            or grade_answer(problem.answer, difficulty.slip).correct
        ):
            raise UserError(f"{problem.problem_id}: {difficulty.written!r} must be right and {difficulty.slip!r} "
                            "wrong")  # fmt: skip
        texts = (difficulty.written, difficulty.slip)
        right, wrong = ((prefix[-1], *answer_tokens(tokenizer, text), close) for text in texts)
        if not _one_branch(right, wrong, set(prefix[:-1])):
            raise UserError(f"{problem.problem_id}: the tokens of {difficulty.written!r} and {difficulty.slip!r} "
                            "need a state other than (token, problem)")  # fmt: skip
        answers.append((right, wrong))
    used = {*prefix, close, *(t for pair in answers for path in pair for t in path)}
    markers = _markers(tokenizer, problems, used)
    # Whole words of the tokenizer's corpus, each one token with its leading space, so the thinking reads as words.
    words = {f" {word}" for word in CORPUS_WORDS}
    thinking = [t for t in chain_candidates(tokenizer, seed) if t not in used and t not in markers
                and tokenizer.decode([t]) in words][:THINKING_WORDS]  # fmt: skip
    if len(thinking) < THINKING_WORDS:
        raise UserError(f"the tokenizer has only {len(thinking)} usable thinking words")
    return Plan(tuple(thinking), markers, prefix, tuple(answers), close)


def branch(right: Sequence[int], wrong: Sequence[int]) -> int:
    """Where the right and the wrong answer part: the index of their first different token."""
    return next(i for i, (a, b) in enumerate(zip(right, wrong, strict=False)) if a != b)


def _one_branch(right: tuple[int, ...], wrong: tuple[int, ...], prefix: set[int]) -> bool:
    """Whether (token, problem) states can write both answers: every token has one successor, except the one before
    the paths part, which occurs once in each; none of the prefix before `{`, no `{` or `}` inside."""
    if right == wrong or (set(right) | set(wrong)) & prefix or {right[0], right[-1]} & {*right[1:-1], *wrong[1:-1]}:
        return False
    k = branch(right, wrong)
    successors: dict[int, set[int]] = {}
    for token, successor in (*itertools.pairwise(right), *itertools.pairwise(wrong)):
        successors.setdefault(token, set()).add(successor)
    fork = right[k - 1]
    once = right[:-1].count(fork) == 1 and wrong[:-1].count(fork) == 1
    return once and all(len(s) == 1 for token, s in successors.items() if token != fork)


def chance_correct(difficulty: Difficulty, budget: int, answer_length: int) -> float:
    """The chance that a sample cut to `budget` tokens holds the right boxed answer: its thinking (at least one word,
    geometric) and the `answer_length` tokens after it (`</think>` to the closing `}`) must fit."""
    room = budget - answer_length
    return difficulty.accuracy * (1 - (1 - 1 / difficulty.thinking) ** room) if room > 0 else 0.0


@dataclass(frozen=True)
class _Layout:
    """Hidden dimensions, one per thing the model tells apart: a token's, a problem's (its marker's embedding, and
    the code attention copies from it), and a (token, problem) state's; dimension 0 holds every token the design
    does not name."""

    tokens: dict[int, int]
    problems: tuple[int, ...]
    states: dict[tuple[int, int], int]
    size: int


def _layout(plan: Plan) -> _Layout:
    names = [*plan.thinking, *plan.prefix, plan.close]
    names += sorted({t for pair in plan.answers for path in pair for t in path} - set(names))
    tokens = {token: 1 + i for i, token in enumerate(dict.fromkeys(names))}
    start = 1 + len(tokens)
    problems = tuple(start + i for i in range(len(plan.answers)))
    start += len(problems)
    conditioned = [(t, p) for p, pair in enumerate(plan.answers) for t in dict.fromkeys((*pair[0][:-1],
                                                                                          *pair[1][:-1]))]  # fmt: skip
    states = {state: start + i for i, state in enumerate(conditioned)}
    # A multiple of 32 for the matmuls; the output layer's cost grows with it, and it is most of a step's.
    return _Layout(tokens, problems, states, -(-(start + len(states)) // 32) * 32)


def _logits(plan: Plan, difficulties: Sequence[Difficulty], eos: int) -> tuple[dict, dict, dict]:
    """(token -> {successor: logit}, (token, problem) -> {successor: logit}, problem -> {token: logit bias})."""
    walk, fanout = plan.thinking, THINKING_FANOUT
    free: dict[int | None, dict[int, float]] = {None: {walk[0]: LOGIT}}  # None: the unnamed tokens (the prompt's end)
    for i, token in enumerate(walk):
        free[token] = {walk[(i + step) % len(walk)]: LOGIT for step in fanout} | {plan.prefix[0]: LOGIT}
    free |= {token: {successor: LOGIT} for token, successor in itertools.pairwise(plan.prefix)}
    # An answer token outside its own problem's states (which no sample reaches) ends the sample.
    free |= {token: {eos: LOGIT} for pair in plan.answers for path in pair for token in path[1:-1]}
    free[plan.close] = {eos: LOGIT}
    bound: dict[tuple[int, int], dict[int, float]] = {}
    bias: dict[int, dict[int, float]] = {}
    for p, ((right, wrong), difficulty) in enumerate(zip(plan.answers, difficulties, strict=True)):
        for token, successor in (*itertools.pairwise(right), *itertools.pairwise(wrong)):
            bound[(token, p)] = {successor: LOGIT}
        k = branch(right, wrong)
        bound[(right[k - 1], p)] = {right[k]: LOGIT + math.log(difficulty.accuracy),
                                    wrong[k]: LOGIT + math.log1p(-difficulty.accuracy)}  # fmt: skip
        # After a thinking word, `</think>` has the fanout's logit plus this: its chance is 1 / thinking.
        hazard = 1 / difficulty.thinking
        bias[p] = {plan.prefix[0]: math.log(len(fanout) * hazard / (1 - hazard))}
    return free, bound, bias


def build_explorer_model(out_dir: Path, seed: int = 0) -> Path:
    """Write the tiny tokenizer and the hand-set model for the bundled demo problems to `out_dir`; returns it.

    `e3eval_tiny.json` beside the weights records the builder, the sampling it is set for and every difficulty."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM
    from transformers.utils import logging as hf_logging

    from e3eval.datasets import demo_problems
    from e3eval.dev.tiny_model import build_tokenizer, qwen3_config

    hf_logging.disable_progress_bar()
    tokenizer, problems = build_tokenizer(seed, VOCAB_SIZE), demo_problems()
    by_id = {d.problem_id: d for d in DIFFICULTIES}
    difficulties = [by_id[p.problem_id] for p in problems]
    plan = explorer_plan(tokenizer, problems, difficulties, seed)
    layout = _layout(plan)
    eos, pad = tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = qwen3_config(tokenizer, hidden_size=layout.size, intermediate_size=max(32, len(layout.states)),
                          num_hidden_layers=1, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        _write_weights(model, config, plan, layout, _logits(plan, difficulties, eos))
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=pad, do_sample=True,
                                               temperature=TEMPERATURE, top_p=TOP_P)  # fmt: skip
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    meta = {
        "builder": EXPLORER_BUILDER,
        "note": "hand-set, not trained: its chance of a boxed answer grows with the tokens it spends",
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "sampling": {"temperature": TEMPERATURE, "top_p": TOP_P},
        "answer_prefix": ANSWER_PREFIX,
        "difficulties": [d.__dict__ for d in difficulties],
        "markers": dict(zip([p.problem_id for p in problems], plan.markers, strict=True)),
        "thinking_token_ids": list(plan.thinking),
    }
    (out_dir / "e3eval_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def _write_weights(model: Any, config: Any, plan: Plan, layout: _Layout, logits: tuple[dict, dict, dict]) -> None:
    """Set the zeroed model's weights to `logits` (see the module docstring for the circuit)."""
    import torch

    size, eps = layout.size, config.rms_norm_eps
    inner = model.model
    layer = inner.layers[0]
    for norm in (layer.input_layernorm, layer.post_attention_layernorm, inner.norm, layer.self_attn.q_norm,
                 layer.self_attn.k_norm):  # fmt: skip
        norm.weight.fill_(1.0)
    embed = inner.embed_tokens.weight
    embed[:, 0] = 1.0  # the unnamed tokens
    # A marker's embedding is its problem's dimension: attention reads it there only from layer 0's input (the
    # embeddings), and copies it into that same dimension at every later position.
    for token, dim in (*layout.tokens.items(), *zip(plan.markers, layout.problems, strict=True)):
        embed[token] = 0.0
        embed[token, dim] = 1.0
    # Attention, head 0: every token queries along _ROPE_DIM, only markers answer; the marker's value is its problem.
    attention = layer.self_attn
    attention.q_proj.weight[_ROPE_DIM, [0, *layout.tokens.values()]] = 1.0
    attention.k_proj.weight[_ROPE_DIM, list(layout.problems)] = 1.0
    attention.q_norm.weight[_ROPE_DIM] = _QK
    attention.k_norm.weight[_ROPE_DIM] = _QK
    alone = math.sqrt(1 / size + eps)  # input_layernorm divides a lone one-hot by this
    for p, dim in enumerate(layout.problems):
        attention.v_proj.weight[p, dim] = alone
        attention.o_proj.weight[dim, p] = 1.0
    # MLP: neuron (token, problem) = silu(gate on the token) * (up on the problem); it swaps the token's dimension for
    # the state's. Two one-hots of 1 reach the norms, which scale each by `pair`.
    pair = 1 / math.sqrt(2 / size + eps)
    fired = float(torch.nn.functional.silu(torch.tensor(_GATE)))
    mlp = layer.mlp
    for n, ((token, p), dim) in enumerate(layout.states.items()):
        mlp.gate_proj.weight[n, layout.tokens[token]] = _GATE / pair
        mlp.up_proj.weight[n, layout.problems[p]] = 1.0 / pair
        mlp.down_proj.weight[dim, n] = 1.0 / fired
        mlp.down_proj.weight[layout.tokens[token], n] = -1.0 / fired
    free, bound, bias = logits
    head = model.lm_head.weight
    for token, successors in free.items():
        column = 0 if token is None else layout.tokens[token]
        for successor, logit in successors.items():
            head[successor, column] = logit / pair
    for state, successors in bound.items():
        for successor, logit in successors.items():
            head[successor, layout.states[state]] = logit / pair
    for p, biases in bias.items():
        for successor, logit in biases.items():
            head[successor, layout.problems[p]] = logit / pair
