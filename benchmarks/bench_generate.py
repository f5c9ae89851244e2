"""Benchmark: `e3eval generate` against calling the engine directly, for vllm (CPU or GPU build) and hf.

Work: the bundled `demo` problems (16) rendered with the default prompt (aime template in the model's chat template),
`--n` samples each with their e3eval seeds (`sample_seed(base, problem, index)`), `--max-tokens`, temperature 0.6,
top-p 0.95. Model: the tiny random Qwen3 that e3eval builds offline (default), a random Qwen3 of the 0.6B shape with
`--shape qwen3-0.6b` (the issue's H100 measurement: 0.44B parameters without embeddings, 152k vocabulary), or
`--model PATH`. Each engine is started once and warmed up on one request; then, interleaved `--repeats` times,
the best time of each of:
- vllm ours: `generate_run(GenerateConfig(...))` into a fresh run directory, with the warm `VLLMBackend` lent to it
  (everything e3eval does: dataset, rendering, manifest, batching, Parquet shards);
- vllm raw: `llm.generate` of the same `LLM` on the same token ids with one `SamplingParams(seed=...)` per sample,
  in one call, outputs kept in memory (also timed in calls of `--batch` samples, as e3eval makes them, to tell the
  price of batching from that of e3eval's own code);
- hf ours: the same `generate_run` with the warm `HFBackend`;
- hf raw: transformers `model.generate(do_sample=True, temperature, top_p, top_k=0)` of the same model on the same
  left-padded batches (`HFBackend.batch_size` rows each), one global seed (it has no per-sample seeds).
hf runs first and prints wall time and time per generated token (the samples differ, so their lengths may too).
The last line is `bench_generate: ours=<s> raw=<s> overhead=<pct>` for vllm; the target overhead is <= 10%.
`--profile` prints where e3eval's own time goes in one vllm `generate_run` (cProfile, engine calls excluded).
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from e3eval import generation
from e3eval.datasets import demo_problems
from e3eval.dev.tiny_model import build_tiny_model
from e3eval.generation import GenerateConfig, default_batch, generate_run, sample_seed
from e3eval.prompts import PromptSpec, render_prompt

TEMPERATURE, TOP_P, SEED = 0.6, 0.95, 0


def build_qwen3_shape(out_dir: Path) -> Path:
    """A random-weight model of Qwen3-0.6B's shape (the issue's 0.44B measurement) with the tiny tokenizer."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    build_tiny_model(out_dir)  # tokenizer and generation config; the model is replaced below
    tiny = Qwen3Config.from_pretrained(out_dir)
    config = Qwen3Config(
        vocab_size=151936, hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
        num_key_value_heads=8, head_dim=128, max_position_embeddings=40960, tie_word_embeddings=True,
        bos_token_id=tiny.bos_token_id, eos_token_id=tiny.eos_token_id, pad_token_id=tiny.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).to(torch.bfloat16).save_pretrained(out_dir)
    return out_dir


def work(tokenizer: Any, n: int) -> tuple[list[list[int]], list[int]]:
    """The token ids and seed of every sample, in e3eval's order (problem-major)."""
    prompts, seeds = [], []
    for problem in demo_problems():
        ids = render_prompt(problem, PromptSpec(), tokenizer)[1]
        for idx in range(n):
            prompts.append(ids)
            seeds.append(sample_seed(SEED, problem.problem_id, idx))
    return prompts, seeds


class _Lent:
    """A warm backend lent to `generate_run`, which would otherwise start (and at the end close) its own engine."""

    def __init__(self, backend: Any) -> None:
        self._backend = backend
        self.name, self.token_ids_source = backend.name, backend.token_ids_source
        self.tokenizer = backend.tokenizer

    def generate(self, requests: Any, spec: Any) -> Any:
        return self._backend.generate(requests, spec)

    def describe(self) -> dict[str, Any]:
        return self._backend.describe()

    def close(self) -> None:
        pass


@contextlib.contextmanager
def lend(backend: Any) -> Iterator[None]:
    # generate_run has no parameter for an open engine; timing engine start-up would measure vLLM, not e3eval.
    original = generation.open_backend
    generation.open_backend = lambda *_, **__: _Lent(backend)
    try:
        yield
    finally:
        generation.open_backend = original


