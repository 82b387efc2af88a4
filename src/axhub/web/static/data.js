// Upload wizard: the server reads the file with the real engine (encoding, delimiter, decimal
// comma, Korean AM/PM times) and answers with the settings it used, the first rows as parsed and
// counts over the whole file. Every setting and column role is editable here; the edited mapping
// is previewed again, then stored (and saved for the machine's next file).
(function () {
  "use strict";
  const ROWS = 8;
  let current = null;  // the last preview: { sha256, mapping, columns, ... }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  const $ = (id) => document.getElementById(id);
  const asset = () => $("map-asset").value;
  const lang = () => "?lang=" + AX.config.locale;

  function problemsTable(problems) {
    const table = el("table", { class: "table compact row-errors" });
    const head = el("tr");
    [AX.t("file"), AX.t("row"), AX.t("field"), AX.t("problem")].forEach((h) => head.append(el("th", { scope: "col" }, h)));
    const thead = el("thead"); thead.append(head); table.append(thead);
    const tbody = el("tbody");
    problems.slice(0, 200).forEach((p) => {
      const tr = el("tr");
      tr.append(el("td", { translate: "no" }, p.file || ""), el("td", {}, p.row ?? "—"), el("td", { translate: "no" }, p.field ?? "—"), el("td", {}, p.problem || ""));
      tbody.append(tr);
    });
    table.append(tbody);
    return table;
  }

  function fillSettings(preview) {
    const s = preview.settings || {}, m = preview.mapping || {};
    // The select shows what was detected; "automatic" stays selected unless the user chose.
    const set = (id, given, detected) => {
      const input = $(id);
      input.value = given ?? "";
      input.dataset.detected = detected ?? "";
    };
    set("s-encoding", current && current.userSet.encoding ? m.encoding : "", s.encoding);
    set("s-delimiter", current && current.userSet.delimiter ? m.delimiter : "", s.delimiter);
    set("s-decimal", current && current.userSet.decimal ? m.decimal : "", s.decimal);
    $("s-format").value = m.time_format || "";
    $("s-tz").value = m.timezone || s.timezone || AX.config.tz;
    const timeSel = $("s-time");
    timeSel.replaceChildren();
    preview.columns.forEach((c) => timeSel.append(el("option", { value: c.name }, c.name)));
    timeSel.value = s.time_column || m.time_column || "";
    const label = (key, v) => v ? AX.t(key + "_" + ({ "utf-8": "utf8", "utf-8-sig": "bom", cp949: "cp949", "euc-kr": "cp949", ",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe", ".": "point" }[v] || "other"), { v }) : "";
    $("settings-note").textContent = AX.t("detected", {
      encoding: label("enc", s.encoding) || "—", delimiter: label("delim", s.delimiter) || "—",
      decimal: s.decimal === "," ? AX.t("dec_comma") : AX.t("dec_point") });
  }

  function fillPreview(preview) {
    const table = $("preview-table");
    table.replaceChildren();
    const signals = preview.columns.filter((c) => c.role === "signal");
    const thead = el("thead"), tr = el("tr");
    tr.append(el("th", { scope: "col" }, AX.t("line")), el("th", { scope: "col" }, AX.t("time_as_read")));
    signals.forEach((c) => tr.append(el("th", { scope: "col", translate: "no" }, c.display_name || c.signal || c.name)));
    thead.append(tr); table.append(thead);
    const tbody = el("tbody");
    preview.rows.slice(0, ROWS).forEach((r) => {
      const row = el("tr");
      row.append(el("td", {}, r.line));
      const time = el("td", { class: r.time ? "" : "bad" }, r.time ? AX.fmtDate(r.time) + " " : AX.t("unreadable", { raw: r.raw_time || "" }));
      if (r.time) time.append(el("small", { class: "muted", translate: "no" }, "(" + (r.raw_time || "") + ")"));
      row.append(time);
      signals.forEach((c) => { const v = r.values[c.signal]; row.append(el("td", { class: "num" + (v === null || v === undefined ? " bad" : "") }, v === null || v === undefined ? "—" : AX.fmtNum(v, 6))); });
      tbody.append(row);
    });
    table.append(tbody);
    const n = preview.counts;
    const note = $("preview-note");
    note.className = "small " + (n.points ? "" : "warn");
    note.textContent = n.points
      ? AX.t("whole_file", { rows: AX.fmtNum(n.rows_read, 0), points: AX.fmtNum(n.points, 0), rejected: AX.fmtNum(n.rows_rejected, 0),
        first: n.first_time ? AX.fmtDate(n.first_time) : "—", last: n.last_time ? AX.fmtDate(n.last_time) : "—" })
      : AX.t("upload_nothing");
    const box = $("preview-problems");
    box.replaceChildren();
    if (preview.problems && preview.problems.length) {
      box.append(el("p", { class: "warn" }, AX.t("upload_rejected", { n: n.rows_rejected || preview.problems.length })), problemsTable(preview.problems));
    }
    const refused = $("refused");
    refused.hidden = !preview.refused;
    refused.replaceChildren();
    if (preview.refused) {
      refused.append(el("p", {}, AX.t("refused_whole") + " " + preview.refused.message), el("p", {}, preview.refused.hint || ""));
      if (preview.refused.problems.length) refused.append(problemsTable(preview.refused.problems));
    }
    $("upload-btn").disabled = !!preview.refused || !n.points;
  }

  function fillMapping(preview) {
    const tbody = $("mapping-table").querySelector("tbody");
    tbody.replaceChildren();
    $("mapping-note").textContent = preview.mapping_source === "saved" ? AX.t("mapping_saved") : AX.t("mapping_detected");
    preview.columns.forEach((c, i) => {
      if (c.role === "time") return;
      const tr = el("tr", { "data-column": c.name });
      const use = el("input", { type: "checkbox", id: "use-" + i, "aria-label": AX.t("use_column", { name: c.name }) });
      use.checked = c.role === "signal";
      const sig = el("input", { value: c.signal || c.name, "aria-label": AX.t("signal_of", { name: c.name }), translate: "no" });
      const ko = el("input", { value: c.display_name || "", "aria-label": AX.t("korean_of", { name: c.name }) });
      const unit = el("input", { value: c.unit || "", class: "short", "aria-label": AX.t("unit_of", { name: c.name }), translate: "no" });
      const sync = () => { [sig, ko, unit].forEach((x) => { x.disabled = !use.checked; }); };
      use.addEventListener("change", sync); sync();
      const cell = (child) => { const td = el("td"); td.append(child); return td; };
      tr.append(el("td", { translate: "no" }, c.name), cell(use), cell(sig), cell(ko), cell(unit),
        el("td", { class: "muted small", translate: "no" }, (c.sample || []).slice(0, 3).join(" · ")));
      tbody.append(tr);
    });
  }

  // The mapping as edited on the page: settings (empty = detect) and each column's role.
  function editedMapping() {
    const m = Object.assign({}, current.mapping);
    for (const key of ["encoding", "delimiter", "decimal", "time_format"]) {
      const v = (key === "time_format" ? $("s-format") : $("s-" + key)).value;
      if (v) { m[key] = v; current.userSet[key] = true; } else { delete m[key]; current.userSet[key] = false; }
    }
    if ($("s-decimal").value === "") delete m.thousands;
    m.time_column = $("s-time").value || undefined;
    m.timezone = $("s-tz").value.trim() || undefined;
    m.asset = asset();
    m.layout = "wide";
    m.columns = {}; m.ignore = [];
    $("mapping-table").querySelectorAll("tbody tr").forEach((tr) => {
      const name = tr.dataset.column;
      if (name === m.time_column) return;
      const [use, sig, ko, unit] = tr.querySelectorAll("input");
      if (!use.checked) { m.ignore.push(name); return; }
      const col = { signal: sig.value.trim() || name };
      if (unit.value.trim()) col.unit = unit.value.trim();
      if (ko.value.trim()) col.display_name = ko.value.trim();
      m.columns[name] = col;
    });
    m.only_mapped = true;
    return m;
  }

  function show(preview) {
    const userSet = current ? current.userSet : {};
    current = Object.assign(preview, { userSet });
    fillSettings(preview); fillPreview(preview); fillMapping(preview);
    $("wizard").hidden = false;
    // The file's name is the user's data: kept apart from the sentence around it.
    const [before, after] = AX.t("preview_of", { file: "\u0001" }).split("\u0001");
    $("wiz-status").replaceChildren(before, el("span", { translate: "no" }, preview.filename), after || "");
    $("wizard").dataset.state = preview.refused ? "refused" : "ready";
  }

  function fail(e) {
    const out = $("upload-result");
    out.replaceChildren(el("p", { class: "error", role: "alert" }, e.code === "file_refused" || e.code === "invalid_input" ? AX.t("refused_whole") + " " + (e.message || "") : AX.problem(e)));
    if (Array.isArray(e.details) && e.details.length && e.details[0].problem) out.append(problemsTable(e.details));
  }

  async function upload() {
    const file = $("file").files[0];
    if (!file) return;
    $("upload-result").replaceChildren();
    current = null;
    $("wiz-status").textContent = AX.t("reading");
    const fd = new FormData();
    fd.append("file", file); fd.append("asset", asset()); fd.append("rows", "20");
    try { show(await AX.api("POST", "/uploads/preview" + lang(), fd)); }
    catch (e) { $("wizard").hidden = true; fail(e); }
  }

  async function repreview() {
    if (!current) return;
    $("wiz-status").textContent = AX.t("reading");
    try { show(await AX.api("POST", "/uploads/" + current.sha256 + "/preview" + lang(), { asset: asset(), mapping: editedMapping(), rows: 20 })); }
    catch (e) { fail(e); }
  }

  async function store() {
    const btn = $("upload-btn");
    btn.disabled = true; btn.textContent = AX.t("storing");
    const out = $("upload-result");
    out.replaceChildren();
    try {
      const res = await AX.api("POST", "/uploads/" + current.sha256 + "/ingest" + lang(), { asset: asset(), mapping: editedMapping(), save_mapping: true });
      if (!res.points_written) out.append(el("p", { class: "warn", role: "alert", id: "nothing-stored" }, AX.t("upload_nothing")));
      else {
        const ok = el("p", { class: "ok", id: "stored" }, AX.t("stored", { points: AX.fmtNum(res.points_written, 0), rows: AX.fmtNum(res.rows_read, 0),
          signals: res.signals.length, first: res.first_time ? AX.fmtDate(res.first_time) : "—", last: res.last_time ? AX.fmtDate(res.last_time) : "—" }));
        out.append(ok);
        if (res.alerts && res.alerts.length) {
          const warn = el("p", { class: "warn", id: "stored-alerts" }, AX.t("stored_alerts", { n: res.alerts.length }) + " ");
          warn.append(el("a", { href: "/alerts/" + encodeURIComponent(res.alerts[0]), id: "to-alert" }, AX.t("see_alert")));
          out.append(warn);
        }
        const link = el("a", { class: "btn primary", href: "/assets/" + encodeURIComponent(res.asset), id: "to-chart" }, AX.t("see_chart"));
        out.append(link);
      }
      if (res.problems && res.problems.length) out.append(el("p", { class: "warn" }, AX.t("upload_rejected", { n: res.rows_rejected })), problemsTable(res.problems));
      $("wizard").dataset.state = "stored";
    } catch (e) { fail(e); }
    finally { btn.disabled = false; btn.textContent = btn.dataset.label; }
  }

  document.addEventListener("DOMContentLoaded", () => {
    if (!$("upload-form")) return;
    $("upload-btn").dataset.label = $("upload-btn").textContent;
    $("file").addEventListener("change", () => {
      if ($("file").files.length) { $("file-name").textContent = $("file").files[0].name; $("file-name").setAttribute("translate", "no"); }
      upload();
    });
    $("map-asset").addEventListener("change", () => { if ($("file").files.length) upload(); });
    $("settings-form").addEventListener("submit", (ev) => { ev.preventDefault(); repreview(); });
    $("upload-btn").addEventListener("click", store);
  });
})();
