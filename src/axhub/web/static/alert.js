// One alert: acknowledge or resolve it (with a note), or add a note; who and when are recorded.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("alert-actions");
    if (!form) return;
    const id = document.querySelector("[data-alert-id]").dataset.alertId;
    form.addEventListener("submit", (ev) => ev.preventDefault());
    form.querySelectorAll("button[data-action]").forEach((b) => b.addEventListener("click", async () => {
      const note = form.querySelector("#note").value.trim();
      const action = b.dataset.action;
      if (action === "note" && !note) { form.querySelector("#note").focus(); return; }
      b.disabled = true;
      try {
        if (action === "note") await AX.api("POST", "/alerts/" + id + "/notes", { text: note });
        else await AX.api("POST", "/alerts/" + id + "/" + action, note ? { note } : {});
        AX.toast(AX.t(action === "ack" ? "acked" : action === "resolve" ? "resolved" : "saved"));
        location.reload();
      } catch (e) { b.disabled = false; AX.toast(AX.problem(e)); }
    }));
  });
})();
