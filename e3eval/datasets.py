"""Problem sets with gold answers, from local JSONL or Parquet files.

`load_problems(path, ...)` reads `{id, problem, answer}`-style records (field names configurable) into `Problem`s.
`resolve_problems(name)` also knows the named benchmarks (aime24, aime25, hmmt24, hmmt25, math500, amc23): it reads
their offline mirror from `E3EVAL_DATA_DIR` when present and otherwise loads them from the Hugging Face hub with
`datasets`; `demo` is the small set bundled with e3eval. Gold answers are kept as strings exactly as given (AIME
2024's `073` stays `073`; the grader compares integers by value). This module does not render prompts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from e3eval.errors import UserError
from e3eval.jsonl import read_jsonl
from e3eval.records import Problem


def _as_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    return value if isinstance(value, str) else None


def load_problems(
    path: Path, id_field: str = "id", problem_field: str = "problem", answer_field: str = "answer"
) -> list[Problem]:
    """Read problems from a `.jsonl` or `.parquet` file; errors name the file and line (or row)."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            records = enumerate(pq.read_table(path).to_pylist(), start=1)
        except Exception as exc:
            raise UserError(f"{path}: cannot read Parquet ({exc})") from None
        where_kind = "row"
    elif path.suffix in (".jsonl", ".json"):
        records = read_jsonl(path)
        where_kind = "line"
    else:
        raise UserError(f"{path}: dataset files must be .jsonl or .parquet")
    problems: list[Problem] = []
    seen: set[str] = set()
    for number, record in records:
        where = f"{path}:{number}" if where_kind == "line" else f"{path} row {number}"
        pid = _as_text(record.get(id_field))
        answer = _as_text(record.get(answer_field))
        if pid is None:
            raise UserError(f"{where}: missing or non-string id field {id_field!r}")
        if answer is None:
            raise UserError(f"{where}: missing or non-string answer field {answer_field!r}")
        if pid in seen:
            raise UserError(f"{where}: duplicate id {pid!r}")
        seen.add(pid)
        problems.append(
            Problem(problem_id=pid, answer=answer, problem=_as_text(record.get(problem_field)) or "", dataset=path.stem)
        )
    if not problems:
        raise UserError(f"{path}: no problems")
    return problems


@dataclass(frozen=True)
class BenchmarkSpec:
    """A named benchmark: its offline mirror file name and where it lives on the Hugging Face hub."""

    name: str
    description: str
    mirror: str
    hub_id: str
    hub_split: str
    id_field: str
    problem_field: str = "problem"
    answer_field: str = "answer"
    hub_config: str | None = None


_SPECS = (
    BenchmarkSpec("aime24", "AIME 2024 (I and II)", "aime_2024.jsonl", "HuggingFaceH4/aime_2024", "train", "id"),
    BenchmarkSpec("aime25", "AIME 2025 (I and II)", "aime_2025.jsonl", "MathArena/aime_2025", "train", "problem_idx"),
    BenchmarkSpec("hmmt24", "HMMT Feb 2024", "hmmt_feb_2024.jsonl", "MathArena/hmmt_feb_2024", "train", "problem_idx"),
    BenchmarkSpec("hmmt25", "HMMT Feb 2025", "hmmt_feb_2025.jsonl", "MathArena/hmmt_feb_2025", "train", "problem_idx"),
    BenchmarkSpec("math500", "MATH-500 (PRM800K test)", "math500.jsonl", "HuggingFaceH4/MATH-500", "test", "unique_id"),
    BenchmarkSpec("amc23", "AMC 2023", "amc_2023.jsonl", "math-ai/amc23", "test", "id", "question"),
)
BENCHMARKS: dict[str, BenchmarkSpec] = {spec.name: spec for spec in _SPECS}
DEMO = "demo"


def data_dir() -> Path | None:
    """The offline mirror directory (`E3EVAL_DATA_DIR`), if set."""
    value = os.environ.get("E3EVAL_DATA_DIR")
    return Path(value) if value else None


def mirror_path(spec: BenchmarkSpec) -> Path | None:
    directory = data_dir()
    if directory is not None and (directory / spec.mirror).is_file():
        return directory / spec.mirror
    return None


def _from_hub(spec: BenchmarkSpec) -> list[Problem]:
    from e3eval.dependencies import installed

    if not installed("datasets"):
        raise UserError(
            f"dataset {spec.name!r}: no offline mirror {spec.mirror} in E3EVAL_DATA_DIR "
            f"({data_dir() or 'unset'}) and the `datasets` package is not installed to load {spec.hub_id}"
        )
    import datasets as hf_datasets

    try:
        rows = hf_datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    except Exception as exc:
        raise UserError(
            f"dataset {spec.name!r}: no offline mirror {spec.mirror} in E3EVAL_DATA_DIR ({data_dir() or 'unset'}) "
            f"and loading {spec.hub_id} from the hub failed: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None
    return [
        Problem(
            problem_id=f"{spec.name}-{row[spec.id_field]}",
            answer=str(row[spec.answer_field]),
            problem=row[spec.problem_field],
            dataset=spec.name,
        )
        for row in rows
    ]


def demo_problems() -> list[Problem]:
    """The 16 small problems bundled with e3eval for the demo and tests."""
    with resources.as_file(resources.files("e3eval") / "data" / "demo_problems.jsonl") as path:
        return load_problems(Path(path))


def resolve_problems(
    name_or_path: str, id_field: str = "id", problem_field: str = "problem", answer_field: str = "answer"
) -> list[Problem]:
    """A named benchmark (offline mirror first, then the hub), the bundled `demo` set, or a local JSONL/Parquet."""
    if name_or_path == DEMO:
        return demo_problems()
    spec = BENCHMARKS.get(name_or_path)
    if spec is None:
        path = Path(name_or_path)
        if not path.exists():
            names = ", ".join([*BENCHMARKS, DEMO])
            raise UserError(f"unknown dataset {name_or_path!r}: not a file and not one of {names}")
        return load_problems(path, id_field, problem_field, answer_field)
    mirror = mirror_path(spec)
    if mirror is not None:
        problems = load_problems(mirror)
        return [Problem(p.problem_id, p.answer, p.problem, spec.name) for p in problems]
    return _from_hub(spec)
