// Jobs page: progress pushed over SSE, logs on demand (followed while the job runs).
(function () {
  "use strict";
  const lastLog = {};

  async function loadLogs(jobId) {
    const pre = document.getElementById("log-" + jobId);
    try {
      const lines = await AX.api("GET", "/web/api/jobs/" + jobId + "/logs?after=" + (lastLog[jobId] || 0));
      if (!lastLog[jobId] && !lines.length) pre.textContent = AX.t("no_logs");
      for (const l of lines) {
        if (!lastLog[jobId]) pre.textContent = "";
        pre.textContent += AX.fmtDate(l.ts, undefined, "time") + "  " + l.level.toUpperCase().padEnd(5) + " " + l.message + "\n";
        lastLog[jobId] = l.id;
      }
    } catch (e) { pre.textContent = AX.t("failed", { msg: AX.problem(e) }); }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("button.show-logs").forEach((b) => b.addEventListener("click", () => {
      const row = b.closest("tr").nextElementSibling;
      const open = row.hidden;
      row.hidden = !open;
      b.setAttribute("aria-expanded", String(open));
      b.textContent = AX.t(open ? "hide_logs" : "show_logs");
      if (open) loadLogs(b.dataset.job);
    }));
  });

  document.addEventListener("axhub:job", (ev) => {
    const job = ev.detail;
    const row = document.querySelector('tr[data-job-id="' + job.id + '"]');
    if (!row) { AX.toastReload(); return; }
    row.querySelector("progress").value = job.progress;
    const pct = row.querySelector(".pct"); pct.dataset.pct = job.progress; pct.textContent = AX.fmtPct(job.progress);
    const badge = row.querySelector(".job-state .badge");
    badge.className = "badge job-" + job.state; badge.textContent = AX.t("job_" + job.state);
    if (!row.nextElementSibling.hidden) loadLogs(job.id);
  });
})();
