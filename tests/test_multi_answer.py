"""Answers given in several boxes (issue 9, item 3): which golds name several values, which boxes make the final
answer, how the joined answer grades with real math-verify (in process and in grader workers), the rule under every
scoring policy and truncation, end to end through `score_run`, and extraction staying linear on adversarial text."""

from __future__ import annotations

import json
import re
import time

import pytest
from conftest import write_jsonl
from hypothesis import given, settings
from hypothesis import strategies as st

from e3eval.extract import is_answer_list, last_boxed
from e3eval.grade import grade_answer
from e3eval.grade_pool import GraderPool
from e3eval.policy import answer_at_budget, final_answer

ROOT_PLUS, ROOT_MINUS = r"\frac{-1+\sqrt{17}}{2}", r"\frac{-1-\sqrt{17}}{2}"
HMMT10 = f"{ROOT_PLUS}, {ROOT_MINUS}"
HMMT10_RESPONSE = (
    "<think>Let s = a+b+c. Squaring and adding the three equations gives s^2 - s - 4 = 0 after some work. "
    r"Maybe s = \boxed{3}? No, check again.</think>"
    "\n\nSumming the equations, $s^2 + s - 4 = 0$, so\n\n"
    rf"$$a+b+c = \boxed{{{ROOT_PLUS}}} \text{{ and }} \boxed{{{ROOT_MINUS}}}$$"
)


def grade(gold: str, response: str) -> bool | None:
    return grade_answer(gold, final_answer(response, gold=gold)).correct


def test_hmmt_feb_2025_10_gold_names_two_values(shared_data):
    rows = [json.loads(line) for line in (shared_data / "benchmarks" / "hmmt_feb_2025.jsonl").open()]
    gold = next(r["answer"] for r in rows if r["id"] == "hmmt_feb_2025_10")
    assert gold == HMMT10
    assert is_answer_list(gold)
    assert grade(gold, rf"So \boxed{{{ROOT_PLUS}}} and \boxed{{{ROOT_MINUS}}}") is True
    assert grade(gold, HMMT10_RESPONSE) is True
    # Only the last box was read before: that alone is (still) one of two values, hence wrong.
    assert grade(gold, rf"So \boxed{{{ROOT_MINUS}}}") is False
    # The other golds of the shared benchmarks name one value each.
    assert [r["id"] for r in rows if is_answer_list(r["answer"])] == ["hmmt_feb_2025_10"]


@pytest.mark.parametrize(
    ("gold", "response", "expected"),
    [
        # Math-Verify's own suite (tests/test_all.py): several boxes read together as one answer.
        ("{1,2,3}", r"\boxed{1},\boxed{2},\boxed{3}", True),
        ("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}", True),
        # HMMT #10 variants: order, spelling, the sign slip, a missing value, an extra value, a repeated box.
        (HMMT10, rf"The values are $\boxed{{{ROOT_MINUS}}}$ and $\boxed{{{ROOT_PLUS}}}$.", True),
        (HMMT10, r"$\boxed{\dfrac{-1+\sqrt{17}}{2}}$, $\boxed{\dfrac{-1-\sqrt{17}}{2}}$", True),
        (HMMT10, rf"$\boxed{{{ROOT_PLUS}}}$ or $\boxed{{\frac{{1-\sqrt{{17}}}}{{2}}}}$", False),
        (HMMT10, rf"$\boxed{{{ROOT_PLUS}}}$, $\boxed{{{ROOT_MINUS}}}$ and $\boxed{{2}}$", False),
        (HMMT10, rf"$\boxed{{{ROOT_PLUS}}}$, $\boxed{{{ROOT_PLUS}}}$ and $\boxed{{{ROOT_MINUS}}}$", True),
        # Sets, +- golds, solutions written as equations, ordered pairs keep their order inside.
        (r"\{1\pm\sqrt{5},-2\}", r"$x=\boxed{-2}$, $x=\boxed{1+\sqrt{5}}$, $x=\boxed{1-\sqrt{5}}$", True),
        (r"\{1\pm\sqrt{5},-2\}", r"$\boxed{-2}$ and $\boxed{1+\sqrt{5}}$", False),
        (r"1 \pm \sqrt{19}", r"$\boxed{1+\sqrt{19}}$ and $\boxed{1-\sqrt{19}}$", True),
        ("-2,1", r"$\boxed{x = 1}$ or $\boxed{x = -2}$", True),
        ("(2, 2), (6, 2)", r"\boxed{(2, 2)} and \boxed{(2, 6)}", False),
        # The list of values written in one box is graded as before.
        (HMMT10, rf"$\boxed{{{ROOT_PLUS}, {ROOT_MINUS}}}$", True),
    ],
)
def test_several_boxes_grade_as_one_answer(gold, response, expected):
    assert grade(gold, response) is expected


