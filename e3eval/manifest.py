"""The run record: run.json as typed, frozen sections (`RunManifest`), read from every version on disk.

run.json is written by the stages (generation, import, merge, scoring) through `Run` and read by every later one.
Readers never index it by string: `Run.record` gives a `RunManifest` whose sections are dataclasses with the fields
the code reads (`GenerationRecord.sampling.max_tokens`, `ScoringRecord.budgets`, ...). `from_dict` accepts every
run.json written so far (schema version 1): a key that older runs lack, or that holds a value of another type (a
hand-edited file), reads as None or empty, never as an exception in a reader. The fixed settings that define a
generated run (`FIXED_SETTINGS`) and the rule that compares them (`differs`) live here too, since grow, merge and the
s1 curves compare them. Writing stays `Run`'s (`write_sections`, `commit`); the dicts a stage writes are built by that
stage and read back through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

# Settings that define a run: a rerun must match them exactly (n may grow; shards differ by design). `forcing` is
# recorded only for forced runs, so a plain run matches runs made before forcing existed.
# `model` is compared as `model_path` (the resolved folder) where the run records it: two spellings of one folder are
# one model; `model_fingerprint` (`weights.py`) refuses new weights exported to the run's model path.
# `engine_args` are the --engine-arg pairs that may change what is sampled (`settings.fixed_args`), recorded only when
# there are some; parallelism, memory and batch settings may change between invocations.
FIXED_SETTINGS = ("model", "model_fingerprint", "dataset", "prompt", "sampling", "seed", "backend", "dtype", "forcing",
                  "engine_args")  # fmt: skip
# Settings recorded only by later versions: a run made before records none, and is not refused for it.
_RECORDED_LATER = frozenset({"dtype", "model_fingerprint"})


def differs(recorded: Mapping[str, Any], settings: Mapping[str, Any], key: str) -> bool:
    """Whether a fixed setting differs between a recorded generation section and new settings (a setting older runs
    did not record yet matches anything)."""
    if key in _RECORDED_LATER and recorded.get(key) is None:
        return False
    if key == "model" and recorded.get("model_path") and settings.get("model_path"):
        return recorded["model_path"] != settings["model_path"]
    return recorded.get(key) != settings.get(key)


def _dict(value: object) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _ints(value: object) -> tuple[int, ...]:
    return tuple(int(v) for v in value if _int(v) is not None) if isinstance(value, list | tuple) else ()


@dataclass(frozen=True)
class SamplingRecord:
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    logprobs: bool = False

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SamplingRecord:
        return cls(_int(data.get("max_tokens")), _float(data.get("temperature")), _float(data.get("top_p")),
                   data.get("logprobs") is True)  # fmt: skip


@dataclass(frozen=True)
class ForcingRecord:
    """Budget forcing as run.json records it (`budget_forcing.Forcing.settings`); `mode` is `e3eval` for runs without
    one."""

    mode: str = "e3eval"
    wait: int = 0
    wait_text: str | None = None
    think_end: str | None = None
    think_end_token_ids: tuple[int, ...] = ()
    answer_tokens: int | None = None
    answer_temperature: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ForcingRecord:
        return cls(_str(data.get("mode")) or "e3eval", _int(data.get("wait")) or 0, _str(data.get("wait_text")),
                   _str(data.get("think_end")), _ints(data.get("think_end_token_ids")),
                   _int(data.get("answer_tokens")), _float(data.get("answer_temperature")))  # fmt: skip


@dataclass(frozen=True)
class GenerationRecord:
    """The generation section: what a generated (or merged) run was sampled with. `settings` holds the fixed
    settings as recorded, for comparisons (`differs`); `fields` the whole section."""

    model: str | None = None
    model_path: str | None = None
    dataset: str | None = None
    sampling: SamplingRecord = field(default_factory=SamplingRecord)
    seed: int | None = None
    backend: str | None = None
    dtype: str | None = None
    forcing: ForcingRecord | None = None
    n: int | None = None
    shard: str | None = None
    status: str | None = None  # `complete` or `partial` (a generation that stopped before trying every sample)
    engine_settings: object = None  # as recorded: `EngineSettings.from_record` checks it
    fields: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None  # --limit N: the first N problems of the dataset (None: all of them)
    problems_total: int | None = None  # the dataset's size before --limit / --shard (None: not recorded)
    train_budget: int | None = None  # --train-budget: the budget the model was trained at (None: not given)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GenerationRecord:
        forcing = data.get("forcing")
        return cls(
            _str(data.get("model")), _str(data.get("model_path")), _str(data.get("dataset")),
            SamplingRecord.from_dict(_dict(data.get("sampling"))), _int(data.get("seed")), _str(data.get("backend")),
            _str(data.get("dtype")), ForcingRecord.from_dict(forcing) if isinstance(forcing, dict) else None,
            _int(data.get("n")), str(data["shard"]) if data.get("shard") is not None else None,
            _str(data.get("status")), data.get("engine_settings"), dict(data), _int(data.get("limit")),
            _int(data.get("problems_total")), _int(data.get("train_budget")),
        )  # fmt: skip

    @property
    def settings(self) -> dict[str, Any]:
        """The fixed settings (and `model_path`, which `differs` compares `model` by) as recorded."""
        return {k: self.fields.get(k) for k in (*FIXED_SETTINGS, "model_path")}

    def differences(self, other: GenerationRecord, keys: tuple[str, ...] = FIXED_SETTINGS) -> list[str]:
        """The fixed settings in which two recorded generations differ (either way: a setting one of them did not
        record yet matches)."""
        mine, theirs = self.settings, other.settings
        return [k for k in keys if differs(mine, theirs, k) or differs(theirs, mine, k)]

    @property
    def subset(self) -> bool:
        """Whether the run holds only part of its dataset's problems (--limit, or one --shard of a split)."""
        if self.shard is not None and self.shard != "merged" and not self.shard.endswith("/1"):
            return True  # `0/1` is the one shard of an unsplit run; `merged`, every shard of a split joined
        return self.limit is not None and (self.problems_total is None or self.limit < self.problems_total)

    @property
    def s1_budget(self) -> int | None:
        """The thinking budget of a run generated with `--forcing s1` (its one budget), else None."""
        if self.forcing is None or self.forcing.mode != "s1":
            return None
        return self.sampling.max_tokens


