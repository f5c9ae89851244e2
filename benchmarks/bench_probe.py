"""Benchmark: `token_stats` (body once + chunked head) against a naive full-forward probe, speed and peak memory.

Work: one sequence of seeded random token ids of each length in `--lengths` (a 64-token prompt, the rest scored), the
per-token log-prob of every response token and the entropy of its full-vocabulary distribution at temperature 1,
computed two ways on the same random-weight Qwen3 built offline (`--seed`):
- ours: `e3eval.probes.token_stats(model, ids, 64, chunk=--chunk)`: the model body once over the sequence, the
  vocabulary projection + float32 log-softmax + entropy in chunks of `--chunk` positions;
- naive: `model(ids).logits` for the whole sequence at once, float32 log-softmax over all of it, then the same
  gather and entropy.
Both see a warm-up call on a short sequence first (and ours its one-time head check), then the best of `--repeats`
timed calls per length. On cpu each implementation runs in its own fresh process (`--rounds` of them, alternated,
best time kept) over the lengths in increasing order, with one torch thread by default (on a machine shared with
other work, multi-threaded CPU timings swing 2-3x from call to call), and its peak resident set (`ru_maxrss`) is read
after each length (torch's CPU allocations are invisible to tracemalloc); on cuda, in one process,
`torch.cuda.max_memory_allocated` above the memory held before the call. What matters is the growth with length:
the weights and the runtime are the same at every length, so the slope between the shortest and the longest length
is the probe's own memory. Shapes: cpu, hidden 256, 4 layers, vocabulary `--vocab` (default 65,536), float32, lengths
512-4k; cuda (`--device cuda`), the realistic Qwen3-0.6B shape (hidden 1024, 28 layers, vocabulary 151,936) in
bfloat16 with float32 softmax, lengths 16k-32k. The two implementations' mean log-prob and entropy are printed side by
side. The last line is `bench_probe: ours=<tok/s> naive=<tok/s> ratio=<x> mem_ratio=<x>` (scored tokens per second at
the longest length; mem_ratio = naive's peak-memory growth / ours from the shortest to the longest length, ours
floored at 1 MiB). Targets: ratio >= 1, mem_ratio >= 10.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

PROMPT = 64
MIB = 2**20


def build_model(device: str, vocab: int, seed: int) -> Any:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    if device.startswith("cuda"):
        shape = dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                     num_key_value_heads=8, head_dim=128)  # fmt: skip
        dtype = torch.bfloat16
    else:
        shape = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                     num_key_value_heads=2, head_dim=64)  # fmt: skip
        dtype = torch.float32
    config = Qwen3Config(vocab_size=vocab, max_position_embeddings=65536, tie_word_embeddings=True, **shape)
    torch.manual_seed(seed)
    with torch.device(device):
        return Qwen3ForCausalLM(config).to(dtype).eval()


def random_ids(length: int, vocab: int, seed: int) -> list[int]:
    import torch

    return torch.randint(0, vocab, (length,), generator=torch.Generator().manual_seed(seed + length)).tolist()


def naive_stats(model: Any, ids: list[int]) -> tuple[Any, Any]:
    import torch

    with torch.inference_mode():
        tensor = torch.tensor([ids], device=model.device)
        logp = torch.log_softmax(model(tensor).logits[0].float(), dim=-1)[PROMPT - 1 : -1]
        logprob = logp.gather(1, tensor[0, PROMPT:, None])[:, 0]
        return logprob, -(logp.exp() * logp).sum(dim=-1)


def measure(impl: str, model: Any, lengths: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Per length, in increasing order: best time of `repeats` calls, peak memory, means of what they computed."""
    import torch

    from e3eval.probes import ProbeModel, token_stats

    probe = ProbeModel.wrap(model, "random-qwen3")
    cuda = args.device.startswith("cuda")

    def once(seq: list[int]) -> tuple[float, float]:
        if impl == "ours":
            stats = token_stats(probe, seq, PROMPT, chunk=args.chunk)
            return float(stats.logprob.mean()), float(stats.entropy.mean())
        logprob, entropy = naive_stats(model, seq)
        return float(logprob.mean()), float(entropy.mean())

    once(random_ids(2 * PROMPT, args.vocab, args.seed))  # warm-up (and ours' one-time head check)
    results = []
    for length in sorted(lengths):
        ids = random_ids(length, args.vocab, args.seed)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            held = torch.cuda.memory_allocated()
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            means = once(ids)
            if cuda:
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - started)
        # On cpu the high-water mark of the process so far: lengths go up, so it is this length's peak (or more).
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = torch.cuda.max_memory_allocated() - held if cuda else rss
        results.append({"impl": impl, "length": length, "seconds": best, "peak_bytes": peak, "logprob": means[0],
                        "entropy": means[1]})  # fmt: skip
    return results