def test_single_valued_gold_keeps_the_last_box():
    for gold, response in [
        ("2", r"\boxed{1} and \boxed{2}"),
        ("(1, 2)", r"\boxed{1}, \boxed{2}"),
        ("58,500", "\\boxed{58,500}"),
    ]:
        assert final_answer(response, gold=gold) == last_boxed(response)
    assert grade("2", r"\boxed{1} and \boxed{2}") is True
    assert grade("1", r"\boxed{1} and \boxed{2}") is False


@pytest.mark.parametrize(
    ("gold", "several"),
    [
        (HMMT10, True),
        ("1,-2", True),
        ("3, 5, 7", True),
        ("(2, 2), (6, 2)", True),
        ("{1,2,3}", True),
        (r"\{1, 2\}", True),
        (r"\left\{ 1, 2 \right\}", True),
        (r"3 \pm 2 \sqrt{2}", True),
        (r"\{5\}", False),
        ("(1,2)", False),
        (r"\left( 3, \frac{\pi}{2} \right)", False),
        ("[1, 3)", False),
        (r"(0,9) \cup (9,36)", False),
        (r"\{1\} \cup \{2\}", False),
        (r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", False),
        (r"\frac{-1\pm\sqrt{17}}{2}", False),  # math-verify cannot read this gold either: no set to compare against
        ("10,\\!080", False),
        ("58,500", False),
        (r"\$32,\!348", False),
        (r"11,\! 111,\! 111,\! 100", False),
        ("073", False),
    ],
)
def test_is_answer_list(gold, several):
    assert is_answer_list(gold) is several


def test_final_answer_region():
    gold = "1, 2"
    # After </think>: the whole final section, across paragraphs; boxes of the thinking section stay out.
    assert (
        final_answer("<think>\\boxed{3}\n\n\\boxed{4}</think>So\n\n\\boxed{1}\n\nand\n\n\\boxed{2}", gold=gold)
        == "1, 2"
    )
    # Without a thinking section: the paragraph of the last box only.
    assert final_answer("First \\boxed{3}.\n\nSo \\boxed{1}, \\boxed{2}.\n\nDone.", gold=gold) == "1, 2"
    assert final_answer("So \\boxed{1}.\n  \nFinally \\boxed{2}.", gold=gold) == "2"
    # An unclosed thinking section (a prefix at a budget): the paragraph of the last box.
    assert final_answer("<think>try \\boxed{5}\n\nmaybe \\boxed{1} or \\boxed{2", final=False, gold=gold) == "1"
    # Empty boxes do not join; nothing complete, no answer.
    assert final_answer("\\boxed{1}, \\boxed{ }, \\boxed{2}", gold=gold) == "1, 2"
    assert final_answer("\\boxed{}", gold=gold) is None
    assert final_answer("no box", gold=gold) is None


FULL = rf"<think>maybe \boxed{{3}}</think> so \boxed{{{ROOT_PLUS}}} and \boxed{{{ROOT_MINUS}}}"
CUT = rf"<think>maybe \boxed{{3}}</think> so \boxed{{{ROOT_PLUS}}} and \boxed{{\frac{{-1-"


def test_policies_read_several_boxes_and_respect_budgets():
    joined = f"{ROOT_PLUS}, {ROOT_MINUS}"
    for policy in ("prefix", "strict", "length"):
        assert answer_at_budget(policy, FULL, FULL, 30, True, 40, HMMT10) == joined
        # Without the gold (or with a single-valued one) the last box, as before.
        assert answer_at_budget(policy, FULL, FULL, 30, True, 40) == ROOT_MINUS
    # Cut inside the second box: only complete boxes count, so the prefix offers one of two values.
    assert answer_at_budget("prefix", CUT, FULL, 30, False, 20, HMMT10) == ROOT_PLUS
    assert answer_at_budget("strict", CUT, FULL, 30, True, 20, HMMT10) is None
    assert answer_at_budget("length", CUT, FULL, 30, True, 20, HMMT10) is None
    # strict: the answer must follow </think>; no final box means no answer even with boxes in the thinking.
    thinking_only = "<think>\\boxed{1} and \\boxed{2}</think> no box"
    assert answer_at_budget("strict", thinking_only, thinking_only, 9, True, 9, "1, 2") is None
    plain = "work\n\nanswers \\boxed{1} and \\boxed{2}"
    assert answer_at_budget("strict", plain, plain, 9, True, 9, "1, 2") == "1, 2"


def test_grader_workers_agree_with_in_process_grading():
    items = [
        (HMMT10, final_answer(HMMT10_RESPONSE, gold=HMMT10)),
        ("{1,2,3}", "1, 2, 3"),
        ("(2, 2), (6, 2)", "(6, 2), (2, 2)"),
        (HMMT10, ROOT_PLUS),
        ("20", r"20\%"),
        (r"20\%", r"20 \%"),
        (r"12.5\%", "12.5"),
        ("0.2", r"20\%"),
    ]
    with GraderPool(workers=1, deadline_s=20.0) as pool:
        for i, (gold, answer) in enumerate(items):
            pool.submit(i, gold, answer)
        pooled = pool.drain()
    assert [pooled[i].correct for i in range(len(items))] == [True, True, True, False, True, True, True, False]
    assert [pooled[i] for i in range(len(items))] == [grade_answer(g, a) for g, a in items]


def test_score_run_reads_several_boxes(tmp_path, tiny_model_dir, tokenizer):
    from e3eval.ingest import ImportConfig, import_run
    from e3eval.score import ScoreConfig, score_run

    one_box = rf"So $a+b+c = \boxed{{{ROOT_MINUS}}}$."
    records = [
        {"id": "hmmt10", "response": HMMT10_RESPONSE, "answer": HMMT10},
        {"id": "hmmt10", "response": one_box, "answer": HMMT10},
        {"id": "single", "response": r"\boxed{1} and \boxed{2}", "answer": "2"},
    ]
    run = tmp_path / "run"
    import_run(ImportConfig(write_jsonl(tmp_path / "r.jsonl", records), run, str(tiny_model_dir)))
    ids = tokenizer.encode(HMMT10_RESPONSE, add_special_tokens=False)
    # A budget that ends inside the second box of the final answer: the first is complete there, the second is not.
    cut = next(b for b in range(len(ids), 0, -1) if last_boxed(tokenizer.decode(ids[:b]), final=False) == ROOT_PLUS)
    result = score_run(run, ScoreConfig(budgets=(cut, 4096), workers=1, resamples=0))
    got = {(r["problem_id"], r["sample_idx"], r["budget"]): r for r in result.grades.to_pylist()}
    assert got[("hmmt10", 0, 4096)]["correct"] is True
    assert got[("hmmt10", 0, 4096)]["answer"] == f"{ROOT_PLUS}, {ROOT_MINUS}"
    assert got[("hmmt10", 0, cut)]["answer"] == ROOT_PLUS and got[("hmmt10", 0, cut)]["correct"] is False
    assert got[("hmmt10", 1, 4096)]["correct"] is False
    assert got[("single", 0, 4096)]["answer"] == "2" and got[("single", 0, 4096)]["correct"] is True


@pytest.mark.parametrize(
    "text",
    ["\\boxed{" * 12000, "\\boxed{1}" * 12000, "\\boxed " * 12000, "}\\boxed{" * 12000 + "}" * 12000, "{" * 96000],
)
def test_extraction_is_linear_on_adversarial_text(text):
    started = time.perf_counter()
    last_boxed(text, final=False)
    final_answer(text, gold="1, 2")
    final_answer("\n\n".join([text] * 4), gold="1, 2")
    # Linear work here is ~0.1 s; the rescanning extractor this replaced took 48 s on the first text.
    assert time.perf_counter() - started < 5.0


def _last_boxed_by_rescanning(text: str, final: bool) -> str | None:
    """The definition `last_boxed` had before it became one linear pass: from the last command backwards, the first
    whose argument is complete (brace matching from its `{`, escapes skipped); quadratic on unclosed boxes."""
    end = len(text)
    while end > 0:
        pos, command = max((text.rfind(c, 0, end), c) for c in ("\\boxed", "\\fbox"))
        if pos < 0:
            return None
        after = pos + len(command)
        content = None
        if after < len(text) and text[after] == "{":
            depth, i = 0, after
            while i < len(text):
                if text[i] == "\\":
                    i += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    content = text[after + 1 : i]
                    break
                i += 1
        else:
            rest = text[after:]
            stripped = rest.lstrip(" \t")
            word = re.match(r"[^\s$]*", stripped).group()  # type: ignore[union-attr]
            complete = final or len(rest) - len(stripped) + len(word) < len(rest)
            if len(stripped) < len(rest) and word and complete:
                content = word
        if content is not None:
            return content.strip() or None
        end = pos
    return None


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.sampled_from(["\\boxed", "\\fbox", "{", "}", "\\{", "\\}", "\\", " ", "$", "1", "x", "\n"]), max_size=30
    ),
    st.booleans(),
)
def test_linear_last_boxed_matches_the_rescanning_definition(parts, final):
    text = "".join(parts)
    assert last_boxed(text, final) == _last_boxed_by_rescanning(text, final)
