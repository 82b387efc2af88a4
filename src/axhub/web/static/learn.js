// Learn from the chart: select a normal period on the signal chart (box select), train a model on
// it as a job with progress, backtest a version over the machine's whole history (scores,
// threshold, the alerts that would have fired, the events people marked), deploy in one click.
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const tz = () => AX.config.tz;
  let period = null;  // { start: Date, end: Date }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  async function follow(jobId, onProgress) {
    // The job's state and progress, polled (the page's live events may be off behind a proxy).
    for (;;) {
      const job = await AX.api("GET", "/jobs/" + jobId);
      onProgress(job);
      if (["succeeded", "failed", "cancelled"].includes(job.state)) return job;
      await new Promise((r) => setTimeout(r, 700));
    }
  }

  function showProgress(job) {
    $("learn-progress").hidden = false;
    $("learn-progress").querySelector("progress").value = job.progress || 0;
    $("learn-status").textContent = AX.t("job_" + job.state) + " · " + AX.fmtPct(job.progress || 0);
  }

  function choose(start, end) {
    period = { start, end };
    $("learn-form").hidden = false;
    $("learn-hint").hidden = true;
    $("learn-period").textContent = AX.t("learn_period", { start: AX.fmtDate(start), end: AX.fmtDate(end) });
    $("learn").dataset.state = "selected";
  }

  async function train(ev) {
    ev.preventDefault();
    if (!period) return;
    const box = $("learn");
    const signals = [...document.querySelectorAll('input[name="signal"]:checked')].map((i) => i.value);
    $("train-btn").disabled = true;
    try {
      const made = await AX.api("POST", "/assets/" + box.dataset.assetId + "/train",
        { start: period.start.toISOString(), end: period.end.toISOString(), signals, estimator: $("learn-what").value });
      box.dataset.state = "training";
      const job = await follow(made.job.id, showProgress);
      if (job.state !== "succeeded") throw { code: "job_failed" };
      box.dataset.state = "trained";
      // The new version appears in the list; its backtest starts right away.
      location.assign(location.pathname + "?backtest=" + encodeURIComponent(job.result.model_version_id) + "#machine-models");
    } catch (e) {
      $("train-btn").disabled = false;
      $("learn-status").textContent = e.code === "job_failed" ? AX.t("train_failed") : AX.problem(e);
      box.dataset.state = "failed";
    }
  }

  function drawBacktest(result) {
    const chart = $("backtest-chart");
    const times = result.scores.map((p) => AX.wall(p[0], tz()));
    const scores = result.scores.map((p) => p[1]);
    const thr = result.threshold;
    const traces = [{ x: times, y: scores, name: AX.t("score"), type: "scatter", mode: "lines", line: { color: "#1f5fbf", width: 1.3 } },
      { x: [times[0], times[times.length - 1]], y: [thr, thr], name: AX.t("threshold"), mode: "lines", line: { color: "#9a6700", dash: "dash", width: 2 } }];
    const shapes = result.alerts.map((a) => ({ type: "rect", xref: "x", yref: "paper", x0: AX.wall(a.start, tz()), x1: AX.wall(a.end, tz()), y0: 0, y1: 1,
      fillcolor: "rgba(207,34,46,0.15)", line: { width: 0 } }));
    const annotations = [];
    result.events.forEach((e) => {
      const x = AX.wall(e.start, tz());
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: "#047857", width: 2, dash: "dot" } });
      annotations.push({ x, xref: "x", y: 1, yref: "paper", text: e.title, showarrow: false, yanchor: "bottom", font: { color: "#047857", size: 11 } });
    });
    Plotly.newPlot(chart, traces, { height: 260, margin: { l: 56, r: 16, t: 18, b: 36 }, showlegend: true, legend: { orientation: "h", y: 1.2 },
      xaxis: { type: "date" }, yaxis: { title: { text: AX.t("score") }, rangemode: "tozero" }, shapes, annotations,
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff" }, AX.plotConfig());
    chart.dataset.alerts = String(result.alerts.length);
    const table = $("backtest-alerts");
    table.replaceChildren();
    if (!result.alerts.length) return;
    const head = el("tr");
    [AX.t("bt_when"), AX.t("bt_severity"), AX.t("bt_signals")].forEach((h) => head.append(el("th", { scope: "col" }, h)));
    const thead = el("thead"); thead.append(head); table.append(thead);
    const tbody = el("tbody");
    result.alerts.slice(0, 50).forEach((a) => {
      const tr = el("tr");
      tr.append(el("td", {}, AX.fmtDate(a.start) + " – " + AX.fmtDate(a.end, undefined, "time")), el("td", {}, AX.t("sev_" + a.severity)));
      const names = Object.fromEntries([...document.querySelectorAll('input[name="signal"]')].map((i) => [i.value, i.dataset.label || i.value]));
      const what = (a.explanation || []).slice(0, 3).map((x) => (names[x.signal] || x.signal) + " " + ((AX.config.locale === "ko" ? x.text_ko : x.text) || ""));
      tr.append(el("td", {}, what.join("; ")));
      tbody.append(tr);
    });
    table.append(tbody);
  }

  async function backtest(versionId) {
    const box = $("backtest");
    box.hidden = false;
    box.dataset.state = "running";
    const summary = $("backtest-summary");
    summary.textContent = AX.t("bt_running");
    try {
      const job = await AX.api("POST", "/assets/" + $("machine-models").dataset.assetId + "/backtests", { model_version_id: versionId });
      const done = await follow(job.id, (j) => { summary.textContent = AX.t("bt_running") + " " + AX.fmtPct(j.progress || 0); });
      if (done.state !== "succeeded") throw { code: "job_failed" };
      const r = done.result;
      summary.textContent = AX.t("bt_summary", { model: r.model, n: r.alerts.length, rows: AX.fmtNum(r.rows_scored, 0),
        over: AX.fmtNum(r.rows_over_threshold, 0), threshold: AX.fmtNum(r.threshold, 3), events: r.events.length });
      drawBacktest(r);
      box.dataset.state = "done";
      box.dataset.version = versionId;
    } catch (e) {
      summary.textContent = e.code === "job_failed" ? AX.t("bt_failed") : AX.problem(e);
      box.dataset.state = "failed";
    }
  }

  async function deploy(button) {
    button.disabled = true;
    try {
      // A version below its trivial baseline is refused unless the user ticked "deploy anyway".
      const override = document.querySelector(`input[data-override="${button.dataset.deploy}"]`);
      await AX.api("POST", "/models/" + button.dataset.deploy + "/deploy",
        { asset_id: $("machine-models").dataset.assetId, allow_below_baseline: !!(override && override.checked) });
      AX.toast(AX.t("deployed"));
      location.assign(location.pathname + "#machine-models");
      location.reload();
    } catch (e) { button.disabled = false; AX.toast(AX.problem(e)); }
  }

  async function addEvent(ev) {
    ev.preventDefault();
    const f = new FormData(ev.target);
    try {
      await AX.api("POST", "/assets/" + $("machine-models").dataset.assetId + "/events",
        { start: AX.unwall(String(f.get("start")).replace("T", " ") + ":00", tz()).toISOString(), kind: f.get("kind"), title: f.get("title") });
      AX.toast(AX.t("created"));
      ev.target.reset();
      const v = $("backtest").dataset.version;
      if (v) backtest(v);
    } catch (e) { AX.toast(AX.problem(e)); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const models = $("machine-models");
    const learn = $("learn");
    const chart = $("signal-chart");
    if (learn && chart) {
      // The chart opens in box-select mode (data-dragmode): dragging across it picks the period.
      const hook = () => chart.on("plotly_selected", (ev) => {
        const range = ev && ev.range && (ev.range.x || Object.entries(ev.range).find(([k]) => k.startsWith("x"))?.[1]);
        if (!range) return;
        const a = AX.unwall(range[0], tz()), b = AX.unwall(range[1], tz());
        if (b > a) choose(a, b);
      });
      const wait = setInterval(() => { if (chart.on) { clearInterval(wait); hook(); } }, 100);
      $("learn-form").addEventListener("submit", train);
      $("learn-cancel").addEventListener("click", () => { period = null; $("learn-form").hidden = true; $("learn-hint").hidden = false; learn.dataset.state = ""; });
    }
    document.querySelectorAll("[data-backtest]").forEach((b) => b.addEventListener("click", () => backtest(b.dataset.backtest)));
    document.querySelectorAll("[data-deploy]").forEach((b) => b.addEventListener("click", () => deploy(b)));
    const form = $("event-form");
    if (form) form.addEventListener("submit", addEvent);
    const asked = new URLSearchParams(location.search).get("backtest");
    if (asked && models.dataset.assetId) backtest(asked);
  });
})();
