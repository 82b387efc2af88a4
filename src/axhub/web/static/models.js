// Models page: side-by-side comparison of ticked versions, promotion to production.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const btn = document.getElementById("compare-btn");
    if (!btn) return;
    const boxes = [...document.querySelectorAll("input.cmp")];
    const update = () => { btn.disabled = boxes.filter((b) => b.checked).length < 2; };
    boxes.forEach((b) => b.addEventListener("change", update));
    btn.addEventListener("click", () => {
      const table = document.getElementById("models-table");
      const heads = [...table.querySelectorAll("thead th")].map((th) => th.textContent.trim());
      const rows = boxes.filter((b) => b.checked).map((b) => b.closest("tr"));
      const out = document.getElementById("compare-out");
      const t = document.createElement("table"); t.className = "table";
      // Transpose: one column per chosen version, one row per attribute.
      for (let c = 1; c < heads.length - 1; c++) {
        const tr = document.createElement("tr");
        const th = document.createElement("th"); th.scope = "row"; th.textContent = heads[c]; tr.append(th);
        const cells = rows.map((r) => r.children[c].textContent.trim());
        const nums = cells.map((v) => parseFloat(v.replace(/[^0-9.\-]/g, "")));
        cells.forEach((v, i) => {
          const td = document.createElement("td"); td.textContent = v;
          if (c > 4 && nums.every(isFinite) && new Set(nums).size > 1 && nums[i] === Math.max(...nums)) td.className = "best";
          tr.append(td);
        });
        t.append(tr);
      }
      out.replaceChildren(t); out.hidden = false;
    });
    document.querySelectorAll("button[data-promote]").forEach((b) => b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await AX.api("POST", "/models/" + b.dataset.promote + "/stage", { stage: "production" });
        AX.toast(AX.t("promoted")); setTimeout(() => location.reload(), 600);
      } catch (e) { b.disabled = false; AX.toast(AX.t("failed", { msg: AX.problem(e) })); }
    }));
  });
})();
