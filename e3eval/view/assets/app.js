// e3eval view: the core of the page (DOM helpers, data access, hash router, keyboard, help).
// Everything shown from a run (model output, problem text, run names) is untrusted: it reaches the page only as
// text nodes (textContent / append of strings) or attribute values set with setAttribute, never as HTML. The
// server's Content-Security-Policy forbids inline scripts and styles as a second line of defence.
"use strict";

(function () {
  const E3 = (window.E3 = { pages: {} });
  const DATA = window.E3VIEW || null; // set by data/index.js in a `--static` copy
  E3.STATIC = !!(DATA && DATA.static);

  // ---- DOM helpers -------------------------------------------------------------------------------------------
  function safeHref(value) {
    // Only the page's own hash routes are ever linked: nothing from a run can become a javascript: or remote URL.
    const text = String(value);
    return text.startsWith("#/") || text === "#" ? text : "#";
  }

  E3.el = function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "href") node.setAttribute("href", safeHref(value));
      else if (key === "data") for (const [k, v] of Object.entries(value)) node.dataset[k] = String(v);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    E3.append(node, children);
    return node;
  };

  E3.append = function append(node, children) {
    for (const child of [children].flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child)); // a string becomes a text node
    }
    return node;
  };

  E3.enc = encodeURIComponent;
  E3.fmtPct = (v) => (v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%");
  E3.fmtNum = (v, digits = 0) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  E3.fmtBudget = (b) => (b >= 1024 && b % 1024 === 0 ? b / 1024 + "k" : String(b));
  E3.gradeOf = function gradeOf(cut) {
    // One word per grade; a failed sample is never called incorrect.
    if (cut.status === "error") return "error";
    if (cut.correct === true) return "correct";
    if (cut.correct === false) return "incorrect";
    if (cut.status === "no_answer") return "no answer";
    if (cut.status === "timeout") return "timeout";
    return "ungraded";
  };

  // ---- data: JSON routes from the server, or data/*.js files in a static copy --------------------------------
  async function getJSON(url) {
    const response = await fetch(url, { cache: "no-store" });
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = { error: response.statusText };
    }
    if (!response.ok) {
      const error = new Error((body && body.error) || "HTTP " + response.status);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const loading = new Map();
  function staticData(key) {
    if (key === undefined || key === null) {
      const error = new Error("not in this static copy");
      error.status = 404;
      return Promise.reject(error);
    }
    if (Object.prototype.hasOwnProperty.call(DATA, key)) return Promise.resolve(DATA[key]);
    if (!loading.has(key)) {
      loading.set(key, new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = "data/" + key + ".js"; // keys are e3eval's own names ([a-z0-9-]), never data from a run
        script.onload = () => resolve(DATA[key]);
        script.onerror = () => reject(new Error("missing data file " + key));
        document.head.append(script);
      }));
    }
    return loading.get(key);
  }

  const staticFiles = { samples: new Map(), compare: new Map() };
  if (E3.STATIC) {
    for (const [run, pid, idx, key] of DATA.files.samples) staticFiles.samples.set(run + "\u0000" + pid + "\u0000" + idx, key);
    for (const [pid, key] of DATA.files.compare) staticFiles.compare.set(pid, key);
  }

  E3.api = {
    runs: () => (E3.STATIC ? staticData("runs") : getJSON("/api/runs")),
    problems: (run) => (E3.STATIC ? staticData("problems-" + Number(run)) : getJSON("/api/runs/" + Number(run) + "/problems")),
    sample(run, pid, idx, preset) {
      if (E3.STATIC) return staticData(staticFiles.samples.get(Number(run) + "\u0000" + pid + "\u0000" + Number(idx)));
      const query = preset ? "?preset=" + E3.enc(preset) : "";
      return getJSON("/api/runs/" + Number(run) + "/samples/" + E3.enc(pid) + "/" + Number(idx) + query);
    },
    compare: (pid) => (E3.STATIC ? staticData(staticFiles.compare.get(pid)) : getJSON("/api/compare/" + E3.enc(pid))),
  };

  // ---- routing ---------------------------------------------------------------------------------------------------
  E3.href = {
    runs: () => "#/",
    run: (r) => "#/run/" + Number(r),
    problem: (r, pid) => "#/run/" + Number(r) + "/p/" + E3.enc(pid),
    sample: (r, pid, idx) => "#/run/" + Number(r) + "/p/" + E3.enc(pid) + "/s/" + Number(idx),
    compare: (pid) => "#/compare/" + E3.enc(pid),
  };

  // A route is a path and, for the Problems page, a query after "?" (its filter, search and sort: a link to a view
  // of the table). Problem ids are percent-encoded in paths, so a "?" in one never starts the query.
  function parseRoute() {
    let parts;
    const raw = location.hash.replace(/^#/, "") || "/";
    const cut = raw.indexOf("?");
    const query = new URLSearchParams(cut < 0 ? "" : raw.slice(cut + 1));
    try {
      parts = (cut < 0 ? raw : raw.slice(0, cut)).split("/").slice(1).map(decodeURIComponent);
    } catch (_) {
      return { page: "missing" };
    }
    const isIndex = (s) => /^\d{1,9}$/.test(s);
    if (parts.length === 0 || (parts.length === 1 && parts[0] === "")) return { page: "runs" };
    if (parts[0] === "run" && isIndex(parts[1] || "")) {
      const run = Number(parts[1]);
      if (parts.length === 2) return { page: "problems", run, query };
      if (parts.length === 4 && parts[2] === "p") return { page: "problem", run, pid: parts[3] };
      if (parts.length === 6 && parts[2] === "p" && parts[4] === "s" && isIndex(parts[5]))
        return { page: "sample", run, pid: parts[3], idx: Number(parts[5]) };
    }
    if (parts[0] === "compare" && parts.length === 2) return { page: "compare", pid: parts[1] };
    return { page: "missing" };
  }

  E3.state = { page: null, generation: 0, preset: null, problemsView: {} };

  E3.crumbs = function crumbs(items) {
    const nav = document.getElementById("crumbs");
    nav.replaceChildren();
    items.forEach((item, i) => {
      if (i) nav.append(E3.el("span", { class: "sep", "aria-hidden": "true" }, "›"));
      nav.append(item.href ? E3.el("a", { href: item.href }, item.text) : E3.el("span", {}, item.text));
    });
  };

  E3.showError = function showError(main, error) {
    const notFound = error && error.status === 404;
    main.replaceChildren(
      E3.el("div", { class: "error-box", role: "alert" },
        E3.el("h2", {}, notFound ? "Not found" : error && error.status === 503 ? "Not readable right now" : "Error"),
        E3.el("p", {}, String((error && error.message) || error)),
        E3.el("p", {}, E3.el("a", { href: "#/" }, "Back to the runs"))),
    );
    document.body.dataset.hash = location.hash;
    document.body.dataset.ready = "error";
  };

  async function render() {
    const generation = ++E3.state.generation;
    const route = parseRoute();
    const main = document.getElementById("main");
    document.body.dataset.ready = "loading";
    document.body.dataset.page = route.page;
    if (window.CSS && CSS.highlights) CSS.highlights.clear();
    E3.state.page = { route, keys: {} };
    // `alive()` lets a page drop its work when the user has already moved on.
    const ctx = { route, main, alive: () => generation === E3.state.generation };
    try {
      if (route.page === "missing") {
        const error = new Error("no page at " + location.hash);
        error.status = 404;
        throw error;
      }
      const outcome = await E3.pages[route.page](ctx);
      if (ctx.alive() && outcome !== "redirected") {
        document.body.dataset.hash = location.hash;
        document.body.dataset.ready = "yes";
      }
    } catch (error) {
      if (ctx.alive()) E3.showError(main, error);
    }
  }
  E3.render = render;

  // ---- keyboard ------------------------------------------------------------------------------------------------
  function toggleHelp(show) {
    const help = document.getElementById("help");
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  function onKey(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const target = event.target;
    if (target && (target.tagName === "INPUT" || target.tagName === "SELECT" || target.tagName === "TEXTAREA")) {
      if (event.key === "Escape") target.blur();
      return;
    }
    const help = document.getElementById("help");
    if (event.key === "?") {
      toggleHelp();
    } else if (event.key === "Escape") {
      if (!help.hidden) toggleHelp(false);
      else back();
    } else if (E3.state.page && E3.state.page.keys[event.key]) {
      E3.state.page.keys[event.key](event);
    } else {
      return;
    }
    event.preventDefault();
  }

  function back() {
    const route = E3.state.page ? E3.state.page.route : { page: "runs" };
    if (route.page === "sample" || route.page === "problem") location.hash = E3.href.run(route.run);
    else if (route.page !== "runs") location.hash = E3.href.runs();
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.getElementById("help-button").addEventListener("click", () => toggleHelp());
    document.getElementById("mode").textContent = E3.STATIC ? "static copy" : "";
    document.addEventListener("keydown", onKey);
    window.addEventListener("hashchange", render);
    render();
  });
})();
