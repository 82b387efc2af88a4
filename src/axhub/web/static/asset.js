// Asset page: signal history (zoom re-queries finer data), anomaly scores against the threshold.
(function () {
  "use strict";
  const MAX_POINTS = 1500;
  const COLORS = ["#1f5fbf", "#c2410c", "#047857", "#7c3aed", "#b91c1c", "#0e7490", "#a16207", "#be185d"];

  function interval(start, end) {
    const seconds = Math.max((end - start) / 1000, 1);
    return Math.max(1, Math.ceil(seconds / MAX_POINTS)) + "s";
  }

  // The axis shows the site's wall-clock time; turn a zoomed range back into UTC instants.
  function unwall(text) {
    const asUtc = Date.parse(String(text).replace(" ", "T").slice(0, 19) + "Z");
    const offset = Date.parse(AX.wall(asUtc).replace(" ", "T") + "Z") - asUtc;
    return new Date(asUtc - offset);
  }

  // "58s" / "5min" from the API, in the page's words ("58초", "5 min"); no bucket: raw readings.
  function interval_text(value) {
    const m = /^(\d+)(s|min|h|d)$/.exec(value || "");
    return m ? AX.t("int_" + m[2], { n: m[1] }) : AX.t("int_raw");
  }

  function plotLayout(extra) {
    return Object.assign({
      margin: { l: 56, r: 16, t: 8, b: 36 }, hovermode: "x unified", showlegend: true,
      legend: { orientation: "h", y: 1.08 }, font: { family: "inherit", size: 13 },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    }, extra || {});
  }

  async function drawSignals(el, start, end) {
    const status = document.getElementById("chart-status");
    const picks = [...document.querySelectorAll('input[name="signal"]:checked')];
    if (!picks.length) { Plotly.purge(el); status.textContent = ""; return; }
    status.textContent = AX.t("loading");
    const params = new URLSearchParams({ start: start.toISOString(), end: end.toISOString(), interval: interval(start, end) });
    picks.forEach((p) => params.append("signals", p.value));
    let data;
    try { data = await AX.api("GET", "/assets/" + el.dataset.assetId + "/readings?" + params); }
    catch (e) { status.textContent = AX.t("chart_error", { msg: AX.problem(e) }); el.dataset.rendered = "error"; return; }
    const series = data.series || [];
    const labels = Object.fromEntries(picks.map((p) => [p.value, p.dataset.label || p.value]));
    const n = series.reduce((a, s) => a + s.values.filter((v) => v !== null).length, 0);
    // One stacked panel per signal: signals have different units and scales.
    const traces = series.map((s, i) => ({
      x: s.times.map((v) => AX.wall(v)), y: s.values, name: (labels[s.signal] || s.signal) + (s.unit ? " (" + s.unit + ")" : ""), type: "scatter", mode: "lines",
      line: { width: 1.4, color: COLORS[i % COLORS.length] }, yaxis: i ? "y" + (i + 1) : "y", connectgaps: false,
    }));
    const layout = plotLayout({ height: Math.max(260, 150 * series.length + 60), grid: { rows: series.length, columns: 1, pattern: "coupled" },
      dragmode: el.dataset.dragmode || "zoom", selectdirection: "h",
      xaxis: { type: "date", range: [AX.wall(start), AX.wall(end)] } });
    series.forEach((s, i) => { layout["yaxis" + (i ? i + 1 : "")] = { title: { text: s.unit || "", standoff: 4 }, zeroline: false, automargin: true }; });
    const alerts = JSON.parse(el.dataset.alerts || "[]").map((v) => AX.wall(v));
    layout.shapes = alerts.map((ts) => ({ type: "line", xref: "x", yref: "paper", x0: ts, x1: ts, y0: 0, y1: 1,
      line: { color: "rgba(207,34,46,0.55)", width: 1.5, dash: "dot" } }));
    layout.annotations = alerts.slice(0, 30).map((ts) => ({ x: ts, xref: "x", y: 1, yref: "paper", text: "▼", showarrow: false,
      font: { color: "#cf222e", size: 11 }, hovertext: AX.t("alert") + " " + ts, yanchor: "bottom" }));
    // Events people marked (maintenance, faults) as green lines with their titles.
    for (const [when, title] of JSON.parse(el.dataset.events || "[]").slice(0, 30)) {
      const x = AX.wall(when);
      layout.shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: "#047857", width: 1.5, dash: "dot" } });
      layout.annotations.push({ x, xref: "x", y: 1, yref: "paper", text: title, showarrow: false, yanchor: "bottom", font: { color: "#047857", size: 11 } });
    }
    await Plotly.react(el, traces, layout, AX.plotConfig({ modeBarButtonsToRemove: ["lasso2d"] }));
    el.dataset.rendered = n ? "data" : "empty";
    status.textContent = n ? AX.t("points", { n: AX.fmtNum(n, 0), interval: interval_text(data.interval) }) : AX.t("no_data");
  }

  function drawScores(el) {
    const iso = JSON.parse(el.dataset.points), scores = JSON.parse(el.dataset.scores);
    const ts = iso.map((v) => AX.wall(v));
    const thr = parseFloat(el.dataset.threshold);
    const traces = [{ x: ts, y: scores, name: AX.t("score"), type: "scatter", mode: "markers+lines",
      marker: { size: 8, color: scores.map((s) => (isFinite(thr) && s > thr ? "#cf222e" : "#1f5fbf")) }, line: { color: "#9db4d6", width: 1 } }];
    const first = Math.min(...iso.map((v) => new Date(v).getTime())), last = Math.max(...iso.map((v) => new Date(v).getTime()));
    const pad = Math.max((last - first) * 0.1, 6 * 3600e3);  // a single alert still gets a readable axis
    const layout = plotLayout({ height: 220, xaxis: { type: "date", range: [AX.wall(first - pad), AX.wall(last + pad)] }, yaxis: { title: { text: AX.t("score") }, rangemode: "tozero" } });
    if (isFinite(thr)) layout.shapes = [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: thr, y1: thr, line: { color: "#9a6700", dash: "dash", width: 2 } }],
      layout.annotations = [{ xref: "paper", x: 1, y: thr, text: AX.t("threshold") + " " + AX.fmtNum(thr, 3), showarrow: false, yanchor: "bottom", xanchor: "right", font: { color: "#9a6700" } }];
    Plotly.newPlot(el, traces, layout, AX.plotConfig());
  }

  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("signal-chart");
    const scoreEl = document.getElementById("score-chart");
    if (scoreEl) drawScores(scoreEl);
    if (!el) return;
    let end = new Date(el.dataset.end), start = new Date(el.dataset.start);
    const full = () => drawSignals(el, start, end);
    el.redraw = full;
    full();
    document.querySelectorAll('input[name="signal"]').forEach((c) => c.addEventListener("change", full));
    document.querySelectorAll(".range button").forEach((b) => b.addEventListener("click", () => {
      document.querySelectorAll(".range button").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
      start = b.dataset.hours === "all" ? new Date(b.dataset.from) : new Date(end.getTime() - Number(b.dataset.hours) * 3600e3);
      full();
    }));
    // Zoom: ask the store again for the narrower window (finer buckets).
    let pending = null;
    const hook = () => el.on && el.on("plotly_relayout", (ev) => {
      if (ev["xaxis.range[0]"] && ev["xaxis.range[1]"]) {
        clearTimeout(pending);
        const s = unwall(ev["xaxis.range[0]"]), e = unwall(ev["xaxis.range[1]"]);
        pending = setTimeout(() => { if (!isNaN(s) && !isNaN(e) && e > s) drawSignals(el, s, e); }, 250);
      } else if (ev["xaxis.autorange"]) { drawSignals(el, start, end); }
    });
    const wait = setInterval(() => { if (el.on) { clearInterval(wait); hook(); } }, 100);
  });
})();
