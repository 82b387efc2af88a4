// Collaborations (admins): create, invite by share code, accept with a signal mapping and site
// policy, change the policy, consent to share, leave, start a run (a job) and follow its progress.
// Every call goes through AX.api (session cookie + CSRF header); errors are shown in the page's
// language, naming the fields by the labels the user sees.
(function () {
  "use strict";

  // A form-specific sentence for an error code ("js.fed_err_<form>_<code>"), else the shared one.
  function explain(e, form) {
    const code = (e && e.code) || "failed";
    const own = "fed_err_" + form.id.replace("fed-", "") + "_" + code;
    if (AX.config.texts["js." + own]) return AX.t(own);
    return AX.problem(e, (name) => {
      const key = "fed_field_" + String(name).split(".").pop();
      return AX.config.texts["js." + key] ? AX.t(key) : null;
    });
  }

  function policyOf(form) {
    const f = new FormData(form);
    const policy = {
      min_local_samples: Number(f.get("min_local_samples")),
      secure_aggregation_required: f.get("secure_aggregation_required") === "on",
      allowed_metrics: f.getAll("allowed_metrics"),
    };
    if (f.get("dp_on") === "on") {
      policy.dp = { clip_norm: Number(f.get("clip_norm")), noise_multiplier: Number(f.get("noise_multiplier")),
        epsilon_budget: Number(f.get("epsilon_budget")) };
    }
    return policy;
  }

  // Submit handler: build the call from the form, show errors under it, reload on success.
  function wire(id, call) {
    const form = document.getElementById(id);
    if (!form) return;
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const error = form.querySelector(".form-error");
      const button = form.querySelector("button[type=submit]");
      error.hidden = true;
      button.disabled = true;
      try {
        const next = await call(form, new FormData(form));
        AX.toast(AX.t("fed_done"));
        location.assign(next || location.href);
      } catch (e) {
        error.textContent = explain(e, form);
        error.hidden = false;
      } finally { button.disabled = false; }
    });
  }

  function button(id, confirmKey, call) {
    const b = document.getElementById(id);
    if (!b) return;
    b.addEventListener("click", async () => {
      if (confirmKey && !window.confirm(AX.t(confirmKey))) return;
      b.disabled = true;
      try { await call(b.dataset.collab); AX.toast(AX.t("fed_done")); location.reload(); }
      catch (e) { AX.toast(explain(e, { id: id })); }
      finally { b.disabled = false; }
    });
  }

  // The run job: its progress bar follows the live job events; when it ends, the rounds are in.
  function followRun() {
    const box = document.getElementById("fed-job");
    if (!box) return;
    const bar = document.getElementById("fed-job-progress");
    const state = document.getElementById("fed-job-state");
    document.addEventListener("axhub:job", (ev) => {
      const job = ev.detail || {};
      if (!box.dataset.job || job.id !== box.dataset.job) return;
      bar.value = Number(job.progress) || 0;
      state.textContent = AX.t("fed_job_" + job.state);
      if (job.state === "succeeded") setTimeout(() => location.reload(), 500);
      if (job.state === "failed") document.getElementById("fed-job-error").hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    wire("fed-create", async (form, f) => {
      const signals = String(f.get("signals") || "").split(/[\n,]+/).map((s) => s.trim()).filter(Boolean);
      const made = await AX.api("POST", "/federated", { name: f.get("name"), family: f.get("family"), signals,
        target: String(f.get("target") || "").trim() || null });
      return "/federated?c=" + encodeURIComponent(made.id);
    });
    wire("fed-invite", async (form, f) => {
      await AX.api("POST", `/federated/${form.dataset.collab}/invite`, { share_code: String(f.get("share_code")).trim() });
    });
    wire("fed-accept", async (form, f) => {
      const signals = {};
      form.querySelectorAll("input[data-schema]").forEach((i) => { signals[i.dataset.schema] = i.value.trim(); });
      await AX.api("POST", `/federated/${form.dataset.collab}/accept`, { asset: f.get("asset"), signals, policy: policyOf(form) });
    });
    wire("fed-policy", async (form) => {
      await AX.api("PUT", `/federated/${form.dataset.collab}/policy`, policyOf(form));
    });
    wire("fed-run", async (form, f) => {
      const job = await AX.api("POST", `/federated/${form.dataset.collab}/runs`, { rounds: Number(f.get("rounds")) });
      const box = document.getElementById("fed-job");
      box.dataset.job = job.id;
      box.hidden = false;
      document.getElementById("fed-job-state").textContent = AX.t("fed_job_" + job.state);
      return null;
    });
    button("fed-consent", "fed_confirm_consent", (id) => AX.api("POST", `/federated/${id}/share-consent`));
    button("fed-leave", "fed_confirm_leave", (id) => AX.api("POST", `/federated/${id}/leave`));
    followRun();
  });
})();
