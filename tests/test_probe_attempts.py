"""Attempt segmentation per preset on hand-built traces, the character-to-token boundary rule around multi-byte
characters, and the Fig. 13 attempt probes of the tiny model against log-probs computed by hand from one full
forward pass per context."""

from __future__ import annotations

from itertools import pairwise

import pytest

from e3eval.analysis.segments import attempt_spans
from e3eval.analysis.steps import count_steps, lexicon_from, thinking_part
from e3eval.errors import UserError
from e3eval.truncate import PrefixDecoder

COUNTDOWN = (
    "Let me try 3 + 4 = 7.\n\n\n\n7 * 2 = 14, not 24.\n\n  \n\nTry 8 * 3 = 24 ≠ 25 🙂\n\n</think>\n<answer>8*3</answer>"
)
MATH = "x ≠ 2 🙂. Alternatively, set x = 3. Hmm 🙂≠. Let me try another approach.\nWait, no."
E3_MATH = "Start.\nBut wait, 2 ≠ 3.\nAlternatively use 🙂.\n  alternatively no\nawait it"
MULT = "12 x 34:\n12 x 4 = 48\n12 x 30 = 360\nCheck: 48 + 360 = 408 ✓\n48 + 360 = 408\n<answer>408</answer>"

SEGMENTS = [
    # Separators and blank paragraphs stay with the attempt they close; the answer after </think> is no attempt.
    (
        "countdown",
        COUNTDOWN,
        ["Let me try 3 + 4 = 7.\n\n\n\n", "7 * 2 = 14, not 24.\n\n  \n\n", "Try 8 * 3 = 24 ≠ 25 🙂\n\n"],
    ),
    ("countdown", "\n\nfirst\n\nsecond", ["\n\nfirst\n\n", "second"]),  # a blank start opens the first attempt
    ("countdown", "a\n\n\nb", ["a\n\n", "\nb"]),  # three newlines: a separator, then a paragraph "\nb"
    ("countdown", "no think tag at all", ["no think tag at all"]),
    ("countdown", " \n\n </think> answer", []),
    (
        "math",
        MATH,
        ["x ≠ 2 🙂. ", "Alternatively, set x = 3. Hmm 🙂≠. ", "Let me try another approach.\n", "Wait, no."],
    ),
    ("math", "  Wait. Then x = 🙂.", ["  Wait. Then x = 🙂."]),  # a flagged first sentence opens attempt 1
    ("math", "", []),
    # "alternatively" in lower case after spaces is not the e3 rule's prefix; "await" contains "wait".
    ("e3-math", E3_MATH, ["Start.\n", "But wait, 2 ≠ 3.\n", "Alternatively use 🙂.\n  alternatively no\n", "await it"]),
    ("e3-math", "Wait, 🙂\nok", ["Wait, 🙂\nok"]),
    # A Check: line stays in the attempt it checks.
    (
        "mult",
        MULT,
        [
            "12 x 34:\n",
            "12 x 4 = 48\n",
            "12 x 30 = 360\nCheck: 48 + 360 = 408 ✓\n",
            "48 + 360 = 408\n<answer>408</answer>",
        ],
    ),
]


@pytest.mark.parametrize(("preset", "text", "expected"), SEGMENTS)
def test_attempt_spans_hand_built(preset, text, expected):
    spans = attempt_spans(text, preset)
    assert [text[a:b] for a, b in spans] == expected
    region = thinking_part(text) if preset == "countdown" else text
    if spans:  # contiguous from 0: joined, the attempts are the segmented text exactly
        assert spans[0][0] == 0 and spans[-1][1] == len(region)
        assert all(end == start for (_, end), (start, _) in pairwise(spans))
        assert "".join(text[a:b] for a, b in spans) == region


def test_attempt_spans_agree_with_step_counts():
    assert len(attempt_spans(COUNTDOWN, "countdown")) == count_steps(COUNTDOWN, "countdown").n_attempts == 3
    # The other presets count flagged steps; a trace opening with an unflagged one has one attempt more.
    assert len(attempt_spans(MATH, "math")) == count_steps(MATH, "math").n_attempts + 1 == 4
    assert len(attempt_spans(E3_MATH, "e3-math")) == count_steps(E3_MATH, "e3-math").n_attempts + 1 == 4
    assert len(attempt_spans(MULT, "mult")) == count_steps(MULT, "mult").n_attempts + 1 == 4


