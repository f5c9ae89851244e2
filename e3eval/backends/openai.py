"""The `openai` backend: any OpenAI-compatible server (`vllm serve`, an SGLang server or router), asynchronously.

Each sample is one `/completions` request whose prompt is the rendered prompt's token ids, with `max_tokens` (the
request's own when it has one), `temperature`, `top_p`, the sample's `seed`, `logprobs` when asked, `stop_token_ids`
when the spec has some (vLLM and SGLang servers take them), and `return_token_ids: true` (vLLM answers with the sampled
`token_ids`, the stop token included). At most `concurrency` requests are in flight; each has a timeout and up to
`retries` retries with exponential backoff on connection errors, timeouts, 429 and 5xx; a request that still fails
becomes an `error` completion. Once one request has given up because the server refused or dropped connections, the
requests still queued in that call fail at once with that reason instead of each retrying a dead server. If the server
gives no token ids, the text is re-tokenized and the backend reports `token_ids_source: retokenized`, which the run
records. A server's answer is checked before it is stored: a 200 that is not JSON (an HTML page: a wrong `--base-url`),
has no `choices`, or gives token ids that are not integers in int32 range, or more of them than `max_tokens`, is an
`error` completion naming what was wrong, never a traceback that loses the batch, and never stored as a sample.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

from e3eval.backends import BackendSpec
from e3eval.backends.settings import EngineSpec
from e3eval.errors import UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

_RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
_MAX_ID = 2**31 - 1  # token_ids are stored as int32


class _Malformed(ValueError):
    """A 200 answer that is not a completion: reported as the sample's error, not retried (it would say the same)."""


# The server chose its dtype, engine settings and batches requests itself: `--batch` is taken (it sizes the stored
# parts) but not passed; no engine setting applies (`accepted` None: no --engine-arg either).
SPEC = BackendSpec("openai", "httpx", "OpenAIBackend",
                   frozenset({"base_url", "api_key", "concurrency", "timeout_s", "retries", "backoff_s", "tokenizer",
                              "batch_size"}),
                   dropped=frozenset({"batch_size"}), note="the server chose its dtype and engine",
                   engine=EngineSpec(not_applicable={"*": "the server was started with its own engine settings"}),
                   served=True)  # fmt: skip


