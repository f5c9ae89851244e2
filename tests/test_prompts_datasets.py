"""Prompt rendering and named benchmark resolution (offline mirrors, bundled demo set, local files)."""

import pytest

from e3eval.datasets import BENCHMARKS, resolve_problems
from e3eval.errors import UserError
from e3eval.prompts import TEMPLATES, PromptSpec, render_prompt
from e3eval.records import Problem

PROBLEM = Problem("p", "1", problem="Find $x$ with $\\frac{x}{2} = \\{1\\}$.")


def test_aime_template_is_the_papers(tokenizer):
    text, ids = render_prompt(PROBLEM, PromptSpec("aime", chat=False), tokenizer)
    assert text == (
        "You will be given a math problem. Solve the problem step by step. Output your final answer in the form of "
        "\\boxed{your answer}. Problem: Find $x$ with $\\frac{x}{2} = \\{1\\}$."
    )
    assert tokenizer.decode(ids) == text


def test_deepscaler_suffix_and_braces_survive(tokenizer):
    text, _ = render_prompt(PROBLEM, PromptSpec("deepscaler", chat=False), tokenizer)
    assert text.endswith(
        "$\\frac{x}{2} = \\{1\\}$. Let's think step by step and output the final answer within \\boxed{}."
    )
    assert set(TEMPLATES) == {"aime", "deepscaler", "raw"}


def test_chat_template_with_system_and_thinking_switch(tokenizer):
    text, ids = render_prompt(PROBLEM, PromptSpec("raw", system="Be brief."), tokenizer)
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nFind $x$")
    assert text.endswith("<|im_start|>assistant\n")
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids.count(tokenizer.convert_tokens_to_ids("<|im_start|>")) == 3, "special tokens encode as single ids"
    no_think, _ = render_prompt(PROBLEM, PromptSpec("raw", thinking=False), tokenizer)
    assert no_think.endswith("<think>\n\n</think>\n\n")


def test_unknown_template():
    with pytest.raises(UserError, match="unknown prompt template"):
        render_prompt(PROBLEM, PromptSpec("nope"), None)


@pytest.mark.parametrize(("name", "size"), [("aime24", 30), ("aime25", 30), ("hmmt24", 30), ("hmmt25", 30),
                                            ("math500", 500), ("amc23", 40)])  # fmt: skip
def test_named_benchmarks_resolve_from_the_offline_mirror(shared_data, monkeypatch, name, size):
    monkeypatch.setenv("E3EVAL_DATA_DIR", str(shared_data / "benchmarks"))
    problems = resolve_problems(name)
    assert len(problems) == size
    assert {p.dataset for p in problems} == {name}


def test_missing_mirror_without_hub_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("E3EVAL_DATA_DIR", str(tmp_path))
    monkeypatch.setitem(__import__("sys").modules, "datasets", None)  # as on a machine without `datasets`
    with pytest.raises(UserError, match=r"no offline mirror aime_2025\.jsonl"):
        resolve_problems("aime25")
    with pytest.raises(UserError, match="unknown dataset"):
        resolve_problems("aime1999")
    assert len(resolve_problems("demo")) == 16
    assert "aime25" in BENCHMARKS
