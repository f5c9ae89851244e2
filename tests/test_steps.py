"""Step presets on hand-labelled traces with exact expected counts; the lexicon; how well the `math` preset tracks
GPT-4o sentence labels on the shared labelled traces; repetition detectors."""

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from e3eval.analysis.phrases import literal_anchor, literal_anchors, sentences_matching
from e3eval.analysis.repetition import e3_repeats, ngram_loop
from e3eval.analysis.steps import count_steps, load_lexicon
from e3eval.errors import UserError

MATH = """Let me compute 2+2 = 4.
Wait, let me verify: 2+2 = 4.
So the answer is 4.

But let me double-check this.
Alternatively, we can use another approach.
Substituting back, x = 3 works. Hmm, fine.
Let me try a different method.
Therefore \\boxed{4}."""
# A step is a sentence; line 7 holds two ("Substituting back, x = 3 works." and "Hmm, fine.").
# sentence: 1 gen | 2 verify+attempt | 3 gen | 4 verify | 5 attempt | 6 verify | 7 gen ("Hmm, fine." is no
# backtrack) | 8 attempt ("try a different") | 9 gen


def test_math_preset_hand_labelled():
    counts = count_steps(MATH, "math")
    assert counts.n_steps == 9
    assert counts.n_verify == 3  # sentences 2, 4, 6
    assert counts.n_attempts == 3  # sentences 2, 5, 8
    assert counts.n_chained == 3  # 2 follows 1, 4 follows 3, 6 follows 5


def test_math_preset_counts_a_sentence_once_per_kind_and_is_case_insensitive():
    text = "WAIT wait Wait. Let me CHECK, let me check again, double-check."
    counts = count_steps(text, "math")
    assert (counts.n_steps, counts.n_verify, counts.n_attempts, counts.n_chained) == (2, 1, 1, 1)
    assert count_steps("await the result; awaiting", "math").n_attempts == 0  # \bwait\b in the math preset


SENTENCES = [
    ("", 0),
    (" \n\n\t ", 0),
    ("One. Two? Three! Four", 4),
    ("x = 3.5 and y = 2.0, so 3.5+2.0=5.5.", 1),  # a point inside a number ends nothing
    ("Line one\n\n\nLine two.  \n", 2),  # blank lines and trailing spaces are no steps
    ("First.\nSecond.", 2),
    (". x", 2),  # a lone mark is a (tiny) sentence
    ("- item one\n- item two", 2),
]


@pytest.mark.parametrize(("text", "expected"), SENTENCES)
def test_math_preset_steps_are_sentences(text, expected):
    assert count_steps(text, "math").n_steps == expected


def test_math_preset_chains_sentences_within_a_line():
    text = "Compute 6 * 7 = 42. Let me check: 42 / 7 = 6. Let me verify again. Then 42 + 1 = 43.\nDouble-check: yes."
    counts = count_steps(text, "math")
    assert (counts.n_steps, counts.n_verify, counts.n_chained) == (5, 3, 2)  # 2 follows 1; 5 follows 4; 3 follows 2


def test_a_question_is_no_backtrack():
    assert count_steps("Wait, is that right?", "math").n_attempts == 0
    assert count_steps("But wait, does 3 divide 12?", "math").n_attempts == 0
    assert count_steps("Wait, that's wrong.", "math").n_attempts == 1
    assert count_steps("Hold on. Is it 3?", "math").n_attempts == 1, "only the sentence with the question mark"


def test_sentence_initial_phrases(tmp_path):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps({"verify": ["^or maybe"], "attempt": ["zzzz"]}))
    lexicon = load_lexicon(path)
    text = 'Or maybe 3. This, or maybe 4.\n- Or maybe 5?\n(2) Or maybe 6\n> "Or maybe 7"'
    assert count_steps(text, "math", lexicon).n_verify == 4, "bullets, list numbers and quotes may come first"
    assert sentences_matching(text, ["^or maybe"]) == {0, 30, 44, 59}  # first non-space bytes
    assert sentences_matching("A or maybe b", ["or maybe"]) == {0}


E3_CASES = [
    ("await the answer", 1),  # contains "wait", case-insensitive substring: counts
    ("WAITING for it", 1),
    ("The approximation holds", 1),
    ("But wait, no", 1),
    ("Alternatively, try 3", 1),
    ("alternatively, try 3", 0),  # prefixes are case-sensitive
    ("Is there another way?", 1),
    ("is there another way?", 0),
    ("But let me double check", 1),
    ("but let me double check", 0),
    ("But hold on", 1),
    (" But hold on", 0),  # must start the line
    ("So Alternatively", 0),
    ("Wait. Alternatively, wait", 1),  # a line counts once
    ("", 0),
]


