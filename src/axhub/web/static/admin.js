// Organisation admin: add users and API keys through the API.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const userForm = document.getElementById("user-form");
    userForm && userForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(userForm);
      try {
        await AX.api("POST", "/users", { email: f.get("email"), name: f.get("name"), password: f.get("password"), role: f.get("role"), locale: AX.config.locale });
        AX.toast(AX.t("created")); setTimeout(() => location.reload(), 600);
      } catch (e) { AX.toast(AX.t("failed", { msg: AX.problem(e) })); }
    });
    const keyForm = document.getElementById("key-form");
    keyForm && keyForm.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(keyForm);
      try {
        const made = await AX.api("POST", "/keys", { name: f.get("name"), scopes: f.getAll("scopes") });
        const out = document.getElementById("new-key");
        out.replaceChildren();
        const p = document.createElement("p"); p.textContent = AX.t("key_once");
        const code = document.createElement("code"); code.className = "secret"; code.textContent = made.key; code.tabIndex = 0;
        out.append(p, code);
      } catch (e) { AX.toast(AX.t("failed", { msg: AX.problem(e) })); }
    });
  });
})();
// Notification channels: webhook or e-mail (SMTP), a test message, removal.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("channel-form");
    if (!form) return;
    const smtp = form.querySelector("fieldset.smtp");
    const kind = form.querySelector("#c-kind");
    kind.addEventListener("change", () => { smtp.hidden = kind.value !== "email"; });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = new FormData(form);
      const body = { name: f.get("name"), kind: f.get("kind"), target: f.get("target"), min_severity: f.get("min_severity"), lang: f.get("lang") };
      if (body.kind === "email") body.smtp = { host: f.get("host"), port: Number(f.get("port") || 25), sender: f.get("sender") || undefined,
        username: f.get("username") || undefined, password: f.get("password") || undefined, starttls: f.get("starttls") === "on" };
      const error = form.querySelector(".form-error");
      error.hidden = true;
      try { await AX.api("POST", "/notifications/channels", body); AX.toast(AX.t("created")); location.reload(); }
      catch (e) {
        error.textContent = AX.problem(e, (name) => { const i = form.querySelector(`[name="${name}"]`); return i && i.labels[0] && i.labels[0].textContent; });
        error.hidden = false;
      }
    });
    document.querySelectorAll("[data-test-channel]").forEach((b) => b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        const r = await AX.api("POST", "/notifications/channels/" + b.dataset.testChannel + "/test");
        AX.toast(AX.t(r.ok ? "notify_ok" : "notify_failed"));
      } catch (e) { AX.toast(AX.problem(e)); }
      finally { b.disabled = false; }
    }));
    document.querySelectorAll("[data-delete-channel]").forEach((b) => b.addEventListener("click", async () => {
      try { await AX.api("DELETE", "/notifications/channels/" + b.dataset.deleteChannel); location.reload(); }
      catch (e) { AX.toast(AX.problem(e)); }
    }));
  });
})();
