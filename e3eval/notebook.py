"""The notebook API: `load_run(path)` gives a read-only `RunView` of a run, with the CLI's names and one unit.

A notebook user reads runs; e3eval's stages write them through `e3eval.run.Run`, whose writers (locks, commits,
run.json sections) and pyarrow tables this view keeps out of reach. `RunView` says what was run (label, model,
dataset, n, budgets, policies, forcing; `e3eval.labels` names runs as reports and figures do) and gives the tables as
pandas DataFrames. Summaries follow the command line's names: `summary.parquet` stores `metric="pass@k"` with `k`
beside it (one schema for every k); people and the report say `pass@1`, `maj@4`. `summary_frame` turns stored summary
rows into the DataFrame a notebook user reads: the metric named as the CLI names it, `k` an integer (`<NA>` for
metrics without one), and a `unit` column saying what `value`, `ci_low` and `ci_high` are in: `fraction` (0-1; the
CLI prints these as percent) or `tokens`. `RunView.curve` is one metric against the budget. This module converts and
selects; it writes nothing, reads files only through `Run` (`run.py`), computes no metric (`metrics.py` does) and
does not compare runs (`report.py`'s `compare` does).
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from e3eval.errors import UserError
from e3eval.labels import forcing_label, inserted_waits, recorded_insertions, run_label, subset_label

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from e3eval.manifest import RunManifest
    from e3eval.run import Run

# Metrics stored with a k: the name printed is the metric with its k (`pass@k`, k=1 -> `pass@1`).
K_METRICS = ("pass@k", "maj@k")
TOKEN_METRICS = frozenset({"mean_tokens"})
CURVE_COLUMNS = ("budget", "value", "ci_low", "ci_high", "n_problems", "n_samples", "unit")
# Columns a notebook rarely wants and that dominate a rollout table's size: asked for explicitly.
HEAVY_ROLLOUT_COLUMNS = ("token_ids", "logprobs")


def metric_name(metric: str, k: int | None) -> str:
    """`pass@k`, 1 -> `pass@1`; a metric without k keeps its stored name (`mean_tokens`, `frac_finished`)."""
    if metric in K_METRICS and k is not None:
        return f"{metric[:-1]}{k}"
    return metric


def split_metric(name: str) -> tuple[str, int | None]:
    """The inverse of `metric_name`: `pass@8` -> (`pass@k`, 8); `mean_tokens` -> (`mean_tokens`, None). A name of
    neither form is returned as it is (the caller says whether it exists)."""
    head, _, tail = name.partition("@")
    if tail.isdigit() and f"{head}@k" in K_METRICS:
        return f"{head}@k", int(tail)
    return name, None


def unit(metric: str) -> str:
    """What a stored metric's value is in: `tokens` for lengths, `fraction` (0-1) for every rate and pass@k."""
    return "tokens" if metric in TOKEN_METRICS else "fraction"


def summary_frame(table: pa.Table) -> pd.DataFrame:
    """Stored summary rows as a DataFrame: `metric` as printed (`pass@1`), `k` as pandas `Int64`, `unit` after
    `ci_high`; every other column as stored."""
    import pandas as pd

    frame = table.to_pandas()
    if frame.empty:
        frame["unit"] = pd.Series(dtype="string")
        frame["k"] = frame["k"].astype("Int64") if "k" in frame else pd.Series(dtype="Int64")
        return frame
    stored = frame["metric"].tolist()
    ks = [None if pd.isna(k) else int(k) for k in frame["k"].tolist()]
    frame["metric"] = [metric_name(m, k) for m, k in zip(stored, ks, strict=True)]
    frame["k"] = pd.array([k if m in K_METRICS else None for m, k in zip(stored, ks, strict=True)], dtype="Int64")
    position = frame.columns.get_loc("ci_high") + 1 if "ci_high" in frame else len(frame.columns)
    frame.insert(position, "unit", [unit(m) for m in stored])
    return frame


def load_run(path: str | os.PathLike[str]) -> RunView:
    """Open a run directory for reading in a notebook: `e3eval.load_run("results/x").summary`.

    A folder without run.json (or of another schema version) is a UserError. Nothing is read but run.json until a
    table is asked for."""
    from e3eval.run import Run

    return RunView(Run.open(path).path)


