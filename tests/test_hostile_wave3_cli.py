"""Wave 3 faults at the command line, each reproduced before its fix with the tiny models (real `e3eval` processes):
budget forcing that silently did nothing, `report` replacing a user's file, summaries that no longer describe a run
that grew after scoring, and a mistyped `--model` spending a minute on hub retries while offline.

The stopping tiny model thinks exactly STOP tokens, then writes `</think>`, an answer and EOS, so how many waits
forcing inserts is known. Nothing touches the network: `run_cli` sets HF_HUB_OFFLINE=1, and the in-process checks of
the hub's reachability point it at a closed port on 127.0.0.1.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import pytest
from conftest import free_port, run_cli

from e3eval.dev.tiny_model import build_stopping_model
from e3eval.errors import UserError
from e3eval.generation import GenerateConfig, generate_run
from e3eval.report import StaleSummaryWarning, compare
from e3eval.score import ScoreConfig, score_run
from e3eval.tokenizers import load_tokenizer, resolve_model_source

STOP = 5


@pytest.fixture(scope="module")
def stopping_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_stopping_model(tmp_path_factory.mktemp("stopping-wave3"), STOP)


def _generate(model: Path, out: Path, *extra: str, n: int = 2):
    return run_cli("e3eval", "generate", "--model", str(model), "--backend", "hf", "--dataset", "demo", "--limit", "2",
                   "--n", str(n), "--max-tokens", "40", "--out", str(out), *extra)  # fmt: skip


def _generation(run: Path) -> dict:
    return json.loads((run / "run.json").read_text())["generation"]


# 1. Forcing that did nothing ------------------------------------------------------------------------------------------


def test_wait_with_a_delimiter_the_model_never_writes_is_counted_and_warned(stopping_dir, tmp_path):
    result = _generate(stopping_dir, tmp_path / "zz", "--wait", "2", "--think-end", "zzqq")
    assert result.returncode == 0, result.stderr  # the samples are valid ones; the warning says what they are
    assert "inserted 0 waits in 0 of 4 samples" in result.stdout
    warning = " ".join(result.stderr.split())
    assert "warning: --wait 2 inserted nothing" in warning and "'zzqq'" in warning and "--think-end" in warning
    assert "4 of them ended with EOS without writing it" in warning
    assert _generation(tmp_path / "zz")["insertions"] == {"waits": 0, "samples_forced": 0, "samples": 4}


def test_wait_counts_insertions_in_run_json_and_on_the_console(stopping_dir, tmp_path):
    out = tmp_path / "forced"
    result = _generate(stopping_dir, out, "--wait", "2")
    assert result.returncode == 0, result.stderr
    assert "inserted 8 waits in 4 of 4 samples" in result.stdout and "warning" not in result.stderr
    assert _generation(out)["insertions"] == {"waits": 8, "samples_forced": 4, "samples": 4}
    grown = _generate(stopping_dir, out, "--wait", "2", n=3)
    assert grown.returncode == 0, grown.stderr
    assert "inserted 4 waits in 2 of 2 samples" in grown.stdout, "the line counts this invocation's samples"
    assert _generation(out)["insertions"] == {"waits": 12, "samples_forced": 6, "samples": 6}, "run.json: the run's"
    plain = _generate(stopping_dir, tmp_path / "plain")
    assert (
        plain.returncode == 0 and "inserted" not in plain.stdout and "insertions" not in _generation(tmp_path / "plain")
    )


def test_sweep_warns_below_its_table_when_wait_inserted_nothing(stopping_dir, tmp_path):
    result = run_cli("e3eval", "sweep", "--model", str(stopping_dir), "--backend", "hf", "--dataset", "demo",
                     "--limit", "2", "--n", "1", "--budgets", "20,40", "--out", str(tmp_path / "sw"), "--workers", "1",
                     "--bootstrap", "0", "--wait", "3", "--think-end", "zzqq")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "inserted 0 waits in 0 of 2 samples" in result.stdout and "pass@1" in result.stdout
    assert "warning: --wait 3 inserted nothing" in " ".join(result.stderr.split())


# 2. report writes only with --out, and never over a file e3eval did not write ---------------------------------------


def _scored(model: Path, out: Path, n: int = 1) -> Path:
    generate_run(GenerateConfig(model=str(model), dataset="demo", out=out, n=n, max_tokens=40, backend="hf", limit=2))
    score_run(out, ScoreConfig(budgets=(20, 40), workers=1, resamples=0))
    return out


def test_report_writes_nothing_without_out_and_never_replaces_a_users_file(stopping_dir, tmp_path):
    a, b = _scored(stopping_dir, tmp_path / "a"), _scored(stopping_dir, tmp_path / "b")
    mine = tmp_path / "summary.csv"
    mine.write_text("my,own\n1,2\n")
    shown = run_cli("e3eval", "report", str(a), str(b), cwd=tmp_path)
    assert shown.returncode == 0 and "pass@1" in shown.stdout and "wrote" not in shown.stdout, shown.stderr
    assert mine.read_text() == "my,own\n1,2\n", "report of several runs wrote ./summary.csv over the user's file"
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"a", "b", "summary.csv"}

    refused = run_cli("e3eval", "report", str(a), str(b), "--out", str(mine))
    assert refused.returncode == 2 and "was not written by e3eval" in refused.stderr and "--force" in refused.stderr
    assert mine.read_text() == "my,own\n1,2\n"
    forced = run_cli("e3eval", "report", str(a), str(b), "--out", str(mine), "--force")
    assert forced.returncode == 0 and f"wrote {mine}" in forced.stdout.replace("\n", ""), forced.stderr
    assert mine.read_text().startswith("run,name,model,dataset,policy,forcing,budget,metric,k,value")
    again = run_cli("e3eval", "report", str(a), "--out", str(mine))  # e3eval's own file: replaced without --force
    assert again.returncode == 0, again.stderr
    assert {line.split(",")[1] for line in mine.read_text().splitlines()[1:]} == {"a"}

    inside = run_cli("e3eval", "report", str(a), "--out", str(a / "summary.csv"))
    assert inside.returncode == 2 and "which is a run directory" in inside.stderr


# 3. A run that grew after it was scored ------------------------------------------------------------------------------


def test_report_and_compare_say_a_run_grew_after_scoring(stopping_dir, tmp_path):
    run = _scored(stopping_dir, tmp_path / "grown", n=1)
    generate_run(GenerateConfig(model=str(stopping_dir), dataset="demo", out=run, n=3, max_tokens=40, backend="hf",
                                limit=2))  # fmt: skip
    result = run_cli("e3eval", "report", str(run))
    assert result.returncode == 0, result.stderr
    said = " ".join(result.stderr.split())
    assert f"grown: 4 samples were added after it was scored (2 scored, 6 now); rescore with e3eval score {run}" in said
    with pytest.warns(StaleSummaryWarning, match="4 samples were added after it was scored"):
        comparison = compare([run])
    assert len(comparison.warnings) == 1 and comparison.warnings[0].startswith("grown: 4 samples were added")

    score_run(run, ScoreConfig(budgets=(20, 40), workers=1, resamples=0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", StaleSummaryWarning)
        assert compare([run]).warnings == []
    assert "warning" not in run_cli("e3eval", "report", str(run)).stderr


# 4. A mistyped --model while offline fails at once ----------------------------------------------------------------


def test_a_hub_shaped_typo_fails_at_once_offline(tmp_path):
    started = time.monotonic()
    result = run_cli("e3eval", "generate", "--model", "org/typo", "--dataset", "demo", "--max-tokens", "8",
                     "--backend", "hf", "--out", str(tmp_path / "gen"))  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "--model org/typo: no such local folder, and the hub is unreachable (offline" in result.stderr
    assert "give the model's local path" in result.stderr
    assert time.monotonic() - started < 30, "no hub retries"
    imported = run_cli("e3eval", "import", str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "imp"), "--tokenizer",
                       "modls/tiny")  # fmt: skip
    assert imported.returncode == 2


def test_resolve_model_source_without_network(tmp_path, monkeypatch, tiny_model_dir):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{free_port()}")  # nothing listens: "no network"
    assert resolve_model_source(str(tiny_model_dir), "--model") == "local"
    with pytest.raises(UserError, match=r"^--model org/typo: no such local folder, and the hub is unreachable "
                                        r"\(offline: no connection to 127\.0\.0\.1"):  # fmt: skip
        resolve_model_source("org/typo", "--model")
    for local in ("./nope", "a/b/c", str(tmp_path / "nope"), "bad name!!"):
        with pytest.raises(UserError, match="no such file or directory"):
            resolve_model_source(local, "--model")
    with pytest.raises(UserError, match=r"cannot load tokenizer 'org/typo': no such local folder"):
        load_tokenizer("org/typo")

    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(UserError, match=r"unreachable \(offline: TRANSFORMERS_OFFLINE=1\)"):
        resolve_model_source("gpt2", "--tokenizer")

    # A model in the local hub cache loads offline: it is not refused.
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--org--cached" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    (cache / "models--org--cached" / "refs").mkdir()
    (cache / "models--org--cached" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    assert resolve_model_source("org/cached", "--model") == "hub"
