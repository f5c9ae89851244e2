"""Regression table for e3eval's grading path, `grade_answer(gold, final_answer(response, gold=gold))`, on
reasoning-model-style responses: AIME integer golds with leading zeros and `27.0`-style golds, fractions (`\\frac`,
`\\dfrac`, `\\tfrac`, `a/b`, decimals, mixed numbers), surds, pi, degrees, percentages, units and `\\text{}`, `x = 5`,
intervals and inequalities, ordered pairs versus sets versus answer lists, answers in several boxes, matrices, LaTeX
spacing noise, thousands separators, negatives, scientific notation, complex numbers, text answers, near-miss wrong
answers, the last complete box winning over earlier boxes, truncated final boxes falling back to the previous complete
box, responses with no complete box, and real AIME 2024 / HMMT February 2025 golds. Every expectation in `TABLE` is
the mathematically correct one (under e3eval's conventions: a percent sign is ignored when the numbers agree; a gold
that names several values is matched by the boxes of the final answer read together) and matches what the grader
does; rows where math-verify gives the mathematically wrong verdict live in `KNOWN_DISAGREEMENTS` as strict xfails (a
fix upstream turns them into XPASS failures, which is the cue to move them into `TABLE`).
"""

from __future__ import annotations

import math

import pytest

from e3eval.grade import grade_answer
from e3eval.policy import final_answer


def row(gold: str, response: str, expected: bool, id: str, status: str = "ok"):
    return pytest.param(gold, response, expected, status, id=id)


def known(gold: str, response: str, expected: bool, id: str, reason: str):
    return pytest.param(gold, response, expected, "ok", id=id, marks=pytest.mark.xfail(strict=True, reason=reason))


HMMT_17_VALUE = str(2**25 * math.factorial(26))

