"""What a run is called where people read it: `Qwen3-1.7B · aime25 · wait=2 · forced`.

A run's label is built from what run.json says was run: the model's short name, the dataset, the budget forcing, the
scoring policy, and a mark when the run holds only part of its dataset (`first 4/30`, `shard 1/4`). The run's folder
name (`Run.name`) only breaks ties between runs whose labels are the same (`unique_labels`), and stands in for the
model of an imported run that names none. Reports, figures and the notebook API all label runs here, so one run has
one name everywhere. This module formats; it reads no files and decides nothing about what may be compared
(`report.py` warns about that).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from e3eval.manifest import ForcingRecord, GenerationRecord, RunManifest

SEPARATOR = " · "


def short_model(model: str | None) -> str | None:
    """`Qwen/Qwen3-1.7B` -> `Qwen3-1.7B`; a local path -> its last folder; None stays None."""
    if not model:
        return None
    return model.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or model


def short_dataset(dataset: str | None) -> str | None:
    """A dataset as labels show it: a named benchmark as it is (`aime25`, `MathArena/aime_2025`), a local file by its
    name (`/data/x/two.jsonl` -> `two.jsonl`), so no label carries (or leaks, on a shared page) a machine's path."""
    if not dataset:
        return None
    if "\\" in dataset or dataset.startswith(("/", "~", ".")) or dataset.count("/") > 1:
        return dataset.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or dataset
    return dataset


def forcing_label(forcing: ForcingRecord | None, inserted: int | None = None) -> str | None:
    """`wait=2` (e3eval's forcing), `s1 wait=2` (s1's harness), or None for a run sampled without forcing;
    `wait=2 (0 inserted)` when run.json says the forcing inserted nothing (`inserted`: its count of waits), which
    makes the run a plain generation whatever its settings say."""
    if forcing is None:
        return None
    if forcing.mode == "s1":
        return f"s1 wait={forcing.wait}"
    if not forcing.wait:
        return None
    return f"wait={forcing.wait}" + (" (0 inserted)" if inserted == 0 else "")


def recorded_insertions(generation: GenerationRecord | None) -> dict[str, int] | None:
    """What run.json says budget forcing did over every sample (resumes and merges counted): `waits`,
    `samples_forced`, `samples`; None for a run generated without forcing."""
    counts = generation.fields.get("insertions") if generation is not None else None
    if not isinstance(counts, dict):
        return None
    return {k: v for k, v in counts.items() if isinstance(v, int) and not isinstance(v, bool)}


def inserted_waits(generation: GenerationRecord | None) -> int | None:
    """The waits run.json says the forcing inserted, or None."""
    return (recorded_insertions(generation) or {}).get("waits")


def subset_label(generation: GenerationRecord | None) -> str | None:
    """`first 4/30` (--limit), `shard 1/4` (--shard), `shards missing` (a merge that left shards out), joined, or
    None when the run holds its whole dataset."""
    if generation is None or not generation.subset:
        return None
    parts = []
    if generation.limit is not None:
        total = f"/{generation.problems_total}" if generation.problems_total is not None else ""
        parts.append(f"first {generation.limit}{total}")
    if generation.shard == "merged-incomplete":  # `merge --allow-missing`: some shards of the split were not there
        parts.append("shards missing")
    elif generation.shard is not None and generation.shard != "merged" and not generation.shard.endswith("/1"):
        parts.append(f"shard {generation.shard}")
    return " ".join(parts)


def run_label(record: RunManifest, name: str, policy: str | None = None) -> str:
    """The run's label: model · dataset · forcing · policy · subset, leaving out what run.json does not say (an
    imported run without a generation section is `NAME · policy`)."""
    generation = record.generation
    model = short_model(generation.model if generation is not None else None) or name
    parts = [model]
    if generation is not None:
        parts += [short_dataset(generation.dataset), forcing_label(generation.forcing, inserted_waits(generation))]
    parts += [policy, subset_label(generation)]
    return SEPARATOR.join(p for p in parts if p)


def unique_labels(labels: Sequence[str], names: Sequence[str]) -> list[str]:
    """`labels`, with ` (NAME)` added to every label that more than one run shares (names break ties only); where
    name and label together still collide, the position (`#2`) is added too."""
    counts = Counter(labels)
    out = [f"{label} ({name})" if counts[label] > 1 else label for label, name in zip(labels, names, strict=True)]
    again = Counter(out)
    seen: Counter[str] = Counter()
    result = []
    for label in out:
        seen[label] += 1
        result.append(f"{label} #{seen[label]}" if again[label] > 1 else label)
    return result
