// e3eval view: the accuracy-vs-budget chart of a run card, an SVG built with DOM APIs (labels as text nodes).
"use strict";

(function () {
  const E3 = window.E3;
  const NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(NS, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    for (const child of children) node.append(child instanceof Node ? child : String(child));
    return node;
  }

  // curves: [{metric, k, points: [{budget, value, ci_low, ci_high, n_problems, n_samples}]}]
  E3.curveChart = function curveChart(curves, trainBudget) {
    const W = 460, H = 230, left = 44, right = 12, top = 12, bottom = 34;
    const budgets = [...new Set(curves.flatMap((c) => c.points.map((p) => p.budget)))].sort((a, b) => a - b);
    const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    root.append(svg("title", {}, "accuracy against token budget, with 95% confidence bands"));
    if (!budgets.length) {
      root.append(svg("text", { x: W / 2, y: H / 2, class: "axis-label", "text-anchor": "middle" }, "no scores yet"));
      return root;
    }
    const lo = budgets[0], hi = budgets[budgets.length - 1];
    const useLog = lo > 0 && hi / lo >= 4;
    const t = (b) => (hi === lo ? 0.5 : useLog ? Math.log(b / lo) / Math.log(hi / lo) : (b - lo) / (hi - lo));
    const x = (b) => left + t(b) * (W - left - right);
    const y = (v) => top + (1 - v) * (H - top - bottom);

    const marked = trainBudget !== null && trainBudget !== undefined && trainBudget >= lo && trainBudget <= hi;
    if (marked && trainBudget < hi) {  // beyond the training budget: shaded first, so the CI bands lie over it
      root.append(svg("rect", { x: x(trainBudget), y: top, width: x(hi) - x(trainBudget), height: H - top - bottom,
        class: "beyond" }, svg("title", {}, `beyond the training budget (${trainBudget} tokens): extrapolation`)));
    }
    for (const v of [0, 0.25, 0.5, 0.75, 1]) {
      root.append(svg("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: "grid" }));
      root.append(svg("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, `${v * 100}%`));
    }
    const step = Math.max(1, Math.ceil(budgets.length / 8));
    budgets.forEach((b, i) => {
      if (i % step && i !== budgets.length - 1) return;
      root.append(svg("text", { x: x(b), y: H - bottom + 16, class: "tick", "text-anchor": "middle" }, E3.fmtBudget(b)));
    });
    root.append(svg("text", { x: (left + W - right) / 2, y: H - 4, class: "axis-label", "text-anchor": "middle" },
      "token budget" + (useLog ? " (log scale)" : "")));
    if (marked) {
      root.append(svg("line", { x1: x(trainBudget), x2: x(trainBudget), y1: top, y2: H - bottom, class: "train" }));
      const end = trainBudget === hi;
      root.append(svg("text", { x: x(trainBudget) + (end ? -3 : 3), y: top + 10, class: "tick",
        "text-anchor": end ? "end" : "start" }, `trained at ${E3.fmtBudget(trainBudget)}`));
    }
    curves.forEach((curve, i) => {
      const pts = curve.points.filter((p) => p.value !== null && p.value !== undefined).sort((a, b) => a.budget - b.budget);
      if (!pts.length) return;
      const group = svg("g", { class: "curve c" + (i % 6) });
      const band = pts.filter((p) => p.ci_low !== null && p.ci_high !== null);
      if (band.length) {
        const upper = band.map((p) => `${x(p.budget)},${y(p.ci_high)}`);
        const lower = band.slice().reverse().map((p) => `${x(p.budget)},${y(p.ci_low)}`);
        group.append(svg("polygon", { points: upper.concat(lower).join(" "), class: "band" }));
      }
      group.append(svg("polyline", { points: pts.map((p) => `${x(p.budget)},${y(p.value)}`).join(" "), class: "line" }));
      for (const p of pts) {
        const pct = (v) => `${(100 * v).toFixed(1)}%`;  // percent, as report prints it
        const ci = p.ci_low !== null && p.ci_high !== null ? ` [${pct(p.ci_low)}, ${pct(p.ci_high)}]` : "";
        group.append(svg("circle", { cx: x(p.budget), cy: y(p.value), r: 2.6, class: "dot" },
          svg("title", {}, `${curve.metric} at ${p.budget} tokens: ${pct(p.value)}${ci}; n = ${p.n_problems} problems, ${p.n_samples} samples`)));
      }
      root.append(group);
    });
    return root;
  };

  E3.curveLegend = function curveLegend(curves) {
    // n is said once when every curve has the same (the usual case), else beside each curve.
    const sizes = curves.map((curve) => {
      const last = curve.points[curve.points.length - 1] || {};
      return last.n_problems !== undefined ? `n = ${last.n_problems} problems, ${last.n_samples} samples` : "";
    });
    const shared = sizes.every((size) => size === sizes[0]) ? sizes[0] : null;
    const items = curves.map((curve, i) => E3.el("li", { class: "c" + (i % 6) }, E3.el("span", { class: "swatch" }),
      curve.metric + (shared === null && sizes[i] ? ` (${sizes[i]})` : "")));
    if (shared) items.push(E3.el("li", { class: "legend-n" }, `${shared}; bands: 95% CIs`));
    return E3.el("ul", { class: "legend" }, items);
  };
})();