def ours_seconds(backend: Any, name: str, model: str, args: argparse.Namespace, out: Path) -> tuple[float, int]:
    config = GenerateConfig(model=model, dataset="demo", out=out, n=args.n, max_tokens=args.max_tokens,
                            temperature=TEMPERATURE, top_p=TOP_P, seed=SEED, backend=name,
                            batch_samples=args.batch or default_batch(name))  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)
    with lend(backend):
        started = time.perf_counter()
        result = generate_run(config)
        seconds = time.perf_counter() - started
    assert result.generated == 16 * args.n, result
    return seconds, result.tokens


def best(runs: list[tuple[float, int]]) -> tuple[float, int]:
    return min(runs)


def bench_hf(model: str, args: argparse.Namespace, work_dir: Path) -> None:
    import torch

    from e3eval.backends.hf import HFBackend

    backend = HFBackend(model, batch_size=args.hf_batch)
    prompts, _ = work(backend.tokenizer, args.n)
    eos = backend.eos_ids

    def raw() -> tuple[float, int]:
        torch.manual_seed(SEED)
        started = time.perf_counter()
        tokens = 0
        for start in range(0, len(prompts), backend.batch_size):
            chunk = prompts[start : start + backend.batch_size]
            width = max(map(len, chunk))
            ids = torch.tensor([[backend.pad_id] * (width - len(p)) + p for p in chunk], device=backend.device)
            mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in chunk], device=backend.device)
            with torch.inference_mode():
                out = backend.model.generate(input_ids=ids, attention_mask=mask, do_sample=True,
                                             temperature=TEMPERATURE, top_p=TOP_P, top_k=0,
                                             max_new_tokens=args.max_tokens, eos_token_id=eos,
                                             pad_token_id=backend.pad_id)  # fmt: skip
            for row in out[:, width:].tolist():
                stop = next((i for i, t in enumerate(row) if t in eos), None)
                tokens += len(row) if stop is None else stop + 1
        if backend.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - started, tokens

    warm = GenerateConfig(model=model, dataset="demo", out=work_dir / "hf-warm", n=1, max_tokens=4, limit=1,
                          backend="hf")  # fmt: skip
    shutil.rmtree(warm.out, ignore_errors=True)
    with lend(backend):
        generate_run(warm)
    torch.manual_seed(SEED)
    backend.model.generate(input_ids=torch.tensor([prompts[0]], device=backend.device), max_new_tokens=4,
                           do_sample=True, pad_token_id=backend.pad_id)  # fmt: skip
    ours_runs, raw_runs = [], []
    for i in range(args.repeats):
        ours_runs.append(ours_seconds(backend, "hf", model, args, work_dir / f"hf-{i}"))
        raw_runs.append(raw())
    (ours, ours_tokens), (raw_s, raw_tokens) = best(ours_runs), best(raw_runs)
    ratio = (ours / ours_tokens) / (raw_s / raw_tokens)
    print(f"hf ({backend.device}, {backend.dtype}, batch {backend.batch_size}): ours={ours:.2f}s "
          f"({ours_tokens / ours:,.0f} tok/s) raw model.generate={raw_s:.2f}s ({raw_tokens / raw_s:,.0f} tok/s) "
          f"time/token ours/raw={ratio:.2f}x", flush=True)  # fmt: skip
    backend.close()


