"""The hf backend's sampler: counter-based noise, the sampled distribution, batch independence, EOS, logprobs, OOM."""

import math

import pytest

torch = pytest.importorskip("torch")

from e3eval.backends.hf import HFBackend, _top_p_argmax, choose_tokens, gumbel_noise, mix64, seed_keys  # noqa: E402
from e3eval.datasets import demo_problems  # noqa: E402
from e3eval.errors import UserError  # noqa: E402
from e3eval.prompts import PromptSpec, render_prompt  # noqa: E402
from e3eval.records import GenerationRequest, SamplingSpec  # noqa: E402

MASK64 = (1 << 64) - 1


def splitmix64_reference(x: int) -> int:
    """The published splitmix64 finaliser on Python ints (unsigned 64-bit)."""
    x &= MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def test_mix64_is_splitmix64_in_wrapping_int64():
    values = [0, 1, 2, 12345, (1 << 63) - 1, 1 << 63, MASK64, 0x9E3779B97F4A7C15, 0xDEADBEEFCAFEBABE]
    signed = [v - (1 << 64) if v >= 1 << 63 else v for v in values]
    got = mix64(torch.tensor(signed, dtype=torch.long)).tolist()
    assert [g & MASK64 for g in got] == [splitmix64_reference(v) for v in values]


def test_noise_is_a_function_of_seed_step_and_index_only():
    keys = seed_keys([7, 8, 7])
    a = gumbel_noise(keys, 3, 50)
    assert torch.equal(a[0], a[2]), "same seed, same step: same noise"
    assert not torch.equal(a[0], a[1])
    assert not torch.equal(a[0], gumbel_noise(keys, 4, 50)[0]), "the step changes the noise"
    assert torch.equal(gumbel_noise(seed_keys([8]), 3, 50)[0], a[1]), "independent of the other rows"
    assert torch.isfinite(a).all()
    big = gumbel_noise(seed_keys(range(200)), 0, 1000)
    # Standard Gumbel: mean = Euler-Mascheroni constant, variance = pi^2 / 6 (200k draws: tight bounds).
    assert abs(big.mean().item() - 0.5772) < 0.01
    assert abs(big.var().item() - math.pi**2 / 6) < 0.03


