"""Hostile input to `e3train`: non-finite or overlapping thresholds, duplicate sizes, counts that would run for
hours, outputs into e3eval runs or over files e3train did not write, stage names that climb out of output_dir, data
paths with Hydra syntax in them, training data verl cannot read, missing verl dependencies, and bigram settings that
exhaust memory or diverge.

Each row of `CASES` runs a real `e3train` process (`tests/hostile.py`) on real files (Parquet written here, e3eval runs
imported here) and states the exit code, what the user reads and what must hold on disk afterwards. Tests below the
table check what a row cannot: Hydra's real parser reading our overrides back, verl's real dataset reading our files,
and a dependency hidden from a real `e3train run` process.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_jsonl
from hostile import Case, run_case

from e3eval.errors import UserError
from e3eval.ingest import ImportConfig, import_run
from e3eval.train.bigram_sim import BigramConfig, train
from e3eval.train.curriculum import load_spec, stage_commands
from e3eval.train.preflight import data_file_problems
from e3eval.train.prepare import SplitRule, prepare_countdown, prepare_math, prepare_mult
from e3eval.train.write_guard import enclosing_run

# --- set-ups and checks -------------------------------------------------------------------------------------------


def _run(tmp: Path, model: Path) -> None:
    """A real e3eval run directory at tmp/run, and a fingerprint of every file in it, to check it is left alone."""
    records = [{"id": "a", "s": i, "response": f"so \\boxed{{{i}}}", "answer": "1"} for i in range(2)]
    import_run(ImportConfig(write_jsonl(tmp / "run.jsonl", records), tmp / "run", str(model), sample_field="s"))
    (tmp / "before.json").write_text(json.dumps(_fingerprint(tmp / "run")))


def _fingerprint(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def _run_untouched(tmp: Path) -> None:
    assert _fingerprint(tmp / "run") == json.loads((tmp / "before.json").read_text()), "the run directory changed"


def _absent(*names: str):
    def check(tmp: Path) -> None:
        for name in names:
            assert not (tmp / name).exists(), f"{name} was created"

    return check


def _file(name: str, content: bytes):
    def setup(tmp: Path, _model: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(content)

    return setup


def _unchanged(name: str, content: bytes):
    def check(tmp: Path) -> None:
        assert (tmp / name).read_bytes() == content, f"{name} was replaced"
        assert not list(tmp.rglob("*.tmp-*")), "a temporary file was left behind"

    return check


def _foreign_parquet(tmp: Path, _model: Path) -> None:
    (tmp / "cd").mkdir()
    pq.write_table(pa.table({"question": ["mine"]}), tmp / "cd" / "train-3.parquet")
    (tmp / "before.bytes").write_bytes((tmp / "cd" / "train-3.parquet").read_bytes())


def _foreign_parquet_kept(tmp: Path) -> None:
    assert (tmp / "cd" / "train-3.parquet").read_bytes() == (tmp / "before.bytes").read_bytes()
    assert not (tmp / "cd" / "test-3.parquet").exists(), "nothing is written when one target is refused"


def _spec(text: str, data: bool = True):
    def setup(tmp: Path, _model: Path) -> None:
        if data:
            prepare_countdown(tmp / "data", [3], train=4, test=2, seed=0)
        (tmp / "spec.yaml").write_text(text)

    return setup


def _stage_link_outside(tmp: Path, _model: Path) -> None:
    _spec(SPEC)(tmp, _model)
    (tmp / "elsewhere").mkdir()
    (tmp / "out").mkdir()
    (tmp / "out" / "s1").symlink_to(tmp / "elsewhere")


def _data(name: str, table: pa.Table | None = None, raw: bytes | None = None):
    """SPEC with its training file replaced by `name`, holding `table` (Parquet) or `raw` bytes."""

    def setup(tmp: Path, _model: Path) -> None:
        _spec(SPEC.replace("data/train-3.parquet", f"'data/{name}'"))(tmp, _model)
        if table is not None:
            pq.write_table(table, tmp / "data" / name)
        else:
            (tmp / "data" / name).write_bytes(raw or b"")

    return setup


SPEC = """name: t
model: base
output_dir: out
defaults: {rollout_name: vllm}
stages:
  - name: s1
    data: {train: [data/train-3.parquet], val: [data/test-3.parquet]}
    budget: 64
    steps: 2
