// Limit and rate-of-change rules on a machine's signals, through the API's /rules.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("rules");
    if (!box) return;
    const form = document.getElementById("rule-form");
    form && form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const num = (k) => (f.get(k) === "" || f.get(k) === null ? null : Number(f.get(k)));
      const body = { asset_id: box.dataset.assetId, signal: f.get("signal"), kind: f.get("kind"), severity: f.get("severity") };
      if (body.kind === "rate") body.max_per_s = num("max_per_s"); else { body.low = num("low"); body.high = num("high"); }
      const error = form.querySelector(".form-error");
      error.hidden = true;
      try { await AX.api("POST", "/rules", body); AX.toast(AX.t("created")); location.reload(); }
      catch (e) {
        error.textContent = AX.problem(e, (name) => { const i = form.querySelector(`[name="${name}"]`); return i && i.labels[0] && i.labels[0].textContent; });
        error.hidden = false;
      }
    });
    box.querySelectorAll("[data-delete-rule]").forEach((b) => b.addEventListener("click", async () => {
      try { await AX.api("DELETE", "/rules/" + b.dataset.deleteRule); location.reload(); }
      catch (e) { AX.toast(AX.problem(e)); }
    }));
  });
})();