@pytest.mark.parametrize(("line", "expected"), E3_CASES)
def test_e3_math_rule_edge_cases(line, expected):
    counts = count_steps(line, "e3-math")
    assert counts.n_verify == expected
    assert counts.n_attempts == expected


def test_e3_math_rule_over_a_trace():
    text = "\n".join(line for line, _ in E3_CASES)
    assert count_steps(text, "e3-math").n_verify == sum(e for _, e in E3_CASES)


COUNTDOWN = """<think>Let me try 3 + 5 = 8, then 8 * 3 = 24. That is the target!

Wait: 24 * 73 = 1748 1748 - 77 = 1671 (too far)

Maybe use 7 - 2 = 5.

Back to 3 + 5 = 8, 8 * 3 = 24.</think>
<answer>(3 + 5) * 3</answer>"""


def test_countdown_preset_hand_labelled():
    counts = count_steps(COUNTDOWN, "countdown", target=24.0)
    assert counts.n_attempts == 4
    assert counts.n_equations == 7
    assert counts.attempt_keys == [
        ("3 + 5 = 8", "8 * 3 = 24"),
        ("24 * 73 = 1748", "1748 - 77 = 1671"),
        ("7 - 2 = 5",),
        ("3 + 5 = 8", "8 * 3 = 24"),
    ]
    # comparisons with the target: line 1 ("target", and = 24), line 3 ("too far"), line 7 (= 24)
    assert counts.n_verify == 3
    assert count_steps(COUNTDOWN, "countdown").n_verify == 2, "without the target only the phrases count"


def test_countdown_opening_think_tag_is_no_attempt():
    """A response that opens its thinking itself: the `<think>` tag alone is no paragraph, an empty thinking none."""
    from e3eval.analysis.segments import attempt_spans

    opened = count_steps("<think>\n\n" + COUNTDOWN, "countdown", target=24.0)
    assert (opened.n_attempts, opened.n_equations) == (4, 7)
    assert count_steps("<think></think>The answer is 24.", "countdown").n_attempts == 0
    assert attempt_spans("<think></think>The answer is 24.", "countdown") == []
    assert len(attempt_spans("<think>\n\n" + COUNTDOWN, "countdown")) == 4


MULT = """Multiply 123 by 45.
123 x 5 = 615
Check: 615 / 5 = 123
123 x 40 = 4920
615 + 4920 = 5535
Check: 5535 / 45 = 123
The answer is 5535."""


def test_mult_preset_hand_labelled():
    counts = count_steps(MULT, "mult")
    assert counts.n_verify == 2
    assert counts.n_attempts == 3  # two partial products and one sum
    assert counts.n_chained == 2


def test_unknown_preset():
    with pytest.raises(UserError, match="unknown preset"):
        count_steps("x", "chess")


def test_literal_anchors():
    assert literal_anchor("let me (?:verify|check)") == "let me "
    assert literal_anchor("\\bwait\\b") == "wait"
    assert literal_anchor("double[- ]check") == "double"
    assert literal_anchor("checks?") == "check"
    assert literal_anchor("(?:a|b)c") is None
    assert literal_anchor("yes|no") is None
    assert literal_anchor("^e\\.g\\.") == "e.g.", "a leading ^ and escaped marks"
    assert literal_anchors("let me (?:verify|check)") == ("let me verify", "let me check")
    assert literal_anchors("it (?:is|was) (?:wrong|off)") == ("it is wrong", "it is off", "it was wrong", "it was off")
    assert literal_anchors("alpha|beta") == ("alpha", "beta")
    assert literal_anchors("think (?:about it )?again") == ("think ",), "an optional group ends the anchor"
    assert literal_anchors("(?:a|b)c") is None
    assert literal_anchors("yes|no") is None


def test_expanded_anchors_find_the_same_sentences():
    """Long anchors only narrow where phrases are tried: the counts equal a plain regex search per sentence."""
    lexicon = json.loads((Path(__file__).parent.parent / "analysis/data/math_lexicon.json").read_text())
    text = MATH + "\nThat can't be right. Maybe a cat? Let me double check, e.g. x=1. HMM, WAIT no."
    sentences = [s for s in re.split(r"(?<=[.!?]) |\n", text) if s.strip()]
    for kind in ("verify", "attempt"):
        for phrase in lexicon[kind]:
            body = re.compile(phrase.removeprefix("^"), re.IGNORECASE)
            lead = "^[-*#>\"'`(0-9.) \t]*"
            if phrase.startswith("^"):
                expected = sum(1 for s in sentences if re.match(lead + body.pattern, s, re.IGNORECASE))
            else:
                expected = sum(1 for s in sentences if body.search(s))
            assert len(sentences_matching(text, [phrase])) == expected, phrase


