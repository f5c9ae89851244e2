"""`e3eval view` in a real browser (Chromium through Playwright): every page renders from real runs, the filters
filter, each budget's cut marker sits exactly where e3eval's truncation ends that budget, the grades shown are
grades.parquet's, hostile model output stays inert text, no URL reaches a file outside the assets, the keyboard
moves between samples and problems, a reload shows samples appended after the server started, and the static copy
opens from disk. Screenshots of every page go to $E3EVAL_SCREENSHOTS (default: a temporary folder)."""

from __future__ import annotations

import http.client
import json
import os
from pathlib import Path
from urllib.parse import quote

import pyarrow.parquet as pq
import pytest
from browser_support import Watched, browser, rendered_before, viewer  # noqa: F401 - `browser` is a fixture
from conftest import run_cli, write_jsonl

from e3eval.errors import UserError
from e3eval.records import Rollout
from e3eval.run import Run
from e3eval.score import ScoreConfig, score_run
from e3eval.store import RolloutWriter
from e3eval.tokenizers import load_tokenizer
from e3eval.truncate import PrefixDecoder

pytestmark = pytest.mark.browser

HOSTILE_NAME = "<script>alert('name')</script>"
ATTACK = (
    "Let me think.</textarea><script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) "
    '<a href="javascript:alert(4)">link</a> <iframe src="https://example.com/x"></iframe> '
    "\\def\\x{\\href{javascript:alert(5)}{y}} $\\x$ Wait, let me verify: 2+2 = 4. So the answer is \\boxed{4}."
)
UNICODE = "Thinking 🧮 about 2+2 with 𝑥 = 2 … Wait, let me verify: 2+2 = 4.</think> The answer is \\boxed{4} 🎉 done"
HOSTILE_ID = "<img src=x onerror=alert(6)>"
SLASH_ID = "../../run.json"
BUDGETS = (4, 16, 64)
RECORDS = [
    {"id": "h1", "problem": "<script>alert('problem')</script> What is 2+2?", "answer": "4", "response": ATTACK},
    {"id": "h1", "problem": "<script>alert('problem')</script> What is 2+2?", "answer": "4", "response": UNICODE},
    {"id": "h1", "problem": "<script>alert('problem')</script> What is 2+2?", "answer": "4", "response": "",
     "error": "upstream timeout <b>bold</b><script>alert(7)</script>"},
    {"id": HOSTILE_ID, "problem": "What is 2+3? <style>body{display:none}</style>", "answer": "5",
     "response": "2+3 = 5, so \\boxed{5}"},
    {"id": HOSTILE_ID, "problem": "What is 2+3? <style>body{display:none}</style>", "answer": "5",
     "response": "I guess \\boxed{6} </think> final \\boxed{6}"},
    {"id": SLASH_ID, "problem": "What is 1+1?", "answer": "2", "response": "1+1 is \\boxed{2}"},
    {"id": "h1", "problem": "<script>alert('problem')</script> What is 2+2?", "answer": "4",
     "response": "🧮🧮🧮🧮🧮🧮🧮 \\boxed{4}"},
]  # fmt: skip


def imported_run(folder: Path, model: Path, records: list[dict], name: str | None = None) -> Path:
    """A run built by a real `e3eval import` of `records`, scored at `BUDGETS`."""
    folder.mkdir(parents=True, exist_ok=True)
    source = write_jsonl(folder / "rollouts.jsonl", records)
    out = folder / "run"
    result = run_cli("e3eval", "import", str(source), "--out", str(out), "--tokenizer", str(model),
                     *(["--name", name] if name else []))  # fmt: skip
    assert result.returncode == 0, result.stderr
    score_run(out, ScoreConfig(budgets=BUDGETS, workers=1, resamples=0))
    return out


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    return imported_run(tmp_path_factory.mktemp("hostile"), tiny_model_dir, RECORDS, HOSTILE_NAME)


@pytest.fixture(scope="module")
def server(demo_run: Path, hostile_run: Path):
    with viewer([demo_run, hostile_run]) as running:
        yield running


