"""The backend registry: a backend is one module with a `SPEC`, and nothing else names it.

This module is itself such a plugin: it declares the `echo` backend (a deterministic backend over the tiny model's
tokenizer, with an engine that takes a context length and one engine argument) and registers it, then opens it,
checks its options and engine settings, and generates a real run with it, without any table in e3eval naming it.
Also here: engine settings code names no backend, and the backend options' checks live in one dataclass.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import write_jsonl

import e3eval.backends.settings as settings_module
from e3eval.backends import (
    BACKENDS,
    BackendSpec,
    check_options,
    names,
    open_backend,
    register,
    spec,
    unregister,
)
from e3eval.backends.options import BackendOptions
from e3eval.backends.settings import EngineSettings, EngineSpec, check_settings, engine_kwargs, fixed_args
from e3eval.errors import UserError
from e3eval.records import Completion, GenerationRequest, SamplingSpec

REPO = Path(__file__).resolve().parent.parent
NAMES = ("hf", "vllm", "sglang", "openai")


def echo_keys(model_config: Mapping[str, Any] | None = None) -> set[str]:
    return {"echo_text", "echo_workers"}


SPEC = BackendSpec(
    "echo", "json", "EchoBackend", frozenset({"dtype", "batch_size", "tokenizer"}), dropped=frozenset({"dtype"}),
    note="echo repeats one text",
    engine=EngineSpec(native={"max_model_len": "context_length"}, not_applicable={"*": "echo runs no model copies"},
                      source="EchoBackend", accepted=echo_keys, throughput=frozenset({"echo_workers"})),
)  # fmt: skip


class EchoBackend:
    """Answers every sample with `echo_text` (truncated to the request's limit) in the tokenizer's ids."""

    name = "echo"
    token_ids_source = "engine"

    def __init__(self, model: str, tokenizer: str | None = None, batch_size: int = 1, **engine: Any) -> None:
        from e3eval.tokenizers import load_tokenizer

        self.tokenizer = load_tokenizer(tokenizer or model)
        self.received = {"batch_size": batch_size, **engine}
        self.text = engine.get("echo_text", " 42")

    def generate(self, requests: Sequence[GenerationRequest], spec: SamplingSpec) -> list[list[Completion]]:
        ids = tuple(self.tokenizer.encode(self.text, add_special_tokens=False))
        return [[Completion(ids[: r.max_tokens or spec.max_tokens], "stop", self.text) for _ in r.seeds]
                for r in requests]  # fmt: skip

    def describe(self) -> dict[str, Any]:
        return {"engine": "echo", "received": self.received}

    def close(self) -> None:
        pass


@pytest.fixture
def echo():
    declared = register(__name__)
    yield declared
    unregister(declared.name)


def test_settings_code_names_no_backend():
    source = Path(settings_module.__file__).read_text()
    for name in NAMES:
        assert f'"{name}"' not in source and f"'{name}'" not in source, f"settings.py names the {name} backend"
    asking = re.compile(r"""(==|!=|\bin \(|\bin \[)[^\n]*["'](hf|vllm|sglang|openai)["']""")
    for path in ("e3eval/generation.py", "e3eval/forced_answer.py", "e3eval/commands/sampling.py"):
        text = (REPO / path).read_text()
        assert not asking.search(text), f"{path} asks a backend's name: {asking.search(text).group(0)}"


def test_a_registered_backend_is_opened_and_checked_like_a_built_in_one(echo, tiny_model_dir):
    assert names() == (*BACKENDS, "echo") and spec("echo") is echo
    check_options("echo", {"dtype": "float32", "batch_size": 4, "tokenizer": str(tiny_model_dir)})
    with pytest.raises(UserError, match=r"--base-url, --concurrency do\(es\) not apply to the echo backend "
                                        r"\(echo repeats one text\)"):  # fmt: skip
        check_options("echo", {"base_url": "http://x/v1", "concurrency": 2})

    settings = EngineSettings(max_model_len=64, engine_args={"echo_text": " 7", "echo_workers": 2})
    check_settings("echo", settings)
    assert engine_kwargs("echo", settings) == {"context_length": 64, "echo_text": " 7", "echo_workers": 2}
    assert fixed_args(settings) == {"echo_text": " 7"}, "a registered engine's throughput keys are not fixed"
    with pytest.raises(UserError) as refused:
        check_settings("echo", EngineSettings(tp=2, engine_args={"echo_txt": "x", "context_length": 9}))
    message = str(refused.value)
    assert "--tp does not apply to the echo backend (echo runs no model copies)" in message
    assert "--engine-arg echo_txt: not an argument of the echo engine (EchoBackend); did you mean echo_text?" in message
    assert "--engine-arg context_length: set it with --max-model-len" in message

    backend = open_backend("echo", str(tiny_model_dir), BackendOptions(dtype="float32", batch_size=4), settings)
    assert backend.received == {"batch_size": 4, "context_length": 64, "echo_text": " 7", "echo_workers": 2}, (
        "a dropped option (dtype) is not passed"
    )
    backend.close()


def test_a_registered_backend_generates_a_run(echo, tiny_model_dir, tmp_path):
    from e3eval.generation import GenerateConfig, generate_run

    dataset = write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "problem": "What is 6 * 7?", "answer": "42"}])
    config = GenerateConfig(model=str(tiny_model_dir), dataset=str(dataset), out=tmp_path / "run", n=2, max_tokens=8,
                            backend="echo", backend_options={"tokenizer": str(tiny_model_dir)})  # fmt: skip
    result = generate_run(config)
    assert (result.generated, result.failed, result.backend) == (2, 0, "echo")
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["generation"]
    received = recorded["engine"]["received"]
    assert received["batch_size"] == 256, "the spec's default batch"
    assert received["context_length"] == recorded["context"]["needed"], "an engine that takes a context reserves it"


def test_registration_refuses_a_taken_name_and_a_bad_declaration(echo, monkeypatch):
    plugin = types.ModuleType("e3eval_test_plugin")
    plugin.SPEC = dataclasses.replace(SPEC, name="hf")  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, plugin.__name__, plugin)
    with pytest.raises(ValueError, match=r"already declared by e3eval\.backends\.hf"):
        register(plugin.__name__)
    with pytest.raises(ValueError, match="not BackendOptions fields"):
        BackendSpec("bad", "json", "X", frozenset({"temperature"}))
    unregister("echo")
    with pytest.raises(UserError, match="unknown backend 'echo'; choose one of sglang, vllm, hf, openai"):
        spec("echo")
    assert names() == BACKENDS


