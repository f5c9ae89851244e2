"""Benchmark: how well the step presets' counts track sentence labels a careful reader gave.

Input: labelled traces (default `../shared/data/labelled-traces`, every `*.jsonl` in it, or one file given as the
argument): per trace the `thinking` text and `label_counts`, the number of sentences GPT-4o labelled with each
behaviour. Each preset counts steps on the thinking text; the measurement is the Spearman correlation over traces
between `n_verify` and the number of `example-testing` sentences (checking the approach on an example or case), and
between `n_attempts` and the number of `backtracking` sentences (deciding to change approach).

The `math` lexicon is chosen from `analysis/data/math_lexicon_candidates.json` by backward elimination of its `try`
phrases (`--select` runs it on all traces and prints the lexicon; that is how `analysis/data/math_lexicon.json` was
made). Held-out numbers run that same choice inside k-fold cross-validation over traces (and on split halves), so
they say what to expect on traces the phrases were not chosen on. The `e3-math` preset is the e3 authors' rule.
Prints `bench_steps: verify_rho=<x> attempts_rho=<y> (preset math, n=<n>); e3-math verify_rho=<..> attempts_rho=<..>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from e3eval.analysis.phrases import sentences_matching
from e3eval.analysis.steps import count_steps, lexicon_from, load_lexicon

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "labelled-traces"
CANDIDATES = ROOT / "analysis" / "data" / "math_lexicon_candidates.json"
LABELS = {"verify": "example-testing", "attempt": "backtracking"}
MIN_GAIN = 0.005  # a `try` phrase is dropped only when that raises the correlation by more than this


@dataclass(frozen=True)
class Labelled:
    text: str
    counts: dict[str, int]


def read_traces(path: Path) -> list[Labelled]:
    files = sorted(path.glob("*.jsonl")) if path.is_dir() else [path]
    traces = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
                traces.append(Labelled(record.get("thinking") or record["response"], record["label_counts"]))
    return traces


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return (sums / counts)[inverse]


def spearman(x: list[int] | np.ndarray, y: list[int] | np.ndarray) -> float:
    """Spearman's rho (Pearson correlation of tie-averaged ranks); nan when either side is constant."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    try:
        from scipy.stats import spearmanr
    except ImportError:
        rx, ry = _ranks(x), _ranks(y)
        if rx.std() == 0 or ry.std() == 0:
            return float("nan")
        return float(np.corrcoef(rx, ry)[0, 1])
    if x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(spearmanr(x, y)[0])


def preset_rhos(traces: list[Labelled], preset: str, lexicon=None) -> tuple[float, float]:
    counts = [count_steps(t.text, preset, lexicon) for t in traces]
    return (
        spearman([c.n_verify for c in counts], [t.counts.get(LABELS["verify"], 0) for t in traces]),
        spearman([c.n_attempts for c in counts], [t.counts.get(LABELS["attempt"], 0) for t in traces]),
    )


def _mask(offsets: frozenset[int]) -> int:
    mask = 0
    for offset in offsets:
        mask |= 1 << offset
    return mask


@dataclass(frozen=True)
class Kind:
    """One kind's candidates on every trace, as bit masks of matched sentence starts (OR = union of sentences)."""

    keep: list[int]  # per trace: the sentences the `keep` phrases match
    tried: list[list[int]]  # per `try` phrase, per trace
    labels: np.ndarray

    def counts(self, chosen: list[int], rows: np.ndarray) -> list[int]:
        out = []
        for t in rows:
            mask = self.keep[t]
            for j in chosen:
                mask |= self.tried[j][t]
            out.append(mask.bit_count())
        return out

    def rho(self, chosen: list[int], rows: np.ndarray) -> float:
        return spearman(self.counts(chosen, rows), self.labels[rows])

    def select(self, rows: np.ndarray) -> list[int]:
        """Backward elimination of `try` phrases on `rows`: drop the phrase whose removal helps most, while it does."""
        chosen = list(range(len(self.tried)))
        best = self.rho(chosen, rows)
        while chosen:
            score, drop = max((self.rho([j for j in chosen if j != k], rows), k) for k in chosen)
            if not score > best + MIN_GAIN:
                break
            best = score
            chosen.remove(drop)
        return chosen