def test_attempt_spans_use_a_given_lexicon():
    lexicon = lexicon_from(["check"], ["retry"])
    text = "Go 🙂. Alternatively no. Retry ≠ 2. Check."
    assert [text[a:b] for a, b in attempt_spans(text, "math", lexicon)] == [
        "Go 🙂. Alternatively no. ",
        "Retry ≠ 2. Check.",
    ]


def test_unknown_preset_lists_the_presets():
    with pytest.raises(UserError, match=r"unknown attempt preset 'cdown'.*countdown.*mult"):
        attempt_spans("text", "cdown")


@pytest.fixture(scope="module", params=["byte-table", "tokenizer"])
def decoder(request, tokenizer):
    decoder = PrefixDecoder(tokenizer, allow_fast=request.param == "byte-table")
    assert decoder.path == request.param
    return decoder


def test_boundaries_inside_multibyte_characters(tokenizer, decoder):
    from e3eval.probes.attempt_logprobs import token_spans

    text = "a ≠ b"  # characters: a=0, space=1, ≠=2, space=3, b=4
    ids = tokenizer.encode(text)
    # "≠" is three bytes; the first travels with the space before it, the other two are tokens of their own.
    assert tokenizer.convert_ids_to_tokens(ids) == ["a", "Ġâ", "ī", "ł", "Ġb"]
    # A boundary before "≠" goes to the first token starting inside it (token 2): the straddling token 1 stays
    # behind. A boundary after "≠" goes to " b" (token 4).
    assert token_spans(decoder, ids, text, [(0, 2), (2, 3), (3, 5)]) == [(0, 2), (2, 4), (4, 5)]
    # A boundary at the space (char 1) is where token 1 starts.
    assert token_spans(decoder, ids, text, [(0, 1), (1, 5)]) == [(0, 1), (1, 5)]
    emoji = "x 🙂y"
    emoji_ids = tokenizer.encode(emoji)
    assert tokenizer.convert_ids_to_tokens(emoji_ids) == ["x", "ĠðŁĻĤ", "y"]
    # Boundaries before and after the emoji: " 🙂" starts at the space, before the emoji's boundary.
    assert token_spans(decoder, emoji_ids, emoji, [(0, 2), (2, 3), (3, 4)]) == [(0, 2), (2, 3)]


def test_attempts_without_a_token_are_dropped(tokenizer, decoder):
    from e3eval.probes.attempt_logprobs import token_spans

    text = "therefore x"
    ids = tokenizer.encode(text)
    assert tokenizer.convert_ids_to_tokens(ids) == ["t", "herefore", "Ġ", "x"]
    # Both boundaries fall inside "herefore" (chars 1-8), which stays with the first attempt, where it starts; the
    # middle attempt has no token of its own.
    assert token_spans(decoder, ids, text, [(0, 3), (3, 6), (6, 11)]) == [(0, 2), (2, 4)]


def test_text_that_is_not_the_decode_of_the_ids_is_refused(tokenizer, decoder):
    from e3eval.probes.attempt_logprobs import token_spans

    ids = tokenizer.encode("a ≠ b")
    with pytest.raises(UserError, match="not the decode of its token ids"):
        token_spans(decoder, ids, "a = b", [(0, 5)])


