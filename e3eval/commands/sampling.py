"""Commands that sample from a model: `generate`, `sweep` and the embedded `demo`.

`generate` and `sweep` share two dozen flags (model, sampling, prompt, backend and server settings); they are
declared once, in `_shared_options`, and `with_generation_options` adds them to both commands as one
`GenerationOptions` value. Backend options travel as `e3eval.backends.options.BackendOptions` fields, whose values
that class checks; they are checked against the backend actually used (an option that backend would ignore is
refused) in `e3eval.backends.check_options`.

Every option sits in a `--help` panel (`panels.py`: model and engine, data and prompt, budgets and sampling, forcing,
scoring, output), shared and own options together in panel order. What the commands print when done or interrupted
is `outcomes.py`'s.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from e3eval.backends import names as backend_names
from e3eval.budget_forcing import DEFAULT_S1_ANSWER_TOKENS, DEFAULT_WAIT_TEXT
from e3eval.commands import panels
from e3eval.commands.engine import ENGINE_HELP, engine_settings
from e3eval.commands.outcomes import resumable, show_forcing, show_sweep
from e3eval.commands.output import console, fail, progress, say, show_comparison, warnings_shown
from e3eval.datasets import BENCHMARKS, DEMO
from e3eval.errors import UserError

_HELP = {
    "model": "Model path or hub name (or the served model name with --backend openai).",
    "dataset": f"{' | '.join([*BENCHMARKS, DEMO])} | a JSONL/Parquet file.",
    "backend": f"{' | '.join(backend_names())} (default: openai with --base-url, else sglang > vllm > hf, installed).",
    "template": "Prompt template: aime (paper) | deepscaler | raw.",
    "thinking": "Chat templates that support it: --thinking / --no-thinking (default: the template's own).",
    "shard": "i/N: generate every N-th problem only (join shard runs with `e3eval merge`).",
    "tokenizer": "openai: tokenizer path or name for rendering prompts (default: --model).",
    "wait": "Budget forcing (the s1 paper's idea; --forcing picks the algorithm): when a sample ends its thinking "
    "early, drop the end and append --wait-text, up to N times per sample, as --forcing says. 0: plain sampling "
    "(with --forcing s1: only its end of thinking at the budget).",
    "forcing": "Budget forcing mode. e3eval: one generation at the largest budget serves every budget, inserted "
    "tokens count toward it. s1: s1's evaluation harness exactly, one generation (run) per budget: rounds of up to "
    "the budget each, the thinking cut at the budget, then the end of thinking (and Final Answer: at the cap) and "
    "an answer phase; scored with --policy s1.",
    "answer_tokens": f"--forcing s1: most tokens of the answer phase (default {DEFAULT_S1_ANSWER_TOKENS}; s1's tasks "
    "allow 32768).",
    "answer_temperature": "--forcing s1: the answer phase's temperature (default: the run's --temperature and "
    "--top-p, as the harness samples both phases alike; s1's tasks use 0).",
    "wait_text": "Budget forcing: the text appended in place of the end of thinking.",
    "think_end": "Budget forcing and --policy forced: the end-of-thinking delimiter (default: </think> if the "
    "tokenizer has it, else EOS).",
    "train_budget": "The budget the model was trained at, e.g. 16k: recorded in run.json; plots shade the "
    "extrapolation region past it.",
    **ENGINE_HELP,
}
_PANELS = (panels.MODEL, panels.DATA, panels.BUDGETS, panels.FORCING, panels.SCORING, panels.OUTPUT)


def _in(panel: str, help: str | None = None, *flags: str, **kwargs: Any) -> Any:
    """A typer option shown in `panel` of `--help`."""
    return typer.Option(*flags, help=help, rich_help_panel=panel, **kwargs)


def _shared_options(
    model: Annotated[str, _in(panels.MODEL, _HELP["model"])],
    backend: Annotated[str | None, _in(panels.MODEL, _HELP["backend"])] = None,
    dtype: Annotated[str, _in(panels.MODEL, "Model dtype: auto | bfloat16 | float16 | float32.")] = "auto",
    batch: Annotated[
        int | None, _in(panels.MODEL, "Samples per engine call and per saved shard (default: hf 64, others 256).")
    ] = None,
    tp: Annotated[int | None, _in(panels.MODEL, ENGINE_HELP["tp"], "--tp")] = None,
    dp: Annotated[int | None, _in(panels.MODEL, ENGINE_HELP["dp"], "--dp", "--dp-size")] = None,
    gpu_memory_utilization: Annotated[float | None, _in(panels.MODEL, ENGINE_HELP["gpu_memory_utilization"])] = None,
    max_model_len: Annotated[str | None, _in(panels.MODEL, ENGINE_HELP["max_model_len"], metavar="TOKENS")] = None,
    engine_arg: Annotated[list[str] | None, _in(panels.MODEL, ENGINE_HELP["engine_arg"], metavar="KEY=VALUE")] = None,
    base_url: Annotated[str | None, _in(panels.MODEL, "openai: server URL, e.g. http://127.0.0.1:8000/v1")] = None,
    api_key: Annotated[str | None, _in(panels.MODEL, "openai: API key (default: $OPENAI_API_KEY).")] = None,
    concurrency: Annotated[int | None, _in(panels.MODEL, "openai: requests in flight (default: 32).")] = None,
    request_timeout: Annotated[float | None, _in(panels.MODEL, "openai: seconds per request (default: 3600).")] = None,
    tokenizer: Annotated[str | None, _in(panels.MODEL, _HELP["tokenizer"])] = None,
    limit: Annotated[int | None, _in(panels.DATA, "Only the first N problems (run.json records it).")] = None,
    shard: Annotated[str, _in(panels.DATA, _HELP["shard"])] = "0/1",
    template: Annotated[str, _in(panels.DATA, _HELP["template"])] = "aime",
    chat: Annotated[bool, _in(panels.DATA, "Wrap the prompt in the model's chat template.")] = True,
    thinking: Annotated[bool | None, _in(panels.DATA, _HELP["thinking"])] = None,
    system: Annotated[str | None, _in(panels.DATA, "System prompt.")] = None,
    id_field: Annotated[str, _in(panels.DATA, "Local dataset file: id field.")] = "id",
    problem_field: Annotated[str, _in(panels.DATA, "Local dataset file: problem field.")] = "problem",
    answer_field: Annotated[str, _in(panels.DATA, "Local dataset file: answer field.")] = "answer",
    temperature: Annotated[float, _in(panels.BUDGETS)] = 0.6,
    top_p: Annotated[float, _in(panels.BUDGETS)] = 0.95,
    seed: Annotated[int, _in(panels.BUDGETS, "Base seed; each sample's seed derives from (seed, problem, index).")] = 0,
    logprobs: Annotated[bool, _in(panels.BUDGETS, "Store sampled-token logprobs.")] = False,
    context_check: Annotated[bool, _in(panels.BUDGETS, ENGINE_HELP["context_check"])] = True,
    train_budget: Annotated[str | None, _in(panels.BUDGETS, _HELP["train_budget"], metavar="TOKENS")] = None,
    wait: Annotated[int, _in(panels.FORCING, _HELP["wait"])] = 0,
    wait_text: Annotated[str, _in(panels.FORCING, _HELP["wait_text"])] = DEFAULT_WAIT_TEXT,
    think_end: Annotated[str | None, _in(panels.FORCING, _HELP["think_end"])] = None,
    forcing: Annotated[str, _in(panels.FORCING, _HELP["forcing"], metavar="e3eval|s1")] = "e3eval",
    answer_tokens: Annotated[int | None, _in(panels.FORCING, _HELP["answer_tokens"])] = None,
    answer_temperature: Annotated[float | None, _in(panels.FORCING, _HELP["answer_temperature"])] = None,
    out: Annotated[Path | None, _in(panels.OUTPUT, "Run directory (default: results/<model>__<dataset>).")] = None,
    verbose: Annotated[bool, _in(panels.OUTPUT, ENGINE_HELP["verbose"])] = False,
) -> None:
    """The flags `generate` and `sweep` share (never called: its signature is what `with_generation_options` adds)."""


@dataclass(frozen=True)
class GenerationOptions:
    model: str
    backend: str | None
    dtype: str
    batch: int | None
    tp: int | None
    dp: int | None
    gpu_memory_utilization: float | None
    max_model_len: str | None
    engine_arg: list[str] | None
    base_url: str | None
    api_key: str | None
    concurrency: int | None
    request_timeout: float | None
    tokenizer: str | None
    limit: int | None
    shard: str
    template: str
    chat: bool
    thinking: bool | None
    system: str | None
    id_field: str
    problem_field: str
    answer_field: str
    temperature: float
    top_p: float
    seed: int
    logprobs: bool
    context_check: bool
    train_budget: str | None
    wait: int
    wait_text: str
    think_end: str | None
    forcing: str
    answer_tokens: int | None
    answer_temperature: float | None
    out: Path | None
    verbose: bool


def _panel_order(parameter: inspect.Parameter) -> int:
    """Where an option's panel comes in `--help`: model, data, budgets, forcing, scoring, output, then the rest."""
    info = next((a for a in typing.get_args(parameter.annotation)[1:] if hasattr(a, "rich_help_panel")), None)
    panel = getattr(info, "rich_help_panel", None)
    return _PANELS.index(panel) if panel in _PANELS else len(_PANELS)


