"""`--forcing s1` against s1's evaluation harness: `harness` below transcribes the thinking-rounds branch of
simplescaling/s1's `eval/lm-evaluation-harness/lm_eval/models/vllm_causallms.py` (`_model_generate` with
`thinking_n_ignore`, `thinking_n_ignore_str`, and `until` = [EOS]) line for line, with the real hf backend standing in
for `self.model.generate`, and e3eval's `generate_s1` must give the same token ids on the same engine.

The seeds are e3eval's rule (the sample's seed, then `continuation_seed`): the harness leaves them to vLLM. The prompt
is the rendered chat prompt, where the harness appends s1's own thinking-start text: that changes what the model
sees, not the loop.

The stopping tiny model (`e3eval dev tiny-model --stop-after N`) thinks for exactly N tokens, writes `</think>`, an
answer and EOS, and thinks again after any other token: it reaches every branch (insertions, a thinking cut at the
budget, a round that ends by length); a delimiter it never writes makes EOS the round's stop. The random tiny model
adds sampled rounds whose stops fall anywhere.
"""

import json
import sys
from pathlib import Path

import conftest
import pyarrow.parquet as pq
import pytest

from e3eval.backends.hf import HFBackend
from e3eval.budget_forcing import ANSWER_ROUND, continuation_seed, forcing_for, generate_s1
from e3eval.datasets import demo_problems
from e3eval.dev.tiny_model import build_stopping_model
from e3eval.errors import UserError
from e3eval.prompts import PromptSpec, render_prompt
from e3eval.records import Completion, GenerationRequest, SamplingSpec
from e3eval.store import read_manifest

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


class _Output:
    """The fields of a vLLM `CompletionOutput` the harness reads."""

    def __init__(self, completion):
        self.token_ids = list(completion.token_ids)
        self.text = completion.text
        self.finish_reason = completion.finish_reason


def harness(
    backend, prompts, seeds, budget, n_ignore, ignore_str, thinking_end, answer_tokens, temperature=0.0, until=None
):
    """s1's harness loop (see the module text); returns, per prompt, the ids after the prompt: the thinking as its
    answer phase saw it, the appended end, and the answer. `until` is its `until_thinking` (a one-token stop; default
    `thinking_end`, which must then be one token), `thinking_end` what it appends."""
    tokenizer = backend.tokenizer

    def tok_encode(text):
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def model_generate(token_lists, indices, round_seeds, spec):
        pairs = zip(indices, token_lists, strict=True)
        requests = [GenerationRequest(str(i), "", tuple(ids), (round_seeds[i],)) for i, ids in pairs]
        return [_Output(group[0]) for group in backend.generate(requests, spec)]

    until_thinking_tok = [tok_encode(until or thinking_end), [tokenizer.eos_token_id]]  # [thinking stop] + [EOS]
    assert all(len(t) == 1 for t in until_thinking_tok), "the harness asserts one-token stops with min_tokens"
    thinking_end_tok = tok_encode(thinking_end)
    thinking_end_max_tok = tok_encode(thinking_end + "\nFinal Answer:")
    newline_tok = tok_encode("\n")
    ignore_tok = tok_encode(ignore_str)
    sampling = SamplingSpec(budget, temperature, 0.95, stop_token_ids=tuple(t[0] for t in until_thinking_tok),
                            min_tokens=1)  # fmt: skip
    requests = [list(p) for p in prompts]
    outputs_thinking = [None] * len(requests)
    texts = [""] * len(requests)
    finishes = [None] * len(requests)
    requests_tmp = [list(r) for r in requests]
    indices = list(range(len(requests)))
    rounds = n_ignore + 1
    for i in range(rounds):
        round_seeds = {j: seeds[j] if i == 0 else continuation_seed(seeds[j], i) for j in range(len(seeds))}
        outputs_tmp = model_generate(requests_tmp, indices, round_seeds, sampling)
        indices_new, requests_tmp_new = [], []
        for j, o in enumerate(outputs_tmp):
            idx = indices[j]
            cont = list(o.token_ids)
            if o.finish_reason == "length" or i == rounds - 1:
                outputs_thinking[idx] = (outputs_thinking[idx] or []) + cont
                texts[idx] += o.text
                finishes[idx] = o.finish_reason
            else:
                for toks in until_thinking_tok:
                    if cont[-len(toks) :] == toks:
                        cont = cont[: -len(toks)]
                cont += ignore_tok
                outputs_thinking[idx] = (outputs_thinking[idx] or []) + cont
                texts[idx] += o.text + ignore_str
                requests_tmp_new.append(requests_tmp[j] + cont)
                indices_new.append(idx)
        requests_tmp, indices = requests_tmp_new, indices_new
    for idx in range(len(requests)):
        if len(outputs_thinking[idx]) > budget:
            outputs_thinking[idx] = outputs_thinking[idx][:budget]
    answered = []
    for i, cont in enumerate(outputs_thinking):
        for toks in until_thinking_tok:
            if cont[-len(toks) :] == toks:
                cont = cont[: -len(toks)]
        if finishes[i] == "length":
            appended = thinking_end_max_tok if texts[i][-1] == "\n" else newline_tok + thinking_end_max_tok
        else:
            appended = thinking_end_tok
        requests[i] += cont + appended
        answered.append(cont + appended)
    answer_seeds = {i: continuation_seed(s, ANSWER_ROUND) for i, s in enumerate(seeds)}
    # SamplingParams(max_tokens=max_tokens, stop=stop, **kwargs): the rounds' temperature and top-p, no min_tokens.
    answers = model_generate(
        requests, range(len(requests)), answer_seeds, SamplingSpec(answer_tokens, temperature, 0.95)
    )
    return [(ids + a.token_ids, a.finish_reason) for ids, a in zip(answered, answers, strict=True)]