TABLE = [
    # AIME integer golds: leading zeros, float-looking golds, near misses
    row("073", r"<think>m = 37 and n = 36, so m + n = 73.</think>The answer is $\boxed{73}$.", True, "aime-gold-zero"),
    row("73", r"AIME answers are three digits, so I write it as $\boxed{073}$.", True, "aime-answer-zero"),
    row("073", r"Adding up, $m+n = 74$. Therefore the answer is $\boxed{74}$.", False, "aime-near-miss"),
    row("080", r"Thus $AB^2 = 80$, and the answer is \boxed{80}.", True, "aime-080-as-80"),
    row("080", r"So the count is \boxed{8}.", False, "aime-080-not-8"),
    row("025", r"<think>x^10 = y^... so xy = 25.</think>Hence $xy = \boxed{25}$.", True, "aime24-I2-025"),
    row("204", r"The walk takes $204$ minutes in total: $\boxed{204 \text{ minutes}}$.", True, "aime24-I1-units"),
    row("809", r"The number of losing positions is $\boxed{\textbf{809}}$.", True, "aime24-I3-textbf"),
    row("033", r"So $|\log_2(x^4y^3z^2)| = \frac{25}{8}$, and $m+n = \boxed{33}$.", True, "aime24-II4-033"),
    row("045", r"The only valid configuration gives $\boxed{054}$.", False, "aime24-II3-digit-swap"),
    row("27.0", r"Multiplying out, $3 \cdot 9 = 27$, so \boxed{27}.", True, "numeric-gold-27.0"),
    row("27", r"The expected value is $\boxed{27.0}$.", True, "numeric-answer-27.0"),
    row("27", r"Averaging the two cases gives $\boxed{27.5}$.", False, "numeric-27.5-not-27"),
    row("12", r"Dropping the remainder: the answer is $\boxed{12.}$", True, "integer-trailing-period"),
    row("5", r"Therefore $\boxed{\dfrac{10}{2}}$.", True, "integer-gold-unreduced-fraction"),
    row("5", r"The root is $x = \boxed{\frac{11}{2}}$.", False, "integer-gold-vs-fraction"),
    row("073", r"Numerically this is about $\boxed{72.9999999}$.", False, "integer-gold-vs-near-decimal"),
    # fractions, decimals, mixed numbers
    row(r"\frac{3}{4}", r"The probability is $\boxed{0.75}$.", True, "frac-vs-decimal"),
    row("0.75", r"The probability is $\boxed{\frac{3}{4}}$.", True, "decimal-gold-vs-frac"),
    row(r"\frac{3}{4}", r"So $P = \boxed{\dfrac{3}{4}}$.", True, "frac-vs-dfrac"),
    row(r"\frac{3}{4}", r"So $P = \boxed{\tfrac{3}{4}}$.", True, "frac-vs-tfrac"),
    row(r"\frac{3}{4}", r"Final answer: \boxed{3/4}", True, "frac-vs-slash"),
    row(r"\frac{4}{9}", r"The ratio is $\boxed{\frac{8}{18}}$.", True, "hmmt25-19-unreduced"),
    row(r"\frac{1}{2}", r"So the probability is $\boxed{\frac{1}{3}}$.", False, "frac-near-miss"),
    row("0.75", r"Rounding, $\boxed{0.76}$.", False, "decimal-near-miss"),
    row(r"\frac{1}{3}", r"So $p \approx \boxed{0.333}$.", False, "frac-vs-coarse-decimal"),
    row(r"\frac{2025}{101}", r"This is $\boxed{20\frac{5}{101}}$.", True, "hmmt25-18-mixed-number"),
    row(r"\frac{2025}{101}", r"$\boxed{2025/101}$", True, "hmmt25-18-slash"),
    row(r"\frac{2025}{101}", r"So the sum is roughly $\boxed{20.049}$.", False, "hmmt25-18-decimal-approx"),
    row(r"\frac{448}{3}", r"The area is $\boxed{149\frac{1}{3}}$.", True, "hmmt25-20-mixed-number"),
    row(r"\frac{448}{3}", r"The area is $\boxed{149.33}$.", False, "hmmt25-20-rounded"),
    row(r"\frac{1}{576}", r"<think>xyz = 2^{-6} 3^{-2}</think>So $xyz = \boxed{1/576}$.", True, "hmmt25-3-slash"),
    row(r"\frac{1}{576}", r"Hence the minimum is $\boxed{\frac{1}{24^2}}$.", True, "hmmt25-3-power"),
    row(r"\frac{1311}{2017}", "**Final Answer**\n\\[\n\\boxed{\\dfrac{1311}{2017}}\n\\]", True, "hmmt25-6-display"),
    row(r"\frac{1311}{2017}", r"The remainder over 2017 is about $\boxed{0.65}$.", False, "hmmt25-6-decimal"),
    # negatives
    row("-984", r"Pairing $j$ with $-j-1$ gives $\boxed{-984}$.", True, "hmmt25-4-negative"),
    row("-984", r"Pairing terms gives $\boxed{984}$.", False, "hmmt25-4-sign-lost"),
    row("-984", r"The sum is $\boxed{-984.0}$.", True, "hmmt25-4-negative-float"),
    row(r"-\frac{1}{2}", r"So $\cos\theta = \boxed{-0.5}$.", True, "negative-frac-vs-decimal"),
    row(r"-\frac{1}{2}", r"So $\cos\theta = \boxed{\frac{-1}{2}}$.", True, "negative-inside-frac"),
    row(r"-\frac{1}{2}", r"So $\cos\theta = \boxed{\frac{1}{2}}$.", False, "negative-sign-dropped"),
    # surds
    row(r"\frac{\sqrt{2}}{2}", r"So $\sin 45^\circ = \boxed{\sqrt{2}/2}$.", True, "surd-slash-vs-frac"),
    row(r"\sqrt{2}/2", r"So the ratio is $\boxed{\frac{\sqrt{2}}{2}}$.", True, "surd-frac-vs-slash"),
    row(r"\frac{\sqrt{2}}{2}", r"The distance is $\boxed{\frac{1}{\sqrt{2}}}$.", True, "surd-unrationalized"),
    row(r"2\sqrt{3}", r"The side length is $\boxed{\sqrt{12}}$.", True, "surd-unsimplified"),
    row(r"2\sqrt{3}", r"The side length is $\boxed{3\sqrt{2}}$.", False, "surd-near-miss"),
    row(r"\frac{9 \sqrt{23}}{23}", r"So $r = \boxed{\frac{9}{\sqrt{23}}}$.", True, "hmmt25-7-unrationalized"),
    row(r"\frac{9 \sqrt{23}}{23}", r"Numerically $r \approx \boxed{1.8766}$.", False, "hmmt25-7-decimal-approx"),
    row(r"8\sqrt{10}", r"Therefore $AB = \boxed{\sqrt{640}}$.", True, "hmmt25-23-unsimplified"),
    row(r"\sqrt{23}-2 \sqrt{3}", r"So $a = \boxed{-2\sqrt{3}+\sqrt{23}}$.", True, "hmmt25-25-reordered"),
    row(r"\sqrt{23}-2 \sqrt{3}", r"So $a = \boxed{\sqrt{23}-\sqrt{3}}$.", False, "hmmt25-25-near-miss"),
    row(r"9\sqrt{15}", r"The area is $\boxed{\sqrt{1215}}$.", True, "hmmt25-26-unsimplified"),
    row(r"\sqrt{6}", r"Thus $AD = \boxed{6^{1/2}}$.", True, "hmmt25-28-power"),
    row(r"14+4\sqrt{37}", r"So the length is $\boxed{4\sqrt{37}+14}$.", True, "hmmt25-29-reordered"),
    row(r"14+4\sqrt{37}", r"So the length is $\boxed{14+4\sqrt{38}}$.", False, "hmmt25-29-near-miss"),
    row(r"\sqrt{\frac{95}{24}}", r"So $r = \boxed{\frac{\sqrt{570}}{12}}$.", True, "hmmt25-30-rationalized"),
    row(r"\sqrt{\frac{95}{24}}", r"So $r = \boxed{\frac{\sqrt{95}}{24}}$.", False, "hmmt25-30-wrong-root"),
    # pi
    row(r"1-\frac{2}{\pi}", r"So the probability is $\boxed{\frac{\pi-2}{\pi}}$.", True, "hmmt25-8-combined"),
    row(r"1-\frac{2}{\pi}", r"So the probability is $\boxed{1-\frac{\pi}{2}}$.", False, "hmmt25-8-inverted"),
    row(r"1-\frac{2}{\pi}", r"So the probability is about $\boxed{0.3634}$.", False, "hmmt25-8-decimal"),
    row(r"2\pi", r"The circumference is $\boxed{2 \pi}$.", True, "pi-spacing"),
    row(r"\pi", r"The area is approximately $\boxed{3.14}$.", False, "pi-vs-3.14"),
    # degrees, units, text decorations
    row("30", r"Hence $\angle ABC = \boxed{30^\circ}$.", True, "degree-answer"),
    row(r"30^\circ", r"Hence $\angle ABC = \boxed{30}$.", True, "degree-gold"),
    row("30", r"Hence $\angle ABC = \boxed{30^{\circ}}$.", True, "degree-braced"),
    row(r"30^\circ", r"Hence $\angle ABC = \boxed{60^\circ}$.", False, "degree-wrong"),
    # percentages: a percent sign on either side is ignored when the numbers agree (Hendrycks MATH, NeMo-Skills)
    row("20", r"The discount is $\boxed{20\%}$.", True, "percent-answer"),
    row(r"20\%", r"The discount is $\boxed{20 \%}$.", True, "percent-both-spaced"),
    row(r"20\%", r"The discount is $\boxed{20}$.", True, "percent-gold"),
    row("20", r"The discount is \boxed{20%}.", True, "percent-unescaped"),
    row("20", r"The discount is $\boxed{20\percent}$.", True, "percent-siunitx"),
    row("28", r"So $\boxed{28\text{\%}}$ of them.", True, "percent-in-text"),
    row(r"12.5\%", r"The rate is $\boxed{12.5}$.", True, "percent-decimal"),
    row(r"\frac{1}{2}", r"So $\boxed{\frac{1}{2}\%}$.", True, "percent-fraction"),
    row("20", r"The discount is $\boxed{25\%}$.", False, "percent-wrong-number"),
    row(r"20\%", r"The discount is $\boxed{0.2}$.", False, "percent-gold-vs-fraction-of-one"),
    row("20", r"The discount is $\boxed{\%}$.", False, "percent-sign-only"),
    row("12", r"The side is $\boxed{12 \text{ cm}}$.", True, "units-text-cm"),
    row("12", r"The side is $\boxed{12 \mathrm{cm}}$.", True, "units-mathrm-cm"),
    row(r"\frac{448}{3}", r"The area is $\boxed{\frac{448}{3}\text{ cm}^2}$.", True, "units-after-frac"),
    row("5", r"The number is $\boxed{5 \text{ is the answer}}$.", True, "trailing-words"),
    row("110", r"$\boxed{110 \text{ (final)}}$", True, "trailing-parenthetical"),
    row("2304", r"$$\boxed{\displaystyle 2304}$$", True, "hmmt25-14-displaystyle"),
    row("103", r"The sum of those divisors is $\boxed{\mathbf{103}}$.", True, "hmmt25-1-mathbf"),
    row("5", r"The box holds prose: $\boxed{\text{The answer is } 6}$.", False, "prose-box-wrong-number"),
    row(r"\frac{7}{18}", r"So $p = \boxed{\frac{7}{18} \approx 0.389}$.", True, "approx-suffix"),
    # equations
    row("5", r"Solving the linear equation, $\boxed{x = 5}$.", True, "x-equals-5"),
    row("5", r"Solving the linear equation, $\boxed{x=-5}$.", False, "x-equals-minus-5"),
    row("5", r"So $\boxed{x = 5 \text{ or } x = 6}$.", False, "extra-root"),
    row("y = 2x + 3", r"The line is $\boxed{y=3+2x}$.", True, "equation-reordered"),
    row("x^2+2x+1", r"Expanding, $\boxed{(x+1)^2}$.", True, "polynomial-factored"),
    row("x^2+2x+1", r"Expanding, $\boxed{(x-1)^2}$.", False, "polynomial-wrong-sign"),
    # intervals and inequalities
    row(r"(-\infty, 2)", r"The solution set is $\boxed{(-\infty,2)}$.", True, "interval-spacing"),
    row(r"(-\infty, 2)", r"The solution set is $\boxed{(-\infty, 2]}$.", False, "interval-closed-vs-open"),
    row("[1, 3)", r"So $x \in \boxed{[1,3]}$.", False, "interval-right-endpoint"),
    row("x < 2", r"The solution set is $\boxed{(-\infty, 2)}$.", True, "inequality-gold-interval-answer"),
    row(r"(-\infty, 2)", r"The solution set is $\boxed{x \in (-\infty, 2)}$.", True, "interval-with-membership"),
    row(r"x \geq 2", r"So the domain is $\boxed{[2, \infty)}$.", True, "geq-gold-interval-answer"),
    row(r"x \geq 3", r"So $\boxed{x > 3}$.", False, "inequality-strictness"),
    row(
        r"(-\infty, -1) \cup (2, \infty)",
        r"So $x \in \boxed{(2, \infty) \cup (-\infty, -1)}$.",
        True,
        "interval-union-reordered",
    ),
    row(
        r"(-\infty, -1) \cup (2, \infty)",
        r"So $x \in \boxed{(-\infty, -1] \cup (2, \infty)}$.",
        False,
        "interval-union-endpoint",
    ),
    # ordered pairs, sets, lists of answers
    row("(1,2)", r"The ordered pair is $\boxed{(2,1)}$.", False, "ordered-pair-swapped"),
    row("(1, 2)", r"So $(a,b) = \boxed{\left( 1, 2 \right)}$.", True, "ordered-pair-left-right"),
    row("(1, 2)", r"So $(a,b) = \boxed{\left(1,\, 2\right)}$.", True, "ordered-pair-thin-space"),
    row("(1,2)", r"So $\boxed{(1,2,3)}$.", False, "tuple-extra-entry"),
    row(r"\{1, 2\}", r"The set of solutions is $\boxed{\{2, 1\}}$.", True, "set-order-irrelevant"),
    row(r"\{1,2\}", r"The set of solutions is $\boxed{\{1, 3\}}$.", False, "set-wrong-element"),
    row("1, 2", r"The solutions are $\boxed{2, 1}$.", True, "answer-list-order-irrelevant"),
    row("1, 2", r"The only solution is $\boxed{1}$.", False, "answer-list-missing-one"),
    row("1, 2", r"The solutions are $\boxed{1, 2, 3}$.", False, "answer-list-extra-one"),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"The two values are $\boxed{\frac{-1-\sqrt{17}}{2}, \frac{-1+\sqrt{17}}{2}}$.",
        True,
        "hmmt25-10-swapped",
    ),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"So $a+b+c = \boxed{\frac{-1+\sqrt{17}}{2} \text{ and } \frac{-1-\sqrt{17}}{2}}$.",
        True,
        "hmmt25-10-and",
    ),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"So $a+b+c = \boxed{\frac{-1+\sqrt{17}}{2}}$.",
        False,
        "hmmt25-10-one-of-two",
    ),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"So $a+b+c = \boxed{\frac{-1+\sqrt{17}}{2}, \frac{1-\sqrt{17}}{2}}$.",
        False,
        "hmmt25-10-sign-slip",
    ),
    # answers in several boxes: read together when the gold names several values (policy.final_answer)
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"So $a+b+c = \boxed{\frac{-1+\sqrt{17}}{2}}$ and $\boxed{\frac{-1-\sqrt{17}}{2}}$.",
        True,
        "hmmt25-10-two-boxes",
    ),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"<think>Try \boxed{3}.</think>So $\boxed{\frac{-1-\sqrt{17}}{2}}$ or $\boxed{\frac{-1+\sqrt{17}}{2}}$.",
        True,
        "hmmt25-10-two-boxes-swapped",
    ),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"So $\boxed{\frac{-1+\sqrt{17}}{2}}$ and $\boxed{\frac{1-\sqrt{17}}{2}}$.",
        False,
        "hmmt25-10-two-boxes-sign-slip",
    ),
    row(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"So $\boxed{\frac{-1+\sqrt{17}}{2}}$ and $\boxed{\frac{-1-\sqrt{17}}{2}$",
        False,
        "hmmt25-10-second-box-truncated",
    ),
    row("{1,2,3}", r"\boxed{1},\boxed{2},\boxed{3}", True, "math-verify-suite-three-boxes"),
    row("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}", True, "math-verify-suite-pairs"),
    row("(2, 2), (6, 2)", r"\boxed{(6, 2)} \quad \text{and} \quad \boxed{(2, 2)}", True, "pairs-in-boxes-reordered"),
    row("(2, 2), (6, 2)", r"\boxed{(2, 2)} \quad \text{and} \quad \boxed{(2, 6)}", False, "pairs-in-boxes-swapped"),
    row("1, 2", "Earlier guess: \\boxed{3}.\n\nSo $x = \\boxed{1}$ or $x = \\boxed{2}$.", True, "list-last-paragraph"),
    row("1, 2", r"So $x = \boxed{1}$, $x = \boxed{2}$ or $x = \boxed{3}$.", False, "list-extra-box"),
    row("2", r"So $x = \boxed{1}$ or $x = \boxed{2}$.", True, "single-gold-last-box"),
    row("1", r"So $x = \boxed{1}$ or $x = \boxed{2}$.", False, "single-gold-earlier-box-ignored"),
    # matrices
    row(
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"So $M = \boxed{\begin{pmatrix}1&2\\3&4\end{pmatrix}}$.",
        True,
        "matrix-spacing",
    ),
    row(
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"So $M = \boxed{\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}}$.",
        True,
        "matrix-bmatrix",
    ),
    row(
        r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}",
        r"So $M = \boxed{\begin{pmatrix} 1 & 3 \\ 2 & 4 \end{pmatrix}}$.",
        False,
        "matrix-transposed",
    ),
    # LaTeX noise, thousands separators, scientific notation
    row(r"\frac{1}{576}", r"$\boxed{\,\frac{1}{576}\!}$", True, "latex-thin-space-noise"),
    row(r"\frac{1}{2}", r"$\boxed{\left(\frac{1}{2}\right)}$", True, "latex-left-right-parens"),
    row("1000", r"There are $\boxed{1{,}000}$ such numbers.", True, "thousands-braced-comma"),
    row("1000", r"There are $\boxed{1\,000}$ such numbers.", True, "thousands-thin-space"),
    row("1000", r"There are $\boxed{1{,}001}$ such numbers.", False, "thousands-near-miss"),
    row("3375", r"The four-digit number is $\boxed{3,375}$.", True, "hmmt25-2-comma"),
    row("6300", r"The count is $\boxed{6,300}$.", True, "hmmt25-16-comma"),
    row("12", r"So the digits are $\boxed{1,2}$.", False, "list-not-thousands"),
    row("1000000", r"The count is $\boxed{10^6}$.", True, "power-of-ten"),
    row("1000000", r"The count is $\boxed{1 \times 10^{6}}$.", True, "scientific-times"),
    row("1000000", r"The count is $\boxed{10^{7}}$.", False, "scientific-wrong-exponent"),
    row("0.00012", r"The error is $\boxed{1.2 \times 10^{-4}}$.", True, "scientific-negative-exponent"),
    row("890", r"$Q(10)-Q(0) = \boxed{8.9 \times 10^2}$", True, "hmmt25-5-scientific"),
    row(r"2^{25} \cdot 26!", r"So the count is $\boxed{26! \cdot 2^{25}}$.", True, "hmmt25-17-reordered"),
    row(r"2^{25} \cdot 26!", r"So the count is $\boxed{2^{25} \times 26!}$.", True, "hmmt25-17-times"),
    row(r"2^{25} \cdot 26!", rf"So the count is $\boxed{{{HMMT_17_VALUE}}}$.", True, "hmmt25-17-expanded"),
    row(r"2^{25} \cdot 26!", r"So the count is $\boxed{2^{26} \cdot 25!}$.", False, "hmmt25-17-near-miss"),
    # complex numbers
    row("1+2i", r"So $z = \boxed{2i+1}$.", True, "complex-reordered"),
    row("1+2i", r"So $z = \boxed{1-2i}$.", False, "complex-conjugate"),
    row(
        r"\frac{1}{2} + \frac{\sqrt{3}}{2}i", r"So $\omega = \boxed{\frac{1+i\sqrt{3}}{2}}$.", True, "complex-combined"
    ),
    # text answers
    row(r"\text{Monday}", r"So the day is $\boxed{\text{Monday}}$.", True, "text-answer"),
    row(r"\text{Monday}", r"So the day is $\boxed{Monday}$.", True, "text-answer-bare"),
    row(r"\text{Monday}", r"So the day is $\boxed{\text{Tuesday}}$.", False, "text-answer-wrong"),
    row(r"\text{(B)}", r"The correct choice is $\boxed{B}$.", True, "choice-letter"),
    row(r"\text{(B)}", r"The correct choice is $\boxed{\text{(C)}}$.", False, "choice-letter-wrong"),
    # extraction: which box counts
    row(
        "073",
        r"<think>First try: \boxed{72}. Wait, I dropped a case; recount gives 73.</think> Final: \boxed{73}",
        True,
        "last-box-wins",
    ),
    row(
        "073",
        r"<think>First try: \boxed{73}. Hmm, recount: one case is invalid.</think> Final: \boxed{72}",
        False,
        "last-box-wins-wrong",
    ),
    row("073", r"Thus $m+n=73$. So the answer is \fbox{73}.", True, "fbox"),
    row("5", r"so the answer is \boxed 5.", True, "bare-boxed-argument"),
    row(r"\{1, 2\}", r"The solution set is $\boxed{\{1, 2\}}$.", True, "escaped-braces-in-box"),
    row(
        r"\frac{\sqrt{2}}{2}",
        r"Candidate \boxed{\frac{1}{2}} is wrong. Redo: \boxed{\frac{\sqrt{2}}{2}}",
        True,
        "nested-braces",
    ),
    row(
        "073",
        r"So far \boxed{73}. Let me double-check with another approach; the final answer is \boxed{7",
        True,
        "truncated-final-box-falls-back",
    ),
    row(
        "073",
        r"So far \boxed{72}. No wait, I missed a case, so the final answer is \boxed{73",
        False,
        "truncated-final-box-falls-back-wrong",
    ),
    # no complete box
    row("073", r"<think>m = 37, n = 36, so the answer is 73.</think> The answer is 73.", False, "no-box", "no_answer"),
    row("073", r"<think>Let me set up coordinates. The answer is \boxed{7", False, "only-box-truncated", "no_answer"),
    row("073", r"I could not finish. \boxed{}", False, "empty-box", "no_answer"),
    row("073", r"The answer is \boxed{   }.", False, "whitespace-box", "no_answer"),
    row("073", "", False, "empty-response", "no_answer"),
]

