"""A report as text for papers and programs: markdown (GFM tables), LaTeX (tabular), CSV and JSON, and `--out`.

A `Report` is what `e3eval report` shows: a comparison, the metrics chosen, and where asked for, the extrapolation
gain and a paired difference (`paired.py`). Every format holds the same numbers: one row per run and budget with
each metric's value and 95% CI, and as notes (markdown lines, LaTeX comments, a JSON field) the runs' n, the
warnings and the method. Markdown and LaTeX print fractions as percent and the gain and difference in percentage
points; CSV and JSON hold fractions 0-1, as the notebook API gives them (the definitions say which); `mean_tokens`
is in tokens everywhere. CSV is one table: the summary rows, or the difference with `--diff`. Run labels are
untrusted text: escaped for markdown (so no `|` breaks a row and no HTML gets through) and for LaTeX
(`_ % & # $ { } ~ ^ \\ | < >`). The terminal layout is `report_layout.py`'s; this module prints nothing.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e3eval.budgets import format_budget
from e3eval.errors import UserError
from e3eval.notebook import split_metric, unit
from e3eval.store import MANIFEST

if TYPE_CHECKING:
    import pandas as pd

    from e3eval.report import Comparison, RunSummary

FORMATS = ("table", "markdown", "latex", "csv", "json")
_LEVEL = "95%"


@dataclass(frozen=True)
class Report:
    """What a report shows: the comparison, the metrics chosen (named as printed), and the gain and difference
    frames when there are some (`Comparison.gain`, `Comparison.diff`)."""

    comparison: Comparison
    metrics: tuple[str, ...]
    gain: pd.DataFrame | None = None
    diff: pd.DataFrame | None = None
    notices: tuple[str, ...] = ()  # warnings of building it (a recorded training budget that was not scored)
    layout: str = "table"  # the format it is shown in: csv and json hold fractions, the others percent
    reduced: bool = False  # the default metrics: pass@k / maj@k at the largest k every run has (a warning says so)

    @property
    def keys(self) -> list[str]:
        """A short key per run for narrow headers: A, B, ... (`Comparison.keys`)."""
        return self.comparison.keys

    @property
    def keyed(self) -> bool:
        """Whether the runs are named by key (a terminal table of several runs, whose legend gives the keys)."""
        return self.layout == "table" and len(self.comparison.runs) > 1

    def values(self) -> dict[tuple[int, int, str], tuple[float, float, float]]:
        """(entry, budget, metric as printed) -> (value, ci_low, ci_high), fractions and tokens as stored."""
        from e3eval.notebook import metric_name

        found = {}
        for i, run in enumerate(self.comparison.runs):
            columns = ("budget", "metric", "k", "value", "ci_low", "ci_high")
            for budget, metric, k, value, low, high in zip(*(run.table[c].to_pylist() for c in columns), strict=True):
                found[(i, budget, metric_name(metric, k))] = (_num(value), _num(low), _num(high))
        return found

    def budgets(self, index: int) -> list[int]:
        return sorted(set(self.comparison.runs[index].table["budget"].to_pylist()))

    def warnings(self) -> list[str]:
        extra = [w for frame in (self.gain, self.diff) if frame is not None for w in frame.attrs.get("warnings", [])]
        metric_lines = self.comparison.default_metric_warnings_naming(self.keyed) if self.reduced else []
        return [*self.comparison.warnings_naming(self.keyed), *metric_lines, *extra, *self.notices]

    def footnotes(self) -> list[str]:
        """The definitions: what the values are, in this format's units, and how their intervals were drawn."""
        from e3eval.paired import resampling

        counts = sorted({resampling(run)[0] for run in self.comparison.runs if run.table.num_rows})
        resamples = "/".join(f"{c:,}" for c in counts) or "no"
        fractions = self.layout in ("csv", "json")
        share = "fractions 0-1" if fractions else "%"
        lines = [f"values ({share}; mean_tokens in tokens): pass@k, maj@k = mean over problems of each problem's "
                 "estimate; frac_finished, frac_answered = share of samples that finished (ended within the "
                 "budget) or answered (an answer the policy counts); each with its "
                 f"{_LEVEL} percentile bootstrap CI over problems ({resamples} resamples)"]  # fmt: skip
        for frame, what in ((self.gain, "gain"), (self.diff, "difference")):
            if frame is not None and frame.attrs.get("method"):
                tokens = " (mean_tokens: tokens)" if what == "difference" and (frame["unit"] == "tokens").any() else ""
                units = "as a difference of fractions" if fractions else "in percentage points"
                lines.append(f"{what}: {units}{tokens}; {frame.attrs['method']}")
        return lines


