// Operator console: companies and their first administrator, quotas, and usage per day.
(function () {
  "use strict";

  function drawUsage(el, measure) {
    const history = JSON.parse(el.dataset.history);
    const ids = JSON.parse(document.getElementById("org-ids").textContent);
    const names = JSON.parse(document.getElementById("org-names").textContent);
    const traces = ids.map((id, i) => ({ type: "bar", name: names[i], x: history.days,
      y: (history.series[id] || {})[measure] || history.days.map(() => 0) }));
    Plotly.react(el, traces, {
      barmode: "stack", height: 280, margin: { l: 56, r: 16, t: 8, b: 40 }, legend: { orientation: "h", y: 1.15 },
      xaxis: { type: "category" }, yaxis: { title: { text: AX.t("op_" + measure) }, rangemode: "tozero" },
      paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    }, AX.plotConfig());
    el.dataset.measure = measure;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const chart = document.getElementById("usage-chart");
    if (chart && window.Plotly) {
      drawUsage(chart, "points");
      document.querySelectorAll("[data-measure]").forEach((b) => b.addEventListener("click", () => {
        document.querySelectorAll("[data-measure]").forEach((o) => o.setAttribute("aria-pressed", String(o === b)));
        drawUsage(chart, b.dataset.measure);
      }));
    }
    document.querySelectorAll("form.quota-form").forEach((form) => form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const field = (name) => document.querySelector(`[form="${form.id}"][name="${name}"]`).value;
      try {
        await AX.api("PATCH", "/platform/orgs/" + form.dataset.orgId + "/quota",
          { max_concurrent_jobs: Number(field("max_concurrent_jobs")), compute_class: field("compute_class") });
        AX.toast(AX.t("saved"));
      } catch (e) { AX.toast(AX.problem(e)); }
    }));
    const orgForm = document.getElementById("org-form");
    orgForm && orgForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(orgForm);
      const error = orgForm.querySelector(".form-error");
      error.hidden = true;
      try {
        await AX.api("POST", "/platform/orgs", { name: f.get("name"), slug: f.get("slug"), admin_email: f.get("admin_email"),
          admin_password: f.get("admin_password"), max_concurrent_jobs: Number(f.get("max_concurrent_jobs") || 2), compute_class: f.get("compute_class") });
        AX.toast(AX.t("created"));
        location.reload();
      } catch (e) {
        error.textContent = AX.problem(e, (name) => { const i = orgForm.querySelector(`[name="${name}"]`); return i && i.labels[0] && i.labels[0].textContent; });
        error.hidden = false;
      }
    });
  });
})();