def bench_vllm(model: str, args: argparse.Namespace, work_dir: Path) -> None:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from e3eval.backends.vllm import VLLMBackend

    options: dict[str, Any] = {"dtype": "float32", "enforce_eager": True} if args.cpu_vllm else {}
    backend = VLLMBackend(model, max_model_len=args.max_model_len, **options)
    prompts, seeds = work(backend.tokenizer, args.n)

    def raw(chunk: int) -> tuple[float, int]:
        requests = [TokensPrompt(prompt_token_ids=p) for p in prompts]
        params = [SamplingParams(n=1, max_tokens=args.max_tokens, temperature=TEMPERATURE, top_p=TOP_P, seed=s)
                  for s in seeds]  # fmt: skip
        started = time.perf_counter()
        outputs = []
        for start in range(0, len(requests), chunk):
            end = start + chunk
            outputs.extend(backend.llm.generate(requests[start:end], params[start:end], use_tqdm=False))
        seconds = time.perf_counter() - started
        return seconds, sum(len(o.outputs[0].token_ids) for o in outputs)

    backend.llm.generate([TokensPrompt(prompt_token_ids=prompts[0])], SamplingParams(max_tokens=4, seed=1),
                         use_tqdm=False)  # fmt: skip
    ours_runs, raw_runs, chunked_runs = [], [], []
    batch = args.batch or default_batch("vllm")
    for i in range(args.repeats):
        ours_runs.append(ours_seconds(backend, "vllm", model, args, work_dir / f"vllm-{i}"))
        raw_runs.append(raw(len(prompts)))
        if batch < len(prompts):
            chunked_runs.append(raw(batch))
    (ours, ours_tokens), (raw_s, raw_tokens) = best(ours_runs), best(raw_runs)
    if ours_tokens != raw_tokens:
        print(f"note: ours sampled {ours_tokens} tokens, raw {raw_tokens}: the engine is not seed-deterministic here")
    if chunked_runs:
        # Splits e3eval's overhead into its own code and the price of --batch (engine calls of fewer samples).
        chunked = best(chunked_runs)[0]
        print(f"vllm raw in calls of --batch {batch} samples (as e3eval makes them): {chunked:.2f}s, "
              f"{100 * (chunked - raw_s) / raw_s:.1f}% over one call", flush=True)  # fmt: skip
    if args.profile:
        profile_generate_run(lambda out: ours_seconds(backend, "vllm", model, args, out), work_dir / "vllm-profile")
    print(f"vllm: ours={ours:.2f}s ({ours_tokens / ours:,.0f} tok/s) raw llm.generate={raw_s:.2f}s "
          f"({raw_tokens / raw_s:,.0f} tok/s)", flush=True)  # fmt: skip
    print(f"bench_generate: ours={ours:.2f} raw={raw_s:.2f} overhead={100 * (ours - raw_s) / raw_s:.1f}%")


def profile_generate_run(run: Callable[[Path], Any], out: Path) -> None:
    profiler = cProfile.Profile()
    profiler.runcall(run, out)
    stats = pstats.Stats(profiler)
    engine = sum(v[3] for k, v in stats.stats.items() if k[2] == "generate" and "backends" in k[0])
    print(
        f"profile: one generate_run, {stats.total_tt:.2f}s in all, {engine:.2f}s inside backend.generate; "
        "e3eval's own functions by cumulative time:"
    )
    stats.sort_stats("cumulative")
    for (path, line, func), (_, calls, _, cumulative, _) in sorted(stats.stats.items(), key=lambda kv: -kv[1][3]):
        if "/e3eval/" in path and "/backends/" not in path and cumulative > 0.005:
            print(f"  {cumulative:7.3f}s {calls:6d} calls  {Path(path).name}:{line} {func}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model directory (default: the tiny model, built here)")
    parser.add_argument("--shape", choices=("tiny", "qwen3-0.6b"), default="tiny", help="random model to build")
    parser.add_argument("--engines", default="hf,vllm", help="comma-separated: hf, vllm (vllm must be last)")
    parser.add_argument("--n", type=int, default=16, help="samples per problem (16 problems; e3eval's default)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="generate_run's samples per engine call (default: e3eval's per-backend default)",
    )
    parser.add_argument("--hf-batch", type=int, default=16, help="HFBackend batch size, also used for model.generate")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--profile", action="store_true", help="profile one vllm generate_run")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the model and runs here")
    args = parser.parse_args()
    import torch

    args.cpu_vllm = not torch.cuda.is_available()
    if args.threads:
        torch.set_num_threads(args.threads)
    # vLLM's CPU build: the engine in this process (timings exclude IPC) and a small KV cache.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.workdir or Path(tmp)
        work_dir.mkdir(parents=True, exist_ok=True)
        model = args.model
        if model is None:
            model_dir = work_dir / f"model-{args.shape}"
            if not (model_dir / "config.json").is_file():
                (build_tiny_model if args.shape == "tiny" else build_qwen3_shape)(model_dir)
            model = str(model_dir)
        print(f"work: 16 demo problems x {args.n} samples x {args.max_tokens} tokens max, temperature {TEMPERATURE}, "
              f"top-p {TOP_P}, best of {args.repeats}; model {model}", flush=True)  # fmt: skip
        engines = args.engines.split(",")
        if "hf" in engines:
            bench_hf(model, args, work_dir)
        if "vllm" in engines:
            bench_vllm(model, args, work_dir)
    sys.exit(0)


if __name__ == "__main__":
    main()
