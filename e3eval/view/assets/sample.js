// e3eval view: the Sample page. The response is one <pre> of text nodes split at e3eval's cut offsets, with an empty
// <mark class="cut" data-budget="B"> element at each (the label comes from CSS). Wait spans, reasoning steps and
// per-token heat are CSS Custom Highlights over Ranges (tens of thousands of <span>s would take seconds to lay out).
// Offsets from the server count Unicode code points (Python); the page converts them to UTF-16 positions.
"use strict";

(function () {
  const E3 = window.E3;
  const el = E3.el;
  const HEAT_LEVELS = 8;

  function codePointMap(text) {
    if (!/[\uD800-\uDFFF]/.test(text)) return (i) => Math.min(i, text.length);
    const map = new Int32Array(text.length + 1);
    let cp = 0;
    for (let u = 0; u < text.length; u++, cp++) {
      map[cp] = u;
      const c = text.charCodeAt(u);
      if (c >= 0xd800 && c <= 0xdbff && u + 1 < text.length) {
        const d = text.charCodeAt(u + 1);
        if (d >= 0xdc00 && d <= 0xdfff) u++;
      }
    }
    map[cp] = text.length;
    return (i) => map[Math.max(0, Math.min(i, cp))];
  }

  // The trace: text nodes between boundary elements; `range(a, b)` makes a DOM Range from UTF-16 offsets.
  function buildTrace(text, boundaries) {
    const pre = el("pre", { class: "trace", id: "trace" });
    const segments = []; // [{start, node}] in order
    let pos = 0;
    for (const b of boundaries.sort((x, y) => x.at - y.at || x.order - y.order)) {
      if (b.at > pos) {
        const node = document.createTextNode(text.slice(pos, b.at));
        segments.push({ start: pos, node });
        pre.append(node);
        pos = b.at;
      }
      pre.append(b.element);
    }
    const node = document.createTextNode(text.slice(pos));
    segments.push({ start: pos, node });
    pre.append(node);
    const starts = segments.map((s) => s.start);

    function locate(offset) {
      let lo = 0, hi = starts.length - 1;
      while (lo < hi) {
        const mid = (lo + hi + 1) >> 1;
        if (starts[mid] <= offset) lo = mid; else hi = mid - 1;
      }
      const seg = segments[lo];
      return [seg.node, Math.min(offset - seg.start, seg.node.length)];
    }
    function range(a, b) {
      const r = new Range();
      r.setStart(...locate(a));
      r.setEnd(...locate(Math.max(a, b)));
      return r;
    }
    // The UTF-16 offset in the whole text of a (text node, offset) position, or -1 outside the trace's text.
    const startOf = new Map(segments.map((seg) => [seg.node, seg.start]));
    function offsetOf(node, offset) {
      return startOf.has(node) ? startOf.get(node) + offset : -1;
    }
    return { pre, range, offsetOf };
  }

  const HEAT_UNITS = { entropy: "entropy (nats)", logprob: "log-prob (nats)", kl: "KL to the reference (nats)" };

  // Hovering the trace with heat on: the token under the pointer and its value, in a tip by the pointer.
  function heatTip(trace, heat, toU16, current) {
    const tip = el("div", { class: "heat-tip", id: "heat-tip", role: "status" });
    tip.hidden = true;
    const ends = (heat.token_ends || []).map(toU16);
    trace.pre.addEventListener("mouseleave", () => { tip.hidden = true; });
    trace.pre.addEventListener("mousemove", (event) => {
      const metric = current();
      const caret = metric && document.caretRangeFromPoint ? document.caretRangeFromPoint(event.clientX, event.clientY) : null;
      const at = caret ? trace.offsetOf(caret.startContainer, caret.startOffset) : -1;
      if (at < 0) { tip.hidden = true; return; }
      let lo = 0, hi = ends.length;  // the first token ending after `at`
      while (lo < hi) { const mid = (lo + hi) >> 1; if (ends[mid] <= at) lo = mid + 1; else hi = mid; }
      const value = lo < ends.length && heat[metric] ? heat[metric][lo] : null;
      if (lo >= ends.length) { tip.hidden = true; return; }
      tip.textContent = `token ${lo}: ${HEAT_UNITS[metric] || metric} ` +
        (value === null || value === undefined ? "none (an inserted or unprobed token)" : value.toFixed(3));
      tip.dataset.token = String(lo);
      tip.style.left = `${event.clientX + 12}px`;
      tip.style.top = `${event.clientY + 14}px`;
      tip.hidden = false;
    });
    return tip;
  }

  function setHighlight(name, ranges, priority) {
    if (!(window.CSS && CSS.highlights && window.Highlight)) return;
    if (!ranges.length) { CSS.highlights.delete(name); return; }
    const h = new Highlight(...ranges);
    h.priority = priority || 0;
    CSS.highlights.set(name, h);
  }

  // Levels relative to this sample (its 2nd to 98th percentile), so a few extreme tokens do not wash out the rest;
  // a metric that hardly varies is shown at one low level rather than as noise.
  function heatLevels(values, metric) {
    const signed = values.map((v) => (v === null || v === undefined || !isFinite(v) ? null : metric === "logprob" ? -v : v));
    const finite = signed.filter((v) => v !== null).sort((a, b) => a - b);
    const lo = finite.length ? finite[Math.floor(0.02 * (finite.length - 1))] : 0;
    const hi = finite.length ? finite[Math.floor(0.98 * (finite.length - 1))] : 1;
    if (hi - lo < 1e-6) return signed.map((v) => (v === null ? -1 : 1));
    return signed.map((v) => (v === null ? -1 : Math.max(0, Math.min(HEAT_LEVELS - 1, Math.floor(((v - lo) / (hi - lo)) * HEAT_LEVELS)))));
  }

  function applyHeat(heat, metric, toU16, range) {
    for (let level = 0; level < HEAT_LEVELS; level++) CSS.highlights && CSS.highlights.delete("e3-heat" + level);
    if (!heat || !metric) return;
    const levels = heatLevels(heat[metric] || [], metric);
    const ends = heat.token_ends;
    const byLevel = Array.from({ length: HEAT_LEVELS }, () => []);
    let runStart = 0, runLevel = -2;
    const flush = (end) => { if (runLevel > 0) byLevel[runLevel].push(range(toU16(runStart), toU16(end))); };
    for (let i = 0; i < levels.length && i < ends.length; i++) {
      const start = i ? ends[i - 1] : 0;
      if (levels[i] !== runLevel) { flush(start); runStart = start; runLevel = levels[i]; }
    }
    flush(ends[Math.min(levels.length, ends.length) - 1] || 0);
    byLevel.forEach((ranges, level) => setHighlight("e3-heat" + level, ranges, 1));
  }

  function cutMarker(cut, index) {
    return el("mark", { class: "cut" + (cut.finished ? " ended" : "") + (cut.inside_char ? " inside" : ""),
      data: { budget: cut.budget, key: index < 9 ? index + 1 : "" },
      title: `budget ${cut.budget}: ${cut.tokens_used} tokens` + (cut.finished ? " (the response ended within it)" : "") +
        (cut.inside_char ? " (the cut falls inside a character)" : "") });
  }

  function budgetStrip(data, failed) {
    return el("div", { class: "strip", id: "strip" }, data.cuts.map((cut, i) => {
      const grade = failed ? "failed" : E3.gradeOf(cut);
      const cell = el("button", { type: "button", class: "cut-cell grade-" + grade.replace(" ", "-"),
        data: { budget: cut.budget, correct: String(cut.correct), status: cut.status || "" },
        title: cut.detail || null },
        el("span", { class: "b" }, (i < 9 ? `${i + 1} · ` : "") + "B=" + E3.fmtBudget(cut.budget)),
        el("span", { class: "grade" }, grade),
        el("span", { class: "answer" }, cut.answer === null || cut.answer === undefined ? "no answer" : cut.answer),
        el("span", { class: "used" }, `${cut.tokens_used} tok` + (cut.finished ? ", ended" : ", cut")));
      cell.addEventListener("click", () => jumpToBudget(cut.budget));
      return cell;
    }));
  }

  function jumpToBudget(budget) {
    const mark = document.querySelector(`#trace mark.cut[data-budget="${Number(budget)}"]`);
    if (!mark) return;
    mark.scrollIntoView({ block: "center" });
    mark.classList.remove("flash");
    void mark.offsetWidth; // restart the animation
    mark.classList.add("flash");
  }

  function forcedSection(forced) {
    if (!forced || !forced.length) return null;
    return el("section", { class: "forced", id: "forced" }, el("h2", {}, "Forced answers"),
      el("table", {}, el("tr", {}, el("th", {}, "budget"), el("th", {}, "continuation"), el("th", {}, "answer"), el("th", {}, "grade")),
        forced.map((f) => el("tr", { data: { budget: f.budget } },
          el("td", { class: "num" }, String(f.budget)),
          el("td", {}, f.error ? el("span", { class: "failed-text" }, "failed: " + f.error) : el("pre", { class: "continuation" }, f.text)),
          el("td", {}, f.answer === null || f.answer === undefined ? "no answer" : f.answer),
          el("td", {}, E3.gradeMark(f.correct))))));
  }

  // The next / previous problem in the order the Problems table shows (its filter, search and sort).
  async function neighbourProblem(run, pid, delta) {
    const data = await E3.api.problems(run);
    const ids = E3.problemOrder(run, data, pid);
    const at = ids.indexOf(pid);
    const next = at < 0 ? undefined : ids[at + delta];
    if (next === undefined) return false;
    const view = E3.state.problemsView[run];
    if (view) view.selected = Math.max(0, at + delta);
    location.hash = E3.href.problem(run, next);
    return true;
  }

  async function sampleChips(ctx, holder, run, pid, idx) {
    try {
      const data = await E3.api.compare(pid);
      if (!ctx.alive()) return;
      const entry = data.runs.find((r) => r.index === run);
      if (!entry) return;
      holder.replaceChildren();
      E3.append(holder, [el("span", { class: "label" }, entry.samples.length === 1 ? "1 sample:" : `${entry.samples.length} samples:`), entry.samples.map((s) => {
        const budgets = Object.keys(s.correct_at).map(Number).sort((a, b) => a - b);
        const last = budgets.length ? s.correct_at[String(budgets[budgets.length - 1])] : null;
        const kind = s.finish_reason === "error" ? "failed" : last === true ? "correct" : last === false ? "incorrect" : "none";
        return el("a", { href: E3.href.sample(run, pid, s.sample_idx), class: "chip " + kind + (s.sample_idx === idx ? " current" : ""),
          title: `sample ${s.sample_idx}: ${kind} at the largest budget` }, String(s.sample_idx));
      }), runsLink(data, pid)]);
    } catch (_) {
      holder.replaceChildren();
    }
  }

  function runsLink(data, pid) {
    return data.runs.length > 1 ? el("a", { href: E3.href.compare(pid), class: "compare-link" }, "compare across runs") : null;
  }

  E3.pages.sample = async function samplePage(ctx) {
    const { run, pid, idx } = ctx.route;
    const [runs, data] = await Promise.all([E3.api.runs(), E3.api.sample(run, pid, idx, E3.state.preset)]);
    if (!ctx.alive()) return;
    const info = runs.runs.find((r) => r.index === run);
    E3.crumbs([{ text: "Runs", href: "#/" }, { text: info ? info.label : `run ${run}`, href: E3.href.run(run) },
      { text: `${pid} · sample ${idx}` }]);
    document.title = `${pid} #${idx} · e3eval view`;
    const failed = data.finish_reason === "error" || (data.error !== null && data.error !== undefined && data.error !== "");
    const text = data.text || "";
    const toU16 = codePointMap(text);

    const boundaries = data.cuts.filter((cut) => cut.char !== null && cut.char !== undefined)
      .map((cut, i) => ({ at: toU16(cut.char), order: 1, element: cutMarker(cut, i) }));
    if (data.think_end !== null && data.think_end !== undefined) {
      // The divider goes after the delimiter when it starts there, so "</think>" stays with the thinking.
      const delimiter = data.think_end_text || "";
      const at = toU16(data.think_end);
      const end = delimiter && text.startsWith(delimiter, at) ? at + delimiter.length : at;
      boundaries.push({ at: end, order: 0, element: el("span", { class: "think-end", id: "think-end", title: "end of thinking" }) });
    }
    const trace = buildTrace(text, boundaries);

    const link = (target, id, label) => target
      ? el("a", { href: E3.href.sample(run, target.problem_id, target.sample_idx), class: "button", id }, label)
      : el("span", { class: "button disabled", id }, label);
    const nav = el("div", { class: "sample-nav" }, link(data.prev, "prev", "← previous (k)"), link(data.next, "next", "next (j) →"),
      el("a", { href: E3.href.run(run), class: "button" }, "problems (Esc)"));
    const chips = el("div", { class: "chips", id: "chips" });

    const controls = el("div", { class: "controls" });
    if (data.presets && data.presets.length) {
      const preset = el("select", { id: "preset" }, data.presets.map((name) => el("option", { value: name }, name)));
      preset.value = E3.state.preset && data.presets.includes(E3.state.preset) ? E3.state.preset : data.presets[0];
      preset.disabled = E3.STATIC;
      if (E3.STATIC) preset.title = "a static copy holds the steps of its default preset only; e3eval view serves every preset";
      preset.addEventListener("change", () => { E3.state.preset = preset.value; E3.render(); });
      controls.append(el("label", {}, "steps preset ", preset));
    }
    const toggles = {};
    // The toggles and the heat metric carry over from sample to sample (E3.state.show, E3.state.metric).
    const shown = (E3.state.show = E3.state.show || { steps: true, waits: true, heat: false });
    for (const [name, label] of [["steps", "steps"], ["waits", "inserted waits"], ["heat", "heat"]]) {
      toggles[name] = el("input", { type: "checkbox", id: "show-" + name, checked: shown[name] });
      toggles[name].addEventListener("change", () => { shown[name] = toggles[name].checked; });
      controls.append(el("label", { class: "toggle" }, toggles[name], " " + label));
    }
    let metric = null;
    if (data.heat) {
      const select = el("select", { id: "heat-metric", title: "per-token values of " + (data.heat.model || "the probed model") },
        data.heat.metrics.map((m) => el("option", { value: m }, m)));
      metric = data.heat.metrics.includes(E3.state.metric) ? E3.state.metric : data.heat.metrics[0];
      select.value = metric;
      select.addEventListener("change", () => { metric = E3.state.metric = select.value; toggles.heat.checked = shown.heat = true; paint(); });
      controls.append(select);
    } else {
      toggles.heat.disabled = true;
      toggles.heat.parentElement.title = "no per-token probe rows (e3eval probe --per-token) for this sample";
    }
    const legend = el("div", { class: "legend-row" },
      el("span", { class: "key cut-key", title: "where a budget of B tokens cuts the response; grey: the response ended before B tokens" }, "✂ budget cut (grey: ended before it)"), el("span", { class: "key wait-key" }, "inserted wait"),
      el("span", { class: "key verify-key" }, "verification step"), el("span", { class: "key attempt-key" }, "new attempt"), el("span", { class: "key both-key", title: "a step the preset counts as both a verification and a new attempt" }, "both"),
      el("span", { class: "key chained-key", title: "a verification that directly follows a generation step (the chained asymmetries count)" }, "chained"),
      el("span", { class: "key step-key", title: "every other step is shaded, so consecutive steps can be told apart" }, "steps alternate"), data.heat ? el("span", { class: "key heat-key", title: "hover a token for its value" }, "heat: low → high (within this sample; hover for values)") : null);

    const head = el("section", { class: "sample-head" },
      el("h1", {}, `${pid} · sample ${idx}`),
      data.problem ? el("details", { class: "problem", open: true }, el("summary", {}, "problem"), el("pre", { class: "problem-full" }, data.problem)) : null,
      el("p", { class: "facts-line" }, "gold ", el("code", {}, data.answer), ` · ${data.num_tokens} tokens · finish: ${data.finish_reason}`,
        data.think_end !== null && data.think_end !== undefined ? " · thinking / answer split marked" : " · no end-of-thinking delimiter"));
    const notes = [];
    if (failed) notes.push(el("div", { class: "failed-box", id: "failed", role: "alert" }, el("strong", {}, "Failed sample"),
      " (never graded; not counted as incorrect): ", String(data.error || "error")));
    if (data.cuts_available === false) notes.push(el("div", { class: "note", id: "cuts-note" }, "No cut markers: " + (data.cuts_note || "no tokenizer")));

    ctx.main.replaceChildren();
    const tip = data.heat ? heatTip(trace, data.heat, toU16, () => (toggles.heat.checked ? metric : null)) : null;
    const body = failed ? [] : [controls, legend, el("div", { class: "trace-wrap" }, trace.pre), tip];
    E3.append(ctx.main, [nav, head, notes, budgetStrip(data, failed), chips, forcedSection(data.forced), body]);
    sampleChips(ctx, chips, run, pid, idx);

    function paint() {
      if (!ctx.alive() || failed) return;
      const steps = toggles.steps.checked ? data.steps || [] : [];
      const r = (a, b) => trace.range(toU16(a), toU16(b));
      setHighlight("e3-verify", steps.filter((s) => s.verify && !s.attempt).map((s) => r(s.start, s.end)), 2);
      setHighlight("e3-attempt", steps.filter((s) => s.attempt && !s.verify).map((s) => r(s.start, s.end)), 2);
      setHighlight("e3-both", steps.filter((s) => s.attempt && s.verify).map((s) => r(s.start, s.end)), 2);
      setHighlight("e3-chained", steps.filter((s) => s.chained).map((s) => r(s.start, s.end)), 3);
      setHighlight("e3-step", steps.filter((s, i) => i % 2 === 1).map((s) => r(s.start, s.end)), 0);
      setHighlight("e3-wait", toggles.waits.checked ? (data.waits || []).map(([a, b]) => r(a, b)) : [], 4);
      applyHeat(data.heat, toggles.heat.checked ? metric : null, toU16, trace.range);
    }
    for (const t of Object.values(toggles)) t.addEventListener("change", paint);
    // Highlights after the first paint: the text shows at once, the overlays a frame later.
    requestAnimationFrame(() => setTimeout(paint, 0));

    const go = (target) => target && (location.hash = E3.href.sample(run, target.problem_id, target.sample_idx));
    const keys = E3.state.page.keys;
    // j / k: the samples of this problem, then on into the next / previous problem of the table's order.
    keys.j = () => (data.next && data.next.problem_id === pid ? go(data.next) : neighbourProblem(run, pid, 1));
    keys.k = () => (data.prev && data.prev.problem_id === pid ? go(data.prev) : neighbourProblem(run, pid, -1));
    keys.n = () => neighbourProblem(run, pid, 1);
    keys.p = () => neighbourProblem(run, pid, -1);
    data.cuts.slice(0, 9).forEach((cut, i) => { keys[String(i + 1)] = () => jumpToBudget(cut.budget); });
  };
})();