class OpenAIBackend:
    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key: str | None = None,
        concurrency: int = 32,
        timeout_s: float = 3600.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        tokenizer: str | None = None,
    ) -> None:
        if not base_url:
            raise UserError("--backend openai needs --base-url, e.g. http://127.0.0.1:8000/v1")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or os.environ.get("OPENAI_API_KEY", "EMPTY")
        self.concurrency = max(1, concurrency)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.token_ids_source = "engine"
        self.tokenizer_name = tokenizer or model
        self._tokenizer: Any = None
        self._unreachable: str | None = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from e3eval.tokenizers import load_tokenizer

            self._tokenizer = load_tokenizer(self.tokenizer_name)
        return self._tokenizer

    def describe(self) -> dict[str, Any]:
        return {"engine": "openai-compatible", "base_url": self.base_url, "concurrency": self.concurrency,
                "timeout_s": self.timeout_s, "retries": self.retries}  # fmt: skip

    def close(self) -> None:
        pass

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        from e3eval.backends import regroup

        jobs = [(r, seed) for r in requests for seed in r.seeds]
        self._unreachable = None
        flat = asyncio.run(self._run(jobs, spec))
        return regroup(flat, requests)

    async def _run(self, jobs: list[tuple[GenerationRequest, int]], spec: SamplingSpec) -> list[Completion]:
        import httpx

        limit = asyncio.Semaphore(self.concurrency)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        limits = httpx.Limits(max_connections=self.concurrency)
        async with httpx.AsyncClient(headers=headers, timeout=self.timeout_s, limits=limits) as client:

            async def one(request: GenerationRequest, seed: int) -> Completion:
                async with limit:
                    return await self._request(client, request, seed, spec)

            return list(await asyncio.gather(*(one(r, s) for r, s in jobs)))

    async def _request(self, client: Any, request: GenerationRequest, seed: int, spec: SamplingSpec) -> Completion:
        import httpx

        max_tokens = request.max_tokens or spec.max_tokens
        body: dict[str, Any] = {
            "model": self.model, "prompt": list(request.prompt_token_ids), "max_tokens": max_tokens,
            "temperature": spec.temperature, "top_p": spec.top_p, "seed": seed, "n": 1, "return_token_ids": True,
        }  # fmt: skip
        if spec.logprobs:
            body["logprobs"] = 0
        if spec.stop_token_ids:
            body["stop_token_ids"] = list(spec.stop_token_ids)  # a vLLM and SGLang extension of the API
        if spec.min_tokens:
            body["min_tokens"] = spec.min_tokens  # a vLLM and SGLang extension too
        error = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            if self._unreachable is not None:
                return Completion((), "error", "", None, f"not sent: {self._unreachable}")
            try:
                response = await client.post(f"{self.base_url}/completions", json=body)
            except (httpx.ConnectError, httpx.RemoteProtocolError) as exc:
                error = f"{type(exc).__name__}: {exc or 'connection failed'}"
                if attempt == self.retries:
                    self._unreachable = f"server {self.base_url} unreachable ({error})"
                continue
            except (httpx.TransportError, httpx.TimeoutException) as exc:
                error = f"{type(exc).__name__}: {exc or 'no detail'}"
                continue
            if response.status_code in _RETRY_STATUS:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if response.status_code != 200:
                return Completion((), "error", "", None, f"HTTP {response.status_code}: {response.text[:200]}")
            try:
                return self._completion(_json_body(response), spec, max_tokens)
            except _Malformed as exc:
                return Completion((), "error", "", None, f"malformed answer from {self.base_url}: {exc}")
        return Completion((), "error", "", None, f"gave up after {self.retries + 1} attempts: {error}")

    def _completion(self, payload: Any, spec: SamplingSpec, max_tokens: int) -> Completion:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise _Malformed(f"no 'choices' list in {_preview(payload)}")
        choice = choices[0]
        text = choice.get("text") or ""
        if not isinstance(text, str):
            raise _Malformed(f"'text' is a {type(text).__name__}, not a string")
        ids = choice.get("token_ids")
        if ids is None:
            self.token_ids_source = "retokenized"
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        else:
            ids = _token_ids(ids, max_tokens)
        reason = choice.get("finish_reason")
        finish = reason if reason in ("stop", "length") else "error"
        logprobs = _logprobs(choice.get("logprobs")) if spec.logprobs else None
        return Completion(tuple(ids), finish, text, logprobs,
                          None if finish != "error" else f"finish reason {reason!r}")  # fmt: skip


def _json_body(response: Any) -> Any:
    try:
        return response.json()
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        kind = response.headers.get("content-type", "no content type")
        raise _Malformed(f"HTTP 200 but not JSON ({kind}): {' '.join(response.text[:120].split())!r}") from None


def _token_ids(ids: Any, max_tokens: int) -> list[int]:
    """The server's sampled ids, exactly as given, or `_Malformed`: bool is an int to Python, never a token id."""
    if not isinstance(ids, list):
        raise _Malformed(f"'token_ids' is a {type(ids).__name__}, not a list")
    for i in ids:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= _MAX_ID:
            raise _Malformed(f"'token_ids' holds {_preview(i)}, not a token id (an integer from 0 to 2^31 - 1)")
    if len(ids) > max_tokens:
        raise _Malformed(f"{len(ids)} token ids for max_tokens {max_tokens} (the server ignored the limit)")
    return ids


def _logprobs(raw: Any) -> tuple[float, ...] | None:
    if not raw:
        return None
    values = raw.get("token_logprobs") if isinstance(raw, dict) else None
    if not isinstance(values, list) or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in values):
        raise _Malformed(f"'logprobs.token_logprobs' is not a list of numbers: {_preview(values)}")
    return tuple(float(x) for x in values)


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
