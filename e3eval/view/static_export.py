"""`e3eval view --static OUT`: a self-contained copy of the viewer for sharing, openable from disk with no server.

It owns the layout of the copy: `index.html` (the served page plus a Content-Security-Policy meta tag and one
`data/index.js`), `assets/` (the same files the server serves) and `data/*.js`, one file per payload, each
`window.E3VIEW["KEY"] = JSON.parse("...")`. Browsers refuse `fetch()` of `file:` URLs, so data travels as scripts
that the page adds on demand; keys are e3eval's own names (`s-R-N`), never text from a run, and the payloads go
through `JSON.parse` so no key of a run's data can set an object's prototype. The payloads are the data layer's
(`payload.py`), exactly what the server would answer, with each sample's steps under the default preset. It writes
only into a folder e3eval created (`outputs.claim_folder`) and refuses runs too large to share this way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e3eval.errors import UserError
from e3eval.outputs import claim_folder
from e3eval.view.server import ASSETS, asset_bytes

# A static copy holds every sample's text and per-token arrays: past these it is too large to open or share.
MAX_SAMPLES = 5000
MAX_TOKENS = 40_000_000
STATIC_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'none'; base-uri 'none'; form-action 'none'"
)
_DATA_NAME = re.compile(r"^(index|runs|problems-\d+|s-\d+-\d+|c-\d+)\.js$")


@dataclass(frozen=True)
class StaticCopy:
    """What `export_static` wrote: the folder, how many files and how many samples."""

    folder: Path
    files: int
    samples: int


def _script(key: str, payload: Any) -> str:
    text = json.dumps(payload, allow_nan=False, ensure_ascii=True)
    return f"window.E3VIEW[{json.dumps(key)}] = JSON.parse({json.dumps(text)});\n"


def _check_size(runs: list[dict], problems: dict[int, dict], max_samples: int, max_tokens: int) -> int:
    samples = sum(run["samples_stored"] + run["samples_failed"] for run in runs)
    tokens = sum((p["mean_tokens"] or 0) * p["samples"] for table in problems.values() for p in table["problems"])
    if samples > max_samples or tokens > max_tokens:
        raise UserError(
            f"--static: these runs hold {samples} samples (~{tokens / 1e6:.1f}M tokens), more than a static copy "
            f"takes ({max_samples} samples, {max_tokens / 1e6:.0f}M tokens); serve them with `e3eval view` instead, "
            "or pass fewer runs"
        )
    return samples


def export_static(views: Any, out: Path, max_samples: int = MAX_SAMPLES, max_tokens: int = MAX_TOKENS) -> StaticCopy:
    """Write the static copy of `views` into `out` (new, empty, or an earlier copy); returns what was written."""
    from e3eval.view import payload

    out = Path(out)
    runs = payload.runs_payload(views)["runs"]
    broken = [f"{run['path_name']}: {run['error']}" for run in runs if run.get("error")]
    if broken:
        raise UserError("--static: cannot read " + "; ".join(broken))
    problems = {run["index"]: payload.problems_payload(views, run["index"]) for run in runs}
    samples = _check_size(runs, problems, max_samples, max_tokens)
    try:
        claim_folder(out, "--static")
        data, assets = out / "data", out / "assets"
        for folder in (data, assets):
            if folder.exists() and not folder.is_dir():
                raise UserError(f"--static {out}: {folder.name} is not a folder; remove it or choose another OUT")
            folder.mkdir(exist_ok=True)
    except OSError as exc:  # a path under a file, a read-only place, /proc
        raise UserError(f"--static {out}: cannot make this folder ({exc.strerror or exc})") from None
    for old in data.iterdir():
        if _DATA_NAME.match(old.name) and old.is_file():  # a previous copy's data; nothing else is touched
            old.unlink()

    written = 0

    def put(key: str, value: Any) -> None:
        nonlocal written
        (data / f"{key}.js").write_text(_script(key, value), encoding="ascii")
        written += 1

    put("runs", {"runs": runs})
    files: dict[str, list] = {"samples": [], "compare": []}
    problem_ids = list(dict.fromkeys(p["problem_id"] for table in problems.values() for p in table["problems"]))
    for number, problem_id in enumerate(problem_ids):
        compared = payload.compare_payload(views, problem_id)
        put(f"c-{number}", compared)
        files["compare"].append([problem_id, f"c-{number}"])
        for entry in compared["runs"]:
            for sample in entry["samples"]:
                key = f"s-{entry['index']}-{len(files['samples'])}"
                put(key, payload.sample_payload(views, entry["index"], problem_id, sample["sample_idx"], None))
                files["samples"].append([entry["index"], problem_id, sample["sample_idx"], key])
    for index, table in problems.items():
        put(f"problems-{index}", table)
    (data / "index.js").write_text(
        f"window.E3VIEW = {{static: true, files: JSON.parse({json.dumps(json.dumps(files, ensure_ascii=True))})}};\n",
        encoding="ascii",
    )
    for name in ASSETS:
        if name != "index.html":
            (assets / name).write_bytes(asset_bytes(name))
    page = asset_bytes("index.html").decode("utf-8")
    page = page.replace(
        "<!-- e3eval:static -->", f'<meta http-equiv="Content-Security-Policy" content="{STATIC_CSP}">'
    ).replace("<!-- e3eval:data -->", '<script defer src="data/index.js"></script>')
    (out / "index.html").write_text(page, encoding="utf-8")  # last: a copy without it is visibly unfinished
    return StaticCopy(out, written + 1 + len(ASSETS), samples)  # data files, index.js, the assets and index.html