@pytest.fixture()
def watched(browser):  # noqa: F811 - the fixture imported above
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield Watched(context.new_page())
    context.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = Path(os.environ.get("E3EVAL_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def samples_of(run_dir: Path) -> list[tuple[str, int, list[int] | None, str]]:
    """(problem_id, sample_idx, token_ids, finish_reason) of every stored row of a run."""
    table = pq.read_table(run_dir / "rollouts")
    return [(r["problem_id"], r["sample_idx"], r["token_ids"], r["finish_reason"]) for r in table.to_pylist()]


def sample_url(server, run: int, problem_id: str, idx: int) -> str:
    return f"{server.url}#/run/{run}/p/{quote(problem_id, safe='')}/s/{idx}"


# ---- pages ------------------------------------------------------------------------------------------------------


def test_runs_page_shows_every_run_with_its_curves(server, watched, shots, demo_run):
    page = watched.open(server.url)
    cards = page.locator(".run-card")
    assert cards.count() == 2
    assert HOSTILE_NAME in cards.nth(1).locator("h2").inner_text()  # the hostile name, shown as text
    runs = json.loads(page.evaluate("fetch('/api/runs').then(r => r.text())"))["runs"]
    for card, run in zip([cards.nth(0), cards.nth(1)], runs, strict=True):
        curves = [c for c in run["curves"] if any(p["value"] is not None for p in c["points"])]
        assert card.locator("svg.chart polyline.line").count() == len(curves)
        banded = [c for c in curves if any(p["ci_low"] is not None for p in c["points"])]
        assert card.locator("svg.chart polygon.band").count() == len(banded)
        text = card.inner_text()
        per_problem = (
            f" × {run['n_per_problem']} samples" if run["n_per_problem"] else f", {run['samples_stored']} samples"
        )
        assert f"{run['n_problems']} problems{per_problem}" in text
        assert "null" not in text and "undefined" not in text
        last = run["curves"][0]["points"][-1]
        assert f"n = {last['n_problems']} problems" in text
    page.screenshot(path=str(shots / "runs.png"), full_page=True)
    assert not watched.errors and not watched.dialogs


def test_problems_table_filters_searches_and_sorts(server, watched, shots):
    page = watched.open(server.url + "#/run/0")
    data = json.loads(page.evaluate("fetch('/api/runs/0/problems').then(r => r.text())"))
    rows = page.locator("#problems tbody tr")
    assert rows.count() == len(data["problems"])
    page.screenshot(path=str(shots / "problems.png"), full_page=True)

    def shown() -> list[str]:
        return page.eval_on_selector_all("#problems tbody tr", "rows => rows.map(r => r.dataset.problemId)")

    def values(p: dict) -> list[float]:
        return [v for v in p["pass1"].values() if v is not None]

    page.select_option("#filter", "never")
    assert shown() == [p["problem_id"] for p in data["problems"] if values(p) and max(values(p)) == 0]
    page.select_option("#filter", "unfinished")
    assert shown() == [p["problem_id"] for p in data["problems"] if p["finished"] is not None and p["finished"] < 1]
    train = data["train_budget"]
    assert train is not None  # the demo records the budget its model was "trained" at

    def solved(p: dict, keep) -> list[float]:
        return [v for b, v in p["pass1"].items() if keep(int(b)) and v is not None]

    beyond = [p["problem_id"] for p in data["problems"]
              if not any(solved(p, lambda b: b <= train)) and any(solved(p, lambda b: b > train))]  # fmt: skip
    assert beyond  # demo-12 is first solved at 64 tokens
    page.select_option("#filter", "beyond")
    assert shown() == beyond
    page.select_option("#filter", "all")

    target = data["problems"][3]
    page.fill("#search", target["problem_id"])
    assert target["problem_id"] in shown() and len(shown()) < len(data["problems"])
    page.fill("#search", "no problem says this")
    assert shown() == [] and page.inner_text("#count").startswith("0 of")
    page.fill("#search", "")

    def tokens_shown() -> list[float]:
        by_id = {p["problem_id"]: p["mean_tokens"] for p in data["problems"]}
        return [by_id[pid] for pid in shown()]

    tokens = [p["mean_tokens"] for p in data["problems"]]
    page.click("th[data-key='mean_tokens']")  # first click on a number: largest first
    assert tokens_shown() == sorted(tokens, reverse=True)
    page.click("th[data-key='mean_tokens']")
    assert tokens_shown() == sorted(tokens)


def test_solved_only_beyond_the_training_budget(tmp_path, tiny_model_dir, browser):  # noqa: F811
    # A run trained at 16 tokens: "h1" is solved only at 64 (the answer comes late), "early" already at 4.
    late = "a b c d e f g h i j k l m n o p q r s t u v w x y z \\boxed{4}"
    records = [{"id": "late", "problem": "2+2?", "answer": "4", "response": late},
               {"id": "early", "problem": "1+1?", "answer": "2", "response": "\\boxed{2}"}]  # fmt: skip
    run = imported_run(tmp_path, tiny_model_dir, records)
    manifest = json.loads((run / "run.json").read_text())
    assert manifest.get("generation") is None  # imports record no training budget: the filter is then disabled
    context = browser.new_context()
    try:
        watched = Watched(context.new_page())
        with viewer([run]) as running:
            page = watched.open(running.url + "#/run/0")
            assert page.locator("#filter option[value=beyond]").is_disabled()
            page.select_option("#filter", "never")
            assert page.locator("#problems tbody tr").count() == 0
    finally:
        context.close()


def test_cut_markers_sit_where_truncation_ends_each_budget(server, watched, hostile_run, tiny_model_dir, shots):
    decoder = PrefixDecoder(load_tokenizer(str(tiny_model_dir)))
    checked = splits = 0
    for problem_id, idx, ids, finish in samples_of(hostile_run):
        page = watched.open(sample_url(server, 1, problem_id, idx))
        if finish == "error":
            continue
        marks = page.eval_on_selector_all("#trace mark.cut", "ms => ms.map(m => Number(m.dataset.budget))")
        assert marks == sorted(BUDGETS)
        full = page.evaluate("document.getElementById('trace').textContent")
        assert full == decoder.decode_prefix(ids, len(ids))
        for budget, prefix in zip(BUDGETS, decoder.decode_prefixes(ids, list(BUDGETS)), strict=True):
            before = rendered_before(page, f"#trace mark.cut[data-budget='{budget}']")
            if prefix.endswith("\ufffd") and not full.startswith(prefix):  # the budget splits a character
                assert before == os.path.commonprefix([prefix, full])  # noqa: RUF071 - up to the split character
                splits += 1
                assert page.locator(f"mark.cut.inside[data-budget='{budget}']").count() == 1
            else:
                assert before == prefix, (problem_id, idx, budget)
            checked += 1
    assert checked >= 3 * len(BUDGETS) and splits >= 1  # the emoji-only sample is cut inside a character
    page = watched.open(sample_url(server, 1, "h1", 1))  # the one with emoji, math letters and a </think>
    assert page.locator("#think-end").count() == 1
    assert rendered_before(page, "#think-end").endswith("</think>")
    page.screenshot(path=str(shots / "sample-unicode.png"), full_page=True)


def test_the_grade_shown_at_each_budget_is_grades_parquet(server, watched, demo_run, hostile_run):
    for run_index, run_dir in ((0, demo_run), (1, hostile_run)):
        grades = pq.read_table(run_dir / "grades.parquet").to_pylist()
        keys = sorted({(g["problem_id"], g["sample_idx"]) for g in grades})[:6]
        for problem_id, idx in keys:
            page = watched.open(sample_url(server, run_index, problem_id, idx))
            shown = page.eval_on_selector_all(
                "#strip .cut-cell",
                "cells => cells.map(c => [Number(c.dataset.budget), c.dataset.correct, c.dataset.status,"
                " c.querySelector('.grade').textContent, c.querySelector('.answer').textContent])",
            )
            expected = sorted(
                (g for g in grades if (g["problem_id"], g["sample_idx"]) == (problem_id, idx)),
                key=lambda g: g["budget"],
            )
            assert [s[0] for s in shown] == [g["budget"] for g in expected]
            for (_, correct, status, word, answer), grade in zip(shown, expected, strict=True):
                assert correct == {True: "true", False: "false", None: "null"}[grade["correct"]]
                assert status == grade["status"]
                assert word == {True: "correct", False: "incorrect"}.get(grade["correct"], word)
                assert answer == (grade["answer"] if grade["answer"] is not None else "no answer")


def test_a_failed_sample_is_shown_as_failed_never_incorrect(server, watched, hostile_run, shots):
    failed = [(p, i) for p, i, _, finish in samples_of(hostile_run) if finish == "error"]
    assert failed
    page = watched.open(sample_url(server, 1, *failed[0]))
    box = page.inner_text("#failed")
    assert "Failed sample" in box and "upstream timeout <b>bold</b><script>alert(7)</script>" in box
    assert "incorrect" not in page.inner_text("main").replace("not counted as incorrect", "")
    page.screenshot(path=str(shots / "sample-failed.png"), full_page=True)
    assert not watched.dialogs


# ---- safety -----------------------------------------------------------------------------------------------------


def test_hostile_outputs_stay_inert_text(server, watched, shots):
    base = server.url.rstrip("/")
    urls = [server.url, server.url + "#/run/1", sample_url(server, 1, "h1", 0), sample_url(server, 1, HOSTILE_ID, 0),
            sample_url(server, 1, SLASH_ID, 0), f"{server.url}#/compare/h1"]  # fmt: skip
    for url in urls:
        page = watched.open(url)
        page.wait_for_timeout(150)  # let the highlights and any (blocked) handler run
    page = watched.open(sample_url(server, 1, "h1", 0))
    assert ATTACK in page.inner_text("#trace").replace("\n", "")  # the literal text, not elements
    assert page.locator("#trace *:not(mark):not(span.think-end)").count() == 0
    assert page.locator("img, iframe, textarea").count() == 0
    assert "<script>alert('problem')</script>" in page.inner_text(".problem-full")
    page.screenshot(path=str(shots / "sample-hostile.png"), full_page=True)
    page = watched.open(server.url + "#/run/1")
    assert HOSTILE_ID in page.inner_text("#problems")
    assert page.locator("#problems a[href^='javascript']").count() == 0
    page.locator(f"#problems tr[data-problem-id='{SLASH_ID}'] a").first.click()
    watched.ready()
    assert page.inner_text("#trace") == "1+1 is \\boxed{2}"
    assert watched.dialogs == []
    assert watched.errors == []
    strangers = [u for u in watched.requests if not u.startswith(base + "/")]
    assert strangers == []
    paths = {u[len(base) :].split("?")[0].split("#")[0] for u in watched.requests}
    allowed = ("/", "/assets/", "/api/")
    assert all(p == "/" or p.startswith(allowed[1:]) for p in paths), paths
    assert not any(p in ("/x", "/assets/x") for p in paths)  # no <img src=x> was ever created


def _get(server, path: str, host: str | None = None, method: str = "GET") -> tuple[int, bytes, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    connection.putheader("Host", host or f"127.0.0.1:{server.port}")
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body, dict(response.getheaders())


@pytest.mark.parametrize("path", [
    "/assets/../run.json", "/assets/%2e%2e/run.json", "/assets/..%2frun.json", "/%2e%2e/%2e%2e/etc/passwd",
    "//etc/passwd", "/etc/passwd", "/assets//etc/passwd", "/assets/%2fetc%2fpasswd", "/run.json",
    "/api/runs/0/../../run.json", "/api/runs/0/problems/../../../run.json", "/assets/app.js/../../run.json",
    "/api/runs/-1/problems", "/api/runs/0x0/problems", "/api/runs/0/samples/demo-01/..", "/api/compare/..%2f..",
    "/assets/server.py", "/assets/", "/api/runs/0/samples/demo-01/0/..", "{run_json}", "/assets{run_json}",
    "/assets/{run_json_encoded}", "/api/compare/{run_json_encoded}",
])  # fmt: skip
def test_no_url_reaches_a_file(server, demo_run, path):
    secret = Run.open(demo_run).record.run_id
    run_json = str(demo_run / "run.json")  # an absolute path to a file the server must never serve
    path = path.replace("{run_json}", run_json).replace("{run_json_encoded}", quote(run_json, safe=""))
    status, body, headers = _get(server, path)
    assert status == 404, (path, status)
    assert secret.encode() not in body and b"root:" not in body and b"import" not in body
    assert headers["Content-Type"].startswith("application/json")


def test_every_answer_carries_the_safety_headers_and_only_get_is_served(server):
    for path in ["/", "/assets/app.js", "/api/runs", "/nothing"]:
        _, _, headers = _get(server, path)
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Cache-Control"] == "no-store"
    for method in ["POST", "PUT", "DELETE"]:
        assert _get(server, "/api/runs", method=method)[0] == 405
    assert _get(server, "/api/runs", host="evil.example:80")[0] == 421  # DNS rebinding
    assert _get(server, "/api/runs", host=f"localhost:{server.port}")[0] == 200
    assert _get(server, "/api/runs", host=f"LocalHost:{server.port}")[0] == 200  # host names ignore case
    assert server.server_address[0] == "127.0.0.1"
    status, body, headers = _get(server, "/api/runs", method="PROPFIND")  # http.server's own refusal (501)
    assert status == 501 and "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["Content-Type"].startswith("application/json") and b"<" not in body


def test_a_refused_post_body_is_never_read_as_a_next_request(server):
    """A 405 leaves the body unread, so the connection closes: a body smuggling `GET /api/runs` is never answered."""
    import socket

    smuggled = f"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n\r\n".encode()
    head = (f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nContent-Type: text/plain\r\n"
            f"Content-Length: {len(smuggled)}\r\n\r\n").encode()  # fmt: skip
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(head + smuggled)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 405") and answer.count(b"HTTP/1.1 ") == 1 and b'"runs"' not in answer


# ---- navigation and live runs -----------------------------------------------------------------------------------


def test_keyboard_moves_between_samples_and_problems(server, watched, shots):
    page = watched.open(server.url + "#/run/0")
    first = page.locator("#problems tbody tr").nth(0).get_attribute("data-problem-id")
    second = page.locator("#problems tbody tr").nth(1).get_attribute("data-problem-id")
    page.keyboard.press("j")
    assert page.locator("#problems tbody tr.selected").get_attribute("data-problem-id") == second
    page.keyboard.press("k")
    start = watched.after("Enter")
    assert start.startswith(f"#/run/0/p/{first}/s/")
    after_j = watched.after("j")
    assert after_j.startswith("#/run/0/p/")
    assert watched.after("k") == start
    assert watched.after("n").startswith(f"#/run/0/p/{second}/s/")
    assert watched.after("p").startswith(f"#/run/0/p/{first}/s/")
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.screenshot(path=str(shots / "help.png"))
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    assert watched.after("Escape") == "#/run/0"
    assert watched.after("Escape") == "#/"


def test_compare_puts_one_budget_in_one_column_across_runs(demo_run, tmp_path, browser):  # noqa: F811
    """Runs scored at different budgets: every card has the union's columns, a budget a run lacks shown as "–"."""
    import shutil

    fewer = tmp_path / "fewer"
    shutil.copytree(demo_run, fewer)
    grades = pq.read_table(fewer / "grades.parquet")  # its metadata (the scoring's unit) kept: still run.json's
    smallest = min(grades.column("budget").to_pylist())
    keep = [b != smallest for b in grades.column("budget").to_pylist()]
    pq.write_table(grades.filter(keep), fewer / "grades.parquet")
    context = browser.new_context()
    try:
        watched = Watched(context.new_page())
        with viewer([demo_run, fewer]) as running:
            page = watched.open(running.url + "#/compare/demo-01")
            heads = page.eval_on_selector_all(".compare-col", "cols => cols.map(c => [...c.querySelectorAll("
                                              "'thead tr:first-child th')].map(th => th.textContent))")  # fmt: skip
            assert heads[0] == heads[1] and heads[0][2] == str(smallest)
            passes = page.eval_on_selector_all(".compare-col", "cols => cols.map(c => [...c.querySelectorAll("
                                               "'tr.pass-row td')].map(td => td.textContent))")  # fmt: skip
            assert passes[1][0] == "–" and passes[0][0] != "–" and passes[0][1:] == passes[1][1:]
            assert watched.errors == []
    finally:
        context.close()


def test_n_and_p_follow_the_problems_table_order(server, watched):
    """On a sample, n / p step through the problems in the order the table shows them: its sort and its search."""
    page = watched.open(server.url + "#/run/0")
    page.locator("#problems th[data-key='mean_tokens']").click()  # longest first
    page.fill("#search", "demo-1")  # demo-10 .. demo-16 only
    order = page.eval_on_selector_all("#problems tbody tr", "rows => rows.map(r => r.dataset.problemId)")
    assert len(order) == 7 and all(pid.startswith("demo-1") for pid in order)
    means = page.eval_on_selector_all("#problems tbody tr td:nth-child(9)", "cells => cells.map(c => c.textContent)")
    assert order != sorted(order) or len(set(means)) == 1  # the sort is not the ids' order (else nothing is tested)
    page.locator(f"#problems tr[data-problem-id='{order[0]}'] a").first.click()
    watched.ready()
    assert watched.after("n").startswith(f"#/run/0/p/{order[1]}/s/")
    assert watched.after("n").startswith(f"#/run/0/p/{order[2]}/s/")
    assert watched.after("p").startswith(f"#/run/0/p/{order[1]}/s/")
    assert watched.after("Escape") == "#/run/0?q=demo-1&sort=mean_tokens&dir=desc"  # the view, in the address
    assert page.locator("#problems tbody tr.selected").get_attribute("data-problem-id") == order[1]


def test_a_link_to_a_filtered_sorted_table_shows_that_view(server, browser):  # noqa: F811
    """The Problems table's filter, search and sort live in its address: a fresh page opened on it (a shared link,
    a reload) shows the same rows in the same order; values it does not know are ignored."""
    first = browser.new_context()
    try:
        watched = Watched(first.new_page())
        page = watched.open(server.url + "#/run/0")
        page.select_option("#filter", "unfinished")
        page.locator("#problems th[data-key='mean_tokens']").click()
        page.fill("#search", "demo")
        link = page.evaluate("location.hash")
        assert link == "#/run/0?filter=unfinished&q=demo&sort=mean_tokens&dir=desc"
        rows = page.eval_on_selector_all("#problems tbody tr", "rows => rows.map(r => r.dataset.problemId)")
        assert 0 < len(rows) < 16
    finally:
        first.close()
    second = browser.new_context()
    try:
        watched = Watched(second.new_page())
        page = watched.open(server.url + link)
        assert page.eval_on_selector_all("#problems tbody tr", "rows => rows.map(r => r.dataset.problemId)") == rows
        assert page.input_value("#filter") == "unfinished" and page.input_value("#search") == "demo"
        assert page.locator("#problems th[aria-sort='descending']").get_attribute("data-key") == "mean_tokens"
        page = watched.open(server.url + "#/run/0?filter=%3Cscript%3E&sort=constructor&dir=up&x=1")
        assert page.input_value("#filter") == "all" and page.locator("#problems tbody tr").count() == 16
        assert page.evaluate("location.hash") == "#/run/0" and watched.errors == []
    finally:
        second.close()


def test_sample_and_compare_pages_render(server, watched, shots, demo_run):
    page = watched.open(sample_url(server, 0, "demo-01", 0))
    assert page.locator("#strip .cut-cell").count() == len(Run.open(demo_run).record.scoring.budgets)
    assert page.locator("#preset option").count() >= 2
    page.wait_for_selector("#chips .chip")
    page.select_option("#preset", "e3-math")
    watched.ready()
    assert page.locator("#preset").input_value() == "e3-math"
    page.screenshot(path=str(shots / "sample.png"), full_page=True)
    page = watched.open(server.url + "#/compare/h1")
    assert page.locator(".compare-col").count() == 1
    page = watched.open(server.url + "#/compare/demo-01")
    assert page.locator(".compare-col").count() == 1
    assert page.locator(".samples-grid tbody tr").count() == 4
    page.screenshot(path=str(shots / "compare.png"), full_page=True)
    page.goto(server.url + "#/run/7")
    watched.ready("error")
    assert "Not found" in page.inner_text(".error-box")


def test_a_reload_shows_samples_appended_after_the_server_started(tmp_path, tiny_model_dir, browser):  # noqa: F811
    run = imported_run(
        tmp_path, tiny_model_dir, [{"id": "q", "problem": "2+2?", "answer": "4", "response": "\\boxed{4}"}]
    )
    context = browser.new_context()
    try:
        watched = Watched(context.new_page())
        with viewer([run]) as running:
            page = watched.open(running.url + "#/compare/q")
            assert page.locator(".samples-grid tbody tr").count() == 1
            ids = tuple(load_tokenizer(str(tiny_model_dir)).encode("so \\boxed{5}", add_special_tokens=False))
            with RolloutWriter(run, Run.open(run).record.run_id) as writer:  # what a generation still running does
                writer.add(Rollout("q", 1, "so \\boxed{5}", ids, "stop"))
            page.reload()
            watched.ready()
            assert page.locator(".samples-grid tbody tr").count() == 2
            page = watched.open(running.url + "#/run/0/p/q/s/1")
            assert page.inner_text("#trace") == "so \\boxed{5}"
    finally:
        context.close()


def test_waits_forced_answers_and_heat_of_a_forcing_run(tmp_path, demo_run, browser, shots):  # noqa: F811
    model = str(demo_run.parent / "hand-set-tiny-model")  # the demo's model: it tries to end its thinking early
    problems = [{"id": "seven", "problem": "What is 3 + 4?", "answer": "7"},
                {"id": "eight", "problem": "What is 4 + 4 + 0?", "answer": "8"}]  # fmt: skip
    dataset = write_jsonl(tmp_path / "two.jsonl", problems)
    run = tmp_path / "wait"
    for argv in (["generate", "--model", model, "--dataset", str(dataset), "--n", "2", "--max-tokens", "48", "--wait",
                  "2", "--backend", "hf", "--out", str(run)],
                 ["score", str(run), "--budgets", "8,32", "--policy", "forced", "--model", model, "--workers", "1"],
                 ["probe", str(run), "--model", model, "--ref", model, "--per-token", "--device", "cpu"]):  # fmt: skip
        result = run_cli("e3eval", *argv, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
    rows = pq.read_table(run / "rollouts").to_pylist()
    forced = pq.read_table(run / "forced").to_pylist()
    decoder = PrefixDecoder(load_tokenizer(model))
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        watched = Watched(context.new_page())
        with viewer([run]) as running:
            waits_seen = 0
            for row in rows:
                page = watched.open(sample_url(running, 0, row["problem_id"], row["sample_idx"]))
                page.wait_for_timeout(100)  # the overlays are painted a frame after the text
                spans = row["inserted"] or []
                pairs = list(zip(spans[::2], spans[1::2], strict=True))
                shown = page.evaluate("() => CSS.highlights.has('e3-wait') ? [...CSS.highlights.get('e3-wait')]"
                                      ".map(r => r.toString()) : []")  # fmt: skip
                ids = row["token_ids"]
                assert shown == [decoder.decode_prefix(ids[a:b], b - a) for a, b in pairs]
                waits_seen += len(pairs)
                key = (row["problem_id"], row["sample_idx"])
                mine = {f["budget"] for f in forced if (f["problem_id"], f["sample_idx"]) == key}
                assert sorted(int(b) for b in page.eval_on_selector_all(
                    "#forced tr[data-budget]", "rs => rs.map(r => r.dataset.budget)")) == sorted(mine)  # fmt: skip
                assert page.locator("#show-heat").is_enabled()
                page.check("#show-heat")
                heat = page.evaluate("() => [...CSS.highlights.keys()].filter(k => k.startsWith('e3-heat')).length")
                assert heat >= 1
                _hover_shows_the_token_value(page, running, row)
            assert waits_seen > 0
            page.screenshot(path=str(shots / "sample-forcing.png"), full_page=True)
            assert watched.errors == [] and watched.dialogs == []
    finally:
        context.close()


_POINT_AT_CHAR = """(at) => {
    const walker = document.createTreeWalker(document.getElementById("trace"), NodeFilter.SHOW_TEXT);
    let seen = 0;
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
        if (at < seen + node.length) {
            const range = document.createRange();
            range.setStart(node, at - seen);
            range.setEnd(node, at - seen + 1);
            const box = range.getClientRects()[0];
            return [box.left + box.width / 2, box.top + box.height / 2];
        }
        seen += node.length;
    }
    return null;
}"""


def _hover_shows_the_token_value(page, running, row) -> None:
    """Hovering the middle of a probed token shows that token's entropy from the sample's payload."""
    url = f"/api/runs/0/samples/{quote(row['problem_id'], safe='')}/{row['sample_idx']}"
    heat = page.evaluate("(url) => fetch(url).then(r => r.json()).then(d => d.heat)", url)
    ends, values = heat["token_ends"], heat["entropy"]
    token = next(
        i for i in range(len(ends) // 2, len(ends)) if values[i] is not None and ends[i] > (ends[i - 1] if i else 0)
    )
    start = ends[token - 1] if token else 0
    page.locator("#trace").scroll_into_view_if_needed()
    point = page.evaluate(_POINT_AT_CHAR, start + (ends[token] - start) // 2)  # the text is ASCII: code points = UTF-16
    assert point is not None
    page.mouse.move(*point)
    tip = page.locator("#heat-tip")
    tip.wait_for(state="visible", timeout=5_000)
    assert tip.get_attribute("data-token") == str(token)
    assert tip.inner_text() == f"token {token}: entropy (nats) {values[token]:.3f}"


# ---- the static copy --------------------------------------------------------------------------------------------


def test_the_static_copy_opens_from_disk(hostile_run, tmp_path, browser, shots):  # noqa: F811
    from e3eval.view.payload import Views
    from e3eval.view.static_export import export_static

    views = Views([hostile_run])
    written = export_static(views, tmp_path / "copy")
    context = browser.new_context()
    try:
        watched = Watched(context.new_page())
        page = watched.open((written.folder / "index.html").as_uri())
        assert HOSTILE_NAME in page.inner_text(".run-card h2")
        page = watched.open((written.folder / "index.html").as_uri() + "#/run/0/p/h1/s/0")
        assert ATTACK in page.inner_text("#trace").replace("\n", "")
        assert page.locator("#trace mark.cut").count() == len(BUDGETS)
        page.screenshot(path=str(shots / "static-sample.png"), full_page=True)
        page = watched.open((written.folder / "index.html").as_uri() + "#/run/0")
        assert page.locator("#problems tbody tr").count() == 3
        assert watched.dialogs == [] and watched.errors == []
        assert all(u.startswith("file://") for u in watched.requests), watched.requests
    finally:
        context.close()
    export_static(views, tmp_path / "copy")  # its own earlier copy is replaced
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    with pytest.raises(UserError, match="did not create"):
        export_static(views, foreign)
    assert (foreign / "notes.txt").read_text() == "keep"
    with pytest.raises(UserError, match="more than a static copy takes"):
        export_static(views, tmp_path / "small", max_samples=2)
    assert not (tmp_path / "small").exists()