def with_generation_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give `command` (which takes `options: GenerationOptions`) the shared flags as its own typer options, every
    option in its panel's place (typer shows panels in the order their first option comes)."""
    shared = inspect.signature(_shared_options).parameters
    hints = typing.get_type_hints(_shared_options, include_extras=True)
    own_hints = typing.get_type_hints(command, include_extras=True)
    own = [p.replace(annotation=own_hints[p.name]) for p in inspect.signature(command).parameters.values()
           if p.name != "options"]  # fmt: skip
    added = [p.replace(annotation=hints[p.name]) for p in shared.values()]
    keyword = inspect.Parameter.KEYWORD_ONLY
    ordered = sorted([*own, *added], key=_panel_order)  # stable: within a panel, the command's own flags first

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        options = GenerationOptions(**{f.name: kwargs.pop(f.name) for f in fields(GenerationOptions)})
        command(options=options, **kwargs)

    wrapper.__signature__ = inspect.Signature([p.replace(kind=keyword) for p in ordered])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in ordered}
    return wrapper


def generate_config(options: GenerationOptions, dataset: str, n: int, max_tokens: int) -> Any:
    """A GenerateConfig from the shared flags, its bounds checked (`generation.check_config`) before any progress bar
    starts; backend options are checked once the backend is known."""
    from e3eval.backends.options import BackendOptions
    from e3eval.budgets import parse_size
    from e3eval.generation import GenerateConfig, check_config, parse_shard
    from e3eval.prompts import PromptSpec, check_template
    from e3eval.sweep import default_out

    backend_options = BackendOptions(
        dtype=options.dtype, batch_size=options.batch, base_url=options.base_url, api_key=options.api_key,
        concurrency=options.concurrency, timeout_s=options.request_timeout, tokenizer=options.tokenizer,
    ).given()  # fmt: skip
    prompt = PromptSpec(check_template(options.template), options.chat, options.thinking, options.system)
    trained = parse_size(options.train_budget, "--train-budget") if options.train_budget else None
    config = GenerateConfig(
        model=options.model, dataset=dataset, out=options.out or default_out(options.model, dataset), n=n,
        max_tokens=max_tokens, temperature=options.temperature, top_p=options.top_p, seed=options.seed,
        prompt=prompt, backend=options.backend, backend_options=backend_options, batch_samples=options.batch,
        shard=parse_shard(options.shard), limit=options.limit, logprobs=options.logprobs,
        id_field=options.id_field, problem_field=options.problem_field, answer_field=options.answer_field,
        wait=options.wait, wait_text=options.wait_text, think_end=options.think_end, forcing_mode=options.forcing,
        answer_tokens=options.answer_tokens, answer_temperature=options.answer_temperature,
        engine=engine_settings(options.tp, options.dp, options.gpu_memory_utilization, options.max_model_len,
                               options.engine_arg),
        train_budget=trained, context_check=options.context_check, verbose=options.verbose,
    )  # fmt: skip
    check_config(config)
    return config


