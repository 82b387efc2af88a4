// Data page: CSV preview in the browser, column mapping, upload, and row-by-row errors.
(function () {
  "use strict";
  const PREVIEW_ROWS = 8;
  let header = [];

  // Small CSV splitter for the preview only (quoted fields, commas/semicolons); the server
  // parses the whole file with the real ingestion code.
  function splitLine(line, sep) {
    const out = []; let cur = "", quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) { if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (c === '"') quoted = false; else cur += c; }
      else if (c === '"') quoted = true; else if (c === sep) { out.push(cur); cur = ""; } else cur += c;
    }
    out.push(cur);
    return out;
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function preview(text) {
    const lines = text.split(/\r?\n/).filter((l) => l.trim());
    const sep = (lines[0].match(/;/g) || []).length > (lines[0].match(/,/g) || []).length ? ";" : ",";
    header = splitLine(lines[0], sep).map((h) => h.trim());
    const table = document.getElementById("preview-table");
    table.replaceChildren();
    const thead = el("thead"), tr = el("tr");
    header.forEach((h) => tr.append(el("th", { scope: "col" }, h)));
    thead.append(tr); table.append(thead);
    const tbody = el("tbody");
    lines.slice(1, 1 + PREVIEW_ROWS).forEach((l) => {
      const row = el("tr"); splitLine(l, sep).forEach((v) => row.append(el("td", {}, v))); tbody.append(row);
    });
    table.append(tbody);
    document.getElementById("preview-note").textContent = AX.t("rows_preview", { shown: Math.min(PREVIEW_ROWS, lines.length - 1), total: lines.length - 1 });
    const timeSel = document.getElementById("map-time");
    timeSel.replaceChildren();
    const guess = header.findIndex((h) => /^(ts|time|timestamp|date|datetime|시간|시각)$/i.test(h));
    header.forEach((h, i) => { const o = el("option", { value: h }, h); if (i === Math.max(guess, 0)) o.selected = true; timeSel.append(o); });
    const box = document.getElementById("map-signals");
    box.querySelectorAll("label").forEach((l) => l.remove());
    header.forEach((h, i) => {
      const id = "sig-" + i;
      const input = el("input", { type: "checkbox", id, value: h, name: "signals" });
      input.checked = i !== Math.max(guess, 0);
      const label = el("label", { for: id }); label.append(input, " " + h); box.append(label);
    });
    timeSel.onchange = () => box.querySelectorAll("input").forEach((c) => { if (c.value === timeSel.value) c.checked = false; });
    document.getElementById("mapping").hidden = false;
  }

  function showResult(res, ok) {
    const out = document.getElementById("upload-result");
    out.replaceChildren();
    if (!ok) { out.append(el("p", { class: "error", role: "alert" }, AX.t("upload_failed", { msg: res.message }))); }
    const rows = ok ? res.rejects || [] : res.details || [];
    if (ok && !res.points_written) out.append(el("p", { class: "warn", role: "alert", id: "nothing-stored" }, AX.t("upload_nothing")));
    else if (ok) out.append(el("p", { class: "ok" }, AX.t("upload_ok", { good: AX.fmtNum(res.rows_read - res.rows_rejected, 0), rows: AX.fmtNum(res.rows_read, 0), points: AX.fmtNum(res.points_written || 0, 0), dataset: res.dataset ? res.dataset.name + " v" + res.dataset.version : "" })));
    if (Array.isArray(rows) && rows.length) {
      out.append(el("p", { class: "warn", role: "alert" }, AX.t("upload_rejected", { n: rows.length })));
      const table = el("table", { class: "table compact row-errors" });
      const head = el("tr"); [AX.t("row"), AX.t("field"), AX.t("problem")].forEach((h) => head.append(el("th", { scope: "col" }, h)));
      const thead = el("thead"); thead.append(head); table.append(thead);
      const tbody = el("tbody");
      rows.slice(0, 200).forEach((r) => {
        const tr = el("tr");
        tr.append(el("td", {}, r.row ?? "—"), el("td", {}, r.field ?? "—"), el("td", {}, r.problem ?? r.msg ?? ""));
        tbody.append(tr);
      });
      table.append(tbody); out.append(table);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("upload-form");
    const file = document.getElementById("file");
    if (!form) return;
    file.addEventListener("change", async () => {
      document.getElementById("upload-result").replaceChildren();
      if (!file.files.length) return;
      const head = await file.files[0].slice(0, 64 * 1024).text();
      preview(head);
    });
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!file.files.length) return;
      // The API checks every row and keeps the file as the next version of a dataset named
      // after the machine.
      const fd = new FormData();
      fd.append("file", file.files[0]);
      fd.append("kind", "table");
      fd.append("dataset_name", document.getElementById("map-asset").value + "-upload");
      // The readings themselves go into the store on the chosen machine, with the chosen
      // time column, zone and signal columns.
      fd.append("asset", document.getElementById("map-asset").value);
      fd.append("time_column", document.getElementById("map-time").value);
      fd.append("timezone", document.getElementById("map-tz").value);
      const picked = [...document.querySelectorAll("#map-signals input:checked")].map((i) => i.value);
      if (picked.length) fd.append("signals", picked.join(","));
      const btn = document.getElementById("upload-btn");
      btn.disabled = true; btn.textContent = AX.t("uploading");
      try { showResult(await AX.api("POST", "/uploads", fd), true); }
      catch (e) { showResult({ message: e.message, details: e.details }, false); }
      finally { btn.disabled = false; btn.textContent = btn.dataset.label || btn.textContent; }
    });
    const btn = document.getElementById("upload-btn");
    btn.dataset.label = btn.textContent;
  });
})();