@dataclass(frozen=True)
class ForcedRecord:
    """Who wrote a `--policy forced` scoring's answers (`forced_answer.ForcedOutcome.describe`): the flags that set
    them."""

    model: str | None = None
    model_path: str | None = None
    backend: str | None = None
    answer_tokens: int | None = None
    cue: str | None = None
    think_end: str | None = None
    base_url: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ForcedRecord:
        return cls(_str(data.get("model")), _str(data.get("model_path")), _str(data.get("backend")),
                   _int(data.get("answer_tokens")), _str(data.get("cue")), _str(data.get("think_end")),
                   _str(_dict(data.get("backend_options")).get("base_url")))  # fmt: skip


@dataclass(frozen=True)
class PolicyRecord:
    """What run.json keeps about one policy's latest scoring (`scoring.policies`)."""

    budgets: tuple[int, ...] = ()
    scored_at: str | None = None
    samples_graded: int | None = None
    forced: ForcedRecord | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyRecord:
        forced = data.get("forced")
        return cls(_ints(data.get("budgets")), _str(data.get("scored_at")), _int(data.get("samples_graded")),
                   ForcedRecord.from_dict(forced) if isinstance(forced, dict) else None, dict(data))  # fmt: skip


@dataclass(frozen=True)
class ScoringRecord:
    """The scoring section: the last scoring, and under `policies` each policy kept in the summary."""

    policy: str | None = None
    budgets: tuple[int, ...] = ()
    unit: str | None = None
    samples_graded: int | None = None
    policies: dict[str, PolicyRecord] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoringRecord:
        policies = {str(k): PolicyRecord.from_dict(v) for k, v in _dict(data.get("policies")).items()
                    if isinstance(v, dict)}  # fmt: skip
        return cls(_str(data.get("policy")), _ints(data.get("budgets")), _str(data.get("unit")),
                   _int(_dict(data.get("samples")).get("graded")), policies, dict(data))  # fmt: skip

    def policy_record(self, policy: str) -> PolicyRecord:
        """The record of `policy`: its entry under `policies`, or the top level when it was the last (or only, in
        runs scored before run.json kept one per policy) scoring."""
        if policy in self.policies:
            kept = self.policies[policy]
            if kept.samples_graded is None and self.policy == policy:  # written before it recorded its own count
                return replace(kept, samples_graded=self.samples_graded)
            return kept
        if self.policy == policy:
            forced = self.fields.get("forced")
            return PolicyRecord(self.budgets, _str(self.fields.get("scored_at")), self.samples_graded,
                                ForcedRecord.from_dict(forced) if isinstance(forced, dict) else None,
                                self.fields)  # fmt: skip
        return PolicyRecord()


@dataclass(frozen=True)
class TokenizerRecord:
    name_or_path: str | None = None
    fingerprint: str | None = None
    vocab_size: int | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TokenizerRecord:
        return cls(_str(data.get("name_or_path")), _str(data.get("fingerprint")), _int(data.get("vocab_size")))


@dataclass(frozen=True)
class SourceRecord:
    """An imported run's source: the file and what was skipped reading it."""

    skipped_lines: int = 0
    fields: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceRecord:
        return cls(_int(data.get("skipped_lines")) or 0, dict(data))


@dataclass(frozen=True)
class RunManifest:
    """run.json, typed: one frozen record per section (None where that stage has not run)."""

    schema_version: int | None
    run_id: str | None
    name: str | None
    kind: str
    token_ids_source: str | None  # `engine`, or `retokenized` (text re-tokenized at import or from a server)
    legacy_run_id: str | None  # the id a run had before ids were uuids
    generation: GenerationRecord | None
    scoring: ScoringRecord | None
    tokenizer: TokenizerRecord
    source: SourceRecord | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunManifest:
        generation, scoring, source = (data.get(k) for k in ("generation", "scoring", "source"))
        kind = _str(data.get("kind")) or ("generated" if isinstance(generation, dict) else "imported")
        return cls(
            _int(data.get("schema_version")), _str(data.get("run_id")), _str(data.get("name")), kind,
            _str(data.get("token_ids_source")), _str(data.get("legacy_run_id")),
            GenerationRecord.from_dict(generation) if isinstance(generation, dict) else None,
            ScoringRecord.from_dict(scoring) if isinstance(scoring, dict) else None,
            TokenizerRecord.from_dict(_dict(data.get("tokenizer"))),
            SourceRecord.from_dict(source) if isinstance(source, dict) else None,
        )  # fmt: skip