def run_worker(args: argparse.Namespace) -> None:
    import torch

    torch.set_grad_enabled(False)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(args.device, args.vocab, args.seed)
    print(json.dumps(measure(args.worker, model, parse_lengths(args), args)), flush=True)


def measure_in_process(args: argparse.Namespace, impl: str) -> list[dict[str, Any]]:
    """On cpu each implementation runs in a fresh process, so that its peak resident set is its own."""
    command = [sys.executable, __file__, "--worker", impl, "--lengths", ",".join(map(str, parse_lengths(args))),
               "--device", args.device, "--vocab", str(args.vocab), "--chunk", str(args.chunk),
               "--repeats", str(args.repeats), "--seed", str(args.seed), "--threads", str(args.threads)]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(f"bench_probe: the {impl} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def parse_lengths(args: argparse.Namespace) -> list[int]:
    cuda = args.device.startswith("cuda")
    return sorted(int(x) for x in (args.lengths or ("16384,24576,32768" if cuda else "512,1024,2048,4096")).split(","))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda for the realistic bf16 shape")
    parser.add_argument("--lengths", default=None, help="comma-separated sequence lengths")
    parser.add_argument("--vocab", type=int, default=None, help="vocabulary (default 65536 on cpu, 151936 on cuda)")
    parser.add_argument("--chunk", type=int, default=None, help="head chunk of ours (default 256 cpu, 4096 cuda)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="cpu: worker processes per implementation, alternated")
    parser.add_argument("--threads", type=int, default=1, help="cpu: torch threads (0: torch's default)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small vocabulary, two short lengths, one repeat")
    parser.add_argument("--worker", choices=["ours", "naive"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    if args.quick:
        args.vocab, args.lengths, args.repeats, args.rounds = args.vocab or 32768, args.lengths or "512,1024", 1, 1
    args.vocab = args.vocab or (151936 if cuda else 65536)
    args.chunk = args.chunk or (4096 if cuda else 256)
    if args.worker:
        run_worker(args)
        return
    lengths = parse_lengths(args)
    rounds = 1 if cuda else args.rounds
    print(f"bench_probe: random Qwen3 on {args.device}, vocabulary {args.vocab:,}, prompt {PROMPT} tokens, "
          f"ours with head chunks of {args.chunk}, best of {args.repeats} x {rounds} rounds"
          + ("" if cuda else f", {args.threads or 'default'} cpu thread(s)"), flush=True)  # fmt: skip
    results: dict[tuple[str, int], dict[str, Any]] = {}
    if cuda:
        import torch

        torch.set_grad_enabled(False)
        model = build_model(args.device, args.vocab, args.seed)
    # Rounds alternate the two implementations, so that a busy spell of a shared machine does not favour either.
    for _ in range(rounds):
        for impl in ("ours", "naive"):
            for result in measure(impl, model, lengths, args) if cuda else measure_in_process(args, impl):
                key = impl, result["length"]
                if key not in results or result["seconds"] < results[key]["seconds"]:
                    results[key] = {**result, "peak_bytes": results.get(key, result)["peak_bytes"]}
    for length in lengths:
        ours, naive = results["ours", length], results["naive", length]
        scored = length - PROMPT
        print(f"{length:>6} tokens: ours {scored / ours['seconds']:>9,.0f} tok/s {ours['peak_bytes'] / MIB:>8,.0f} MiB"
              f" | naive {scored / naive['seconds']:>9,.0f} tok/s {naive['peak_bytes'] / MIB:>8,.0f} MiB"
              f" | mean logprob {ours['logprob']:.5f} / {naive['logprob']:.5f},"
              f" entropy {ours['entropy']:.5f} / {naive['entropy']:.5f}", flush=True)  # fmt: skip
    short, long = lengths[0], lengths[-1]
    growth = {
        impl: results[impl, long]["peak_bytes"] - results[impl, short]["peak_bytes"] for impl in ("ours", "naive")
    }
    for impl in ("ours", "naive"):
        print(f"{impl} peak-memory slope: {growth[impl] / MIB / ((long - short) / 1024):,.1f} MiB per 1k tokens "
              f"({short} -> {long} tokens: {growth[impl] / MIB:+,.0f} MiB)")  # fmt: skip
    scored = long - PROMPT
    ours_rate, naive_rate = scored / results["ours", long]["seconds"], scored / results["naive", long]["seconds"]
    mem_ratio = growth["naive"] / max(growth["ours"], MIB)
    print(f"bench_probe: ours={ours_rate:.0f} naive={naive_rate:.0f} ratio={ours_rate / naive_rate:.2f} "
          f"mem_ratio={mem_ratio:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