class RunView:
    """A run directory as a notebook reads it: what was run (label, model, dataset, n, budgets, policies, forcing)
    and its tables as pandas DataFrames. It only reads: e3eval's stages write runs through `e3eval.run.Run`, which
    this object does not expose. Every access reads the directory as it is now, so a run scored again after
    `load_run` shows its new numbers. Values are fractions (0-1) wherever the `unit` column says `fraction`; the CLI
    prints the same numbers as percent."""

    __slots__ = ("_path",)

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)

    def _run(self) -> Run:
        from e3eval.run import Run

        return Run.open(self._path)

    # What was run --------------------------------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def name(self) -> str:
        """The folder's name, or `--name` at import: what breaks ties between runs whose labels are the same."""
        return self._run().name

    @property
    def run_id(self) -> str:
        """The run's identity (a uuid; the `run_id` column of its tables)."""
        return self._run().run_id

    @property
    def record(self) -> RunManifest:
        """run.json as typed, frozen sections (`e3eval.manifest.RunManifest`): generation, scoring, tokenizer,
        source."""
        return self._run().record

    @property
    def label(self) -> str:
        """`model · dataset · forcing · policy · subset`, as reports and figures name this run (`e3eval.labels`); the
        policy is left out when the run was scored under several (each summary row's `run` names its own)."""
        run = self._run()
        policies = _policies(run.record)
        return run_label(run.record, run.name, policies[0] if len(policies) == 1 else None)

    @property
    def model(self) -> str | None:
        """The model as given to generate (a hub name or a path); None for an imported run."""
        generation = self.record.generation
        return generation.model if generation is not None else None

    @property
    def dataset(self) -> str | None:
        """The dataset as given to generate; for an import, the problems' dataset when they name one (an import from
        a JSONL file without `--dataset` names none: None)."""
        generation = self.record.generation
        if generation is not None and generation.dataset:
            return generation.dataset
        names = {str(d) for d in self.problems["dataset"].dropna() if d}
        return names.pop() if len(names) == 1 else None

    @property
    def n_problems(self) -> int:
        """Problems in the run (a subset of the dataset where `subset` says so)."""
        return int(self._run().table("problems", ["problem_id"]).num_rows)

    @property
    def n_per_problem(self) -> int | None:
        """Samples per problem: what generate asked for; for an import, what every problem holds (None when
        problems hold different numbers)."""
        run = self._run()
        if run.samples_wanted:
            return run.samples_wanted
        from e3eval.samples import successful_keys

        counts = Counter(problem for problem, _ in successful_keys(run.path))
        return next(iter(set(counts.values()))) if len(set(counts.values())) == 1 else None

    @property
    def subset(self) -> str | None:
        """`first 4/30` or `shard 1/4` when the run holds only part of its dataset, else None."""
        return subset_label(self.record.generation)

    @property
    def forcing(self) -> str | None:
        """Budget forcing as labels print it (`wait=2`, `s1 wait=2`), None for plain sampling; the recorded settings
        (the wait text, ...) are in `record.generation.forcing`."""
        generation = self.record.generation
        return forcing_label(generation.forcing, inserted_waits(generation)) if generation is not None else None

    @property
    def insertions(self) -> dict[str, int] | None:
        """What budget forcing did, as run.json counts it over every sample: `waits` inserted, `samples_forced`
        (samples that got at least one) and `samples`; None for a run generated without forcing."""
        return recorded_insertions(self.record.generation)

    @property
    def policies(self) -> tuple[str, ...]:
        """The scoring policies the summary holds (`prefix`, `strict`, `forced`, ...); () before scoring."""
        return _policies(self.record)

    @property
    def budgets(self) -> tuple[int, ...]:
        """The budgets scored, under any policy, in increasing order; () before scoring."""
        scoring = self.record.scoring
        if scoring is None:
            return ()
        scored = {*scoring.budgets, *(b for p in scoring.policies.values() for b in p.budgets)}
        return tuple(sorted(scored))

    # Tables as pandas ----------------------------------------------------------------------------------------------

    @property
    def problems(self) -> pd.DataFrame:
        """One row per problem: id, dataset, problem text, gold answer, prompt (prompt token ids left out)."""
        return self._run().frame("problems", ["problem_id", "dataset", "problem", "answer", "prompt"])

    @property
    def rollouts(self) -> pd.DataFrame:
        """Every stored rollout row, failed requests included (`error` set); token ids and logprobs left out
        (`rollouts_frame(token_ids=True)` has them)."""
        return self.rollouts_frame()

    def rollouts_frame(self, token_ids: bool = False) -> pd.DataFrame:
        """The rollouts, with `token_ids` and `logprobs` (lists per row) when `token_ids` is True."""
        run = self._run()
        columns = run.rollout_columns()
        if not token_ids:
            columns = [c for c in columns if c not in HEAVY_ROLLOUT_COLUMNS]
        return run.frame("rollouts", columns)

    @property
    def grades(self) -> pd.DataFrame:
        """One row per (problem, sample, budget, policy) of the latest scoring: the answer found and whether it is
        correct."""
        return self._run().frame("grades")

    @property
    def summary(self) -> pd.DataFrame:
        """One row per (policy, budget, metric): `run` (the row's label, as in `compare(...).summary`), run_id,
        policy, budget, `metric` as the CLI prints it (`pass@1`, `maj@4`, `mean_tokens`), `k` (Int64, <NA> without
        one), `value`, `ci_low`, `ci_high` (a 95% bootstrap CI over problems), `unit` (`fraction`: 0-1, which the CLI
        prints as percent; `tokens` for mean_tokens), n_problems, n_samples, n_failed, n_missing, flag."""
        run = self._run()
        frame = summary_frame(run.table("summary"))
        record = run.record
        frame.insert(0, "run", [run_label(record, run.name, p) for p in frame["policy"].tolist()])
        return frame

    def gain(self, train_budget: int | None = None) -> pd.DataFrame:
        """The extrapolation gain pass@1(B) - pass@1(B_train) at every scored B > B_train with its paired bootstrap CI
        over problems (`e3eval.compare(run).gain()`; B_train: run.json's training budget, or `train_budget`)."""
        from e3eval.report import compare

        return compare([self._path]).gain(train_budget)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The metric names the summary holds, as `curve` takes them (`pass@1`, ..., `mean_tokens`)."""
        return tuple(dict.fromkeys(self.summary["metric"].tolist()))

    def curve(self, metric: str = "pass@1", policy: str | None = None) -> pd.DataFrame:
        """One metric against the budget: budget, value, ci_low, ci_high, n_problems, n_samples, unit (one row per
        budget, increasing). `policy` is needed only when the run was scored under several."""
        summary = self.summary
        policies = list(dict.fromkeys(summary["policy"].tolist()))
        if policy is None:
            if len(policies) > 1:
                raise UserError(f"{self._path}: scored under several policies ({', '.join(policies)}); "
                                f"pass policy=, e.g. curve({metric!r}, policy={policies[0]!r})")  # fmt: skip
            policy = policies[0] if policies else None
        elif policy not in policies:
            raise UserError(f"{self._path}: not scored under policy {policy!r}; it has {', '.join(policies) or 'none'}")
        rows = summary[summary["policy"] == policy]
        available = list(dict.fromkeys(rows["metric"].tolist()))
        if metric not in available:
            raise UserError(f"{self._path}: no metric {metric!r}; available: {', '.join(available)}")
        rows = rows[rows["metric"] == metric].sort_values("budget", kind="stable")
        return rows[list(CURVE_COLUMNS)].reset_index(drop=True)

    @property
    def probes(self) -> pd.DataFrame:
        """`e3eval probe` rows: per (model, ref, problem, sample, budget) token means of log-prob, entropy, KL, with
        `correct` from the grades as they are now."""
        return self._run().frame("probes")

    @property
    def attempt_probes(self) -> pd.DataFrame:
        """`e3eval probe --attempts` rows: per (model, problem, sample, k) the Fig. 13 log-probabilities."""
        return self._run().frame("attempt_probes")

    # Display -------------------------------------------------------------------------------------------------------

    def _overview(self) -> list[tuple[str, str]]:
        """What a notebook shows for the run: (field, text) pairs, every value read from run.json and the problems."""
        try:
            problems = f"{self.n_problems} problems"
        except UserError:
            problems = "? problems"
        n = self.n_per_problem
        budgets = ", ".join(str(b) for b in self.budgets) or "not scored"
        return [("label", self.label), ("path", str(self._path)),
                ("n", f"{problems} x {n if n is not None else '?'} samples"), ("budgets", budgets)]  # fmt: skip

    def __repr__(self) -> str:
        try:
            fields = self._overview()
        except UserError as exc:  # run.json removed or broken since load_run: say so, never a traceback
            return f"<e3eval run at {self._path}: {exc}>"
        return "\n".join([f"<e3eval run: {fields[0][1]}", *(f"  {k}: {v}" for k, v in fields[1:])]) + ">"

    def _repr_html_(self) -> str:
        try:
            fields = self._overview()
        except UserError as exc:
            return f"<p>e3eval run at {html.escape(str(self._path))}: {html.escape(str(exc))}</p>"
        rows = "".join(f"<tr><th style='text-align:left'>{html.escape(k)}</th><td style='text-align:left'>"
                       f"{html.escape(v)}</td></tr>" for k, v in fields)  # fmt: skip
        return f"<table><caption>e3eval run</caption>{rows}</table>"


def _policies(record: RunManifest) -> tuple[str, ...]:
    scoring = record.scoring
    if scoring is None:
        return ()
    return tuple(dict.fromkeys([*scoring.policies, *([scoring.policy] if scoring.policy else [])]))