def _prompts(tokenizer, count):
    problems = demo_problems()
    return [tuple(render_prompt(problems[i % len(problems)], PromptSpec(), tokenizer)[1]) for i in range(count)]


def _s1(backend, prompts, seeds, budget, forcing, temperature=0.0):
    requests = [GenerationRequest(f"p{i}", "", p, (s,)) for i, (p, s) in enumerate(zip(prompts, seeds, strict=True))]
    spec = SamplingSpec(budget, temperature, 0.95, logprobs=True)
    return [group[0] for group in generate_s1(backend, requests, spec, forcing)]


def _never_written(tokenizer, chain) -> str:
    """A one-token text the stopping model never writes: as the delimiter, EOS is what ends each round."""
    for token_id in range(200, tokenizer.vocab_size):
        text = tokenizer.decode([token_id])
        if (
            token_id not in chain
            and text.isalpha()
            and tokenizer(text, add_special_tokens=False)["input_ids"] == [token_id]
        ):
            return text
    raise AssertionError("no plain one-token text in the vocabulary")


@pytest.mark.parametrize(
    ("wait", "budget", "case"),
    [(1, 64, "ends"), (2, 64, "ends"), (4, 64, "ends"), (4, 14, "cut after a stop"), (2, 3, "cap by length")],
)
def test_s1_equals_the_harness_on_the_stopping_model(stop_hf, stopping_dir, wait, budget, case):
    tokenizer = stop_hf.tokenizer
    forcing = forcing_for(tokenizer, wait, mode="s1", answer_tokens=40)
    prompts, seeds = _prompts(tokenizer, 3), [1, 2, 3]
    mine = _s1(stop_hf, prompts, seeds, budget, forcing)
    theirs = harness(stop_hf, prompts, seeds, budget, wait, "Wait", "</think>", 40)
    think = tokenizer.convert_tokens_to_ids("</think>")
    for completion, (ids, finish) in zip(mine, theirs, strict=True):
        assert list(completion.token_ids) == ids and completion.finish_reason == finish, case
        assert completion.text == tokenizer.decode(ids, skip_special_tokens=True)
        spans = list(zip(completion.inserted[::2], completion.inserted[1::2], strict=True))
        *waits, (start, end) = spans
        assert start <= budget and all(b <= budget for _, b in waits), "waits lie within the cut thinking"
        appended = ids[start:end]
        if case == "cap by length":  # round 0 ran out at 3 tokens: "\n" + </think> + "\nFinal Answer:"
            assert waits == [] and start == budget
            assert tokenizer.decode(appended) == "\n</think>\nFinal Answer:"
        else:
            assert appended == [think]
        if case == "ends":  # each round thinks N tokens and stops at </think>: it becomes "Wait"
            assert len(waits) == wait and [s for s, _ in waits] == [
                k * (STOP_AFTER + 1) + STOP_AFTER for k in range(wait)
            ]
            assert completion.text.endswith("The answer is \\boxed{7}") and finish == "stop"
        if case == "cut after a stop":  # the rounds run past 14; the cut keeps a stop finish: no Final Answer
            assert start == budget and len(waits) == 2
        assert all(lp != lp for lp in completion.logprobs[start:end]), "appended ids were not sampled: NaN"