ATTEMPTS = ["Let me try 3 + 4 = 7.\n\n", "7 * 2 = 14, not 24 🙂\n\n", "Try 8 * 3 = 24 ≠ 25.\n\n", "8 * 3 = 24 ✓\n\n"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()


def _logprob(model, ids: list[int], start: int, end: int) -> float:
    """sum of log p(ids[t] | ids[:t]) for t in [start, end), from one full forward pass with full logits."""
    import torch

    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
    return sum(float(logp[t - 1, ids[t]]) for t in range(start, end))


def _trace(tokenizer):
    """Prompt ids, response ids, its text, and each attempt's token ids: each attempt is encoded on its own so that
    its tokens are known by construction."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Use 3, 4, 8 to make 24."}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer.encode(prompt)
    attempts = [tokenizer.encode(a) for a in ATTEMPTS]
    tail = [*tokenizer.encode("</think>\n<answer>8*3</answer>"), tokenizer.convert_tokens_to_ids("<|im_end|>")]
    response_ids = [t for a in attempts for t in a] + tail
    text = tokenizer.decode(response_ids, skip_special_tokens=True)
    assert text == "".join(ATTEMPTS) + "</think>\n<answer>8*3</answer>"
    return prompt_ids, response_ids, text, attempts


def test_attempt_probes_equal_hand_computed_log_probs(tiny, tokenizer):
    from e3eval.probes.attempt_logprobs import attempt_probes
    from e3eval.probes.forward import ProbeModel

    prompt_ids, response_ids, text, attempts = _trace(tokenizer)
    probes = attempt_probes(ProbeModel.wrap(tiny, "tiny"), prompt_ids, response_ids, text, "countdown", tokenizer)
    assert [p.k for p in probes] == [2, 3, 4]
    for probe in probes:
        k = probe.k
        before = prompt_ids + [t for a in attempts[: k - 2] for t in a]  # P, a_1..k-2 (the prompt alone for k = 2)
        prev, new = attempts[k - 2], attempts[k - 1]
        real = before + prev + new
        skipped = before + new
        repeated = before + prev + prev
        expected = {
            "lp_k_given_prev": _logprob(tiny, real, len(before) + len(prev), len(real)),
            "lp_k_skip_prev": _logprob(tiny, skipped, len(before), len(skipped)),
            "lp_prev_given_before": _logprob(tiny, real, len(before), len(before) + len(prev)),
            "lp_repeat_prev": _logprob(tiny, repeated, len(before) + len(prev), len(repeated)),
        }
        got = {name: getattr(probe, name) for name in expected}
        assert got == pytest.approx(expected, abs=1e-4), k
        assert (probe.n_attempts, probe.n_skipped, probe.tokens_k, probe.tokens_prev) == (4, 0, len(new), len(prev))
        row = probe.as_row()
        assert row["fig13a"] == pytest.approx(expected["lp_k_given_prev"] - expected["lp_k_skip_prev"], abs=1e-4)
        assert row["fig13b"] == pytest.approx(expected["lp_k_given_prev"] - expected["lp_prev_given_before"], abs=1e-4)
        assert row["fig13c"] == pytest.approx(expected["lp_repeat_prev"], abs=1e-4)
        assert row["fig13a_per_token"] == pytest.approx(row["fig13a"] / len(new), abs=1e-5)
        per_token_b = expected["lp_k_given_prev"] / len(new) - expected["lp_prev_given_before"] / len(prev)
        assert row["fig13b_per_token"] == pytest.approx(per_token_b, abs=1e-5)
        assert row["fig13c_per_token"] == pytest.approx(expected["lp_repeat_prev"] / len(prev), abs=1e-5)


def test_attempt_probes_cap_chunks_and_short_traces(tiny, tokenizer):
    from e3eval.probes.attempt_logprobs import attempt_probes
    from e3eval.probes.forward import ProbeModel

    model = ProbeModel.wrap(tiny, "tiny")
    decoder = PrefixDecoder(tokenizer)
    prompt_ids, response_ids, text, _ = _trace(tokenizer)
    full = attempt_probes(model, prompt_ids, response_ids, text, "countdown", decoder)
    capped = attempt_probes(model, prompt_ids, response_ids, text, "countdown", decoder, chunk=3, max_attempts=2)
    assert [p.k for p in capped] == [2, 3] and {p.n_skipped for p in capped} == {1}
    for a, b in zip(full, capped, strict=False):  # a cap and small head chunks change nothing that is computed
        assert b.lp_k_skip_prev == pytest.approx(a.lp_k_skip_prev, abs=1e-4)
        assert b.lp_k_given_prev == pytest.approx(a.lp_k_given_prev, abs=1e-4)
    one = tokenizer.encode("Just one attempt 🙂, no second.")
    assert attempt_probes(model, prompt_ids, one, tokenizer.decode(one), "countdown", decoder) == []
    with pytest.raises(UserError, match="max_attempts"):
        attempt_probes(model, prompt_ids, response_ids, text, "countdown", decoder, max_attempts=0)
    with pytest.raises(UserError, match="prompt"):
        attempt_probes(model, [], response_ids, text, "countdown", decoder)
