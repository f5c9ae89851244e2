"""The sglang adapter up to the engine call (request building, result grouping); end to end only on a GPU.

SGLang cannot run without a GPU, so the CPU tests feed `to_completion` output dicts in SGLang's documented
`Engine.generate` format (text, output_ids, meta_info.finish_reason.type, meta_info.output_token_logprobs): that
engine output is the only thing mocked here.
"""

import importlib.util

import pytest

from e3eval.backends import regroup
from e3eval.backends.sglang import build_inputs, to_completion
from e3eval.records import GenerationRequest, SamplingSpec

REQUESTS = [GenerationRequest("a", "", (1, 2, 3), (10, 11)), GenerationRequest("b", "", (4,), (12,))]


def test_build_inputs_one_entry_per_seed():
    input_ids, params = build_inputs(REQUESTS, SamplingSpec(max_tokens=64, temperature=0.6, top_p=0.95))
    assert input_ids == [[1, 2, 3], [1, 2, 3], [4]]
    assert [p["sampling_seed"] for p in params] == [10, 11, 12]
    assert all(p["max_new_tokens"] == 64 and p["temperature"] == 0.6 and p["top_p"] == 0.95 for p in params)


def test_build_inputs_carry_stop_ids_and_min_new_tokens():
    """s1 forcing's rounds: SGLang's `stop_token_ids` and `min_new_tokens` (vLLM's `min_tokens`)."""
    _, params = build_inputs(REQUESTS, SamplingSpec(max_tokens=64, stop_token_ids=(7,), min_tokens=1))
    assert all(p["stop_token_ids"] == [7] and p["min_new_tokens"] == 1 for p in params)
    _, plain = build_inputs(REQUESTS, SamplingSpec(max_tokens=64))
    assert all("min_new_tokens" not in p and "stop_token_ids" not in p for p in plain)


def _output(ids, kind, logprobs=None):
    meta = {"finish_reason": {"type": kind}, "completion_tokens": len(ids)}
    if logprobs is not None:
        meta["output_token_logprobs"] = [(lp, i, None) for lp, i in zip(logprobs, ids, strict=True)]
    return {"text": "t", "output_ids": ids, "meta_info": meta}


def test_flat_outputs_are_grouped_per_request_and_converted():
    flat = [_output([5, 6], "stop", [-0.1, -0.2]), _output([7], "length", [-0.3]), _output([], "abort")]
    completions = [to_completion(o, want_logprobs=True) for o in flat]
    grouped = regroup(completions, REQUESTS)
    assert [len(g) for g in grouped] == [2, 1]
    assert grouped[0][0].token_ids == (5, 6) and grouped[0][0].logprobs == (-0.1, -0.2)
    assert grouped[0][1].finish_reason == "length"
    assert grouped[1][0].finish_reason == "error" and "abort" in grouped[1][0].error
    with pytest.raises(RuntimeError, match="returned 2 completions for 3"):
        regroup(completions[:2], REQUESTS)


@pytest.mark.gpu
def test_sglang_end_to_end_on_gpu(tiny_model_dir):
    if importlib.util.find_spec("sglang") is None:
        pytest.skip("sglang is not installed")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    from e3eval.backends.sglang import SGLangBackend

    backend = SGLangBackend(str(tiny_model_dir), dp_size=1)
    try:
        out = backend.generate(REQUESTS, SamplingSpec(max_tokens=8, logprobs=True))
    finally:
        backend.close()
    assert [len(g) for g in out] == [2, 1]
    assert all(0 < len(c.token_ids) <= 8 and c.finish_reason in ("stop", "length") for g in out for c in g)