def build_kinds(traces: list[Labelled], candidates: dict) -> dict[str, Kind]:
    kinds = {}
    for kind, label in LABELS.items():
        keep = [_mask(sentences_matching(t.text, candidates[kind]["keep"])) for t in traces]
        tried = [[_mask(sentences_matching(t.text, [p])) for t in traces] for p in candidates[kind]["try"]]
        kinds[kind] = Kind(keep, tried, np.array([t.counts.get(label, 0) for t in traces]))
    return kinds


def held_out(kind: Kind, folds: int, shuffles: int) -> tuple[float, float, list[float]]:
    """Choose phrases on k-1 folds, measure on the last: mean rho over folds, pooled rho, and each fold's rho."""
    n = len(kind.labels)
    per_fold, pooled = [], []
    for seed in range(shuffles):
        parts = np.array_split(np.random.default_rng(seed).permutation(n), folds)
        predicted = np.zeros(n)
        for i, test in enumerate(parts):
            train = np.concatenate([p for j, p in enumerate(parts) if j != i])
            chosen = kind.select(train)
            predicted[test] = kind.counts(chosen, test)
            per_fold.append(kind.rho(chosen, test))
        pooled.append(spearman(predicted, kind.labels))
    return float(np.nanmean(per_fold)), float(np.mean(pooled)), per_fold


def halves(kind: Kind) -> tuple[float, float]:
    even, odd = np.arange(0, len(kind.labels), 2), np.arange(1, len(kind.labels), 2)
    return kind.rho(kind.select(even), odd), kind.rho(kind.select(odd), even)


def selected_lexicon(kinds: dict[str, Kind], candidates: dict) -> dict[str, list[str]]:
    everything = np.arange(len(next(iter(kinds.values())).labels))
    lexicon = {}
    for name, kind in kinds.items():
        chosen = kind.select(everything)
        lexicon[name] = candidates[name]["keep"] + [candidates[name]["try"][j] for j in chosen]
    return lexicon


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="labelled JSONL file or folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--shuffles", type=int, default=3, help="repeats of the k-fold split")
    parser.add_argument("--select", action="store_true", help="print the lexicon chosen on all traces and stop")
    args = parser.parse_args()
    if not args.data.exists():
        sys.exit(f"{args.data}: no labelled traces here (give a JSONL file or folder)")
    traces = read_traces(args.data)
    candidates = json.loads(CANDIDATES.read_text(encoding="utf-8"))
    kinds = build_kinds(traces, candidates)
    chosen = selected_lexicon(kinds, candidates)
    if args.select:
        print(json.dumps(chosen, indent=2))
        return
    shipped = json.loads((ROOT / "analysis" / "data" / "math_lexicon.json").read_text(encoding="utf-8"))
    same = all(sorted(shipped[k]) == sorted(chosen[k]) for k in LABELS)
    print(f"{len(traces)} traces from {args.data}")
    print(f"shipped math lexicon is the selection on these traces: {'yes' if same else 'NO (rerun --select)'}")
    verify, attempts = preset_rhos(traces, "math", load_lexicon())
    e3_verify, e3_attempts = preset_rhos(traces, "e3-math")
    keep_only = preset_rhos(traces, "math", lexicon_from(candidates["verify"]["keep"], candidates["attempt"]["keep"]))
    print(f"math:     verify~example-testing {verify:.3f}  attempts~backtracking {attempts:.3f}")
    print(f"e3-math:  verify~example-testing {e3_verify:.3f}  attempts~backtracking {e3_attempts:.3f}")
    print(f"keep phrases only (no selection): verify {keep_only[0]:.3f}  attempts {keep_only[1]:.3f}")
    for name, kind in kinds.items():
        mean, pooled, per_fold = held_out(kind, args.folds, args.shuffles)
        first, second = halves(kind)
        folds = " ".join(f"{r:.2f}" for r in per_fold)
        print(f"held-out {name}: {args.folds}-fold x{args.shuffles} mean {mean:.3f}, pooled {pooled:.3f} [{folds}]")
        print(f"held-out {name}: split halves {first:.3f} / {second:.3f}")
    print(
        f"bench_steps: verify_rho={verify:.2f} attempts_rho={attempts:.2f} (preset math, n={len(traces)}); "
        f"e3-math verify_rho={e3_verify:.2f} attempts_rho={e3_attempts:.2f}"
    )


if __name__ == "__main__":
    main()