@with_generation_options
def generate(
    options: GenerationOptions,
    dataset: Annotated[str, _in(panels.DATA, _HELP["dataset"])],
    max_tokens: Annotated[
        str,
        _in(
            panels.BUDGETS,
            "Generation limit (the largest budget), e.g. 40k; --forcing s1: the thinking budget.",
            metavar="TOKENS",
        ),
    ],
    n: Annotated[int, _in(panels.BUDGETS, "Samples per problem (grow it later: only new samples are generated).")] = 16,
) -> None:
    """Generate samples into a run directory; resumable, sharded, never mixing settings.

    Examples (the second is one of four shards, joined by `e3eval merge`):

      e3eval generate --model Qwen/Qwen3-1.7B --dataset aime25 --max-tokens 32k

      e3eval generate --model M --dataset aime25 --max-tokens 32k --shard 0/4
    """
    from e3eval.budgets import parse_size
    from e3eval.generation import generate_run

    config = generate_config(options, dataset, n, parse_size(max_tokens, "--max-tokens"))
    with resumable(), progress() as bar, warnings_shown():
        result = generate_run(config, bar, log=say)
    say(
        f"{result.run_dir}: {result.generated} new samples ({result.tokens:,} tokens, {result.seconds:.1f}s), "
        f"{result.skipped} already there, {result.total} wanted ({result.shape})"
    )
    show_forcing(result)
    if result.failed:
        fail(result.failure_line())