def test_s1_multi_token_delimiter_stops_at_its_first_token(stop_hf):
    """s1's own models stop at "<|im_start|>" and append "<|im_start|>answer": here `</think>` + "The" (the model's
    next token), so rounds stop at `</think>` and the answer phase continues after "The"."""
    tokenizer = stop_hf.tokenizer
    delimiter = "</think>The"
    assert len(tokenizer(delimiter, add_special_tokens=False)["input_ids"]) > 1
    forcing = forcing_for(tokenizer, 2, think_end_text=delimiter, mode="s1", answer_tokens=40)
    prompts, seeds = _prompts(tokenizer, 2), [7, 8]
    for budget in (64, 3):
        mine = _s1(stop_hf, prompts, seeds, budget, forcing)
        theirs = harness(stop_hf, prompts, seeds, budget, 2, "Wait", delimiter, 40, until="</think>")
        assert [(list(c.token_ids), c.finish_reason) for c in mine] == theirs, budget
    assert mine[0].text.endswith("\nFinal Answer:The answer is \\boxed{7}") or "Final Answer:" in mine[0].text


def test_s1_newline_rule_reads_the_rounds_text(tmp_path, monkeypatch):
    """A chain whose third token is "\n". The prompt ends with "\n", so round 0 thinks chain[3:], then `</think>`;
    after "Wait" it starts the chain over. At budget 3, round 1 runs out of tokens right after its "\n": the joined
    text ends a line while the thinking cut at 3 ids ("... Wait") does not, and the harness adds no newline. At
    budget 2, round 0 runs out mid-chain: a newline goes before `</think>`."""
    import e3eval.dev.tiny_model as tiny

    original = tiny.chain_candidates

    def with_newline(tokenizer, seed):
        newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
        rest = [t for t in original(tokenizer, seed) if t != newline]
        return [rest[0], rest[1], newline, *rest[2:]]

    monkeypatch.setattr(tiny, "chain_candidates", with_newline)
    backend = HFBackend(str(build_stopping_model(tmp_path / "nl", STOP_AFTER)), dtype="float32", device="cpu")
    tokenizer = backend.tokenizer
    forcing = forcing_for(tokenizer, 1, mode="s1", answer_tokens=3)
    prompts, seeds = _prompts(tokenizer, 1), [3]
    for budget, appended in ((3, "</think>\nFinal Answer:"), (2, "\n</think>\nFinal Answer:")):
        [mine] = _s1(backend, prompts, seeds, budget, forcing)
        assert [(list(mine.token_ids), mine.finish_reason)] == harness(backend, prompts, seeds, budget, 1, "Wait",
                                                                        "</think>", 3)  # fmt: skip
        start, end = mine.inserted[-2:]
        assert tokenizer.decode(list(mine.token_ids[start:end])) == appended, budget
        assert mine.finish_reason == "length", "3 answer tokens: the answer phase ran out"


def test_s1_replaces_eos_too_when_the_model_never_writes_the_delimiter(stop_hf, stopping_dir):
    tokenizer = stop_hf.tokenizer
    chain = json.loads((stopping_dir / "e3eval_tiny.json").read_text())["chain_token_ids"]
    delimiter = _never_written(tokenizer, chain)
    forcing = forcing_for(tokenizer, 2, think_end_text=delimiter, mode="s1", answer_tokens=40)
    prompts, seeds = _prompts(tokenizer, 2), [5, 6]
    mine = _s1(stop_hf, prompts, seeds, 200, forcing)
    theirs = harness(stop_hf, prompts, seeds, 200, 2, "Wait", delimiter, 40)
    for completion, (ids, finish) in zip(mine, theirs, strict=True):
        assert list(completion.token_ids) == ids and completion.finish_reason == finish
        thinking = ids[: completion.inserted[-2]]
        assert tokenizer.eos_token_id not in thinking, "each EOS of a round was dropped for a Wait"
        assert tokenizer.decode(thinking).count("Wait") == 2 and tokenizer.decode(thinking).count("boxed{7}") == 3