def test_backend_options_are_checked_once_with_their_flags(tiny_model_dir, tmp_path):
    from e3eval.forced_answer import forced_config
    from e3eval.generation import GenerateConfig, check_config

    flags = {f.name: f.metadata["flag"] for f in dataclasses.fields(BackendOptions)}
    assert flags["batch_size"] == BackendOptions.flag("batch_size") == "--batch"
    assert BackendOptions.flag("timeout_s") == "--request-timeout" and BackendOptions.flag("retries") == "retries"
    bad = BackendOptions(dtype="float8", batch_size=0, concurrency=0, timeout_s=float("nan"))
    assert bad.problems() == ["--dtype 'float8': choose one of auto, bfloat16, float16, float32",
                              "--batch must be at least 1", "--concurrency must be at least 1",
                              "--request-timeout must be a positive number of seconds"]  # fmt: skip
    assert BackendOptions(dtype="auto", batch_size=1, timeout_s=0.5).problems() == []
    with pytest.raises(UserError, match="; ".join(map(re.escape, bad.problems()))):
        bad.check()
    with pytest.raises(UserError, match="echo_text: not a backend option"):
        BackendOptions.of({"echo_text": "x"})

    # Generation and forced answers both report the dataclass's own phrases.
    given = {k: v for k, v in dataclasses.asdict(bad).items() if v is not None}
    config = GenerateConfig(model="m", dataset="demo", out=tmp_path / "r", n=1, max_tokens=8, backend_options=given)
    with pytest.raises(UserError) as generation:
        check_config(config)
    with pytest.raises(UserError) as forced:
        forced_config(str(tiny_model_dir), "hf", given)
    for phrase in bad.problems():
        assert phrase in str(generation.value) and phrase in str(forced.value)


def test_an_installed_plugin_is_found_by_its_entry_point(tiny_model_dir, tmp_path):
    """A package that declares `[project.entry-points."e3eval.backends"] echo = "its.module"` is a backend of the
    command line with no code of the user's: here a dist-info folder on PYTHONPATH names this test module."""
    import os
    import subprocess

    site = tmp_path / "site"
    info = site / "echo_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: echo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[e3eval.backends]\necho = test_backend_registry\n")
    dataset = write_jsonl(tmp_path / "problems.jsonl", [{"id": "a", "problem": "What is 6 * 7?", "answer": "42"}])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "tests")])}
    done = subprocess.run(
        [sys.executable, "-m", "e3eval.cli", "generate", "--backend", "echo", "--model", str(tiny_model_dir),
         "--tokenizer", str(tiny_model_dir), "--dataset", str(dataset), "--n", "1", "--max-tokens", "8",
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["generation"]
    assert recorded["engine"]["engine"] == "echo"


def test_a_broken_plugin_is_one_line_naming_it(tiny_model_dir, tmp_path):
    """An entry point naming a module that does not import, or a SPEC of another name, is a user's error: exit 2,
    one line naming the backend and its module, no traceback."""
    import os
    import subprocess

    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[e3eval.backends]\nbroken = no_such_module\nmisnamed = misnamed_plugin\n")
    (site / "misnamed_plugin.py").write_text("from test_backend_registry import SPEC\n")  # declares `echo`
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO / "tests")])}
    for name, says in (("broken", "no_such_module does not load"), ("misnamed", "SPEC declares 'echo'")):
        done = subprocess.run(
            [sys.executable, "-m", "e3eval.cli", "generate", "--backend", name, "--model", str(tiny_model_dir),
             "--dataset", "demo", "--n", "1", "--max-tokens", "8", "--out", str(tmp_path / name)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_backend_is_held_to_the_limit_and_the_shape_it_was_asked_for():
    """A plugin that ignores `max_tokens` gets those completions failed, saying so (never stored as samples longer
    than the run's limit); one that returns another number of completions stops the run with one line."""
    from e3eval.backends import CheckedBackend
    from e3eval.errors import EngineFailure

    class Sloppy:
        name = "sloppy"
        token_ids_source = "engine"
        tokenizer = None

        def __init__(self, length: int, extra: int = 0) -> None:
            self.length, self.extra = length, extra

        def generate(self, requests, spec):
            return [[Completion(tuple(range(self.length)), "stop") for _ in [*r.seeds, *range(self.extra)]]
                    for r in requests]  # fmt: skip

    request = GenerationRequest("q", "", (1, 2), (0, 1), max_tokens=4)
    spec_ = SamplingSpec(16)
    [[ok, _]] = CheckedBackend(Sloppy(4)).generate([request], spec_)
    assert len(ok.token_ids) == 4 and ok.error is None
    [[over, _]] = CheckedBackend(Sloppy(5)).generate([request], spec_)
    assert over.finish_reason == "error" and "returned 5 tokens for a limit of 4" in over.error
    with pytest.raises(EngineFailure, match="returned completions"):
        CheckedBackend(Sloppy(1, extra=1)).generate([request], spec_)