"""
PASSWD = b"root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
LEGACY = pa.table({"data_source": ["countdown"], "prompt": [[{"role": "user", "content": "hi"}]],
                   "ability": ["math"], "reward_model": [{"style": "rule", "ground_truth": "1"}],
                   "extra_info": ['{"index": 0}']})  # fmt: skip
QUESTIONS = pa.table({"question": ["1+1"], "answer": ["2"]})
CD = ("prepare", "countdown", "--out", "{tmp}/cd", "--train", "3", "--test", "1")
MATH = ("prepare", "math", "--dataset", "demo", "--from-run", "{tmp}/nowhere", "--out", "{tmp}/dm")
BIGRAM = ("bigram", "--algo", "grpo", "--iterations", "3", "--groups", "2", "--group-size", "4")
PNG = b"\x89PNG\r\n\x1a\n" + b"my own picture"

# One row per case; the table reads best with one case per line or two.
# fmt: off
CASES = [
    # 1. select-budget: J(2B) >= kappa * J(B) means nothing for NaN or inf (checked before the run is read).
    *[Case(f"kappa-{k}", ("select-budget", "{tmp}/nowhere", "--kappa", k), program="e3train",
           says=f"--kappa {k}: must be a finite positive number") for k in ("nan", "inf", "0", "-1.2")],
    # 2. prepare math thresholds: pass rates in [0, 1], hard at most easy (checked before anything is read).
    Case("easy-above-nan", (*MATH, "--easy-above", "nan"), program="e3train",
         says="--easy-above nan: a threshold is a pass rate, a number from 0 to 1", check=_absent("dm")),
    Case("hard-at-most-inf", (*MATH, "--hard-at-most", "inf"), program="e3train", says="--hard-at-most inf: a thresh"),
    Case("easy-above-over-1", (*MATH, "--easy-above", "1.5"), program="e3train", says="--easy-above 1.5: a threshold"),
    Case("thresholds-overlap", (*MATH, "--easy-above", "0.1", "--hard-at-most", "0.9"), program="e3train",
         says="--hard-at-most 0.9 is above --easy-above 0.1: a pass rate between them would be both easy and hard",
         check=_absent("dm")),
    # 3. duplicate sizes: refused (they said "wrote 4 files" while 2 existed).
    Case("sizes-duplicate", (*CD, "--sizes", "3,4,3"), program="e3train",
         says="--sizes: 3 given more than once", check=_absent("cd")),
    # 4. counts that would run until killed.
    Case("train-huge", (*CD, "--train", "100000000000"), program="e3train",
         says="--train 100,000,000,000: at most 1,000,000 problems per split", check=_absent("cd")),
    Case("mult-test-huge", ("prepare", "mult", "--out", "{tmp}/m", "--test", "5000000"), program="e3train",
         says="--test 5,000,000: at most 1,000,000", check=_absent("m")),
    Case("mult-digits-huge", ("prepare", "mult", "--out", "{tmp}/m", "--digits", "1000000x5"), program="e3train",
         says="--digits 1000000x5: each factor has at most 20 digits", check=_absent("m")),
    # 5 and 10. never into an e3eval run directory, nor below one; the run is left byte for byte.
    Case("prepare-into-run", ("prepare", "countdown", "--out", "{tmp}/run", "--train", "3"), program="e3train",
         says="is an e3eval run directory (run.json); e3train does not write into runs", setup=_run,
         check=_run_untouched),
    Case("prepare-below-run", ("prepare", "mult", "--out", "{tmp}/run/data", "--train", "3"), program="e3train",
         says="lies inside", setup=_run, check=_run_untouched),
    Case("prepare-math-into-run", ("prepare", "math", "--dataset", "demo", "--from-run", "{tmp}/run", "--out",
                                   "{tmp}/run"), program="e3train", says="e3train does not write into runs",
         setup=_run, check=_run_untouched),
    Case("bigram-into-run", (*BIGRAM, "--out", "{tmp}/run/b.csv"), program="e3train",
         says="e3train does not write into runs", setup=_run, check=_run_untouched),
    Case("bigram-plot-into-run", (*BIGRAM, "--out", "{tmp}/b.csv", "--plot", "{tmp}/run/figures/b"),
         program="e3train", says="--plot", setup=_run, check=_run_untouched),
    Case("run-output-is-run", ("run", "spec.yaml"), program="e3train", says="output_dir run: is an e3eval run",
         setup=lambda tmp, model: (_run(tmp, model), _spec(SPEC.replace("output_dir: out", "output_dir: run"))(
             tmp, model)), check=_run_untouched),
    # 10. never over a file e3train did not write (there is no --force).
    Case("prepare-over-foreign-parquet", (*CD, "--sizes", "3"), program="e3train",
         says="train-3.parquet: exists and is not a Parquet file written by `e3train prepare`",
         setup=_foreign_parquet, check=_foreign_parquet_kept),
    Case("prepare-over-text", ("prepare", "mult", "--out", "{tmp}/m", "--train", "3"), program="e3train",
         says="test.parquet: exists and is not a Parquet file", setup=_file("m/test.parquet", PASSWD),
         check=_unchanged("m/test.parquet", PASSWD)),
    Case("prepare-out-is-file", ("prepare", "mult", "--out", "{tmp}/m"), program="e3train",
         says="--out", setup=_file("m", PASSWD), check=_unchanged("m", PASSWD)),
    Case("bigram-over-foreign-csv", (*BIGRAM, "--out", "{tmp}/b.csv"), program="e3train",
         says="b.csv: exists and is not a CSV written by `e3train bigram`", setup=_file("b.csv", b"a,b\n1,2\n"),
         check=_unchanged("b.csv", b"a,b\n1,2\n")),
    Case("bigram-over-foreign-json", (*BIGRAM, "--out", "{tmp}/b.csv"), program="e3train",
         says="b.csv.json: exists and is not a provenance file", setup=_file("b.csv.json", b'{"mine": 1}'),
         check=lambda tmp: (_unchanged("b.csv.json", b'{"mine": 1}')(tmp), _absent("b.csv")(tmp))),
    Case("bigram-over-foreign-png", (*BIGRAM, "--out", "{tmp}/b.csv", "--plot", "{tmp}/fig.png"), program="e3train",
         says="fig.png: exists and is not a figure written by Matplotlib", setup=_file("fig.png", PNG),
         check=lambda tmp: (_unchanged("fig.png", PNG)(tmp), _absent("b.csv", "fig.pdf")(tmp))),
    Case("bigram-out-equals-plot", (*BIGRAM, "--out", "{tmp}/b.png", "--plot", "{tmp}/b.png"), program="e3train",
         says="--out and --plot would write the same file twice", check=_absent("b.png")),
    # 9. bigram: folders, sizes that exhaust memory, learning rates that overflow.
    Case("bigram-out-dir", (*BIGRAM, "--out", "{tmp}"), program="e3train",
         says="is a folder; --out names the CSV file to write"),
    Case("bigram-plot-dir", (*BIGRAM, "--out", "{tmp}/b.csv", "--plot", "{tmp}"), program="e3train",
         says="is a folder; --plot names the figure file", check=_absent("b.csv")),
    Case("bigram-out-under-file", (*BIGRAM, "--out", "{tmp}/f/b.csv"), program="e3train",
         says="f is a file, not a folder", setup=_file("f", b"x"), check=_unchanged("f", b"x")),
    Case("bigram-groups-huge", ("bigram", "--algo", "grpo", "--out", "{tmp}/b.csv", "--groups", "100000000000"),
         program="e3train", says="rollouts an iteration; at most 1,048,576", check=_absent("b.csv")),
    Case("bigram-budget-huge", ("bigram", "--algo", "grpo", "--out", "{tmp}/b.csv", "--budget", "1000000"),
         program="e3train", says="tokens per iteration (held in memory); at most 33,554,432"),
    Case("bigram-iterations-huge", ("bigram", "--algo", "grpo", "--out", "{tmp}/b.csv", "--iterations", "10000000000"),
         program="e3train", says="iterations must be at most 1,000,000"),
    Case("bigram-lr-huge", (*BIGRAM, "--out", "{tmp}/b.csv", "--lr", "1e300"), program="e3train",
         says="lr must be positive and at most 100, not 1e+300", check=_absent("b.csv")),
    Case("bigram-lr-nan", (*BIGRAM, "--out", "{tmp}/b.csv", "--lr", "nan"), program="e3train",
         says="lr must be positive and at most 100, not nan"),
    Case("bigram-seed-negative", (*BIGRAM, "--out", "{tmp}/b.csv", "--seed", "-1"), program="e3train",
         says="seed must be >= 0"),
    Case("bigram-diverges", ("bigram", "--algo", "grpo", "--out", "{tmp}/b.csv", "--iterations", "10", "--lr", "100"),
         program="e3train", says="training diverged at iteration 2: a probability underflowed to 0, so the entropy "
         "is NaN; lr 100 is too large for this model, rerun with a smaller --lr", check=_absent("b.csv", "b.csv.json")),
    # 6. stage names are folder names inside output_dir.
    Case("stage-name-escape", ("run", "spec.yaml"), program="e3train",
         says="stages[0].name (line 6): '../../escape' is not a simple name",
         setup=_spec(SPEC.replace("name: s1", "name: ../../escape")), check=_absent("out", "../escape")),
    Case("stage-name-absolute", ("run", "spec.yaml", "--dry-run"), program="e3train",
         says="'/tmp/x' is not a simple name", setup=_spec(SPEC.replace("name: s1", "name: /tmp/x"))),
    Case("stage-name-dots", ("run", "spec.yaml", "--dry-run"), program="e3train", says="'..' is not a simple name",
         setup=_spec(SPEC.replace("name: s1", "name: '..'"))),
    Case("stage-dir-links-outside", ("run", "spec.yaml"), program="e3train",
         says="stages[0].name: out/s1 resolves to", setup=_stage_link_outside),
    # 8. data verl cannot read, refused before launch (it passed, then verl died with ModuleNotFoundError).
    Case("data-passwd", ("run", "spec.yaml"), program="e3train",
         says="stages[0].data.train: /etc/passwd: not a .parquet file",
         setup=_spec(SPEC.replace("data/train-3.parquet", "/etc/passwd"))),
    Case("data-text-named-parquet", ("run", "spec.yaml"), program="e3train",
         says="stages[0].data.train: data/x.parquet: not a Parquet file", setup=_data("x.parquet", raw=PASSWD)),
    Case("data-wrong-columns", ("run", "spec.yaml"), program="e3train",
         says="column 'prompt' must be a list of {role, content} chat messages",
         setup=_data("q.parquet", QUESTIONS)),
    Case("data-wrong-columns-listed", ("run", "spec.yaml"), program="e3train", says="(columns: question, answer)",
         setup=_data("q.parquet", QUESTIONS)),
    Case("data-extra-info-string", ("run", "spec.yaml"), program="e3train",
         says="column 'extra_info' must be a struct (verl reads extra_info.index)", setup=_data("old.parquet", LEGACY)),
    Case("data-no-rows", ("run", "spec.yaml"), program="e3train", says="stages[0].data.train: the files hold no rows",
         setup=_data("empty.parquet", LEGACY.slice(0, 0).drop_columns(["extra_info"]))),
    Case("data-glob-name", ("run", "spec.yaml"), program="e3train", says="as a glob pattern; rename it",
         setup=_data("x[1].parquet", LEGACY.drop_columns(["extra_info"]))),
    Case("no-rollout-engine", ("run", "spec.yaml"), program="e3train",
         says="stages[0]: no rollout engine: verl 0.9 has no default; set rollout_name",
         setup=_spec(SPEC.replace("defaults: {rollout_name: vllm}\n", ""))),
]
# fmt: on


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_hostile_train(case: Case, tmp_path: Path, tiny_model_dir: Path) -> None:
    run_case(case, tmp_path, tiny_model_dir)


# --- what a row cannot check --------------------------------------------------------------------------------------

HOSTILE_PATHS = ["data/a,b.parquet", "my data/x.parquet", "it's.parquet", 'q"x.parquet', "back\\slash.parquet",
                 "end\\", "${oc.env:HOME}/x.parquet", "\\${x}", "[1].parquet", "a=b", "123", "null", "true", "1e5",
                 " lead", "ü/ñ.parquet", "a b,c'd\"e\\${f}\\"]  # fmt: skip


def test_hydra_reads_every_path_back_exactly():
    """Compose verl's real ppo_trainer config with the overrides of a spec whose paths hold Hydra syntax: each list
    stays one item per file and every value comes back as written (a comma made two list items before)."""
    pytest.importorskip("verl", reason="verl is not installed: `make engines`")
    import verl
    from hydra import compose, initialize_config_dir

    from e3eval.train.curriculum import validate_spec

    spec = validate_spec({"name": "x,y ${z}", "model": "my model,v2", "output_dir": "out dir,2", "stages": [
        {"name": "s1", "data": {"train": HOSTILE_PATHS, "val": list(reversed(HOSTILE_PATHS))}, "budget": 8,
         "steps": 1, "hyper": {"rollout_name": "vllm"}}]})  # fmt: skip
    [command] = stage_commands(spec)
    overrides = command[command.index("verl.trainer.main_ppo") + 1 :]
    with initialize_config_dir(config_dir=str(Path(verl.__file__).parent / "trainer" / "config"), version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    assert list(config.data.train_files) == [os.path.abspath(p) for p in HOSTILE_PATHS]
    assert list(config.data.val_files) == [os.path.abspath(p) for p in reversed(HOSTILE_PATHS)]
    assert config.actor_rollout_ref.model.path == os.path.abspath("my model,v2")
    assert config.trainer.project_name == "x,y ${z}"
    assert config.trainer.default_local_dir == os.path.abspath("out dir,2/s1")
    assert "data.train_files=[data/a,b.parquet" not in " ".join(command)


def test_prepared_files_pass_the_preflight_and_mix(tmp_path):
    paths = prepare_countdown(tmp_path / "cd", [3, 4], train=5, test=2, seed=0)
    paths += prepare_mult(tmp_path / "m", (2, 3), train=3, test=1, seed=0, verify=False)
    for path in paths:
        assert data_file_problems(str(path)) == ([], pq.read_metadata(path).num_rows)
    schemas = {pq.read_schema(p).remove_metadata() for p in paths}
    assert len(schemas) == 1, "every e3train file has one schema, so any mixture concatenates"
    row = pq.read_table(paths[0]).to_pylist()[0]
    assert row["extra_info"] == {"split": "train", "index": 0, "difficulty": 3, "digits": None, "problem_id": None,
                                 "pass_rate": None}  # fmt: skip
    provenance = json.loads(pq.read_schema(paths[0]).metadata[b"e3train"])
    assert provenance["written_by"] == "e3train prepare countdown" and provenance["settings"]["sizes"] == [3, 4]


def test_verl_reads_prepared_files(tmp_path, tokenizer):
    """verl's own RL dataset over a Countdown + multiplication mixture: every row yields its index and reward keys
    (a JSON-string extra_info failed here with AttributeError: 'str' object has no attribute 'get')."""
    pytest.importorskip("datasets", reason="verl's dataset needs `datasets` (pip install datasets)")
    pytest.importorskip("verl")
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    files = [str(prepare_countdown(tmp_path / "cd", [3], train=4, test=1, seed=0)[0]),
             str(prepare_mult(tmp_path / "m", (2, 2), train=3, test=1, seed=0, verify=False)[0])]  # fmt: skip
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    dataset = RLHFDataset(files, tokenizer, config)
    rows = [dataset[i] for i in range(len(dataset))]
    assert len(rows) == 7 and [r["index"] for r in rows] == [0, 1, 2, 3, 0, 1, 2]
    assert {r["data_source"] for r in rows} == {"countdown", "mult"}
    assert all(r["reward_model"]["ground_truth"] for r in rows)


def test_a_missing_verl_dependency_is_named_with_its_install_command(tmp_path):
    """`datasets` hidden from a real `e3train run` process (as when verl is installed without its dependencies)."""
    pytest.importorskip("verl")
    _spec(SPEC)(tmp_path, tmp_path)
    code = ("import sys\nsys.modules['datasets'] = None\nsys.argv = ['e3train', 'run', 'spec.yaml']\n"
            "from e3eval.commands.e3train import main\nmain()\n")  # fmt: skip
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "verl's trainer needs datasets" in proc.stderr and "pip install datasets" in proc.stderr
    assert not (tmp_path / "out").exists(), "nothing was launched"


def test_rerunning_prepare_replaces_only_its_own_files(tmp_path):
    prepare_countdown(tmp_path / "cd", [3], train=3, test=1, seed=0)
    prepare_countdown(tmp_path / "cd", [3], train=5, test=1, seed=1)
    assert pq.read_metadata(tmp_path / "cd" / "train-3.parquet").num_rows == 5
    pq.write_table(LEGACY, tmp_path / "cd" / "test-3.parquet")  # what earlier versions wrote: theirs to replace
    prepare_countdown(tmp_path / "cd", [3], train=3, test=2, seed=0)
    assert pq.read_schema(tmp_path / "cd" / "test-3.parquet").field("extra_info").type != pa.string()
    pq.write_table(pa.table({"mine": [1]}), tmp_path / "cd" / "test-3.parquet")
    with pytest.raises(UserError, match="not a Parquet file written by `e3train prepare`"):
        prepare_countdown(tmp_path / "cd", [3], train=3, test=2, seed=0)
    assert pq.read_table(tmp_path / "cd" / "test-3.parquet").column_names == ["mine"]


def test_rerunning_bigram_replaces_its_own_csv_and_figures(tmp_path):
    from conftest import run_cli

    args = (*BIGRAM, "--out", str(tmp_path / "b.csv"), "--plot", str(tmp_path / "b.png"))
    for _ in range(2):
        proc = run_cli("e3train", *args)
        assert proc.returncode == 0, proc.stderr
    written = {p.name for p in tmp_path.iterdir() if not p.name.endswith(".e3eval-lock")}  # the writer's lock file
    assert written == {"b.csv", "b.csv.json", "b.png", "b.pdf"}


@pytest.mark.parametrize(
    ("easy_above", "hard_at_most", "expected"),
    [(0.5, 0.5, {"easy": 2, "medium": 0, "hard": 2}), (1.0, 0.0, {"easy": 0, "medium": 3, "hard": 1})],
)
def test_math_thresholds_at_their_limits(tmp_path, easy_above, hard_at_most, expected):
    from e3eval.records import Problem

    problems = [Problem(f"q{i}", str(i), f"What is {i}?") for i in range(4)]
    rates = {"q0": 1.0, "q1": 0.75, "q2": 0.5, "q3": 0.0}
    assert prepare_math(tmp_path, problems, rates, SplitRule(easy_above, hard_at_most)) == expected


def test_bigram_divergence_names_the_iteration():
    with pytest.raises(UserError, match="training diverged at iteration 2: a probability underflowed"):
        train(BigramConfig(lr=100.0, iterations=5))
    assert len(train(BigramConfig(lr=10.0, iterations=5, groups=8))) == 6, "a large lr that stays finite runs"


def test_enclosing_run_follows_links(tmp_path, tiny_model_dir):
    _run(tmp_path, tiny_model_dir)
    (tmp_path / "link").symlink_to(tmp_path / "run")
    assert enclosing_run(tmp_path / "link" / "sub" / "x.csv") == (tmp_path / "run").resolve()
    assert enclosing_run(tmp_path / "elsewhere") is None


def test_spec_stage_names_are_simple(tmp_path):
    spec = tmp_path / "spec.yaml"
    for name in ("easy-8k", "stage_1", "v1.2"):
        spec.write_text(SPEC.replace("name: s1", f"name: {name}"))
        assert load_spec(spec).stages[0].name == name
    for name in ("../x", "a/b", ".hidden", "-rf", "a b", "."):
        spec.write_text(SPEC.replace("name: s1", f"name: '{name}'"))
        with pytest.raises(UserError, match="is not a simple name"):
            load_spec(spec)
