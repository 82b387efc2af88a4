// Alerts page: contributing-signal charts and acknowledgement without a reload.
(function () {
  "use strict";
  function drawExplanation(el) {
    const items = JSON.parse(el.dataset.explanation || "[]");
    const value = (it) => Number(it.contribution ?? it.z ?? it.score ?? 0);
    const sorted = items.slice().sort((a, b) => Math.abs(value(a)) - Math.abs(value(b)));
    Plotly.newPlot(el, [{
      type: "bar", orientation: "h", x: sorted.map(value), y: sorted.map((it) => String(it.signal)),
      marker: { color: "#c2410c" }, hovertemplate: "%{y}: %{x:.3f}<extra></extra>",
    }], {
      height: 40 + 28 * sorted.length, margin: { l: 140, r: 16, t: 4, b: 28 }, font: { size: 12 },
      xaxis: { title: { text: AX.t("contribution") }, zeroline: true }, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#fff",
    }, AX.plotConfig({ displayModeBar: false }));
  }

  async function acknowledge(button) {
    const id = button.dataset.ack;
    button.disabled = true;
    try {
      await AX.api("POST", "/alerts/" + id + "/ack");
      const item = document.getElementById("alert-" + id);
      item.classList.add("acked");
      item.querySelector(".ack-state").textContent = AX.t("acked");
      button.closest(".alert-actions").remove();
      AX.toast(AX.t("acked"));
    } catch (e) {
      button.disabled = false;
      AX.toast(AX.t("ack_failed", { msg: AX.problem(e) }));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-explanation]").forEach(drawExplanation);
    document.querySelectorAll("button[data-ack]").forEach((b) => b.addEventListener("click", () => acknowledge(b)));
  });
  document.addEventListener("axhub:alert", () => AX.toastReload());
})();
