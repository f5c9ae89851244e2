"""The GPUs a curriculum trains on: `trainer.n_gpus_per_node` and `trainer.nnodes` of every verl command.

A stage takes them from its spec (`n_gpus_per_node`, `nnodes` under defaults or hyper) or, when the spec leaves
`n_gpus_per_node` out, from this machine when the run starts (`torch.cuda.device_count()`, which honours
`CUDA_VISIBLE_DEVICES`); `nnodes` defaults to 1. verl's own default (8 GPUs) would make Ray wait forever for GPUs a
smaller machine lacks, so the value is always written into the command and printed by `--dry-run`. On one node the
count is checked against this machine (no GPU at all is refused); with several nodes the GPUs are the Ray cluster's,
which this module cannot see. It counts and checks; `curriculum.py` writes the overrides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from e3eval.train.curriculum import Spec, Stage


@dataclass(frozen=True)
class GpuCount:
    """This machine's GPUs as torch sees them; `count` is None when they cannot be counted (`why` says why)."""

    count: int | None
    why: str = ""

    def describe(self) -> str:
        return f"torch.cuda.device_count() = {self.count}" if self.count is not None else self.why


@dataclass(frozen=True)
class Topology:
    n_gpus_per_node: int
    nnodes: int
    source: str  # "spec" | "this machine"


def count_gpus() -> GpuCount:
    """Count this machine's GPUs with torch (verl's own way of finding them); never raises."""
    try:
        import torch
    except ImportError:
        return GpuCount(None, "cannot count GPUs: torch is not installed")
    try:
        return GpuCount(int(torch.cuda.device_count()))
    except Exception as exc:  # a broken driver install; the run would fail the same way
        return GpuCount(None, f"cannot count GPUs: torch.cuda.device_count() failed ({exc})")


def needs_count(spec: Spec) -> bool:
    """Whether some stage takes its GPU count from this machine (counting imports torch: seconds)."""
    return any("n_gpus_per_node" not in stage.hyper for stage in spec.stages)


def stage_topology(stage: Stage, gpus: GpuCount | None) -> Topology:
    """The stage's GPUs: the spec's values, else this machine's count (0 when it could not be counted)."""
    nnodes = int(stage.hyper.get("nnodes", 1))
    if "n_gpus_per_node" in stage.hyper:
        return Topology(int(stage.hyper["n_gpus_per_node"]), nnodes, "spec")
    return Topology((gpus.count or 0) if gpus is not None else 0, nnodes, "this machine")


def describe_topology(spec: Spec, gpus: GpuCount | None) -> str:
    """One line per distinct topology of the spec's stages, saying where each value comes from."""
    lines = []
    for stage in spec.stages:
        topology = stage_topology(stage, gpus)
        where = "from the spec" if topology.source == "spec" else f"detected on this machine: {gpus_text(gpus)}"
        line = (f"GPUs: trainer.n_gpus_per_node={topology.n_gpus_per_node} trainer.nnodes={topology.nnodes} "
                f"({where})")  # fmt: skip
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def gpus_text(gpus: GpuCount | None) -> str:
    return gpus.describe() if gpus is not None else "not counted"


def topology_problems(spec: Spec, pending: set[str], gpus: GpuCount | None) -> list[str]:
    """What stops the stages still to train from getting their GPUs on this machine; one line per cause. `gpus` is
    None when the spec set every count: this machine is counted here, for the stages on one node."""
    problems: list[str] = []
    if gpus is None and pending:
        gpus = count_gpus()
    have = gpus.count if gpus is not None else None
    for i, stage in enumerate(spec.stages):
        if stage.name not in pending:
            continue
        topology = stage_topology(stage, gpus)
        if topology.source == "this machine":
            if have is None:
                line = f"{gpus_text(gpus)}, and the spec sets no n_gpus_per_node: set it under defaults"
            elif have == 0:
                line = ("no GPU on this machine (torch.cuda.device_count() is 0; CUDA_VISIBLE_DEVICES may hide them) "
                        "and verl trains on GPUs: run on a GPU machine (for a Ray cluster of several nodes, set "
                        "nnodes and n_gpus_per_node under defaults)")  # fmt: skip
            else:
                continue
            if line not in problems:
                problems.append(line)
        elif topology.nnodes == 1 and have is not None and topology.n_gpus_per_node > have:
            problems.append(f"stages[{i}]: n_gpus_per_node {topology.n_gpus_per_node} on one node, but this machine "
                            f"has {have} GPU(s): Ray would wait for the missing ones forever")  # fmt: skip
    return problems
