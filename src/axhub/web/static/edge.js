// Fleet page: issue an enrolment token, revoke a device, start a rollout (all through the API).
(function () {
  "use strict";
  function onReady(fn) { if (document.readyState !== "loading") fn(); else document.addEventListener("DOMContentLoaded", fn); }
  onReady(function () {
    const AX = window.AX;
    const tokenForm = document.getElementById("edge-token-form");
    if (tokenForm) tokenForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const data = new FormData(tokenForm);
      try {
        const out = await AX.api("POST", "/edge/tokens", { name: data.get("name"), group: data.get("group") });
        document.getElementById("edge-token-value").textContent = out.token;
        document.getElementById("edge-token").hidden = false;
      } catch (e) { AX.toast(AX.problem(e)); }
    });
    const rolloutForm = document.getElementById("edge-rollout-form");
    if (rolloutForm) rolloutForm.addEventListener("submit", async function (ev) {
      ev.preventDefault();
      const data = new FormData(rolloutForm);
      try {
        await AX.api("POST", "/edge/rollouts", { model_version_id: data.get("model_version_id"), group: data.get("group") });
        window.location.reload();
      } catch (e) { AX.toast(AX.problem(e)); }
    });
    document.querySelectorAll("[data-revoke]").forEach(function (button) {
      button.addEventListener("click", async function () {
        try {
          await AX.api("POST", "/edge/devices/" + encodeURIComponent(button.dataset.revoke) + "/revoke");
          window.location.reload();
        } catch (e) { AX.toast(AX.problem(e)); }
      });
    });
  });
})();
