// Asset page: an administrator deletes a machine's or one signal's stored readings (asks first).
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const box = document.getElementById("series-delete");
    const form = document.getElementById("series-form");
    if (!box || !form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const select = form.querySelector("[name=target]");
      const signal = select.value;
      const question = signal
        ? AX.t("series.confirm_signal", { name: select.options[select.selectedIndex].textContent })
        : AX.t("series.confirm_all");
      if (!window.confirm(question)) return;
      const error = form.querySelector(".form-error");
      error.hidden = true;
      const path = signal ? `/signals/${signal}/readings` : `/assets/${box.dataset.assetId}/readings`;
      try {
        const out = await AX.api("DELETE", path);
        AX.toast(AX.t("series.deleted", { rows: AX.fmtNum(out.rows, 0) }));
        setTimeout(() => location.reload(), 1200);
      } catch (e) {
        error.textContent = AX.problem(e);
        error.hidden = false;
      }
    });
  });
})();
