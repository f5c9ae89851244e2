"""A tiny random-weight causal LM and a byte-level BPE tokenizer, built offline for tests and demos.

`build_tiny_model(dir)` trains a byte-level BPE tokenizer (ChatML chat template, `<think>` tags as added tokens) on a
seeded synthetic corpus of reasoning-trace text, then saves a ~1M-parameter Qwen3 causal LM with random weights next to
it via `save_pretrained`. Both load with `AutoTokenizer` / `AutoModelForCausalLM` from the local path, no network. The
model produces noise: it exists to exercise real tokenization, decoding and generation code, not to solve problems.
Qwen3 (not Qwen2) because transformers 5 swaps a custom Qwen2 tokenizer for Qwen's own, which changes the ids.

`build_stopping_model(dir, stop_after=N)` saves, with the same tokenizer, a Qwen3 model whose weights are set by hand
(no training) so that its next token depends only on the current token and follows a fixed successor map with a logit
gap of 40 (so sampling at temperature <= 1 follows it, in practice always): after any token outside the map
(the chat prompt's last token, an inserted "Wait") it starts a chain of N distinct "thinking" tokens, then `</think>`,
then `The answer is \\boxed{7}`, then EOS; after a forced-answer cue ending in `\\boxed{` it writes `7}` and EOS. It
exists to test budget forcing and forced answers (paper Sec. 6, Fig. 6) on a model whose thinking length is known.
The demo's hand-set model, whose thinking length is random and whose answers depend on the problem, is
`explorer_model.py`; it shares this module's tokenizer, corpus words (`CORPUS_WORDS`) and config (`qwen3_config`).
"""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
THINK_TOKENS = ["<think>", "</think>"]
VOCAB_SIZE = 4096
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}"
    "{%- endif %}"
    "{%- endif %}"
)

CORPUS_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "is",
    "we",
    "so",
    "let",
    "me",
    "first",
    "then",
    "now",
    "wait",
    "but",
    "check",
    "verify",
    "answer",
    "problem",
    "number",
    "sum",
    "product",
    "equation",
    "solve",
    "find",
    "compute",
    "therefore",
    "hence",
    "since",
    "because",
    "value",
    "integer",
    "prime",
    "divisible",
    "remainder",
    "alternatively",
    "another",
    "approach",
    "try",
    "again",
    "double-check",
    "hold",
    "on",
    "that",
    "gives",
    "means",
    "hmm",
    "okay",
    "right",
    "substitute",
    "back",
    "confirm",
    "result",
    "correct",
    "mistake",
    "recompute",
    "area",
    "triangle",
    "circle",
    "radius",
    "angle",
    "square",
    "root",
    "fraction",
    "probability",
    "expected",
    "count",
    "ways",
    "digits",
    "modulo",
    "factor",
    "polynomial",
    "roots",
    "coefficient",
    "sequence",
    "term",
]
_LATEX = [
    "\\frac{",
    "}{",
    "\\sqrt{",
    "\\boxed{",
    "\\cdot",
    "\\times",
    "\\left(",
    "\\right)",
    "\\pi",
    "\\binom{",
    "^{2}",
    "_{n}",
    "\\le",
    "\\ge",
    "\\neq",
    "\\equiv",
    "\\pmod{",
    "\\sum_{k=1}^{n}",
    "\\text{",
    "$",
    "$$",
]
_UNICODE = ["é", "π", "≤", "√", "∑", "→", "×", "°", "ß", "你好", "数学", "🙂", "∞", "Δ"]


def synthetic_corpus(seed: int = 0, lines: int = 6000) -> list[str]:
    """Seeded reasoning-flavoured text with LaTeX, digits and multi-byte characters, for tokenizer training."""
    rng = random.Random(seed)
    out = []
    for _ in range(lines):
        parts = []
        for _ in range(rng.randint(4, 18)):
            roll = rng.random()
            if roll < 0.55:
                parts.append(rng.choice(CORPUS_WORDS))
            elif roll < 0.75:
                parts.append(str(rng.randint(0, 10 ** rng.randint(1, 5))))
            elif roll < 0.93:
                parts.append(rng.choice(_LATEX) + str(rng.randint(0, 99)) + "}")
            else:
                parts.append(rng.choice(_UNICODE))
        line = " ".join(parts)
        out.append(line[0].upper() + line[1:] + rng.choice([".", "?", ":", ""]))
    return out


