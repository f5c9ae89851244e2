"""The `e3train` command line: thin wrappers over `train/` (data preparation, curricula, budget selection).

User mistakes are `UserError`s: one `error:` line, exit code 2. Ctrl-C ends a command with one line saying what was
kept (exit code 130). Each command's help ends in examples; options share the panel names of `e3eval` where they
fit (`commands/panels.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from e3eval.commands import panels
from e3eval.errors import UserError
from e3eval.store import output_lock
from e3eval.train.bigram_sim import BigramConfig as BigramDefaults

app = typer.Typer(help="e3 training utilities.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, cls=panels.Group)  # fmt: skip
console = Console()
TRAINING = "Training"  # the bigram model's optimisation settings: no e3eval panel fits them


def _version(value: bool) -> None:
    if value:
        from e3eval import __version__

        print(f"e3train (e3eval {__version__})")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """e3 training utilities."""


@app.command("select-budget", cls=panels.Command)
def select_budget_cmd(
    run_dir: Annotated[
        Path, typer.Argument(metavar="RUN", help="An e3eval run scored at every candidate B and at 2B.")
    ],
    candidates: Annotated[
        str, typer.Option(metavar="SPEC", help="Candidate training budgets.", rich_help_panel=panels.BUDGETS)
    ] = "4k,8k,16k",
    kappa: Annotated[
        float,
        typer.Option(help="Required gain from doubling: J(2B) >= kappa * J(B).", rich_help_panel=panels.SCORING),
    ] = 1.2,
    policy: Annotated[
        str,
        typer.Option(
            help="Which scoring of the run J comes from: prefix | strict | length | forced.",
            rich_help_panel=panels.SCORING,
        ),
    ] = "prefix",
) -> None:
    """Pick the smallest budget B with J(2B) >= kappa * J(B) and B >= the mean response length (paper Eq. 3).

    J(B) is pass@1 at budget B under --policy; the run must be scored at every candidate B and at 2B.

    Examples:
      e3eval sweep --model M --dataset aime25 --budgets 4k..32k --out runs/m
      e3train select-budget runs/m --candidates 4k,8k,16k --kappa 1.2
    """
    from e3eval.budgets import format_budget, parse_budgets
    from e3eval.train.budget import select_budget

    chosen, rows = select_budget(run_dir, parse_budgets(candidates), kappa, policy)
    table = Table(title=f"budget selection (kappa {kappa:g}, J = pass@1 under {policy} from {run_dir})")
    for column in ("B", "J(B) %", "J(2B) %", "J(2B)/J(B)", "mean length", "explores", "fits", "chosen"):
        table.add_column(column, justify="right")
    for row in rows:
        ratio = row.j_double / row.j if row.j else float("inf")
        table.add_row(format_budget(row.budget), f"{100 * row.j:.1f}", f"{100 * row.j_double:.1f}", f"{ratio:.2f}",
                      f"{row.mean_length:,.0f}", "yes" if row.explores else "no", "yes" if row.fits else "no",
                      "<-" if row.budget == chosen else "")  # fmt: skip
    console.print(table)
    if chosen is None:
        console.print("no candidate satisfies both conditions")
        raise typer.Exit(1)
    console.print(f"training budget: {chosen} ({format_budget(chosen)})")


@app.command(cls=panels.Command)
def run(
    spec: Annotated[
        str, typer.Argument(metavar="SPEC", help="A curriculum YAML file, or a preset's name (`e3train presets`).")
    ],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print every command, then check everything a real run here would (exit 2 if refused)."
        ),
    ] = False,
) -> None:
    """Run a curriculum: one verl GRPO/GRPOMask run per stage, each from the previous stage's checkpoint.

    Steps whose output exists (a stage's checkpoint, an evaluation's plot) are skipped: a rerun resumes.
    GPUs: the spec's n_gpus_per_node and nnodes, else this machine's.

    Examples:
      e3train run countdown-coupled --dry-run
      e3train run my-curriculum.yaml
    """
    from e3eval.train.catalog import find_spec
    from e3eval.train.curriculum import load_spec, stage_steps
    from e3eval.train.launch import dry_run as print_dry_run
    from e3eval.train.launch import run_steps
    from e3eval.train.preflight import check_inputs
    from e3eval.train.topology import count_gpus, needs_count

    parsed = load_spec(find_spec(spec))
    gpus = count_gpus() if needs_count(parsed) else None
    steps = stage_steps(parsed, gpus)
    if dry_run:
        print_dry_run(parsed, steps, gpus)
        return
    check_inputs(parsed, steps, gpus)
    try:
        with output_lock(Path(parsed.output_dir), "e3train run", what="this curriculum's output_dir"):
            ran = run_steps(steps, log=console.print)
    except KeyboardInterrupt:
        _interrupted("the steps finished so far are kept: rerun the same command to resume")
    console.print(f"{parsed.name}: done ({ran} step(s) run, {len(steps) - ran} already done)")


@app.command(cls=panels.Command)
def presets() -> None:
    """List the shipped curricula, one line each; `e3train run NAME` runs one (`--dry-run` prints its commands).

    Each line: the name, what the curriculum reproduces, and its stages.

    Examples:
      e3train presets
      e3train run e3-math --dry-run
    """
    from e3eval.train.catalog import list_presets

    for line in list_presets():
        print(line)


@app.command(cls=panels.Command)
def bigram(
    algo: Annotated[
        list[str],
        typer.Option(
            metavar="ALGO", help="grpo or grpo_mask; repeat the option to train both.", rich_help_panel=TRAINING
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            help="Per-iteration CSV (with two algos, one file each: OUT-ALGO.csv).", rich_help_panel=panels.OUTPUT
        ),
    ],
    plot: Annotated[
        Path | None,
        typer.Option(help="Also draw the Fig. 8 panels to this PNG (+ PDF).", rich_help_panel=panels.OUTPUT),
    ] = None,
    iterations: Annotated[
        int, typer.Option(help="Training iterations.", rich_help_panel=TRAINING)
    ] = BigramDefaults.iterations,
    group_size: Annotated[
        int, typer.Option(help="Rollouts per GRPO group.", rich_help_panel=TRAINING)
    ] = BigramDefaults.group_size,
    groups: Annotated[
        int, typer.Option(help="Groups per iteration.", rich_help_panel=TRAINING)
    ] = BigramDefaults.groups,
    budget: Annotated[
        int, typer.Option(help="Most actions per rollout.", rich_help_panel=panels.BUDGETS)
    ] = BigramDefaults.budget,
    lr: Annotated[float, typer.Option(help="SGD learning rate.", rich_help_panel=TRAINING)] = BigramDefaults.lr,
    seed: Annotated[
        int, typer.Option(help="Seeds the initial logits and all sampling.", rich_help_panel=TRAINING)
    ] = BigramDefaults.seed,
) -> None:
    """The p^k bigram model (paper App. C): GRPO vs GRPOMask on a softmax bigram policy, per-iteration dynamics.

    Runs on the CPU: the defaults take well under a minute.

    Examples:
      e3train bigram --algo grpo --algo grpo_mask --out bigram.csv --plot f8.png
      e3train bigram --algo grpo --iterations 200 --out quick.csv
    """
    from e3eval.train.bigram_sim import BigramConfig
    from e3eval.train.write_guard import bigram_targets

    if len(set(algo)) != len(algo):
        raise UserError(f"--algo given twice with the same value: {algo}")
    try:
        configs = [BigramConfig(a, iterations, group_size, groups, budget, lr, seed) for a in algo]  # type: ignore[arg-type]
    except ValueError as exc:
        raise UserError(str(exc)) from None
    csvs, plots = bigram_targets(out, algo, plot)
    with output_lock(out, "e3train bigram", what="this output"):
        _train_bigram(configs, csvs, plots, groups, group_size, lr, budget, seed)


def _train_bigram(configs: list, csvs: list[Path], plots: list[Path], groups: int, group_size: int, lr: float,
                  budget: int, seed: int) -> None:  # fmt: skip
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from e3eval.train.bigram_sim import iterate, summarize_dynamics, write_history

    runs: list[tuple[str, list]] = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[now]}"),
               TimeRemainingColumn())  # fmt: skip
    with Progress(*columns, console=console) as progress:
        for config in configs:
            task = progress.add_task(config.algo, total=config.iterations + 1, now="")
            history = []
            for stats in iterate(config):
                history.append(stats)
                now = f"length {stats.mean_length:.1f}, reward {stats.reward:.3f}, p(stop) {stats.p_stop:.3f}"
                progress.update(task, advance=1, now=now)
            runs.append((config.algo, history))
    table = Table(title=f"p^k bigram model, seed {seed}: {configs[0].rollouts:,} rollouts per iteration "
                        f"({groups} groups of {group_size}), lr {lr:g}, budget {budget}")  # fmt: skip
    for column in ("algo", "a* found at it.", "mean length", "p(stop)", "entropy", "final reward"):
        table.add_column(column, justify="right")
    for config, (name, history), path in zip(configs, runs, csvs, strict=True):
        dynamics = summarize_dynamics(history)
        found = "not found" if dynamics.found_at is None else f"{dynamics.found_at:,}"
        table.add_row(
            name,
            found,
            f"{dynamics.start_length:.1f} -> peak {dynamics.peak_length:.1f}",
            f"{dynamics.start_p_stop:.3f} -> {dynamics.p_stop_before:.3f}",
            f"{dynamics.start_entropy:.3f} -> peak {dynamics.peak_entropy:.3f}",
            f"{history[-1].reward:.3f}",
        )
        write_history(history, path, config)
        console.print(f"wrote {path} (+ {path.name}.json: configuration and versions)")
    console.print(table)
    console.print("a* found: the first iteration with mean reward >= 0.01; the changes shown are up to the one before.")
    if plots:
        from e3eval.figures.bigram_curves import plot_histories

        stem = plots[0].with_name(plots[0].stem)
        title = f"$p^k$ bigram model (seed {seed}, {groups}x{group_size} rollouts/iteration)"
        written = plot_histories(runs, stem, title=title)
        console.print(f"wrote {' and '.join(str(path) for path in written)}")


prepare_app = typer.Typer(help="Write verl-format training data.", no_args_is_help=True, cls=panels.Group)
app.add_typer(prepare_app, name="prepare")


@prepare_app.command("countdown", cls=panels.Command)
def prepare_countdown_cmd(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/cdown"),
    sizes: Annotated[str, typer.Option(help="Numbers per problem (3..8), comma-separated.")] = "3,4,5,6",
    train: Annotated[int, typer.Option(help="Training problems per size.")] = 10_000,
    test: Annotated[int, typer.Option(help="Test problems per size.")] = 200,
    seed: Annotated[int, typer.Option(help="Seeds the problems.")] = 0,
) -> None:
    """Countdown problems, solvable by construction, one file per size and split.

    Writes OUT/train-N.parquet and OUT/test-N.parquet for each size N, in verl's format.

    Examples:
      e3train prepare countdown --out data/cdown
      e3train prepare countdown --sizes 3,6 --train 2000 --test 100
    """
    from e3eval.train.prepare import prepare_countdown
    from e3eval.train.write_guard import check_output_dir

    try:
        parsed = [int(s) for s in sizes.split(",")]
    except ValueError:
        raise UserError(f"--sizes {sizes!r}: expected comma-separated numbers such as 3,6") from None
    check_output_dir(out)  # before the lock, whose file would sit beside `out`
    with output_lock(out, "e3train prepare", what="this folder"):
        paths = prepare_countdown(out, parsed, train, test, seed)
    console.print(f"wrote {len(paths)} files to {out}")


@prepare_app.command("mult", cls=panels.Command)
def prepare_mult_cmd(
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/mult"),
    digits: Annotated[str, typer.Option(help="n x m digits, e.g. 5x5.")] = "5x5",
    verify: Annotated[bool, typer.Option("--verify", help="MULT-V prompt (Check: lines).")] = False,
    train: Annotated[int, typer.Option(help="Training problems.")] = 10_000,
    test: Annotated[int, typer.Option(help="Test problems.")] = 200,
    seed: Annotated[int, typer.Option(help="Seeds the problems.")] = 0,
) -> None:
    """Multiplication problems (MULT, or MULT-V with --verify).

    Writes OUT/train.parquet and OUT/test.parquet in verl's format.

    Examples:
      e3train prepare mult --digits 5x5 --out data/mult
      e3train prepare mult --digits 6x6 --verify --out data/mult-v
    """
    from e3eval.train.prepare import prepare_mult
    from e3eval.train.write_guard import check_output_dir

    try:
        n, m = (int(x) for x in digits.lower().split("x"))
    except ValueError:
        raise UserError(f"--digits {digits!r}: expected NxM such as 5x5") from None
    check_output_dir(out)
    with output_lock(out, "e3train prepare", what="this folder"):
        paths = prepare_mult(out, (n, m), train, test, seed, verify)
    console.print(f"wrote {', '.join(str(p) for p in paths)}")


@prepare_app.command("math", cls=panels.Command)
def prepare_math_cmd(
    dataset: Annotated[str, typer.Option(help="Problems: a named benchmark or a JSONL/Parquet file.")],
    from_run: Annotated[Path, typer.Option(help="A scored e3eval run of the reference model on those problems.")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("data/dmath"),
    easy_above: Annotated[float, typer.Option(help="Easy: pass rate above this.")] = 10 / 16,
    hard_at_most: Annotated[float, typer.Option(help="Hard: pass rate at most this.")] = 0.0,
    template: Annotated[str, typer.Option(help="Prompt template.")] = "deepscaler",
    val_dataset: Annotated[str, typer.Option(help="Validation problems written to val.parquet.")] = "aime25",
) -> None:
    """Split a math dataset into easy / medium / hard by a reference model's pass rates.

    Writes OUT/easy.parquet, medium.parquet, hard.parquet and val.parquet in verl's format.

    Examples:
      e3eval sweep --model M --dataset train.jsonl --n 16 --budgets 8k --out ref
      e3train prepare math --dataset train.jsonl --from-run ref --out data/dmath
    """
    from e3eval.datasets import resolve_problems
    from e3eval.prompts import check_template
    from e3eval.train.prepare import SplitRule, pass_rates, prepare_math
    from e3eval.train.write_guard import check_output_dir

    rule = SplitRule(easy_above, hard_at_most)
    check_output_dir(out)
    with output_lock(out, "e3train prepare", what="this folder"):
        counts = prepare_math(out, resolve_problems(dataset), pass_rates(from_run), rule, check_template(template),
                              resolve_problems(val_dataset))  # fmt: skip
    console.print(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))


def _interrupted(kept: str) -> None:
    Console(stderr=True).print(f"[yellow]interrupted:[/] {escape(kept)}", highlight=False, soft_wrap=True)
    raise typer.Exit(130)


def main() -> None:
    try:
        app()
    except UserError as exc:
        # The message quotes paths the user gave: text, never markup.
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
