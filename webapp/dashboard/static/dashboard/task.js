/* One task: GET /api/tasks/<id>/ every 2 s until it ends; retry and cancel through the API. */
"use strict";
(function () {
  const { api, errorText, h, say, ms, when, badge, every } = window.PF;
  const root = document.getElementById("task");
  const id = root.dataset.taskId;
  const path = "tasks/" + encodeURIComponent(id) + "/";
  let last = null, shownOutput = false;
  document.getElementById("input-img").addEventListener("error", (ev) => {
    ev.target.hidden = true;   // expired (PIXELFLEET_INPUT_TTL) or never stored: say so instead of a broken image
    document.getElementById("input-caption").textContent = "Input: no longer stored";
  });
  document.getElementById("output-img").addEventListener("error", (ev) => {
    ev.target.hidden = true;
    document.getElementById("output-caption").textContent = "Result: no longer stored";
  });

  function fact(label, value, key) {
    return [h("dt", { text: label }), h("dd", { "data-fact": key }, value === null || value === undefined || value === "" ? "–" : value)];
  }

  function render(t) {
    const r = t.result || {};
    const failed = t.status === "failed";
    document.getElementById("facts").replaceChildren(...[
      fact("Status", badge(t.status), "status"),
      t.progress && t.status === "started" ? fact("Progress", `step ${t.progress.step} of ${t.progress.total} (${t.progress.filter})`, "progress") : [],
      t.waiting_reason ? fact("Waiting", t.waiting_reason, "waiting_reason") : [],
      fact("Queue", t.queue, "queue"),
      fact("Worker", t.worker || r.worker, "worker"),
      fact("Submitted", when(t.submitted_at), "submitted_at"),
      fact("Queue wait", ms(t.queue_wait_ms), "queue_wait_ms"),
      fact("Processing", ms(t.processing_ms), "processing_ms"),
      fact("Backend", [r.backend, r.device].filter(Boolean).join(" · "), "backend"),
      fact("Worker losses", String(t.losses), "losses"),
      failed || t.failure_type ? fact("Failure type", t.failure_type, "failure_type") : [],
      failed || t.failure_reason ? fact("Reason", t.failure_reason, "failure_reason") : [],
      t.explanation ? fact("Explanation", t.explanation, "explanation") : [],
      t.error && t.error !== t.failure_reason ? fact("Error", t.error, "error") : [],
      r.width ? fact("Result", `${r.width}×${r.height} ${r.format || ""}, ${r.bytes} bytes`, "result") : [],
    ].flat());
    document.getElementById("pipeline").textContent = t.description || "";
    const timings = r.timings || [];
    document.querySelector("#timings tbody").replaceChildren(...(timings.length
      ? timings.map((s, i) => h("tr", {}, h("td", { text: i + 1 }), h("td", { text: s.filter }), h("td", { class: "num", text: ms(s.ms) })))
      : [h("tr", {}, h("td", { colspan: 3, text: t.status === "finished" ? "No timings recorded." : "Timings appear when the task has finished." }))]));
    document.getElementById("retry").hidden = !(t.status === "failed" || t.status === "canceled");
    document.getElementById("cancel").hidden = t.status !== "queued";
    document.getElementById("download").hidden = t.status !== "finished";
    if (t.status === "finished" && !shownOutput) {
      const img = document.getElementById("output-img");
      img.src = `/dashboard/api/${path}output.png?size=480`;
      img.hidden = false;
      document.getElementById("output-caption").textContent = "Result";
      shownOutput = true;
    } else if (t.status !== "finished" && !shownOutput) {
      document.getElementById("output-caption").textContent = "Result: " + (failed ? "none, the task failed" : "not ready");
    }
    const hist = t.history || [];
    document.getElementById("history-card").hidden = !hist.length;
    document.getElementById("history").replaceChildren(...hist.map((e) =>
      h("li", { text: `${when(e.ended_at)}: ${e.status}${e.failure_type ? ` (${e.failure_type}: ${e.failure_reason})` : ""}, ${e.losses || 0} worker losses` })));
  }

  async function refresh() {
    const res = await api(path);
    if (!res.ok) { say(errorText(res), "error"); return; }
    last = res.data;
    render(last);
  }

  async function act(button, method, suffix, done) {
    button.disabled = true;
    const res = await api(path + suffix, { method });
    button.disabled = false;
    if (!res.ok) { say(errorText(res), "error"); return; }
    say(done, "ok");
    shownOutput = false;
    document.getElementById("output-img").hidden = true;
    await refresh();
    if (button.hidden) document.getElementById("main").focus();   // keep keyboard focus on the page
  }
  document.getElementById("retry").addEventListener("click", (ev) => act(ev.target, "POST", "retry/", "Retried: the task is queued again."));
  document.getElementById("cancel").addEventListener("click", (ev) => act(ev.target, "DELETE", "", "Canceled."));

  every(2000, async () => {
    if (!last || !["finished", "failed", "canceled"].includes(last.status)) await refresh();
  });
})();
