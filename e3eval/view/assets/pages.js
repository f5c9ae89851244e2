// e3eval view: the Runs, Problems and Compare pages (the Sample page is sample.js).
"use strict";

(function () {
  const E3 = window.E3;
  const el = E3.el;

  // ---- Runs ------------------------------------------------------------------------------------------------------
  E3.pages.runs = async function runsPage(ctx) {
    const data = await E3.api.runs();
    if (!ctx.alive()) return;
    E3.crumbs([{ text: "Runs" }]);
    document.title = "e3eval view";
    const cards = data.runs.map((run) => {
      if (run.error) {  // deleted or broken while served: the other runs still show; a reload retries
        return el("section", { class: "card run-card broken", data: { run: run.index } },
          el("h2", {}, run.label), el("div", { class: "note", role: "alert" }, `${run.path_name}: ${run.error}`));
      }
      const notes = [run.note, ...(run.warnings || [])].filter(Boolean).map((text) => el("div", { class: "note" }, text));
      const fields = [
        ["model", run.model],
        ["dataset", run.dataset ? run.dataset + (run.subset ? ` (${run.subset})` : "") : null],
        ["n", run.n_per_problem ? `${run.n_problems} problems × ${run.n_per_problem} samples`
          : `${run.n_problems} problems, ${run.samples_stored} samples`],
        ["budgets", run.budgets.map(E3.fmtBudget).join(", ") || "–"],
        ["train budget", run.train_budget],
        ["policy", run.policy || "–"],
        ["forcing", run.forcing || "–"],
        ["samples", `${run.samples_stored} stored, ${run.samples_failed} failed, ${run.samples_missing} missing`],
        ["status", run.status],
        ["folder", run.path_name],
      ];
      return el("section", { class: "card run-card", data: { run: run.index } },
        el("h2", {}, el("a", { href: E3.href.run(run.index) }, run.label)),
        el("dl", { class: "facts" }, fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v === null || v === undefined || v === "" ? "–" : String(v))])),
        notes,
        E3.curveChart(run.curves, run.train_budget),
        E3.curveLegend(run.curves),
        el("p", {}, el("a", { href: E3.href.run(run.index), class: "button" }, "Problems →")));
    });
    ctx.main.replaceChildren(el("h1", {}, data.runs.length === 1 ? "1 run" : `${data.runs.length} runs`),
      el("div", { class: "cards" }, cards));
  };

  // ---- Problems --------------------------------------------------------------------------------------------------
  const FILTERS = [
    ["all", "all problems"],
    ["beyond", "solved only beyond the training budget"],
    ["never", "never solved"],
    ["unfinished", "unfinished at the largest budget"],
  ];

  function passValues(problem, budgets, keep) {
    return budgets.filter(keep).map((b) => problem.pass1[String(b)]).filter((v) => v !== null && v !== undefined);
  }

  function matchesFilter(problem, filter, budgets, train) {
    if (filter === "beyond") {
      if (train === null || train === undefined) return false;
      const within = passValues(problem, budgets, (b) => b <= train);
      const beyond = passValues(problem, budgets, (b) => b > train);
      return within.every((v) => v === 0) && beyond.some((v) => v > 0);
    }
    if (filter === "never") {
      const all = passValues(problem, budgets, () => true);
      return all.length > 0 && all.every((v) => v === 0);
    }
    if (filter === "unfinished") return problem.finished !== null && problem.finished < 1;
    return true;
  }

  function matchesSearch(problem, query) {
    if (!query) return true;
    const hay = [problem.problem_id, problem.problem, problem.answer, ...(problem.answers || []).map((a) => a.answer)].join("\n").toLowerCase();
    return hay.includes(query.toLowerCase());
  }

  function sortValue(problem, key) {
    if (key === "problem_id") return problem.problem_id;
    if (key.startsWith("pass1:")) return problem.pass1[key.slice(6)];
    return problem[key];
  }

  function compareRows(a, b, key, dir) {
    const va = sortValue(a, key), vb = sortValue(b, key);
    const missing = (v) => v === null || v === undefined;
    if (missing(va) || missing(vb)) return missing(va) - missing(vb); // empty cells last either way
    const order = typeof va === "string" ? va.localeCompare(vb, undefined, { numeric: true }) : va - vb;
    return dir * order;
  }

  // The problem ids in the order the Problems table shows them (its filter, search and sort), or all of them in the
  // run's order when the table has not been opened or hides `pid`: what n / p step through on the Sample page.
  E3.problemOrder = function problemOrder(run, data, pid) {
    const view = E3.state.problemsView[run];
    const all = data.problems.map((p) => p.problem_id);
    if (!view) return all;
    const rows = data.problems.filter((p) => matchesFilter(p, view.filter, data.budgets, data.train_budget) && matchesSearch(p, view.query));
    rows.sort((a, b) => compareRows(a, b, view.sort, view.dir));
    const ids = rows.map((p) => p.problem_id);
    return ids.includes(pid) ? ids : all;
  };

  function passCell(value, beyond, first) {
    const level = value === null || value === undefined ? "none" : String(Math.round(value * 10));
    return el("td", { class: "num pass" + (beyond ? " beyond" : "") + (first ? " first-beyond" : ""), data: { level } }, E3.fmtPct(value));
  }

  // The table's view from the route's query (a link someone shared, or a reload); unknown values are ignored.
  function fromQuery(view, query, budgets) {
    if (!query || !["filter", "q", "sort", "dir"].some((key) => query.has(key))) return;  // none: the view as it was
    Object.assign(view, { filter: "all", query: "", sort: "problem_id", dir: 1, selected: 0 });  // a link is all of it
    const filter = query.get("filter");
    if (FILTERS.some(([value]) => value === filter)) view.filter = filter;
    if (query.has("q")) view.query = query.get("q");
    const sortable = ["problem_id", "mean_tokens", "finished", "samples", ...budgets.map((b) => "pass1:" + b)];
    if (sortable.includes(query.get("sort"))) view.sort = query.get("sort");
    if (["asc", "desc"].includes(query.get("dir"))) view.dir = query.get("dir") === "asc" ? 1 : -1;
  }

  // The route of the table as it is now shown: the run, and the view when it differs from the default.
  function viewHash(run, view) {
    const params = new URLSearchParams();
    if (view.filter !== "all") params.set("filter", view.filter);
    if (view.query) params.set("q", view.query);
    if (view.sort !== "problem_id" || view.dir !== 1) {
      params.set("sort", view.sort);
      params.set("dir", view.dir > 0 ? "asc" : "desc");
    }
    const query = params.toString();
    return E3.href.run(run) + (query ? "?" + query : "");
  }

  E3.pages.problems = async function problemsPage(ctx) {
    const run = ctx.route.run;
    const [runs, data] = await Promise.all([E3.api.runs(), E3.api.problems(run)]);
    if (!ctx.alive()) return;
    const info = runs.runs.find((r) => r.index === run);
    E3.crumbs([{ text: "Runs", href: "#/" }, { text: info ? info.label : `run ${run}` }]);
    document.title = `${info ? info.label : "run"} · e3eval view`;
    const budgets = data.budgets, train = data.train_budget;
    const view = (E3.state.problemsView[run] = E3.state.problemsView[run] || { filter: "all", query: "", sort: "problem_id", dir: 1, selected: 0 });
    fromQuery(view, ctx.route.query, budgets);

    const search = el("input", { type: "search", id: "search", placeholder: "search problem, id, gold or answers", value: view.query });
    const filter = el("select", { id: "filter" }, FILTERS.map(([value, label]) =>
      el("option", { value, disabled: value === "beyond" && (train === null || train === undefined) }, label)));
    filter.value = view.filter;
    const count = el("span", { class: "count", id: "count" });
    const tbody = el("tbody");
    const headers = [
      ["problem_id", "id"], [null, "problem"], [null, "gold"],
      ...budgets.map((b) => ["pass1:" + b, E3.fmtBudget(b)]),
      ["mean_tokens", "mean tokens"], ["finished", "finished"], ["samples", "samples"], [null, "answers"],
    ];
    const trained = train !== null && train !== undefined;
    const firstBeyond = trained ? budgets.find((b) => b > train) : undefined;
    const TITLES = {
      problem_id: "problem id (click to sort)",
      mean_tokens: "mean response length over the stored samples, in tokens (click to sort)",
      finished: "share of samples that ended (finished) within the largest budget (click to sort)",
      samples: "stored samples of this problem (failed requests in brackets; click to sort)",
    };
    const headRow = el("tr", {}, headers.map(([key, label]) => {
      const beyond = key && key.startsWith("pass1:") && trained && Number(key.slice(6)) > train;
      const first = beyond && Number(key.slice(6)) === firstBeyond;
      const th = el("th", { scope: "col", class: (key ? "sortable" : "") + (beyond ? " beyond" : "") + (first ? " first-beyond" : ""), data: { key: key || "" },
        title: key && key.startsWith("pass1:") ? `pass@1 at ${key.slice(6)} tokens` + (beyond ? " (beyond the training budget)" : "") + " (click to sort)"
          : key ? TITLES[key] : label === "answers" ? "the answers given at the largest budget, most frequent first (×: how many samples; green: graded correct)" : null }, label);
      if (key) th.addEventListener("click", () => {
        view.dir = view.sort === key ? -view.dir : key === "problem_id" ? 1 : -1;
        view.sort = key;
        fill();
      });
      return th;
    }));
    const within = trained ? budgets.filter((b) => b <= train).length : budgets.length;
    const groupRow = el("tr", { class: "group" }, el("th", { colspan: 3 }),
      within ? el("th", { colspan: within, class: "pass-group" }, trained ? `pass@1 within the training budget (≤ ${E3.fmtBudget(train)} tokens)` : "pass@1 at each budget (tokens)") : null,
      budgets.length > within ? el("th", { colspan: budgets.length - within, class: "pass-group beyond first-beyond" }, "pass@1 beyond it") : null,
      el("th", { colspan: 4 }));
    const table = el("table", { class: "problems", id: "problems" }, el("thead", {}, groupRow, headRow), tbody);
    let rows = [];

    function fill() {
      rows = data.problems.filter((p) => matchesFilter(p, view.filter, budgets, train) && matchesSearch(p, view.query));
      rows.sort((a, b) => compareRows(a, b, view.sort, view.dir));
      view.selected = Math.min(view.selected, Math.max(0, rows.length - 1));
      for (const th of headRow.children) {
        th.removeAttribute("aria-sort");
        if (th.dataset.key === view.sort) th.setAttribute("aria-sort", view.dir > 0 ? "ascending" : "descending");
      }
      tbody.replaceChildren(...rows.map((p, i) => {
        const tr = el("tr", { class: i === view.selected ? "selected" : "", data: { problemId: p.problem_id } },
          el("td", {}, el("a", { href: E3.href.problem(run, p.problem_id) }, p.problem_id)),
          el("td", { class: "problem-text" }, p.problem + (p.problem_truncated ? " …" : "")),
          el("td", { class: "gold" }, p.answer),
          budgets.map((b) => passCell(p.pass1[String(b)], trained && b > train, b === firstBeyond)),
          el("td", { class: "num" }, E3.fmtNum(p.mean_tokens)),
          el("td", { class: "num" }, E3.fmtPct(p.finished)),
          el("td", { class: "num" }, p.failed ? `${p.samples} (${p.failed} failed)` : String(p.samples)),
          el("td", { class: "answers" }, (p.answers || []).map((a) => el("code", { class: a.correct ? "right" : "",
            title: `${a.count} of ${p.samples} samples` + (a.correct ? ", graded correct" : "") }, a.answer, el("span", { class: "times" }, "×" + a.count))),
            runs.runs.length > 1 ? el("a", { href: E3.href.compare(p.problem_id), class: "compare-link" }, "compare") : null));
        tr.addEventListener("click", (event) => {
          if (event.target.closest("a")) return;
          location.hash = E3.href.problem(run, p.problem_id);
        });
        return tr;
      }));
      count.textContent = `${rows.length} of ${data.problems.length} problems`;
      const hash = viewHash(run, view);  // the address bar follows the view, without a new history entry
      if (ctx.alive() && location.hash !== hash) {
        try {
          history.replaceState(null, "", hash);
          document.body.dataset.hash = location.hash;
        } catch (_) { /* a browser that refuses it for this page: the view still works, unlinked */ }
      }
    }

    function select(delta) {
      if (!rows.length) return;
      view.selected = Math.max(0, Math.min(rows.length - 1, view.selected + delta));
      [...tbody.children].forEach((tr, i) => tr.classList.toggle("selected", i === view.selected));
      tbody.children[view.selected].scrollIntoView({ block: "nearest" });
    }

    search.addEventListener("input", () => { view.query = search.value; view.selected = 0; fill(); });
    filter.addEventListener("change", () => { view.filter = filter.value; view.selected = 0; fill(); });
    const open = () => rows[view.selected] && (location.hash = E3.href.problem(run, rows[view.selected].problem_id));
    Object.assign(E3.state.page.keys, { j: () => select(1), k: () => select(-1), n: () => select(1), p: () => select(-1), Enter: open });

    fill();
    ctx.main.replaceChildren();
    E3.append(ctx.main, [
      el("h1", {}, info ? info.label : `run ${run}`),
      el("p", { class: "sub" }, info ? `${info.model || "unknown model"} on ${info.dataset || "an imported dataset"}` : "",
        trained ? ` · trained at ${train} tokens: the columns beyond it are set apart (blue heading, hatched)` : ""),
      data.note ? el("div", { class: "note", id: "note" }, data.note) : null,
      el("div", { class: "controls" }, el("label", {}, "filter ", filter), search, count),
      el("div", { class: "table-wrap" }, table)]);
  };

  // A problem without a sample index: open its first stored sample in this run.
  E3.pages.problem = async function problemPage(ctx) {
    const { run, pid } = ctx.route;
    const data = await E3.api.compare(pid);
    if (!ctx.alive()) return;
    const entry = data.runs.find((r) => r.index === run);
    if (!entry || !entry.samples.length) {
      const error = new Error(`no samples of ${pid} in run ${run}`);
      error.status = 404;
      throw error;
    }
    location.replace(E3.href.sample(run, pid, entry.samples[0].sample_idx));
    return "redirected"; // the hashchange renders the sample
  };

  // ---- Compare ---------------------------------------------------------------------------------------------------
  E3.gradeMark = function gradeMark(value) {
    if (value === true) return el("span", { class: "g correct", title: "correct" }, "✓");
    if (value === false) return el("span", { class: "g incorrect", title: "incorrect" }, "✗");
    return el("span", { class: "g none", title: "no grade" }, "·");
  };

  E3.pages.compare = async function comparePage(ctx) {
    const pid = ctx.route.pid;
    const data = await E3.api.compare(pid);
    if (!ctx.alive()) return;
    E3.crumbs([{ text: "Runs", href: "#/" }, { text: "compare " + pid }]);
    document.title = `compare ${pid} · e3eval view`;
    // Every run's columns are the union of the runs' budgets, so one budget sits at one place across the cards.
    const budgets = [...new Set(data.runs.flatMap((run) => Object.keys(run.pass1).map(Number)))].sort((a, b) => a - b);
    const columns = data.runs.map((run) => {
      const graded = run.samples.filter((s) => s.finish_reason !== "error").length;
      // One table, so the pass@1 row and the samples' grades share their columns.
      const samples = el("table", { class: "samples-grid" },
        el("thead", {},
          el("tr", {}, el("th", {}, "sample"), el("th", {}, "tokens"), budgets.map((b) => el("th", {}, E3.fmtBudget(b)))),
          el("tr", { class: "pass-row" }, el("th", { colspan: 2, title: "this problem's pass@1 at each budget over its graded samples" },
            `pass@1 (n = ${graded})`), budgets.map((b) => passCell(run.pass1[String(b)], false)))),
        el("tbody", {}, run.samples.map((s) => el("tr", { class: s.finish_reason === "error" ? "failed" : "" },
          el("td", {}, el("a", { href: E3.href.sample(run.index, pid, s.sample_idx) }, "#" + s.sample_idx)),
          el("td", { class: "num" }, s.finish_reason === "error" ? "failed" : String(s.num_tokens)),
          budgets.map((b) => el("td", {}, s.finish_reason === "error" ? "" : E3.gradeMark(s.correct_at[String(b)])))))));
      return el("section", { class: "card compare-col", data: { run: run.index } },
        el("h2", {}, el("a", { href: E3.href.run(run.index) }, run.label)),
        run.note ? el("div", { class: "note" }, run.note) : null, samples);
    });
    ctx.main.replaceChildren(
      el("h1", {}, "Problem " + pid),
      el("pre", { class: "problem-full" }, data.problem),
      el("p", {}, "gold: ", el("code", {}, data.answer)),
      el("div", { class: "compare-grid" }, columns));
  };
})();
