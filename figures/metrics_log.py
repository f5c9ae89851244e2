"""verl's training metrics read back into a tidy frame: one row per (step, metric) with its value.

verl 0.9 logs a dict of metrics per training step through `verl.utils.tracking.Tracking`. Two of its backends leave
a file behind: the `file` logger writes JSON lines `{"step": N, "data": {metric: value}}` (to `VERL_FILE_LOGGER_PATH`,
which `e3train run` points at `STAGE/metrics.jsonl`), and the `console` logger prints `step:N - key:value - ...`,
which a `tee`d log keeps (Ray may prefix the line with `(TaskRunner pid=...)` and colour codes). A stage folder is
read as its `metrics.jsonl` after the files of earlier, interrupted attempts (`metrics-1.jsonl`, ...; see
`train/curriculum.py`), so a resumed run keeps its first steps; where two records give one (step, metric) the later
wins. Only numbers are kept. A malformed line is a UserError naming the file and line. This module draws nothing and
does not choose which metrics a figure shows (`training.py` does); it implements the data side of paper Fig. 2, 3,
11, 14 and 17.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e3eval.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

METRICS_FILE = "metrics.jsonl"  # what `e3train run` names a stage's file-logger output
_ATTEMPT = re.compile(r"metrics-(\d+)\.jsonl")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# `step:N - key:value - ...` anywhere on the line: Ray prefixes actor output with `(Name pid=...)`.
_CONSOLE = re.compile(r"(?:^|[\s)])step:(\d+) - (.*)$")
# pprint of a numpy scalar under numpy 2 is `np.float64(0.5)`; of a Python number, the number itself.
_NUMPY_SCALAR = re.compile(r"np\.[a-z]+\d*\((.*)\)")
COLUMNS = ("step", "metric", "value")


def read_metrics(path: Path) -> pd.DataFrame:
    """The metrics of one run: a file logger's JSONL, a console log, or a stage folder holding `metrics.jsonl`.

    Columns `step` (int64), `metric` (str), `value` (float64), sorted by step then metric; a UserError when the
    source has no metric at all, or on a malformed line (naming file:line).
    """
    import pandas as pd

    path = Path(path)
    files = _stage_files(path) if path.is_dir() else [path]
    latest: dict[tuple[int, str], float] = {}
    for file in files:
        for step, data in _records(file):
            for metric, value in data.items():
                latest[(step, metric)] = value
    if not latest:
        raise UserError(f"{path}: no training metrics in it (expected verl's file-logger JSONL or console log lines "
                        "`step:N - key:value - ...`)")  # fmt: skip
    frame = pd.DataFrame(
        [(step, metric, value) for (step, metric), value in latest.items()], columns=list(COLUMNS)
    ).astype({"step": "int64", "metric": "str", "value": "float64"})
    return frame.sort_values(["step", "metric"], kind="stable").reset_index(drop=True)


def metrics_files(stage: Path) -> list[Path]:
    """A stage folder's metrics files, oldest attempt first (what `read_metrics` reads for a folder)."""
    attempts = sorted(
        (int(match.group(1)), file)
        for file in stage.iterdir()
        if (match := _ATTEMPT.fullmatch(file.name)) is not None and file.is_file()
    )
    files = [file for _, file in attempts]
    if (stage / METRICS_FILE).is_file():
        files.append(stage / METRICS_FILE)
    return files


def _stage_files(stage: Path) -> list[Path]:
    files = metrics_files(stage)
    if not files:
        raise UserError(f"{stage}: a folder without {METRICS_FILE} (give the metrics file or the stage folder that "
                        "`e3train run` wrote it to)")  # fmt: skip
    return files


def _records(path: Path) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, numeric metrics) per logged record of one file, in file order."""
    try:
        handle = path.open(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None
    jsonl = path.suffix == ".jsonl"
    with handle:
        for number, line in enumerate(handle, start=1):
            if jsonl:
                if line.strip():
                    yield _json_record(line, f"{path}:{number}")
            else:
                record = _console_record(line, f"{path}:{number}")
                if record is not None:
                    yield record


def _json_record(line: str, where: str) -> tuple[int, dict[str, float]]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not a JSON line ({exc.msg}); verl's file logger writes "
                        '{"step": N, "data": {...}} per line') from None  # fmt: skip
    step = obj.get("step") if isinstance(obj, dict) else None
    data = obj.get("data") if isinstance(obj, dict) else None
    if isinstance(step, bool) or not isinstance(step, int) or not isinstance(data, dict):
        raise UserError(f'{where}: not a verl metrics record (expected {{"step": N, "data": {{...}}}})')
    return step, {str(k): float(v) for k, v in data.items() if _is_number(v)}


def _console_record(line: str, where: str) -> tuple[int, dict[str, float]] | None:
    match = _CONSOLE.search(_ANSI.sub("", line.rstrip("\r\n")))
    if match is None:
        return None  # everything else a console log holds: progress bars, warnings, Ray's own lines
    data: dict[str, float] = {}
    for pair in match.group(2).split(" - "):
        key, sep, text = pair.rpartition(":")
        value = _console_number(text.strip()) if sep and key else None
        if value is None:
            raise UserError(f"{where}: cannot read {pair.strip()[:80]!r} as key:number in a verl console line")
        data[key.strip()] = value
    return int(match.group(1)), data


def _console_number(text: str) -> float | None:
    scalar = _NUMPY_SCALAR.fullmatch(text)
    if scalar is not None:
        text = scalar.group(1)
    if text in ("True", "False"):
        return float(text == "True")
    try:
        return float(text)
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float))  # bools too: verl logs flags as metrics, and they plot as 0/1