def build_report(comparison: Comparison, metrics: str | Sequence[str] | None = None, train_budget: int | None = None,
                 diff: tuple[int | str | Path, int | str | Path] | None = None,
                 layout: str = "table") -> Report:  # fmt: skip
    """The report of `comparison` in `layout` (a FORMATS name): the metrics named (default: every metric for csv
    and json, else `Comparison.default_metrics`), the gain of every run with a training budget (`train_budget` for
    all: it must be a scored budget, else a UserError; a recorded one that was not scored is a warning), and the
    difference of the runs `diff` names (by default in the table's metrics that a paired difference computes)."""
    notices: list[str] = []
    try:
        gain = comparison.gain(train_budget)
    except UserError as exc:
        if train_budget is not None:
            raise
        gain, notices = None, [f"no extrapolation gain: {exc}"]
    if gain is not None and gain.empty:
        notices += gain.attrs.get("warnings", [])
        gain = None
    difference = None
    if diff is not None:  # the metrics named that a paired difference computes (default: the table's)
        from e3eval.paired import PAIRED_METRICS

        named = comparison.select(metrics)
        paired = [m for m in named if split_metric(m)[0] in PAIRED_METRICS] or None
        difference = comparison.diff(*diff, metrics=paired)
    every = metrics is None and layout in ("csv", "json")  # files for programs hold every metric
    chosen = comparison.metrics if every else comparison.select(metrics)
    return Report(comparison, tuple(chosen), gain, difference, tuple(notices), layout,
                  reduced=metrics is None and not every)  # fmt: skip


def _num(value: Any) -> float:
    return math.nan if value is None else float(value)


def run_line(run: RunSummary) -> str:
    """What a run's numbers rest on, in words: `n = 16 problems × 4 samples` and what they leave out."""
    n = run.n_per_problem
    line = (f"n = {run.n_problems} problems × {n} sample{'s' if n != 1 else ''}" if n is not None else
            f"n = {run.n_problems} problems, {run.n_samples} samples (per problem varies)")  # fmt: skip
    if run.n_failed or run.n_missing:
        line += f" (+{run.n_failed} failed, {run.n_missing} missing: not in these numbers)"
    return line


def format_value(value: float, kind: str) -> str:
    """A stored value as printed: fractions as percent with one decimal, tokens as a whole number; `-` for none."""
    if math.isnan(value):
        return "-"
    return f"{100 * value:.1f}" if kind == "fraction" else f"{value:,.0f}"


def format_ci(low: float, high: float, kind: str, dash: str = "–") -> str:
    """`39.1–57.0`; empty when there is no interval (too few problems, or --bootstrap 0)."""
    if math.isnan(low) or math.isnan(high):
        return ""
    return f"{format_value(low, kind)}{dash}{format_value(high, kind)}"


def format_signed(value: float, kind: str) -> str:
    """A difference: `+12.5` percentage points, `-1,024` tokens."""
    if math.isnan(value):
        return "-"
    return f"{100 * value:+.1f}" if kind == "fraction" else f"{value:+,.0f}"


def format_signed_ci(low: float, high: float, kind: str) -> str:
    """`[-3.1, +5.0]`: brackets, since the bounds carry signs."""
    if math.isnan(low) or math.isnan(high):
        return ""
    return f"[{format_signed(low, kind)}, {format_signed(high, kind)}]"


def metric_unit(name: str) -> str:
    return unit(split_metric(name)[0])


def header_line(report: Report) -> str:
    policies = ", ".join(report.comparison.policies) or "none"
    return f"e3eval report (policy: {policies}; % with {_LEVEL} bootstrap CI)"


# Rows every text format shares -------------------------------------------------------------------------------------


def summary_rows(report: Report, dash: str = "–") -> tuple[list[str], list[list[str]]]:
    """Header and rows of the main table: run, budget, then each metric as `value (low–high)`."""
    values = report.values()
    rows = []
    for i, run in enumerate(report.comparison.runs):
        for budget in report.budgets(i):
            cells = [run.label, format_budget(budget)]
            for name in report.metrics:
                value, low, high = values.get((i, budget, name), (math.nan, math.nan, math.nan))
                ci = format_ci(low, high, metric_unit(name), dash)
                cells.append(format_value(value, metric_unit(name)) + (f" ({ci})" if ci else ""))
            rows.append(cells)
    return ["run", "budget", *report.metrics], rows