def _chi_square_bound(df: int, z: float = 3.719) -> float:
    """Upper 1e-4 quantile of chi-square(df), Wilson-Hilferty approximation (no scipy here)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _expected(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    probs = torch.softmax(logits / temperature, dim=-1)
    ordered, order = probs.sort(descending=True)
    keep = ordered.cumsum(0) - ordered <= top_p
    out = torch.zeros_like(probs)
    out[order[keep]] = ordered[keep]
    return out / out.sum()


@pytest.mark.parametrize(("temperature", "top_p"), [(0.7, 0.9), (1.0, 1.0), (0.6, 0.95)])
def test_sampled_frequencies_match_softmax_with_top_p(temperature, top_p):
    logits = torch.tensor([2.0, 1.6, 1.1, 0.7, 0.2, -0.4, -1.0, -1.8, -3.0, -5.0])
    rows, steps = 8000, 4
    counts = torch.zeros(len(logits))
    keys = seed_keys(range(rows))
    for step in range(steps):
        chosen = choose_tokens(logits.expand(rows, -1), temperature, top_p, keys, step)
        counts += torch.bincount(chosen, minlength=len(logits))
    expected = _expected(logits, temperature, top_p)
    draws = rows * steps
    kept = expected > 0
    assert counts[~kept].sum() == 0, "a token outside the top-p set was drawn"
    chi2 = (((counts[kept] - draws * expected[kept]) ** 2) / (draws * expected[kept])).sum().item()
    assert chi2 < _chi_square_bound(int(kept.sum()) - 1), chi2
    if top_p < 1.0:
        # The test has power: the same counts are far from the distribution without top-p.
        wrong = torch.softmax(logits / temperature, dim=-1)
        chi2_wrong = (((counts - draws * wrong) ** 2) / (draws * wrong)).sum().item()
        assert chi2_wrong > 10 * _chi_square_bound(len(logits) - 1)


def test_cpu_shortcut_draws_what_the_sorted_top_p_draws():
    torch.manual_seed(0)
    logits = torch.randn(64, 300) * 3
    logits[:, :4] = 5.0  # ties at the top-p boundary are kept together
    keys = seed_keys(range(1000, 1064))
    for step in range(5):
        fast = choose_tokens(logits, 0.8, 0.5, keys, step)
        scores = logits / 0.8
        full = _top_p_argmax(scores + gumbel_noise(keys, step, 300), torch.softmax(scores, -1), 0.5)
        assert torch.equal(fast, full)


def test_temperature_zero_is_greedy():
    logits = torch.randn(5, 40)
    assert torch.equal(choose_tokens(logits, 0.0, 0.9, seed_keys(range(5)), 0), logits.argmax(-1))


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return HFBackend(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=4)


def _requests(tokenizer, seeds_per_problem):
    out = []
    for problem, seeds in zip(demo_problems(), seeds_per_problem, strict=False):
        text, ids = render_prompt(problem, PromptSpec(), tokenizer)
        out.append(GenerationRequest(problem.problem_id, text, tuple(ids), tuple(seeds)))
    return out


def _by_key(requests, outputs):
    return {
        (r.key, seed): c
        for r, group in zip(requests, outputs, strict=True)
        for seed, c in zip(r.seeds, group, strict=True)
    }


def test_a_sample_depends_on_its_prompt_and_seed_not_its_batch(backend):
    spec = SamplingSpec(max_tokens=24, logprobs=True)
    requests = _requests(backend.tokenizer, [(1, 2, 3), (4, 5), (6,), (7, 8)])
    # Prompts of different lengths share batches, so padding differs between compositions.
    assert len({len(r.prompt_token_ids) for r in requests}) > 1
    reference = _by_key(requests, backend.generate(requests, spec))
    assert len({c.token_ids for c in reference.values()}) == len(reference), "different seeds, different samples"
    for batch_size, order in ((1, [0, 1, 2, 3]), (3, [3, 1, 0, 2]), (8, [2, 0, 3, 1])):
        backend._fits = backend.batch_size = batch_size
        shuffled = [requests[i] for i in order]
        got = _by_key(shuffled, backend.generate(shuffled, spec))
        for key, completion in reference.items():
            assert got[key].token_ids == completion.token_ids, (batch_size, key)
            assert got[key].finish_reason == completion.finish_reason
            assert got[key].logprobs == pytest.approx(completion.logprobs, abs=1e-4)
    backend._fits = backend.batch_size = 4
    lone = backend.generate(_requests(backend.tokenizer, [(2,)]), spec)[0][0]
    assert lone.token_ids == reference[(requests[0].key, 2)].token_ids
    # One generation at the largest budget serves the smaller ones: a shorter limit gives a prefix.
    short = backend.generate(_requests(backend.tokenizer, [(2,)]), SamplingSpec(max_tokens=9))[0][0]
    assert short.token_ids == lone.token_ids[:9]


def _teacher_forced_logprobs(backend, prompt, tokens):
    ids = torch.tensor([list(prompt) + list(tokens)])
    with torch.inference_mode():
        logits = backend.model(ids).logits[0].float()
    return torch.log_softmax(logits[len(prompt) - 1 : -1], dim=-1)


@pytest.mark.parametrize("temperature", [0.0, 0.6])
def test_logprobs_are_the_raw_model_logprobs_and_greedy_is_argmax(backend, temperature):
    requests = _requests(backend.tokenizer, [(11, 12), (13,)])
    out = backend.generate(requests, SamplingSpec(max_tokens=12, temperature=temperature, logprobs=True))
    for request, group in zip(requests, out, strict=True):
        for completion in group:
            expected = _teacher_forced_logprobs(backend, request.prompt_token_ids, completion.token_ids)
            chosen = expected.gather(1, torch.tensor(completion.token_ids)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(completion.logprobs), chosen, atol=1e-4)
            if temperature == 0:
                assert list(completion.token_ids) == expected.argmax(-1).tolist()
    assert backend.generate(requests, SamplingSpec(max_tokens=12))[0][0].logprobs is None


def test_stops_at_eos_and_other_rows_go_on(backend, monkeypatch):
    spec = SamplingSpec(max_tokens=16, temperature=1.0)
    requests = _requests(backend.tokenizer, [(1,), (2,)])
    free = backend.generate(requests, spec)
    first, second = free[0][0].token_ids, free[1][0].token_ids
    stop_token = first[3]
    assert stop_token not in first[:3] and stop_token not in second, "a token that ends only the first sample early"
    # The tiny random model rarely samples its EOS; declaring another token as EOS exercises the same path.
    monkeypatch.setattr(backend, "eos_ids", [*backend.eos_ids, stop_token])
    got = backend.generate(requests, spec)
    assert got[0][0].token_ids == first[: first.index(stop_token) + 1]
    assert got[0][0].finish_reason == "stop"
    assert got[1][0].token_ids == second
    assert got[1][0].finish_reason == "length"
    assert got[0][0].text == backend.tokenizer.decode(got[0][0].token_ids, skip_special_tokens=True)


class _OutOfMemoryAbove:
    """The model, except that a batch of more than `rows` samples runs out of memory once its sequence passes
    `length` tokens. This simulates a GPU condition (torch.OutOfMemoryError from the CUDA allocator) that cannot
    happen on this CPU-only machine; everything else is the real model."""

    def __init__(self, model, rows, length=0):
        self.model, self.rows, self.length, self.calls = model, rows, length, 0

    def __call__(self, **kwargs):
        self.calls += 1
        if kwargs["input_ids"].shape[0] > self.rows and kwargs["attention_mask"].shape[1] > self.length:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (simulated)")
        return self.model(**kwargs)


def test_out_of_memory_halves_the_batch_and_gives_the_same_samples(tiny_model_dir, recwarn):
    spec = SamplingSpec(max_tokens=10, logprobs=True)
    fresh = HFBackend(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=8)
    requests = _requests(fresh.tokenizer, [(1, 2, 3, 4), (5, 6, 7), (8,)])
    expected = fresh.generate(requests, spec)
    # Fails mid-generation (after the prompt plus a few tokens) for batches of more than 2 samples.
    length = max(len(r.prompt_token_ids) for r in requests) + 4
    fresh.model = _OutOfMemoryAbove(fresh.model, rows=2, length=length)
    with pytest.warns(RuntimeWarning, match="out of cpu memory with 8 samples per batch; halving"):
        got = fresh.generate(requests, spec)
    assert [[c.token_ids for c in g] for g in got] == [[c.token_ids for c in g] for g in expected]
    flat_logprobs = [lp for g in got for c in g for lp in c.logprobs]
    assert flat_logprobs == pytest.approx([lp for g in expected for c in g for lp in c.logprobs], abs=1e-4)
    assert fresh._fits == 2
    recwarn.clear()
    again = fresh.generate(requests, spec)
    assert [[c.token_ids for c in g] for g in again] == [[c.token_ids for c in g] for g in expected]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], "warned once, not per call"


def test_one_sample_that_does_not_fit_is_a_user_error(tiny_model_dir):
    lone = HFBackend(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=2)
    lone.model = _OutOfMemoryAbove(lone.model, rows=0)
    request = _requests(lone.tokenizer, [(1, 2)])
    with pytest.warns(RuntimeWarning), pytest.raises(UserError) as error:
        lone.generate(request, SamplingSpec(max_tokens=9))
    message = str(error.value)
    assert str(tiny_model_dir) in message
    assert f"prompt of {len(request[0].prompt_token_ids)} tokens + up to 9 new tokens" in message