def test_custom_lexicon_replaces_the_bundled_one(tmp_path):
    path = tmp_path / "lex.json"
    path.write_text(json.dumps({"verify": ["sanity"], "attempt": ["[pq]lan [bc]"]}))
    lexicon = load_lexicon(path)
    counts = count_steps("plan B now\nsanity first\nwait", "math", lexicon)
    assert (counts.n_verify, counts.n_attempts) == (1, 1), "unanchored phrases still match; 'wait' is not listed"
    for bad in ({"verify": []}, {"verify": ["("], "attempt": ["x"]}, [], {"verify": ["^(x"], "attempt": ["y"]}):
        path.write_text(json.dumps(bad))
        with pytest.raises(UserError):
            load_lexicon(path)


def test_e3_repetition_rule():
    tail = "".join(chr(33 + (i * 37) % 90) for i in range(100))  # 100 characters, no shorter period
    assert e3_repeats("x" + tail * 6) is True
    assert e3_repeats("xy" + "Q" * 100 + tail * 5) is False, "exactly five occurrences is not more than five"
    assert e3_repeats("a" * 105) is True, "overlapping occurrences count"
    assert e3_repeats("short") is False


def test_ngram_loop_detector():
    rng = np.random.default_rng(0)
    varied = rng.integers(0, 1000, 500)
    assert not ngram_loop(varied)
    assert ngram_loop(np.concatenate([varied, np.tile([7, 8, 9, 10, 11], 10)]))
    assert not ngram_loop(np.concatenate([varied, np.tile([7, 8, 9, 10, 11], 3)])), "too short a run"
    assert ngram_loop(np.concatenate([varied, [4] * 40]))


def _spearman(x: list[int], y: list[int]) -> float:
    def ranks(values: list[int]) -> np.ndarray:
        order = np.argsort(values, kind="stable")
        r = np.empty(len(values))
        r[order] = np.arange(len(values))
        _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
        return (np.bincount(inverse, weights=r) / counts)[inverse]  # ties share their average rank

    return float(np.corrcoef(ranks(x), ranks(y))[0, 1])


def test_spearman_helper_matches_a_hand_computed_value():
    # ranks x: 1, 2.5, 2.5, 4; y: 1, 2, 3, 4 -> Pearson of those = 0.9486832980505138
    assert _spearman([1, 5, 5, 9], [10, 20, 30, 40]) == pytest.approx(0.9486832980505138)


def test_math_preset_tracks_sentence_labels_on_the_shared_traces(shared_data):
    """Issue 9 item 4: Spearman over traces between the counts and GPT-4o's sentence labels (`example-testing` for
    n_verify, `backtracking` for n_attempts). Targets: verify >= 0.5 (met: 0.61 here, 0.58 held out); attempts
    >= 0.7 is the target on other models' traces, where the old preset already reached 0.71; on this set the old
    preset gave 0.55 and this one 0.69 (0.68 held out), so the guard is 0.65. The e3 authors' rule must not move."""
    path = shared_data / "labelled-traces" / "r1-distill-qwen-14b.jsonl"
    if not path.exists():
        pytest.skip(f"{path} not found")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(records) == 300
    testing = [r["label_counts"].get("example-testing", 0) for r in records]
    backtracking = [r["label_counts"].get("backtracking", 0) for r in records]
    lexicon = load_lexicon()
    ours = [count_steps(r["thinking"], "math", lexicon) for r in records]
    assert _spearman([c.n_verify for c in ours], testing) >= 0.5
    assert _spearman([c.n_attempts for c in ours], backtracking) >= 0.65
    e3 = [count_steps(r["thinking"], "e3-math") for r in records]
    assert _spearman([c.n_verify for c in e3], testing) == pytest.approx(0.164, abs=0.001)
    assert _spearman([c.n_attempts for c in e3], backtracking) == pytest.approx(0.589, abs=0.001)


def test_bench_steps_prints_its_line(shared_data):
    """The benchmark script runs end to end (one shuffle to keep it short) and ends with its summary line."""
    import subprocess

    bench = Path(__file__).parent.parent / "benchmarks" / "bench_steps.py"
    out = subprocess.run(
        [sys.executable, str(bench), str(shared_data / "labelled-traces"), "--shuffles", "1"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout  # fmt: skip
    assert "shipped math lexicon is the selection on these traces: yes" in out
    assert out.strip().splitlines()[-1].startswith("bench_steps: verify_rho=0.6")