def gain_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    rows = [[r.run, format_budget(int(r.train_budget)), format_budget(int(r.budget)), format_signed(r.gain, r.unit),
             format_signed_ci(r.ci_low, r.ci_high, r.unit), str(r.n_problems)]
            for r in frame.itertuples()]  # fmt: skip
    return ["run", "train", "budget", "gain pass@1", f"{_LEVEL} CI", "n"], rows


# The columns of each table that hold text (aligned left; the others are numbers, aligned right).
SUMMARY_TEXT, GAIN_TEXT, DIFF_TEXT = (0,), (0,), (1,)


def diff_keys(frame: pd.DataFrame) -> tuple[str, str]:
    """The two sides' keys as the main table names them (`A`, `C`), or A and B."""
    return frame.attrs.get("key_a", "A"), frame.attrs.get("key_b", "B")


def diff_title(frame: pd.DataFrame) -> str:
    a, b = diff_keys(frame)
    return f"paired difference {a} − {b}"


def diff_rows(frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    rows = [[format_budget(int(r.budget)), r.metric, format_value(r.value_a, r.unit), format_value(r.value_b, r.unit),
             format_signed(r.diff, r.unit), format_signed_ci(r.ci_low, r.ci_high, r.unit), str(r.n_problems)]
            for r in frame.itertuples()]  # fmt: skip
    a, b = diff_keys(frame)
    return ["budget", "metric", a, b, f"{a} − {b}", f"{_LEVEL} CI", "n"], rows


def notes(report: Report) -> list[str]:
    """Legend and notes as plain lines: each run's n and path, the subset notes, the flags, the definitions."""
    lines = [f"{run.label}: {run_line(run)} ({run.path or run.run.path})" for run in report.comparison.runs]
    lines += report.comparison.notes_naming(report.keyed)
    lines += [f"{run.label}: {'; '.join(run.flags)}" for run in report.comparison.runs if run.flags]
    if report.diff is not None:
        a, b = diff_keys(report.diff)
        lines.append(f"{a} = {report.diff.attrs.get('a')}; {b} = {report.diff.attrs.get('b')}")
    return lines + report.footnotes()


# Markdown ----------------------------------------------------------------------------------------------------------

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&])")


def markdown_escape(text: str) -> str:
    """Text as a literal in GFM: punctuation that could start markup, a table cell's end or HTML is escaped."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _markdown_table(header: list[str], rows: list[list[str]], text: Sequence[int]) -> list[str]:
    align = [":--" if i in text else "--:" for i in range(len(header))]
    lines = ["| " + " | ".join(markdown_escape(h) for h in header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(markdown_escape(c) for c in row) + " |" for row in rows]
    return lines


def to_markdown(report: Report) -> str:
    lines = [f"**{markdown_escape(header_line(report))}**", ""]
    lines += _markdown_table(*summary_rows(report), SUMMARY_TEXT)
    if report.gain is not None and not report.gain.empty:
        lines += ["", "**extrapolation gain: pass@1(budget) − pass@1(train budget)**", ""]
        lines += _markdown_table(*gain_rows(report.gain), GAIN_TEXT)
    if report.diff is not None:
        lines += ["", f"**{diff_title(report.diff)}**", ""]
        lines += _markdown_table(*diff_rows(report.diff), DIFF_TEXT)
    lines += [""] + [f"- {markdown_escape(line)}" for line in notes(report)]
    lines += [f"- **warning:** {markdown_escape(line)}" for line in report.warnings()]
    return "\n".join(lines) + "\n"


# LaTeX -------------------------------------------------------------------------------------------------------------

_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "·": r"$\cdot$", "×": r"$\times$",
          "−": r"$-$", "–": "--", "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}  # fmt: skip


def latex_escape(text: str) -> str:
    """Text as a LaTeX literal (special characters escaped; no line breaks)."""
    return "".join(_LATEX.get(c, c) for c in text.replace("\n", " "))


def _latex_table(header: list[str], rows: list[list[str]], text: Sequence[int]) -> list[str]:
    spec = "".join("l" if i in text else "r" for i in range(len(header)))
    lines = [f"\\begin{{tabular}}{{{spec}}}", r"\hline", " & ".join(latex_escape(h) for h in header) + r" \\",
             r"\hline"]  # fmt: skip
    lines += [" & ".join(latex_escape(c) for c in row) + r" \\" for row in rows]
    return [*lines, r"\hline", r"\end{tabular}"]


def _comment(line: str) -> str:
    return "% " + line.replace("\n", " ")


def to_latex(report: Report) -> str:
    lines = [_comment(header_line(report))]
    lines += _latex_table(*summary_rows(report, "--"), SUMMARY_TEXT)
    if report.gain is not None and not report.gain.empty:
        lines += ["", _comment("extrapolation gain: pass@1(budget) - pass@1(train budget)")]
        lines += _latex_table(*gain_rows(report.gain), GAIN_TEXT)
    if report.diff is not None:
        lines += ["", _comment(diff_title(report.diff).replace("−", "-"))]
        lines += _latex_table(*diff_rows(report.diff), DIFF_TEXT)
    lines += [_comment(line) for line in notes(report)]
    lines += [_comment(f"warning: {line}") for line in report.warnings()]
    return "\n".join(lines) + "\n"


# CSV and JSON ------------------------------------------------------------------------------------------------------


def summary_rows_frame(report: Report) -> pd.DataFrame:
    """The comparison's summary rows of the chosen metrics (`Comparison.summary`)."""
    frame = report.comparison.summary
    return frame[frame["metric"].isin(report.metrics)].reset_index(drop=True)