@pytest.mark.parametrize("temperature", [0.0, 0.8])
def test_s1_equals_the_harness_on_sampled_rounds(random_hf, temperature):
    """The random model at temperature 0.8 with a frequent token as the delimiter: stops at random places."""
    tokenizer = random_hf.tokenizer
    prompts, seeds = _prompts(tokenizer, 4), [11, 12, 13, 14]
    plain = random_hf.generate([GenerationRequest("p", "", prompts[0], (11, 12, 13))], SamplingSpec(30, temperature))
    counts = {}
    for completion in plain[0]:
        for token in set(completion.token_ids):
            counts[token] = counts.get(token, 0) + 1
    token = max((t for t in counts if t != tokenizer.eos_token_id), key=lambda t: (counts[t], -t))
    delimiter = tokenizer.decode([token])
    if tokenizer(delimiter, add_special_tokens=False)["input_ids"] != [token]:
        pytest.skip("the frequent token does not round-trip as text")
    forcing = forcing_for(tokenizer, 3, think_end_text=delimiter, mode="s1", answer_tokens=12)
    mine = _s1(random_hf, prompts, seeds, 24, forcing, temperature)
    theirs = harness(random_hf, prompts, seeds, 24, 3, "Wait", delimiter, 12, temperature)
    assert [(list(c.token_ids), c.finish_reason) for c in mine] == theirs


class _FailingCall:
    """The real hf backend, except that one sample's request in engine call `call` fails: how a server that drops
    one request looks to the loop (the engine is real; only that failure is made up)."""

    def __init__(self, backend, key, call):
        self.backend, self.key, self.call, self.calls, self.tokenizer = backend, key, call, 0, backend.tokenizer

    def generate(self, requests, spec):
        self.calls += 1
        out = self.backend.generate(requests, spec)
        failed = [Completion((), "error", "", None, "HTTP 503: overloaded")]
        return [
            failed if r.key == self.key and self.calls == self.call else g for r, g in zip(requests, out, strict=True)
        ]


@pytest.mark.parametrize(("call", "where"), [(2, "round 2"), (4, "answer phase")])
def test_a_failed_round_or_answer_phase_fails_the_sample_alone(stop_hf, call, where):
    tokenizer = stop_hf.tokenizer
    forcing = forcing_for(tokenizer, 2, mode="s1", answer_tokens=40)
    prompts, seeds = _prompts(tokenizer, 2), [1, 2]
    failing = _FailingCall(stop_hf, "p0", call)
    broken, fine = _s1(failing, prompts, seeds, 64, forcing)
    assert broken == Completion((), "error", "", None, f"HTTP 503: overloaded (s1 budget forcing, {where})")
    assert [(list(fine.token_ids), fine.finish_reason)] == harness(stop_hf, prompts[1:], seeds[1:], 64, 2, "Wait",
                                                                    "</think>", 40)  # fmt: skip
    assert failing.calls == 4, "three rounds and the answer phase, whatever failed"


def test_min_tokens_keeps_a_stop_id_from_being_the_first_token(random_hf):
    tokenizer = random_hf.tokenizer
    prompt = _prompts(tokenizer, 1)[0]
    request = [GenerationRequest("p", "", prompt, (1,))]
    [[greedy]] = random_hf.generate(request, SamplingSpec(8, 0.0))
    first = greedy.token_ids[0]
    [[stopped]] = random_hf.generate(request, SamplingSpec(8, 0.0, stop_token_ids=(first,)))
    assert stopped.token_ids == (first,) and stopped.finish_reason == "stop"
    [[held]] = random_hf.generate(request, SamplingSpec(8, 0.0, stop_token_ids=(first,), min_tokens=1))
    assert held.token_ids[0] != first
    assert held.logprobs is None or len(held.logprobs) == len(held.token_ids)


def test_s1_settings_are_checked(stop_hf, tiny_model_dir):
    tokenizer = stop_hf.tokenizer
    forcing = forcing_for(tokenizer, 2, mode="s1", answer_tokens=40)
    settings = forcing.settings()
    assert settings["mode"] == "s1" and settings["answer_tokens"] == 40 and settings["answer_temperature"] is None
    assert tokenizer.decode(settings["final_answer_token_ids"]) == "</think>\nFinal Answer:"
    assert "mode" not in forcing_for(tokenizer, 2).settings(), "e3eval mode records what it always recorded"
    with pytest.raises(UserError, match="--think-end '<\\|im_end\\|>' is EOS"):
        forcing_for(tokenizer, 2, think_end_text="<|im_end|>", mode="s1")
    with pytest.raises(UserError, match="choose one of e3eval, s1"):
        forcing_for(tokenizer, 2, mode="s2")


