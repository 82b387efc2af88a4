// Inspection page: the operating point of an anomaly model. The trade-off (false alarms on the
// calibration good parts vs misses on the calibration defects, one point per threshold) is drawn,
// the inspector moves along it with a slider or by clicking the chart, and saves the point; the
// hub then re-issues the model's bundle with that threshold (POST /models/{id}/operating-point).
(function () {
  "use strict";
  let curve = [];
  let modelId = null;

  function policyText(policy) {
    const key = "op_policy_" + policy;
    const text = AX.t(key);
    return text === key ? String(policy || "") : text;
  }

  function show(i) {
    const p = curve[i];
    if (!p) return;
    document.getElementById("op-slider").value = String(i);
    document.getElementById("op-threshold").textContent = AX.fmtNum(p.threshold, 4);
    document.getElementById("op-far").textContent = p.false_alarm_rate === null ? "—" : AX.fmtPct(p.false_alarm_rate);
    document.getElementById("op-bound").textContent = AX.fmtPct(p.false_alarm_rate_upper_bound);
    document.getElementById("op-miss").textContent = p.miss_rate === null ? AX.t("op_no_defects") : AX.fmtPct(p.miss_rate);
    const chart = document.getElementById("op-chart");
    if (window.Plotly && chart.data) {
      Plotly.restyle(chart, { x: [[xOf(p)]], y: [[yOf(p)]] }, [1]);
    }
    const save = document.getElementById("op-save");
    if (save) save.disabled = false;
  }

  // With labelled calibration defects: misses (x) against false alarms (y). Without: the
  // false-alarm bound against the threshold, since there is nothing to miss.
  const hasDefects = () => curve.some((p) => p.miss_rate !== null);
  const xOf = (p) => (hasDefects() ? p.miss_rate : p.threshold);
  const yOf = (p) => p.false_alarm_rate;

  function nearest(threshold) {
    let best = 0;
    curve.forEach((p, i) => { if (Math.abs(p.threshold - threshold) < Math.abs(curve[best].threshold - threshold)) best = i; });
    return best;
  }

  function current(chosen) {
    const el = document.getElementById("op-current");
    if (!chosen || chosen.threshold === undefined) { el.textContent = ""; return; }
    const values = { threshold: AX.fmtNum(chosen.threshold, 4), policy: policyText(chosen.policy) };
    el.textContent = chosen.chosen_at
      ? AX.t("op_current", { ...values, when: AX.fmtDate(chosen.chosen_at) })
      : AX.t("op_current_trained", values);
  }

  // The one label-free sign of a weak model: how it ranks defects pasted into its own held-out
  // good images (the self-check that chose its features); the hub says whether that is weak.
  function check(selfCheck) {
    const el = document.getElementById("op-check");
    const known = selfCheck && selfCheck.synthetic_auroc !== undefined && selfCheck.synthetic_auroc_std !== undefined;
    el.hidden = !known;
    el.classList.remove("warning");
    if (!known) { el.textContent = ""; return; }
    const weak = selfCheck.weak === true;
    const text = AX.t("op_check", { auroc: AX.fmtPct(selfCheck.synthetic_auroc), std: AX.fmtPct(selfCheck.synthetic_auroc_std) });
    el.textContent = weak ? text + " " + AX.t("op_check_weak") : text;
    if (weak) el.classList.add("warning");
  }

  async function load() {
    modelId = document.getElementById("op-model").value;
    const chart = document.getElementById("op-chart");
    try {
      const body = await AX.api("GET", "/models/" + modelId + "/operating-points");
      curve = body.curve;
      const slider = document.getElementById("op-slider");
      slider.max = String(Math.max(0, curve.length - 1));
      const xTitle = hasDefects() ? AX.t("op_miss") : AX.t("op_threshold");
      const line = {
        x: curve.map(xOf), y: curve.map(yOf), mode: "lines+markers", line: { shape: "hv" },
        name: AX.t("op_far"), hovertemplate: "%{x}<br>%{y:.1%}<extra></extra>",
      };
      const marker = { x: [], y: [], mode: "markers", marker: { size: 14, color: "#d62728" }, hoverinfo: "skip", showlegend: false };
      const layout = {
        margin: { t: 10, r: 10, b: 45, l: 55 }, showlegend: false,
        xaxis: { title: { text: xTitle }, tickformat: hasDefects() ? ".0%" : "" },
        yaxis: { title: { text: AX.t("op_far") }, tickformat: ".0%", rangemode: "tozero" },
      };
      await Plotly.react(chart, [line, marker], layout, AX.plotConfig());
      if (!chart.dataset.bound) {
        chart.on("plotly_click", (ev) => { if (ev.points.length) show(ev.points[0].pointIndex); });
        chart.dataset.bound = "1";
      }
      current(body.chosen);
      check(body.self_check);
      show(nearest(body.chosen && body.chosen.threshold !== undefined ? body.chosen.threshold : curve[0].threshold));
      const save = document.getElementById("op-save");
      if (save) save.disabled = false;
    } catch (e) {
      curve = [];
      chart.replaceChildren();
      check(null);
      document.getElementById("op-current").textContent = AX.t("op_failed", { msg: AX.problem(e) });
    }
  }

  async function save(button) {
    const p = curve[Number(document.getElementById("op-slider").value)];
    if (!p) return;
    button.disabled = true;
    try {
      const body = await AX.api("POST", "/models/" + modelId + "/operating-point", { threshold: p.threshold });
      current(body.chosen);
      AX.toast(AX.t("op_saved", { threshold: AX.fmtNum(body.chosen.threshold, 4) }));
    } catch (e) {
      AX.toast(AX.t("op_save_failed", { msg: AX.problem(e) }));
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const select = document.getElementById("op-model");
    if (!select) return;
    select.addEventListener("change", load);
    document.getElementById("op-slider").addEventListener("input", (ev) => show(Number(ev.target.value)));
    const button = document.getElementById("op-save");
    if (button) button.addEventListener("click", () => save(button));
    load();
  });
})();
