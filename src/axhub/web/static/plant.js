// Plant structure: every form posts JSON to the API route it names (data-endpoint, data-method).
// Empty optional fields are left out of a new record and cleared on an edit; a new company's first
// machine also creates its first site.
(function () {
  "use strict";

  function labelOf(form) {
    return (field) => {
      const input = form.querySelector(`[name="${field}"]`) || document.querySelector(`[form="${form.id}"][name="${field}"]`);
      const label = input && input.labels && input.labels[0];
      return label ? label.textContent.trim() : input && input.getAttribute("aria-label");
    };
  }

  function collect(form, creating) {
    const out = {};
    const fields = [...form.elements, ...(form.id ? document.querySelectorAll(`[form="${form.id}"]`) : [])];
    for (const el of fields) {
      if (!el.name || el.disabled || el.type === "submit") continue;
      const raw = el.value.trim();
      if (el.type === "number") out[el.name] = raw === "" ? null : Number(raw);
      else if (raw !== "" || !creating) out[el.name] = raw === "" && el.name === "parent_id" ? null : raw;
    }
    return out;
  }

  async function submit(form) {
    const method = form.dataset.method || "POST";
    const creating = method === "POST";
    const body = collect(form, creating);
    const error = form.querySelector(".form-error");
    if (error) error.hidden = true;
    try {
      if (creating && form.dataset.kind) {
        // People type names; the API also wants the stable name: the English one, else Korean, else the id.
        body.name = body.name || body.name_en || body.name_ko || body.slug;
      }
      if (body.site_name !== undefined) {
        const site = await AX.api("POST", "/sites", { name: body.site_name, name_ko: AX.config.locale === "ko" ? body.site_name : "",
          name_en: AX.config.locale === "en" ? body.site_name : "", timezone: body.site_timezone || "Asia/Seoul" });
        body.site_id = site.id;
        delete body.site_name; delete body.site_timezone;
      }
      const made = await AX.api(method, form.dataset.endpoint, body);
      AX.toast(AX.t(creating ? "created" : "saved"));
      if (form.dataset.kind === "machine") location.assign("/plant?created=" + encodeURIComponent(made.slug));
      else location.reload();
    } catch (e) {
      const text = AX.problem(e, labelOf(form));
      if (error) { error.textContent = text; error.hidden = false; } else AX.toast(text);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.plant-form").forEach((form) => form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      if (!form.reportValidity()) return;
      submit(form);
    }));
    // The line list follows the chosen site.
    const site = document.getElementById("m-site"), line = document.getElementById("m-line");
    if (site && line) {
      const sync = () => line.querySelectorAll("option[data-site]").forEach((o) => { o.hidden = o.dataset.site !== site.value; });
      site.addEventListener("change", () => { line.value = ""; sync(); });
      sync();
    }
  });
})();