@with_generation_options
def sweep(
    options: GenerationOptions,
    dataset: Annotated[str, _in(panels.DATA, _HELP["dataset"])] = "aime25",
    budgets: Annotated[
        str,
        _in(
            panels.BUDGETS,
            "Token budgets; generation runs once at the largest (with --wait: forced there), or "
            "once per budget with --forcing s1.",
        ),
    ] = "4k..32k",
    n: Annotated[int, _in(panels.BUDGETS, "Samples per problem.")] = 32,
    policy: Annotated[
        str | None,
        _in(
            panels.SCORING,
            "prefix | strict | length | forced (answers forced at each budget by --model, greedily). "
            "Default: prefix; s1 (the only one) with --forcing s1.",
        ),
    ] = None,
    workers: Annotated[int | None, _in(panels.SCORING, "Grader processes.")] = None,
    bootstrap: Annotated[int, _in(panels.SCORING, "Bootstrap resamples.")] = 1000,
) -> None:
    """Generate once at the largest budget, score every budget, print the table and plot the curves.

    Examples (the second: the first 4 demo problems, forced with up to two waits):

      e3eval sweep --model Qwen/Qwen3-1.7B --dataset aime25 --train-budget 16k

      e3eval sweep --model M --dataset demo --limit 4 --budgets 16..64 --wait 2
    """
    from e3eval.commands.scoring import forced_flags, scoring_config
    from e3eval.figures.accuracy import draw_sweep
    from e3eval.sweep import SweepConfig, run_sweep

    # Scoring flags are checked before generating: a bad one found after hours of sampling wastes them.
    if options.forcing == "s1":
        if policy not in (None, "s1"):
            raise UserError(f"--forcing s1 runs are scored with --policy s1 (each response is its budget's own "
                            f"generation, answer phase included), not --policy {policy}")  # fmt: skip
        policy = "s1"
    policy = policy or "prefix"
    forced = None
    if policy == "forced":  # the sampled model writes the forced answers, with the same engine settings
        engine = engine_settings(options.tp, options.dp, options.gpu_memory_utilization, None, options.engine_arg)
        forced = forced_flags(policy, options.model, options.backend, think_end=options.think_end,
                              dtype=options.dtype if options.dtype != "auto" else None, batch=options.batch,
                              base_url=options.base_url, api_key=options.api_key, engine=engine,
                              verbose=options.verbose)  # fmt: skip
    score = scoring_config(budgets, policy, workers, bootstrap=bootstrap, forced=forced)
    if policy == "forced" and not options.wait:  # --think-end then names the forced answers' delimiter only
        options = dataclasses.replace(options, think_end=None)
    generation = generate_config(options, dataset, n, max(score.budgets))
    with resumable(), progress() as bar, warnings_shown():
        outcome = run_sweep(SweepConfig(generation, score, generation.train_budget, plot=draw_sweep), bar, log=say)
    show_sweep(outcome)
    if outcome.generation.failed:
        fail(outcome.generation.failure_line())
    forced = outcome.scoring.forced if outcome.scoring is not None else None
    if forced is not None and forced.failed:
        fail(f"{forced.failed} forced answer request(s) failed: left out of their budgets' numbers (counted beside "
             "n); rescore to retry them")  # fmt: skip


def demo(
    synthetic: Annotated[bool, _in(panels.DATA, "Score a synthetic pool instead of generating.")] = False,
    workers: Annotated[int | None, _in(panels.SCORING, "Grader processes.")] = None,
    out: Annotated[Path, _in(panels.OUTPUT, "Where the demo writes its model and runs.")] = Path("results/demo"),
) -> None:
    """The embedded default: a real sweep of a hand-set tiny model on the bundled problems, CPU only, no network.

    Examples:

      e3eval demo

      e3eval demo --synthetic --out /tmp/demo
    """
    from e3eval.dev.demo import DEMO_NOTE, run_demo, run_synthetic_demo
    from e3eval.figures.accuracy import draw_sweep

    with progress() as bar:
        if synthetic:
            result = run_synthetic_demo(out, bar, workers, log=say, plot=draw_sweep)
        else:
            outcome = run_demo(out, bar, workers, log=say, plot=draw_sweep)
    if synthetic:
        console.print(
            f"scored {result.scoring.grades.num_rows} (sample, budget) rows, {result.scoring.distinct_pairs} "
            f"distinct answers, in {result.scoring.seconds:.1f}s"
        )
        show_comparison(result.comparison)
        say(f"plots: {', '.join(str(p) for p in result.plots)}")
        return
    show_sweep(outcome)
    console.print(f"[dim]{escape(DEMO_NOTE)}. `e3eval demo --synthetic` scores a synthetic pool of traces instead.[/]")