def to_csv(report: Report) -> str:
    """One table: the difference (with `a` and `b` columns) when there is one, else the summary rows."""
    if report.diff is not None:
        frame = report.diff.copy()
        frame.insert(0, "b", report.diff.attrs.get("b"))
        frame.insert(0, "a", report.diff.attrs.get("a"))
    else:
        frame = summary_rows_frame(report)
    return frame.to_csv(index=False, lineterminator="\n")


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def to_json(report: Report) -> str:
    """Runs (label, name, path, model, dataset, policy, forcing, n), summary rows, gain, diff, notes, warnings and
    the method, as one JSON object (values as fractions or tokens, `unit` says which; no CI is null)."""
    comparison = report.comparison
    runs = []
    for key, run in zip(comparison.keys, comparison.runs, strict=True):
        generation = run.generation
        runs.append({"key": key, "run": run.label, "name": run.run_name or run.run.name,
                     "path": str(run.path or run.run.path),
                     "model": generation.model if generation else None,
                     "dataset": generation.dataset if generation else None, "policy": run.policy,
                     "n_problems": run.n_problems, "n_per_problem": run.n_per_problem,
                     "train_budget": generation.train_budget if generation else None,
                     "subset": bool(generation and generation.subset), "flags": list(run.flags)})  # fmt: skip
    diff = None
    if report.diff is not None:
        diff = {
            "a": report.diff.attrs.get("a"),
            "b": report.diff.attrs.get("b"),
            "key_a": diff_keys(report.diff)[0],
            "key_b": diff_keys(report.diff)[1],
            "rows": _records(report.diff),
        }
    document = {
        "metrics": list(report.metrics),
        "runs": runs,
        "rows": _records(summary_rows_frame(report)),
        "gain": _records(report.gain) if report.gain is not None else None,
        "diff": diff,
        "notes": comparison.notes_naming(report.keyed),
        "warnings": report.warnings(),
        "method": report.footnotes(),
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def render(report: Report, fmt: str) -> str:
    """The report as text in `fmt` (markdown, latex, csv, json); the terminal table is `report_layout`'s."""
    renderers = {"markdown": to_markdown, "latex": to_latex, "csv": to_csv, "json": to_json}
    if fmt in renderers:
        return renderers[fmt](report)
    raise UserError(f"--format {fmt}: choose one of {', '.join(FORMATS)}")


# --out -------------------------------------------------------------------------------------------------------------


def check_out_target(path: Path, force: bool = False) -> None:
    """Refuse an --out path before any work: a directory, a file under a file, a file in a run directory (its files
    belong to the stages that write them), or an existing file that e3eval did not write or that was changed since
    (unless `force`; see `outputs.py`)."""
    from e3eval.outputs import check_replaceable

    path = Path(path)
    if path.is_dir():
        example = path.with_name(f"{path.name}-report.csv") if (path / MANIFEST).is_file() else path / "report.csv"
        raise UserError(f"--out {path}: a directory; give a file name such as {example}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"--out {path}: {parent} is a file, not a folder")
            break
    check_replaceable(path, force)


def write_report(path: Path, text: str, force: bool = False) -> None:
    """Write `text` to `path` atomically, creating its folder; an existing file only when e3eval wrote it and nobody
    changed it since, or with `force` (`check_out_target`)."""
    from e3eval.outputs import write_output

    path = Path(path)
    check_out_target(path, force)
    try:
        write_output(path, lambda temp: Path(temp).write_text(text, encoding="utf-8"), force)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None
