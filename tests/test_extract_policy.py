"""Answer extraction and the three scoring policies on hand-built traces."""

import pytest

from e3eval.extract import boxes, last_boxed
from e3eval.policy import answer_at_budget, answer_part


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{1} then \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
        ("first \\boxed{3} and cut \\boxed{4", "3"),
        ("\\fbox{7}", "7"),
        ("\\boxed{3} then \\fbox{8}", "8"),
        ("\\boxed{\\{1,2\\}}", "\\{1,2\\}"),
        ("\\boxed{x^{2^{3}}}", "x^{2^{3}}"),
        ("\\boxed 5 is it", "5"),
        ("\\boxed{\\boxed{9}}", "9"),
        ("\\boxed{ 12 }", "12"),
        ("no box here", None),
        ("\\boxed{}", None),
        ("", None),
        ("\\boxed{\\text{a \\} b}}", "\\text{a \\} b}"),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{1} and \\fbox{2} then \\boxed{3", ["1", "2"]),
        ("\\boxed{\\boxed{9}} \\boxed{ }", ["9", ""]),
        ("\\boxed{a \\boxed{b} c} \\boxed 4", ["b", "4"]),
        ("\\boxed{ \\boxed{7}", ["7"]),
        ("\\boxed{\\{1, 2\\}}, \\boxed{x^{2}}", ["\\{1, 2\\}", "x^{2}"]),
        ("}} \\boxed{5} }", ["5"]),
        ("no box", []),
    ],
)
def test_boxes_lists_complete_boxes_in_order(text, expected):
    found = boxes(text)
    assert [b.content for b in found] == expected
    assert all(text.startswith(("\\boxed", "\\fbox"), b.start) for b in found)
    assert last_boxed(text) == (expected[-1] or None if expected else None)


def test_bare_box_at_a_cut_is_not_complete():
    assert last_boxed("\\boxed{1} and \\boxed 12", final=False) == "1"
    assert last_boxed("\\boxed{1} and \\boxed 12", final=True) == "12"


def test_final_section():
    assert answer_part("<think>a \\boxed{1}</think> b") == " b"
    assert answer_part("thinking \\boxed{1}</think> b") == " b"
    assert answer_part("<think>never closed \\boxed{1}") is None
    assert answer_part("no thinking") == "no thinking"


# A thinking response: intermediate box at ~token 3, final box after </think>; 10 tokens long (word = token here).
FULL = "<think> try \\boxed{4} wait recheck </think> so \\boxed{5}"
PREFIX_EARLY = "<think> try \\boxed{4} wait"


def test_prefix_policy_uses_the_truncated_text():
    assert answer_at_budget("prefix", PREFIX_EARLY, FULL, num_tokens=10, stopped=True, budget=4) == "4"
    assert answer_at_budget("prefix", FULL, FULL, num_tokens=10, stopped=True, budget=10) == "5"
    # An unfinished response still offers its last complete box at the budget.
    assert answer_at_budget("prefix", PREFIX_EARLY, FULL, num_tokens=4096, stopped=False, budget=4) == "4"


def test_strict_policy_needs_eos_within_budget_and_answer_after_think():
    assert answer_at_budget("strict", PREFIX_EARLY, FULL, num_tokens=10, stopped=True, budget=4) is None
    assert answer_at_budget("strict", FULL, FULL, num_tokens=10, stopped=True, budget=10) == "5"
    assert answer_at_budget("strict", FULL, FULL, num_tokens=10, stopped=False, budget=10) is None
    only_thinking = "<think> \\boxed{4} </think> no final box"
    assert answer_at_budget("strict", only_thinking, only_thinking, 8, True, 8) is None
    unclosed = "<think> \\boxed{4}"
    assert answer_at_budget("strict", unclosed, unclosed, 3, True, 8) is None
    plain = "answer \\boxed{6}"
    assert answer_at_budget("strict", plain, plain, 3, True, 8) == "6"


def test_length_policy_is_the_e3_authors_rule():
    # Correct iff the full response is shorter than B (strict <), whatever the prefix says.
    assert answer_at_budget("length", PREFIX_EARLY, FULL, num_tokens=10, stopped=True, budget=4) is None
    assert answer_at_budget("length", FULL, FULL, num_tokens=10, stopped=True, budget=10) is None
    assert answer_at_budget("length", FULL, FULL, num_tokens=10, stopped=True, budget=11) == "5"


def test_gold_with_several_values_reads_the_boxes_of_the_final_answer():
    two = "<think> try \\boxed{4} </think> so \\boxed{5} and \\boxed{6}"
    assert answer_at_budget("prefix", two, two, 10, True, 10, gold="5, 6") == "5, 6"
    assert answer_at_budget("strict", two, two, 10, True, 10, gold="\\{5, 6\\}") == "5, 6"
    assert answer_at_budget("length", two, two, 10, True, 11, gold="5, 6") == "5, 6"
    # A single-valued gold, or none: the last box, exactly as before.
    for gold in (None, "6", "(5, 6)", "5,000"):
        assert answer_at_budget("prefix", two, two, 10, True, 10, gold=gold) == "6"
