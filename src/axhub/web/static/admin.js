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