def build_tokenizer(seed: int = 0, vocab_size: int = VOCAB_SIZE):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(synthetic_corpus(seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        clean_up_tokenization_spaces=False,
        model_max_length=131072,
    )
    fast.add_tokens(THINK_TOKENS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def qwen3_config(tokenizer: Any, **shape: Any) -> Any:
    """A small Qwen3 config over `tokenizer` (4 heads of 32, 2 KV heads, 64k positions); `shape` sets the rest."""
    from transformers import Qwen3Config

    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    return Qwen3Config(vocab_size=len(tokenizer), num_attention_heads=4, num_key_value_heads=2, head_dim=32,
                       max_position_embeddings=65536, bos_token_id=pad_id, eos_token_id=eos_id, pad_token_id=pad_id,
                       **shape)  # fmt: skip


def build_tiny_model(out_dir: Path, seed: int = 0) -> Path:
    """Write a tokenizer and a ~1M-parameter random Qwen3 model to `out_dir`; returns the directory."""
    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(seed)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = qwen3_config(tokenizer, hidden_size=128, intermediate_size=384, num_hidden_layers=2,
                          tie_word_embeddings=True)  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, do_sample=True, temperature=0.6, top_p=0.95
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    n_params = sum(p.numel() for p in model.parameters())
    (out_dir / "e3eval_tiny.json").write_text(
        json.dumps({"builder": "e3eval dev tiny-model", "seed": seed, "parameters": n_params}, indent=2) + "\n"
    )
    return out_dir


# The stopping model. Attention and MLP outputs are zeroed, so the final hidden state of a position is its own token's
# embedding; each token of the successor map gets its own code, (u_i + u_j) / sqrt(2) for a pair of hidden dimensions
# (two codes share at most one dimension, so the successor's logit beats every other by half of STOP_LOGIT), and every
# other token shares dimension 0, whose successor is the chain's first token. Pair codes keep the model at the tiny
# model's width whatever N is; one-hot codes would need a dimension per chain token.
STOP_ANSWER = "7"  # the gold answer of demo-10 alone among the demo problems
# No leading newline: "\n\n" is two equal tokens, and a successor map cannot follow a token with two different ones.
STOP_ANSWER_TEXT = "The answer is \\boxed{7}"
FORCED_ANSWER_CUE = "\n\nFinal Answer: \\boxed{"
STOP_LOGIT = 80.0  # the successor's logit; every other token's is 0 or STOP_LOGIT / 2
_STOP_HIDDEN = 128  # C(127, 2) = 8001 pair codes, more than the vocabulary
_WAIT_TEXTS = ("Wait", " Wait", "\nWait", "\n\nWait", "Wait,", "wait")
_UNSAFE = ("boxed", "wait", "think", "answer")  # chain text must not look like an answer, a cue or a "Wait"


def _reserved_ids(tokenizer) -> set[int]:  # tokenizer: PreTrainedTokenizerFast
    """Ids the chain must avoid: special and added tokens, and every token of the answer, cue, "Wait" texts and the
    demo prompts under every template (so no prompt ends on a chain token)."""
    from e3eval.datasets import demo_problems
    from e3eval.prompts import TEMPLATES, PromptSpec, render_prompt

    reserved = set(tokenizer.all_special_ids) | set(tokenizer.get_added_vocab().values())
    for text in (STOP_ANSWER_TEXT, FORCED_ANSWER_CUE, *_WAIT_TEXTS):
        reserved.update(tokenizer(text, add_special_tokens=False)["input_ids"])
    for problem in demo_problems():
        for template in TEMPLATES:
            for chat, thinking in ((True, None), (True, False), (False, None)):
                spec = PromptSpec(template=template, chat=chat, thinking=thinking)
                reserved.update(render_prompt(problem, spec, tokenizer)[1])
    return reserved


def chain_candidates(tokenizer, seed: int = 0) -> list[int]:  # tokenizer: PreTrainedTokenizerFast
    """Token ids that may serve as thinking tokens, in the chain's order: unreserved words, then numbers, each group
    shuffled by `seed`. Words first so short chains read as text; no braces, backslashes or tags, so a response cut
    mid-thought holds no answer by accident; none containing "boxed", "wait", "think" or "answer"."""
    reserved = _reserved_ids(tokenizer)
    words, numbers = [], []
    for token_id in range(len(tokenizer)):
        text = tokenizer.decode([token_id]).strip()
        if token_id in reserved or any(part in text.lower() for part in _UNSAFE):
            continue
        if text.isalpha():
            words.append(token_id)
        elif text.isdigit():
            numbers.append(token_id)
    rng = random.Random(seed)
    rng.shuffle(words)
    rng.shuffle(numbers)
    return words + numbers


def stopping_successors(tokenizer, stop_after: int, seed: int = 0) -> tuple[list[int], dict[int, int]]:
    """The chain's N thinking-token ids and the successor map {token: next token} of the stopping model.

    Tokens outside the map are followed by the chain's first token. The cue's last token (`{`) is the answer's, so a
    forced answer follows the same map."""
    from e3eval.errors import UserError

    candidates = chain_candidates(tokenizer, seed)
    if not 1 <= stop_after <= len(candidates):
        raise UserError(f"--stop-after {stop_after}: must be between 1 and {len(candidates)} (usable tokens)")
    answer = tokenizer(STOP_ANSWER_TEXT, add_special_tokens=False)["input_ids"]
    cue_last = tokenizer(FORCED_ANSWER_CUE, add_special_tokens=False)["input_ids"][-1]
    think_close = tokenizer.convert_tokens_to_ids("</think>")
    if len(set(answer)) != len(answer) or cue_last not in answer:
        raise UserError(f"seed {seed}: the tokenizer splits {STOP_ANSWER_TEXT!r} so that no successor map fits")
    chain = candidates[:stop_after]
    sequence = [*chain, think_close, *answer, tokenizer.eos_token_id]
    return chain, dict(itertools.pairwise(sequence))


def build_stopping_model(out_dir: Path, stop_after: int, seed: int = 0) -> Path:
    """Write the tiny tokenizer and a hand-set Qwen3 model that thinks for exactly `stop_after` tokens to `out_dir`.

    `e3eval_tiny.json` beside the weights records the chain's token ids, the answer and the cue."""
    import math

    import torch
    from transformers import GenerationConfig, Qwen3ForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = build_tokenizer(seed)
    chain, successors = stopping_successors(tokenizer, stop_after, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    config = qwen3_config(tokenizer, hidden_size=_STOP_HIDDEN, intermediate_size=128, num_hidden_layers=1,
                          tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    codes = itertools.combinations(range(1, _STOP_HIDDEN), 2)
    embed = torch.zeros(config.vocab_size, _STOP_HIDDEN)
    embed[:, 0] = 1.0
    head = torch.zeros(config.vocab_size, _STOP_HIDDEN)
    # RMSNorm scales a code to sqrt(hidden / 2) per dimension: these head weights give the successor STOP_LOGIT.
    weight = STOP_LOGIT / math.sqrt(2 * _STOP_HIDDEN)
    for token, successor in successors.items():
        pair = list(next(codes))
        embed[token] = 0.0
        embed[token, pair] = 1.0
        head[successor, pair] = weight
    head[chain[0], 0] = STOP_LOGIT / math.sqrt(_STOP_HIDDEN)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(embed)
        model.lm_head.weight.copy_(head)
        model.model.norm.weight.fill_(1.0)
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    model.generation_config = GenerationConfig(
        eos_token_id=eos_id, pad_token_id=pad_id, do_sample=True, temperature=0.6, top_p=0.95
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    meta = {
        "builder": f"e3eval dev tiny-model --stop-after {stop_after}",
        "seed": seed,
        "parameters": sum(p.numel() for p in model.parameters()),
        "stop_after": stop_after,
        "chain_token_ids": chain,
        "answer": STOP_ANSWER,
        "answer_text": STOP_ANSWER_TEXT,
        "forced_answer_cue": FORCED_ANSWER_CUE,
    }
    (out_dir / "e3eval_tiny.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir
