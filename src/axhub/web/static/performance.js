// Performance pages: OEE over time and the loss Pareto (plotly), consent, machine setup and
// downtime reasons from a tablet (large buttons, no reload needed to pick the next stop).
(function () {
  "use strict";
  const pctAxis = { tickformat: ".0%", rangemode: "tozero" };
  const base = { margin: { l: 48, r: 16, t: 8, b: 40 }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    font: { size: 12 }, legend: { orientation: "h" } };

  function drawOee(el) {
    const rows = JSON.parse(el.dataset.rows || "[]");
    const x = rows.map((r) => String(r[el.dataset.key]));
    const line = (field, name, color) => ({ type: "scatter", mode: "lines+markers", x, y: rows.map((r) => r[field]), name, line: { color } });
    Plotly.newPlot(el, [
      { type: "bar", x, y: rows.map((r) => r.oee), name: AX.t("oee"), marker: { color: "#1d4ed8" } },
      line("availability", AX.t("availability"), "#059669"),
      line("performance", AX.t("performance"), "#d97706"),
      line("quality", AX.t("quality"), "#7c3aed"),
    ], Object.assign({ height: 300, yaxis: pctAxis, xaxis: { type: "category" } }, base), { displayModeBar: false, responsive: true });
  }

  function drawLosses(el) {
    const losses = JSON.parse(el.dataset.losses || "[]");
    const labels = JSON.parse(el.dataset.labels || "{}");
    let acc = 0;
    const cumulative = losses.map((l) => (acc += l.share));
    const x = losses.map((l) => labels[l.cause] || l.cause);
    Plotly.newPlot(el, [
      { type: "bar", x, y: losses.map((l) => l.seconds / 3600), name: AX.t("hours"), marker: { color: "#c2410c" } },
      { type: "scatter", mode: "lines+markers", x, y: cumulative, yaxis: "y2", name: "%", line: { color: "#334155" } },
    ], Object.assign({ height: 300, yaxis: { title: { text: AX.t("hours") } }, yaxis2: Object.assign({ overlaying: "y", side: "right", range: [0, 1.05] }, pctAxis), showlegend: false }, base),
    { displayModeBar: false, responsive: true });
  }

  async function consent(button) {
    button.disabled = true;
    try {
      if (button.dataset.consent === "give") {
        const named = document.getElementById("consent-named");
        await AX.api("PUT", "/complex/consent", { named: Boolean(named && named.checked) });
      } else {
        await AX.api("DELETE", "/complex/consent");
      }
      location.reload();
    } catch (e) { button.disabled = false; AX.toast(AX.t("oee_failed", { msg: e.message })); }
  }

  async function setup(form, ev) {
    ev.preventDefault();
    const f = new FormData(form);
    const body = {
      state_source: f.get("state_signal") ? "tag" : "none",
      state_signal: f.get("state_signal") || null,
      good_signal: f.get("good_signal") || null,
      scrap_signal: f.get("scrap_signal") || null,
      count_mode: f.get("cumulative") ? "cumulative" : "increment",
      ideal_cycle_s: Number(f.get("ideal_cycle_s")),
    };
    try {
      await AX.api("PUT", "/assets/" + encodeURIComponent(f.get("asset")) + "/production", body);
      AX.toast(AX.t("oee_saved"));
      setTimeout(() => location.reload(), 600);
    } catch (e) { AX.toast(AX.t("oee_failed", { msg: e.message })); }
  }

  async function saveShifts(form, ev) {
    ev.preventDefault();
    const text = new FormData(form).get("shifts") || "";
    const shifts = String(text).split(",").map((p) => p.trim()).filter(Boolean).map((p) => {
      const [name, span] = p.split("=");
      const [start, end] = (span || "").split("-");
      return { name: (name || "").trim(), start: (start || "").trim(), end: (end || "").trim() };
    });
    try {
      await AX.api("PUT", "/sites/" + encodeURIComponent(form.dataset.site) + "/shifts", { shifts });
      AX.toast(AX.t("oee_saved"));
    } catch (e) { AX.toast(AX.t("oee_failed", { msg: e.message })); }
  }

  async function addPlanned(form, ev) {
    ev.preventDefault();
    const f = new FormData(form);
    // datetime-local has no zone: it is the browser's local time, sent with its offset.
    const iso = (v) => new Date(String(v)).toISOString();
    try {
      await AX.api("POST", "/sites/" + encodeURIComponent(form.dataset.site) + "/planned-downtime",
        { start: iso(f.get("start")), end: iso(f.get("end")), reason: f.get("reason") || "" });
      AX.toast(AX.t("oee_saved"));
      form.reset();
    } catch (e) { AX.toast(AX.t("oee_failed", { msg: e.message })); }
  }

  async function reason(button) {
    const item = button.closest("li");
    item.querySelectorAll("button").forEach((b) => { b.disabled = true; });
    try {
      await AX.api("POST", "/assets/" + encodeURIComponent(button.dataset.asset) + "/downtime-reasons",
        { start: item.dataset.start, end: item.dataset.end, reason: button.dataset.reason });
      const badge = document.createElement("span");
      badge.className = "badge reason-given";
      badge.textContent = button.textContent;
      item.querySelector(".stop-head").append(" ", badge);
      item.querySelector(".reason-buttons").remove();
      AX.toast(AX.t("oee_saved"));
    } catch (e) {
      item.querySelectorAll("button").forEach((b) => { b.disabled = false; });
      AX.toast(AX.t("oee_failed", { msg: e.message }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const chart = document.getElementById("oee-chart");
    if (chart && window.Plotly) drawOee(chart);
    const losses = document.getElementById("loss-chart");
    if (losses && window.Plotly) drawLosses(losses);
    document.querySelectorAll("button[data-consent]").forEach((b) => b.addEventListener("click", () => consent(b)));
    const form = document.getElementById("oee-setup");
    if (form) form.addEventListener("submit", (ev) => setup(form, ev));
    document.querySelectorAll("button[data-reason]").forEach((b) => b.addEventListener("click", () => reason(b)));
    document.querySelectorAll("form.shift-form").forEach((f) => f.addEventListener("submit", (ev) => saveShifts(f, ev)));
    document.querySelectorAll("form.planned-form").forEach((f) => f.addEventListener("submit", (ev) => addPlanned(f, ev)));
  });
})();
