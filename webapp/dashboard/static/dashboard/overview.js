/* Overview: workers, queues, charts, success rate, storage and the scaling advice, every 2 s.
 * Figures come as computed by GET /api/metrics/, /api/workers/status/, /api/queues/ and
 * /api/metrics/history/ — this script only lays them out. */
"use strict";
(function () {
  const { api, errorText, h, say, ms, age, num, badge, replaceRows, every, lineChart } = window.PF;

  function stat(label, value, sub, id) {
    return h("div", { class: "stat", id },
      h("div", { class: "label", text: label }), h("div", { class: "value", text: value }),
      sub ? h("div", { class: "sub", text: sub }) : null);
  }

  function renderSummary(m) {
    const t1 = m.throughput["1m"], lat = m.latency;
    const failedTypes = Object.entries(m.tasks.failed_by_type || {}).map(([k, v]) => `${k} ${v}`).join(", ");
    document.getElementById("summary").replaceChildren(
      h("h2", { class: "sr-only", text: "Summary" }),
      stat("Workers", `${m.active_workers}`, `${m.busy_workers} busy · ${num(m.utilization, 0)}% utilised`, "stat-workers"),
      stat("Queued", `${m.queue_length}`, "tasks waiting, all queues", "stat-queued"),
      stat("Success rate", `${num(m.success_rate, 1)}%`, `${m.tasks.completed} done · ${m.tasks.failed} failed`
        + (failedTypes ? ` (${failedTypes})` : ""), "stat-success"),
      stat("Throughput", `${num(t1.per_second, 2)}/s`, `last minute · ${num(m.throughput["5m"].per_minute, 1)}/min over 5 min`, "stat-throughput"),
      stat("Queue wait, p50", ms(lat.queue_wait_ms.p50), `p95 ${ms(lat.queue_wait_ms.p95)}, last 5 min`, "stat-wait"),
      stat("Processing, p50", ms(lat.processing_ms.p50), `p95 ${ms(lat.processing_ms.p95)}, last 5 min`, "stat-processing"),
      stat("Host", `${num(m.cpu_usage, 0)}% CPU`, `${num(m.memory_usage, 0)}% memory used`, "stat-host"),
      storageStat(m.storage));
  }

  function storageStat(s) {
    if (!s || !s.budget_bytes) return null;
    const mb = (v) => `${num(v / 1048576, 1)} MB`;
    return stat("Storage", `${num(s.used_percent, 0)}% of budget`,
      `${mb(s.used_bytes)} of ${mb(s.budget_bytes)} · ${mb(s.reserved_bytes)} reserved · submits stop at ${mb(s.high_water_bytes)}`
        + (s.full ? " · FULL: new submits get 503" : ""), "stat-storage");
  }

  const ACTION_WORDS = { SCALE_UP: "Scale up", SCALE_DOWN: "Scale down", MAINTAIN: "Keep the fleet as it is" };

  function adviceSentence(a) {
    const head = a.action === "MAINTAIN"
      ? `${ACTION_WORDS.MAINTAIN} (${a.current_workers} worker${a.current_workers === 1 ? "" : "s"})`
      : `${ACTION_WORDS[a.action]} from ${a.current_workers} to ${a.recommended} worker${a.recommended === 1 ? "" : "s"}`;
    return `${head}: ${a.reason}. Urgency ${a.urgency}, confidence ${Math.round(a.confidence * 100)}%.`;
  }

  function renderAdvice(m) {
    const a = m.scaling_recommendation;
    document.getElementById("advice-fleet").replaceChildren(badge(a.action.replace("_", " ").toLowerCase(), "a-" + a.action), " ", adviceSentence(a));
    document.getElementById("advice-classes").replaceChildren(...m.recommendations.map((r) =>
      h("li", { "data-capabilities": r.capabilities },
        h("strong", { text: r.capabilities }), ": ", r.message,
        r.action !== "MAINTAIN" ? [" ", badge(`${r.action.replace("_", " ").toLowerCase()}, ${r.urgency}`, "u-" + r.urgency)] : null)));
  }

  function renderWorkers(workers) {
    const rows = workers.map((w) => h("tr", { "data-worker": w.name },
      h("td", { class: "mono", text: w.name }),
      h("td", { text: w.host || "–" }),
      h("td", { text: (w.capabilities || []).join(", ") }),
      h("td", { text: [w.backend, w.device].filter(Boolean).join(" · ") || "–" }),
      h("td", {}, badge(w.state || "unknown"),
        (w.paused_queues || []).length ? h("div", { class: "sub", text: "paused: " + w.paused_queues.join(", ") }) : null),
      h("td", { class: "mono" }, w.current_task ? h("a", { href: `/dashboard/tasks/${encodeURIComponent(w.current_task)}/`, text: w.current_task }) : "–"),
      h("td", { class: "num", text: w.done }), h("td", { class: "num", text: w.failed }),
      h("td", { class: "num", text: num(w.cpu_percent, 0) }), h("td", { class: "num", text: num(w.rss_mb, 0) }),
      h("td", { class: "num", text: w.heartbeat_age_s === null ? "–" : age(w.heartbeat_age_s) + " ago" })));
    replaceRows(document.querySelector("#workers tbody"), rows, "No live worker: start one with `python -m workers`.", 11);
  }

  function renderQueues(queues) {
    const rows = queues.map((q) => h("tr", { "data-queue": q.name },
      h("th", { scope: "row", class: "mono", text: q.name }),
      h("td", { class: "num depth", text: q.depth }),
      h("td", { class: "num oldest", text: q.oldest_age_s === null ? "–" : age(q.oldest_age_s) }),
      h("td", {}, badge(q.paused ? "paused" : "running"))));
    replaceRows(document.querySelector("#queues tbody"), rows, "No queue.", 4);
  }

  function renderCharts(hist) {
    const b = hist.buckets;
    const done = b.map((x) => x.completed / hist.bucket_s), failed = b.map((x) => x.failed / hist.bucket_s);
    lineChart(document.getElementById("chart-throughput"),
      [{ values: done, cls: "s1" }, { values: failed, cls: "s2" }],
      { windowS: hist.window_s, format: (v) => v.toFixed(v < 10 ? 1 : 0) + "/s",
        label: () => `Tasks per second in ${hist.bucket_s} s buckets; latest ${done[done.length - 1].toFixed(2)} finished, ${failed[failed.length - 1].toFixed(2)} failed per second` });
    const pick = (key, p) => b.map((x) => x[key][p]);
    const series = [{ values: pick("queue_wait_ms", "p50"), cls: "s1" }, { values: pick("queue_wait_ms", "p95"), cls: "s3" },
      { values: pick("processing_ms", "p50"), cls: "s2" }, { values: pick("processing_ms", "p95"), cls: "s4" }];
    lineChart(document.getElementById("chart-latency"), series,
      { windowS: hist.window_s, format: (v) => (v >= 1000 ? (v / 1000).toFixed(1) + "s" : Math.round(v) + ""),
        label: () => "Queue wait and processing time, p50 and p95 per bucket, in milliseconds" });
  }

  async function refresh() {
    const [m, w, q, hist] = await Promise.all([api("metrics/"), api("workers/"), api("queues/"), api("metrics/history/")]);
    const bad = [m, w, q, hist].find((r) => !r.ok);
    if (bad) { say(errorText(bad), "error"); return; }
    renderSummary(m.data);
    renderAdvice(m.data);
    renderWorkers(w.data.workers);
    renderQueues(q.data.queues);
    renderCharts(hist.data);
    say("");
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  }

  every(2000, refresh);
})();
