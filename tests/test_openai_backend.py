"""The openai backend against a real vLLM OpenAI-compatible server of the tiny model on 127.0.0.1, plus a stdlib
server without token ids (re-tokenization) and a closed port (bounded retries, then an error row)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import conftest
import pytest
from conftest import send_json

from e3eval.backends.openai import OpenAIBackend
from e3eval.records import GenerationRequest, SamplingSpec


@pytest.fixture(scope="module")
def vllm_server(tiny_model_dir):
    with conftest.vllm_server(tiny_model_dir, "tiny") as base:
        yield base


def _request(tokenizer, seeds):
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1+1?"}], add_generation_prompt=True,
                                        tokenize=False)  # fmt: skip
    return GenerationRequest("q", ids, tuple(tokenizer(ids, add_special_tokens=False)["input_ids"]), tuple(seeds))


def test_real_vllm_server(vllm_server, tiny_model_dir, tokenizer):
    backend = OpenAIBackend("tiny", base_url=vllm_server, concurrency=4, tokenizer=str(tiny_model_dir))
    request = _request(tokenizer, (5, 6, 5))
    [completions] = backend.generate([request], SamplingSpec(max_tokens=10, logprobs=True))
    assert backend.token_ids_source == "engine", "vLLM returns token_ids with return_token_ids"
    assert completions[0].token_ids == completions[2].token_ids != completions[1].token_ids
    for completion in completions:
        assert completion.error is None and completion.finish_reason in ("stop", "length")
        assert 0 < len(completion.token_ids) <= 10
        assert len(completion.logprobs) == len(completion.token_ids)
        assert tokenizer.decode(list(completion.token_ids), skip_special_tokens=True) == completion.text


class _NoIdsHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        send_json(self, 200, {"choices": [{"text": "so \\boxed{2}", "finish_reason": "stop"}]})

    def log_message(self, *args):
        pass


def test_server_without_token_ids_is_retokenized(tiny_model_dir, tokenizer):
    server = HTTPServer(("127.0.0.1", 0), _NoIdsHandler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        backend = OpenAIBackend("m", base_url=base, tokenizer=str(tiny_model_dir))
        [[completion]] = backend.generate([_request(tokenizer, (9,))], SamplingSpec(max_tokens=7))
    finally:
        server.shutdown()
    assert backend.token_ids_source == "retokenized"
    assert completion.token_ids == tuple(tokenizer("so \\boxed{2}", add_special_tokens=False)["input_ids"])
    [body] = server.bodies
    assert body["seed"] == 9 and body["max_tokens"] == 7 and body["return_token_ids"] is True
    assert isinstance(body["prompt"], list), "prompts are sent as token ids"


def test_stop_ids_and_min_tokens_reach_the_request(tiny_model_dir, tokenizer):
    """Budget forcing's per-call mechanisms are sent as vLLM's and SGLang's extensions of the API."""
    server = HTTPServer(("127.0.0.1", 0), _NoIdsHandler)
    server.bodies = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        backend = OpenAIBackend("m", base_url=base, tokenizer=str(tiny_model_dir))
        backend.generate([_request(tokenizer, (9,))], SamplingSpec(max_tokens=7, stop_token_ids=(5,), min_tokens=1))
        backend.generate([_request(tokenizer, (9,))], SamplingSpec(max_tokens=7))
    finally:
        server.shutdown()
    forced, plain = server.bodies
    assert forced["stop_token_ids"] == [5] and forced["min_tokens"] == 1
    assert "stop_token_ids" not in plain and "min_tokens" not in plain, "plain requests carry neither"


def test_unreachable_server_becomes_error_rows_after_bounded_retries(tokenizer):
    port = conftest.free_port()
    backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", retries=2, backoff_s=0.01, timeout_s=2)
    started = time.monotonic()
    [[completion]] = backend.generate([_request(tokenizer, (1,))], SamplingSpec(max_tokens=4))
    assert completion.finish_reason == "error" and "gave up after 3 attempts" in completion.error
    assert completion.token_ids == ()
    assert time.monotonic() - started < 10


def test_generate_and_score_through_the_server(vllm_server, tiny_model_dir, tmp_path):
    from e3eval.generation import GenerateConfig, generate_run
    from e3eval.score import ScoreConfig, score_run

    options = {"base_url": vllm_server, "concurrency": 8, "tokenizer": str(tiny_model_dir)}
    config = GenerateConfig(model="tiny", dataset="demo", out=tmp_path / "served", n=2, max_tokens=16,
                            backend="openai", backend_options=options, limit=3)  # fmt: skip
    result = generate_run(config)
    assert result.generated == 6
    scored = score_run(tmp_path / "served", ScoreConfig(budgets=(8, 16), workers=1, resamples=0))
    assert scored.grades.num_rows == 12
