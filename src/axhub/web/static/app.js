// AX Hub dashboard: shared helpers (locale formatting, API calls with CSRF, live events).
// Plain browser JavaScript, no build step; page scripts use window.AX.
(function () {
  "use strict";
  const config = JSON.parse(document.getElementById("axhub-config").textContent);
  const locale = config.locale === "ko" ? "ko-KR" : "en-GB";

  function t(key, values) {
    let text = config.texts["js." + key] || key;
    for (const [k, v] of Object.entries(values || {})) text = text.split("{" + k + "}").join(String(v));
    return text;
  }

  function fmtDate(value, tz, style) {
    const d = value instanceof Date ? value : new Date(value);
    if (isNaN(d)) return String(value);
    const opts = { timeZone: tz || config.tz || "UTC" };
    if (style === "date") Object.assign(opts, { dateStyle: "medium" });
    else if (style === "time") Object.assign(opts, { timeStyle: "short" });
    else Object.assign(opts, { dateStyle: "medium", timeStyle: "short" });
    try { return new Intl.DateTimeFormat(locale, opts).format(d); }
    catch (e) { return new Intl.DateTimeFormat(locale, { dateStyle: "medium", timeStyle: "short", timeZone: "UTC" }).format(d) + " UTC"; }
  }

  // Plotly draws time strings as wall-clock values: give it the site's local time, so the axis
  // agrees with the tables (stored UTC, shown in the site's time zone).
  const wallFormats = {};
  function wall(value, tz) {
    const zone = tz || config.tz || "UTC";
    const f = wallFormats[zone] || (wallFormats[zone] = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit",
      second: "2-digit", hourCycle: "h23" }));
    const p = {};
    for (const part of f.formatToParts(new Date(value))) p[part.type] = part.value;
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}:${p.second}`;
  }

  // The inverse of wall(): a wall-clock text in the site's zone back to the instant (a Date).
  function unwall(text, tz) {
    const asUtc = Date.parse(String(text).replace(" ", "T").slice(0, 19) + "Z");
    const offset = Date.parse(wall(asUtc, tz).replace(" ", "T") + "Z") - asUtc;
    return new Date(asUtc - offset);
  }

  function fmtNum(value, digits, unit) {
    const n = Number(value);
    if (!isFinite(n)) return "—";
    const d = digits === undefined ? 2 : Number(digits);
    const s = new Intl.NumberFormat(locale, { maximumFractionDigits: d, minimumFractionDigits: 0 }).format(n);
    return unit ? s + "\u202f" + unit : s;
  }

  function fmtPct(value) {
    return new Intl.NumberFormat(locale, { style: "percent", maximumFractionDigits: 1 }).format(Number(value));
  }

  function localise(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      el.textContent = fmtDate(el.getAttribute("datetime"), el.dataset.tz, el.dataset.style);
      el.title = el.getAttribute("datetime");
    });
    (root || document).querySelectorAll("[data-num]").forEach((el) => {
      el.textContent = fmtNum(el.dataset.num, el.dataset.digits, el.dataset.unit);
    });
    (root || document).querySelectorAll("[data-pct]").forEach((el) => { el.textContent = fmtPct(el.dataset.pct); });
  }

  function csrf() {
    const m = document.cookie.match(/(?:^|;\s*)axhub_csrf=([^;]+)/);
    return m ? decodeURIComponent(m[1]) : "";
  }

  class ApiProblem extends Error {
    constructor(status, body) {
      const err = (body && body.error) || {};
      super(err.message || "HTTP " + status);
      this.status = status; this.code = err.code; this.hint = err.hint; this.details = err.details;
    }
  }

  // One place for every call the pages make: same-origin cookies plus the CSRF header.
  async function api(method, path, body) {
    const url = path.startsWith("/api/") || path.startsWith("/web/") ? path : config.api + path;
    const init = { method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf(), Accept: "application/json" } };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const res = await fetch(url, init);
    const text = await res.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!res.ok) throw new ApiProblem(res.status, data);
    return data;
  }

  // An API error in the page's language. The server's own message is English and may name API
  // fields; a page shows a translated sentence for the error's code instead, and names the fields
  // by the labels the user sees (``labelOf`` maps an API field name to a label).
  function problem(e, labelOf) {
    const code = (e && e.code) || "failed";
    const key = config.texts["js.err_" + code] ? "err_" + code : "err_failed";
    const details = Array.isArray(e && e.details) ? e.details : [];
    const names = [...new Set(details.map((d) => d.field || (Array.isArray(d.loc) ? d.loc[d.loc.length - 1] : ""))
      .filter((f) => f && f !== "body"))].map((f) => (labelOf && labelOf(f)) || f);
    return names.length ? t(key) + " " + t("err_fields", { fields: names.join(", ") }) : t(key);
  }

  let toastTimer = null;
  function toast(message, action) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    if (action) {
      const b = document.createElement("button");
      b.className = "btn small"; b.type = "button"; b.textContent = action.label; b.onclick = action.run;
      el.append(" ", b);
    }
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, action ? 15000 : 5000);
  }

  function toastReload() { toast(t("reload") + "?", { label: t("reload"), run: () => location.reload() }); }

  // Live updates: one EventSource per page; events are re-dispatched as DOM events
  // ("axhub:alert", "axhub:job") so each page script listens only for what it shows.
  function connectLive() {
    const indicator = document.getElementById("live-indicator");
    if (!indicator || !window.EventSource) return;
    const set = (state) => { indicator.dataset.state = state; indicator.textContent = t(state === "live" ? "live" : state === "offline" ? "offline" : "connecting"); };
    const source = new EventSource("/web/api/events");
    source.addEventListener("open", () => set("live"));
    source.addEventListener("error", () => set("offline"));
    source.addEventListener("hello", () => set("live"));
    for (const kind of ["alert", "job"]) {
      source.addEventListener(kind, (ev) => {
        let data = null;
        try { data = JSON.parse(ev.data); } catch (e) { return; }
        if (kind === "alert") toast(t("new_alert", { title: data.title || "" }));
        document.dispatchEvent(new CustomEvent("axhub:" + kind, { detail: data }));
      });
    }
    window.addEventListener("beforeunload", () => source.close());
  }

  // Plotly speaks English unless told otherwise: a Korean locale (month names, modebar tooltips)
  // registered once, and every chart's config names the page's locale.
  let plotlyReady = false;
  function plotConfig(extra) {
    if (!plotlyReady && window.Plotly && config.locale === "ko") {
      const months = Array.from({ length: 12 }, (_, i) => (i + 1) + "월");
      window.Plotly.register({ moduleType: "locale", name: "ko", dictionary: {
        "Zoom": "확대", "Pan": "이동", "Box Select": "상자 선택", "Lasso Select": "올가미 선택", "Zoom in": "확대",
        "Zoom out": "축소", "Autoscale": "자동 크기", "Reset axes": "축 초기화", "Download plot as a png": "그림으로 저장",
        "Download plot": "그림으로 저장", "Toggle Spike Lines": "보조선 전환", "Show closest data on hover": "가까운 값 표시",
        "Compare data on hover": "값 비교", "Double-click to zoom back out": "두 번 눌러 원래 크기로",
        "Click to enter Colorscale title": "", "Click to enter X axis title": "", "Click to enter Y axis title": "",
        "Produced with Plotly.js": "" },
        format: { days: ["일요일", "월요일", "화요일", "수요일", "목요일", "금요일", "토요일"], shortDays: ["일", "월", "화", "수", "목", "금", "토"],
          months, shortMonths: months, date: "%Y-%m-%d", decimal: ".", thousands: ",", year: "%Y년", month: "%Y년 %b", dayMonth: "%b %-d일",
          dayMonthYear: "%Y년 %b %-d일" } });
    }
    plotlyReady = true;
    return Object.assign({ displaylogo: false, responsive: true, locale: config.locale }, extra || {});
  }

  window.AX = { config, locale, t, wall, unwall, fmtDate, fmtNum, fmtPct, localise, api, problem, plotConfig, toast, toastReload, csrf };
  document.addEventListener("DOMContentLoaded", () => { localise(document); connectLive(); });
})();
