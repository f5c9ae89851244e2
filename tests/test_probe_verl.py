"""`e3eval probe --temperature T --aggregate token` equals verl's own functions on the same tokens.

verl (0.9.1, imported for real) divides the actor's and the reference's logits by the rollout temperature before
`logprobs_from_logits`, `entropy_from_logits` and `kl_penalty`, and reduces a batch with `agg_loss(..., "token-mean")`.
Here those functions run on the tiny models' full logits of a run's stored tokens; the probe's numbers must match
them to 1e-5.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import run_cli

pytest.importorskip("verl", reason="verl is not installed: `make engines`")

TEMPERATURE = 0.6
BUDGET = 24


@pytest.fixture(scope="module")
def probed(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    root = tmp_path_factory.mktemp("verl-probe")
    policy = root / "policy"
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # a "trained" policy: the tiny model with noise on one MLP
        for name, weight in model.named_parameters():
            if "layers.0.mlp" in name:
                weight.add_(0.3 * torch.randn(weight.shape, generator=generator))
    model.save_pretrained(policy)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(policy)
    run = root / "run"
    done = run_cli("e3eval", "generate", "--model", str(policy), "--backend", "hf", "--dataset", "demo", "--limit",
                   "3", "--n", "2", "--max-tokens", str(BUDGET), "--dtype", "float32", "--out", str(run))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = root / "probes.parquet"
    done = run_cli("e3eval", "probe", str(run), "--model", str(policy), "--ref", str(tiny_model_dir), "--budgets",
                   str(BUDGET), "--per-token", "--aggregate", "token", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "temperature: 0.6 (the run's sampling temperature" in done.stdout, "the run's temperature by default"
    assert "one token mean over all samples' tokens" in done.stdout and "softmax(logits / 0.6)" in done.stdout
    return run, policy, out


def _verl_tokens(run: Path, policy: Path, ref: Path) -> dict:
    """Per sample: verl's log-probs, entropies, k1 and k3 of the response tokens at the rollout temperature."""
    import torch
    from transformers import AutoModelForCausalLM
    from verl.trainer.ppo.core_algos import kl_penalty
    from verl.utils.torch_functional import entropy_from_logits, logprobs_from_logits

    models = [AutoModelForCausalLM.from_pretrained(p, dtype=torch.float32).eval() for p in (policy, ref)]
    prompts = {r["problem_id"]: r["prompt_token_ids"] for r in pq.read_table(run / "problems.parquet").to_pylist()}
    found = {}
    for shard in sorted((run / "rollouts").glob("*.parquet")):
        for row in pq.read_table(shard).to_pylist():
            prompt, response = prompts[row["problem_id"]], row["token_ids"][:BUDGET]
            ids = torch.tensor([prompt + response])
            with torch.no_grad():
                logits = [m(ids).logits[0, len(prompt) - 1 : -1].float() / TEMPERATURE for m in models]
            labels = ids[0, len(prompt) :]
            logprob, ref_logprob = (logprobs_from_logits(x, labels) for x in logits)
            found[(row["problem_id"], row["sample_idx"])] = {
                "logprob": logprob, "entropy": entropy_from_logits(logits[0]),
                "k1": kl_penalty(logprob, ref_logprob, "kl"), "k3": kl_penalty(logprob, ref_logprob, "low_var_kl"),
            }  # fmt: skip
    return found


def test_probe_equals_verls_functions_at_the_rollout_temperature(probed, tiny_model_dir):
    import torch
    from verl.trainer.ppo.core_algos import agg_loss

    from e3eval.probes.probe_summary import summarize

    run, policy, out = probed
    table = pq.read_table(out)
    rows = table.to_pylist()
    verl = _verl_tokens(run, policy, tiny_model_dir)
    assert len(rows) == len(verl) == 6 and {r["temperature"] for r in rows} == {TEMPERATURE}
    for row in rows:
        expected = verl[(row["problem_id"], row["sample_idx"])]
        assert row["n_tokens"] == len(expected["logprob"])
        np.testing.assert_allclose(row["token_logprob"], expected["logprob"].numpy(), atol=1e-5)
        np.testing.assert_allclose(row["token_entropy"], expected["entropy"].numpy(), atol=1e-5)
        assert row["kl_k1"] == pytest.approx(float(expected["k1"].mean()), abs=1e-5)
        assert row["kl_k3"] == pytest.approx(float(expected["k3"].mean()), abs=1e-5)
    # verl's batch reduction: token-mean over a padded (samples x tokens) matrix with the response mask.
    length = max(len(v["logprob"]) for v in verl.values())
    mask = torch.zeros(len(verl), length)
    for metric, column in (("entropy", "mean_entropy"), ("k1", "kl_k1"), ("k3", "kl_k3")):
        matrix = torch.zeros(len(verl), length)
        for i, values in enumerate(v[metric] for v in verl.values()):
            matrix[i, : len(values)], mask[i, : len(values)] = values, 1
        reference = float(agg_loss(matrix, mask, "token-mean"))
        (summary,) = [s for s in summarize(table, aggregate="token") if s.metric == column and s.split == "all"]
        assert summary.value == pytest.approx(reference, abs=1e-5), column
        assert summary.n_problems == 3 and summary.n_samples == 6 and summary.ci_low <= summary.value


def test_the_temperature_is_recorded_and_a_new_one_measures_again(probed, tiny_model_dir):
    run, policy, out = probed
    again = run_cli("e3eval", "probe", str(run), "--model", str(policy), "--ref", str(tiny_model_dir), "--budgets",
                    str(BUDGET), "--temperature", "1", "--out", str(out))  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "probed 6 (model, sample) pair(s), 0 already there" in again.stdout
    assert {r["temperature"] for r in pq.read_table(out).to_pylist()} == {1.0}, "the slot's rows are replaced"
    own = run_cli("e3eval", "probe", str(run), "--model", str(policy), "--budgets", str(BUDGET))
    assert own.returncode == 0, own.stderr
    assert json.loads((run / "run.json").read_text())["probes"]["last_call"]["temperature"] == TEMPERATURE
    refused = run_cli("e3eval", "probe", str(run), "--model", str(policy), "--temperature", "0")
    assert refused.returncode == 2 and "--temperature 0.0: a positive number" in refused.stderr
