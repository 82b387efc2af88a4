// Process optimisation page: make a recommendation, dry run, approve (writes to the machine),
// reject, roll back; partial-dependence curves with the recommended value marked.
(function () {
  "use strict";

  function drawPd(el) {
    const pd = JSON.parse(el.dataset.pd || "{}");
    const rec = JSON.parse(el.dataset.rec || "{}");
    const names = Object.keys(pd);
    if (!names.length || !window.Plotly) return;
    const traces = [];
    const layout = { height: 260, margin: { l: 48, r: 16, t: 24, b: 40 }, showlegend: false, grid: { rows: 1, columns: names.length, pattern: "independent" } };
    names.forEach((name, i) => {
      const axis = i === 0 ? "" : String(i + 1);
      traces.push({ type: "scatter", mode: "lines", x: pd[name].x, y: pd[name].mean, xaxis: "x" + axis, yaxis: "y" + axis, line: { color: "#1d4ed8" }, name });
      if (rec[name] !== undefined) traces.push({ type: "scatter", mode: "markers", x: [rec[name]], y: [Math.max.apply(null, pd[name].mean)], xaxis: "x" + axis, yaxis: "y" + axis, marker: { color: "#c2410c", size: 10 }, name });
      layout["xaxis" + axis] = { title: { text: name } };
      layout["yaxis" + axis] = { tickformat: ".1%" };
    });
    Plotly.newPlot(el, traces, layout, { displayModeBar: false, responsive: true });
  }

  function drawPareto(el) {
    const front = JSON.parse(el.dataset.front || "[]");
    const metric = el.dataset.metric;
    if (!front.length || !window.Plotly) return;
    const traces = [{ type: "scatter", mode: "lines+markers", x: front.map((p) => p[metric]), y: front.map((p) => p.yield), line: { color: "#1d4ed8", shape: "hv" }, name: "front" }];
    if (el.dataset.at) traces.push({ type: "scatter", mode: "markers", x: [Number(el.dataset.at)], y: [Number(el.dataset.yield)], marker: { color: "#c2410c", size: 12 }, name: "rec" });
    Plotly.newPlot(el, traces, { height: 260, margin: { l: 48, r: 16, t: 8, b: 40 }, showlegend: false, xaxis: { title: { text: metric } }, yaxis: { tickformat: ".1%" } },
      { displayModeBar: false, responsive: true });
  }

  async function act(button, run) {
    button.disabled = true;
    try { await run(); }
    catch (e) { AX.toast(AX.problem(e)); button.disabled = false; }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const pd = document.getElementById("pd-chart");
    if (pd) drawPd(pd);
    const pareto = document.getElementById("pareto-chart");
    if (pareto) drawPareto(pareto);
    const propose = document.getElementById("propose");
    if (propose) propose.addEventListener("click", () => act(propose, async () => {
      await AX.api("POST", "/process/cells/" + propose.dataset.cell + "/recommendations", {});
      location.reload();
    }));
    document.querySelectorAll("[data-dry-run]").forEach((b) => b.addEventListener("click", () => act(b, async () => {
      const r = await AX.api("POST", "/process/recommendations/" + b.dataset.dryRun + "/dry-run");
      const out = document.getElementById("dry-run-result");
      out.hidden = false;
      out.textContent = r.ok ? AX.t("process.dry_run_ok") : AX.t("process.dry_run_refused", { reason: r.message });
      b.disabled = false;
    })));
    document.querySelectorAll("[data-approve]").forEach((b) => b.addEventListener("click", () => act(b, async () => {
      if (!window.confirm(AX.t("process.confirm"))) { b.disabled = false; return; }
      await AX.api("POST", "/process/recommendations/" + b.dataset.approve + "/approve");
      location.reload();
    })));
    document.querySelectorAll("[data-reject]").forEach((b) => b.addEventListener("click", () => act(b, async () => {
      await AX.api("POST", "/process/recommendations/" + b.dataset.reject + "/reject", {});
      location.reload();
    })));
    const rollback = document.getElementById("rollback");
    if (rollback) rollback.addEventListener("click", () => act(rollback, async () => {
      await AX.api("POST", "/process/cells/" + rollback.dataset.cell + "/rollback");
      location.reload();
    }));
  });
})();
