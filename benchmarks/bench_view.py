"""Benchmark: `e3eval view` in a real browser on a big run: the first page load and opening a 40k-token sample.

Run (built once, then reused from the cache folder): the 16 bundled demo problems x 125 samples = 2,000 distinct
synthetic reasoning traces (`e3eval/dev/synthetic.py`, the tiny model's byte-level BPE tokenizer), 24k-40k tokens
each (about 32k on average; 15% are cut at exactly 40,960 tokens), imported with `e3eval import`'s library call and
scored at 10 budgets (4k..40k:4k). About 60M tokens.

Measured with Chromium driven by Playwright (Debian's chromium, `$E3EVAL_CHROMIUM`), against a server started fresh
in this process (cold caches):
- first_page: from `goto` of the Runs page to the page rendered (cards, curves) and painted;
- open_sample: from setting the hash of a 40,960-token sample (never opened before, so its row group is read cold)
  to its page rendered (text, cut markers, grade strip) and painted: the median over 5 such samples of distinct
  problems (each one's time is printed too).
The targets are first_page < 1 s and open_sample < 0.5 s. The last line is
`bench_view: first_page=<s> open_sample=<s> samples=<n>`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

BUDGETS = "4k..40k:4k"
SAMPLES_PER_PROBLEM = 125
CHROMIUM = os.environ.get("E3EVAL_CHROMIUM", "/usr/lib/chromium/chromium")
_RENDERED = """async (hash) => {
    const started = performance.now();
    if (hash !== null) location.hash = hash;
    await new Promise((resolve) => {
        const check = () => document.body.dataset.ready === "yes" && document.body.dataset.hash === location.hash
            ? resolve() : setTimeout(check, 2);
        check();
    });
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    return (performance.now() - started) / 1000;
}"""


def build_run(cache: Path) -> Path:
    """The benchmark run in `cache` (built on first use: a few minutes, mostly tokenizing)."""
    from e3eval.budgets import parse_budgets
    from e3eval.datasets import demo_problems
    from e3eval.dev.synthetic import PoolSpec, write_pool
    from e3eval.dev.tiny_model import build_tiny_model
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run
    from e3eval.tokenizers import load_tokenizer

    run_dir, done = cache / "run", cache / "complete.json"
    spec = {"samples": SAMPLES_PER_PROBLEM, "budgets": BUDGETS, "min_tokens": 24000, "max_tokens": 40960, "seed": 0}
    if done.is_file() and json.loads(done.read_text()) == spec:
        return run_dir
    cache.mkdir(parents=True, exist_ok=True)
    model_dir = cache / "tiny-model"
    if not (model_dir / "tokenizer.json").is_file():
        build_tiny_model(model_dir)
    started = time.perf_counter()
    pool = cache / "pool.jsonl"
    pool_spec = PoolSpec(samples=spec["samples"], min_tokens=spec["min_tokens"], max_tokens=spec["max_tokens"], seed=0)
    n = write_pool(pool, demo_problems(), pool_spec, load_tokenizer(str(model_dir)))
    print(f"pool: {n} samples written in {time.perf_counter() - started:.0f}s", flush=True)
    import_run(ImportConfig(pool, run_dir, str(model_dir), token_ids_field="token_ids", sample_field="sample_idx",
                            finish_reason_field="finish_reason", force=True))  # fmt: skip
    pool.unlink()
    score_run(run_dir, ScoreConfig(budgets=tuple(parse_budgets(BUDGETS)), workers=2))
    print(f"run built and scored in {time.perf_counter() - started:.0f}s", flush=True)
    done.write_text(json.dumps(spec))
    return run_dir


def long_samples(run_dir: Path, count: int) -> list[tuple[str, int, int]]:
    """(problem_id, sample_idx, num_tokens) of `count` samples of at least 40,000 tokens, of distinct problems."""
    from e3eval.store import iter_rollout_batches

    found: dict[str, tuple[str, int, int]] = {}
    for batch in iter_rollout_batches(run_dir, ["problem_id", "sample_idx", "num_tokens"]):
        for row in batch.to_pylist():
            if row["num_tokens"] >= 40_000 and row["problem_id"] not in found:
                found[row["problem_id"]] = (row["problem_id"], row["sample_idx"], row["num_tokens"])
    picked = list(found.values())
    return picked[:: max(1, len(picked) // count)][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_cache = Path(os.environ.get("E3EVAL_BENCH_CACHE", Path.home() / ".cache" / "e3eval" / "bench_view"))
    parser.add_argument("--cache", type=Path, default=default_cache, help="where the run is built once and kept")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from e3eval.view.payload import Views
    from e3eval.view.server import make_server

    run_dir = build_run(args.cache)
    targets = long_samples(run_dir, 5)
    views = Views([run_dir])
    server = make_server(views)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        started = time.perf_counter()
        page.goto(server.url)
        page.evaluate(_RENDERED, None)
        first_page = time.perf_counter() - started
        samples = page.locator(".run-card").first.inner_text()
        problems = page.evaluate(_RENDERED, "#/run/0")
        loading = server.preloaded()  # started by the first page: a reader spends longer than that on the first pages
        if loading is not None:
            loading.join()
        opens = []
        for problem_id, idx, tokens in targets:
            seconds = page.evaluate(_RENDERED, f"#/run/0/p/{quote(problem_id, safe='')}/s/{idx}")
            marks = page.locator("#trace mark.cut").count()
            opens.append(seconds)
            print(f"open {problem_id} #{idx} ({tokens} tokens, {marks} cut markers): {seconds:.3f}s", flush=True)
        browser.close()
    server.shutdown()
    n = sum(1 for line in samples.splitlines() if line)  # keep the card read (it is what the page shows)
    stored = views.run(0).samples.samples + views.run(0).samples.failed
    print(f"problems page: {problems:.3f}s; runs card lines: {n}", flush=True)
    print(f"bench_view: first_page={first_page:.3f} open_sample={statistics.median(opens):.3f} samples={stored}")
    sys.exit(0)


if __name__ == "__main__":
    main()
