// Operator metering console: utilisation, queue wait and per-company CPU/GPU-hours over time,
// drawn from the JSON the page carries; quotas saved through the API.
(function () {
  "use strict";

  const json = (id) => JSON.parse(document.getElementById(id).textContent);
  const layout = (extra) => Object.assign({
    height: 260, margin: { l: 56, r: 16, t: 8, b: 40 }, legend: { orientation: "h", y: 1.18 },
    paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff", xaxis: { type: "date" },
  }, extra);

  function drawUtilisation(util) {
    const el = document.getElementById("util-chart");
    const tz = el.dataset.tz;
    const x = util.buckets.map((b) => AX.wall(b.start, tz));
    const traces = ["cpu", "gpu"].map((c) => ({ type: "scatter", mode: "lines", line: { shape: "hv" },
      name: AX.t("metering.class_" + c), x, y: util.buckets.map((b) => b[c]) }));
    Plotly.react(el, traces, layout({ yaxis: { title: { text: AX.t("metering.busy_axis") }, rangemode: "tozero" } }), AX.plotConfig());
    const wait = document.getElementById("wait-chart");
    const waits = [["wait_mean_s", "metering.wait_mean"], ["wait_p95_s", "metering.wait_p95"]].map(([k, label]) => ({
      type: "scatter", mode: "lines+markers", connectgaps: false, name: AX.t(label), x, y: util.buckets.map((b) => b[k]) }));
    Plotly.react(wait, waits, layout({ yaxis: { title: { text: AX.t("metering.seconds_axis") }, rangemode: "tozero" } }), AX.plotConfig());
  }

  function drawUsage(points, names, cls) {
    const el = document.getElementById("usage-chart");
    if (!el) return;
    const tz = el.dataset.tz;
    const periods = [...new Set(points.map((p) => p.period))].sort();
    const orgs = [...new Set(points.map((p) => p.org_id))];
    const traces = orgs.map((org) => {
      const hours = new Map(points.filter((p) => p.org_id === org && p.resource_class === cls).map((p) => [p.period, p.hours]));
      return { type: "bar", name: names[org] || org, x: periods.map((p) => AX.wall(p, tz)), y: periods.map((p) => hours.get(p) || 0) };
    });
    Plotly.react(el, traces, layout({ barmode: "stack", yaxis: { title: { text: AX.t("metering.hours_axis_" + cls) }, rangemode: "tozero" } }), AX.plotConfig());
    el.dataset.class = cls;
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (window.Plotly) {
      drawUtilisation(json("util-data"));
      const points = json("usage-data");
      const names = json("usage-names");
      drawUsage(points, names, "cpu");
      document.querySelectorAll("[data-class]").forEach((b) => b.addEventListener("click", () => {
        document.querySelectorAll("[data-class]").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
        drawUsage(points, names, b.dataset.class);
      }));
    }
    document.querySelectorAll("form.compute-quota").forEach((form) => form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const value = (name) => {
        const v = document.querySelector(`[form="${form.id}"][name="${name}"]`).value;
        return v === "" ? null : Number(v);
      };
      try {
        await AX.api("PUT", "/platform/orgs/" + form.dataset.orgId + "/compute-quota",
          { cpu_hours_per_month: value("cpu_hours_per_month"), gpu_hours_per_month: value("gpu_hours_per_month") });
        AX.toast(AX.t("saved"));
      } catch (e) { AX.toast(AX.problem(e)); }
    }));
  });
})();