KNOWN_DISAGREEMENTS = [
    known(
        r"\sqrt{2}",
        r"So $d \approx \boxed{1.414214}$.",
        False,
        "decimal-approx-of-surd-accepted",
        "math-verify compares numbers after rounding to ~6 decimal places, so a 6-place decimal equals sqrt(2)",
    ),
    known(
        r"\pi",
        r"The area is $\boxed{3.141593}$.",
        False,
        "decimal-approx-of-pi-accepted",
        "math-verify compares numbers after rounding to ~6 decimal places, so 3.141593 equals pi",
    ),
    known(
        r"\frac{1}{3}",
        r"So $p = \boxed{0.333333}$.",
        False,
        "truncated-repeating-decimal-accepted",
        "math-verify's 6-decimal-place numeric tolerance accepts 0.333333 for 1/3",
    ),
    known(
        r"\frac{1}{576}",
        r"So $xyz \approx \boxed{0.001736}$.",
        False,
        "hmmt25-3-four-sig-figs-accepted",
        "the tolerance is in decimal places, not significant figures: 0.001736 (4 sig figs) equals 1/576",
    ),
    known(
        r"\frac{9 \sqrt{23}}{23}",
        r"Numerically $r \approx \boxed{1.87663}$.",
        False,
        "hmmt25-7-decimal-approx-accepted",
        "math-verify's 6-decimal-place numeric tolerance accepts 1.87663 for 9*sqrt(23)/23 = 1.8766297...",
    ),
    known(
        r"\frac{1}{3}",
        r"So $p = \boxed{0.\overline{3}}$.",
        True,
        "repeating-decimal-overline",
        "math-verify does not read \\overline as a repeating decimal",
    ),
    known(
        r"(-\infty, 2)",
        r"The solution set is $\boxed{x < 2}$.",
        True,
        "interval-gold-inequality-answer",
        "verify(gold, pred) is asymmetric: an interval gold does not accept an equivalent inequality answer",
    ),
    known(
        "(1,3)",
        r"So $\boxed{1 < x < 3}$.",
        True,
        "interval-gold-chained-inequality",
        "an interval gold does not accept the equivalent chained inequality",
    ),
    known(
        "(1,2)",
        r"So the pair is $\boxed{\{1,2\}}$.",
        False,
        "ordered-pair-gold-accepts-set",
        "math-verify matches a tuple gold against a set answer with the same elements",
    ),
    known(
        r"\frac{-1+\sqrt{17}}{2}, \frac{-1-\sqrt{17}}{2}",
        r"The two values are $\boxed{\frac{-1 \pm \sqrt{17}}{2}}$.",
        True,
        "hmmt25-10-plus-minus",
        "math-verify does not expand \\pm into the two values",
    ),
    known(
        r"\frac{\pi}{3}",
        r"So the angle is $\boxed{60^\circ}$.",
        True,
        "radians-gold-degrees-answer",
        "math-verify drops ^\\circ and compares 60 with pi/3",
    ),
    known(
        r"\frac{\sqrt{3}}{2}",
        r"So the ratio is $\boxed{\sin 60^\circ}$.",
        True,
        "sine-of-degrees",
        "math-verify drops ^\\circ, so sin 60^\\circ is evaluated as sin(60 radians)",
    ),
    known(
        "i",
        r"So $z = \boxed{\sqrt{-1}}$.",
        True,
        "sqrt-minus-one",
        "math-verify does not simplify sqrt(-1) to i",
    ),
    known(
        "3",
        r"There are $\boxed{\text{three}}$ such triangles.",
        True,
        "number-word",
        "math-verify does not read number words",
    ),
    known(
        "5",
        r"$\boxed{\text{The answer is } 5}$",
        True,
        "leading-prose-in-box",
        "leading \\text{...} prose makes the box unparseable as 5 (trailing prose, as in '5 \\text{ is the answer}', "
        "is fine)",
    ),
]


@pytest.mark.parametrize(("gold", "response", "expected", "status"), TABLE + KNOWN_DISAGREEMENTS)
def test_grade_table(gold: str, response: str, expected: bool, status: str) -> None:
    verdict = grade_answer(gold, final_answer(response, gold=gold))
    assert verdict.status == status, verdict
    assert verdict.correct is expected, verdict


def test_table_ids_are_unique_and_table_is_large() -> None:
    ids = [p.id for p in TABLE + KNOWN_DISAGREEMENTS]
    assert len(ids) == len(set(ids))
    assert len(TABLE) >= 70