def test_cli_generate_score_and_sweep_with_s1(stopping_dir, tmp_path):
    common = ["--model", str(stopping_dir), "--dataset", "demo", "--n", "2", "--limit", "2", "--backend", "hf",
              "--forcing", "s1", "--wait", "2", "--answer-tokens", "40"]  # fmt: skip
    run = tmp_path / "r"
    done = conftest.run_cli(E3EVAL, "generate", *common, "--max-tokens", "16", "--out", str(run))
    assert done.returncode == 0, done.stderr
    assert "inserted 8 waits in 4 of 4 samples" in done.stdout
    forcing = read_manifest(run)["generation"]["forcing"]
    assert forcing["mode"] == "s1" and forcing["wait"] == 2
    wrong = conftest.run_cli(E3EVAL, "score", str(run), "--budgets", "8,16")
    assert wrong.returncode == 2 and "scored at that budget only (--budgets 16)" in wrong.stderr
    cut = conftest.run_cli(E3EVAL, "score", str(run), "--budgets", "16", "--policy", "prefix")
    assert cut.returncode == 2 and "Score it with --policy s1" in cut.stderr
    scored = conftest.run_cli(E3EVAL, "score", str(run))  # its one budget and --policy s1 by default
    assert scored.returncode == 0, scored.stderr
    grades = pq.read_table(run / "grades.parquet").to_pylist()
    assert {g["policy"] for g in grades} == {"s1"} and {g["answer"] for g in grades} == {"7"}
    # The thinking kept (the answer phase comes after it) and whether the model ended it itself (no Final Answer:).
    assert all(g["finished"] and g["tokens_used"] == 16 for g in grades), grades

    plain = tmp_path / "plain"
    assert conftest.run_cli(E3EVAL, "generate", *common[:-6], "--max-tokens", "16", "--out", str(plain)).returncode == 0
    refused = conftest.run_cli(E3EVAL, "score", str(plain), "--budgets", "16", "--policy", "s1")
    assert refused.returncode == 2 and "scores runs generated with --forcing s1" in refused.stderr

    out = tmp_path / "sweep"
    swept = conftest.run_cli(E3EVAL, "sweep", *common, "--budgets", "8,16", "--out", str(out))
    assert swept.returncode == 0, swept.stderr
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["figures", "s1-16", "s1-8"]
    assert (out / "figures" / "sweep.png").is_file()
    report = conftest.run_cli(E3EVAL, "report", str(out))
    assert report.returncode == 0, report.stderr
    assert "policy: s1" in report.stdout and ": n = 2 problems × 2 samples" in report.stdout
    assert conftest.run_cli(E3EVAL, "sweep", *common, "--budgets", "8", "--out", str(run)).returncode == 2
    other = conftest.run_cli(E3EVAL, "sweep", *common, "--budgets", "32", "--temperature", "0.3", "--out", str(out))
    assert other.returncode == 2 and "made with --temperature 0.6; this one asks for 0.3" in other.stderr
    assert not (out / "s1-32").exists(), "refused before generating"
    grown = conftest.run_cli(E3EVAL, "generate", *common, "--max-tokens", "32", "--out", str(out / "s1-32"))
    assert grown.returncode == 0, grown.stderr
    conftest.run_cli(E3EVAL, "score", str(out / "s1-32"))
    mixed = conftest.run_cli(E3EVAL, "report", str(out))
    assert mixed.returncode == 0 and "32" in mixed.stdout, "a run made alike joins the curve"
    more = conftest.run_cli(E3EVAL, "generate", *common, "--max-tokens", "32", "--n", "3", "--out", str(out / "s1-32"))
    assert more.returncode == 0, more.stderr
    conftest.run_cli(E3EVAL, "score", str(out / "s1-32"))
    differ = conftest.run_cli(E3EVAL, "report", str(out))
    assert differ.returncode == 2 and "differ in n" in differ.stderr, differ.stderr
    folder = conftest.run_cli(E3EVAL, "score", str(out), "--budgets", "8")
    assert folder.returncode == 2 and "a folder of runs (s1-16, s1-32, s1-8)" in folder.stderr
    unscored = conftest.run_cli(E3EVAL, "score", str(plain))
    assert unscored.returncode == 2 and "Missing option '--budgets'" in unscored.stderr
