/* Tasks: GET /api/tasks/ with its status filter, search by id, bulk retry of failed tasks. */
"use strict";
(function () {
  const { api, errorText, h, say, ms, when, badge, replaceRows, every, mayAct } = window.PF;
  const form = document.getElementById("filters");
  const statusSel = document.getElementById("status-filter");
  const search = document.getElementById("search");
  const live = document.getElementById("live");
  const params = new URLSearchParams(location.search);
  statusSel.value = params.get("status") || "";
  search.value = params.get("q") || "";

  function row(t) {
    return h("tr", { "data-task": t.task_id, "data-status": t.status },
      h("td", { class: "mono" }, h("a", { href: `/dashboard/tasks/${encodeURIComponent(t.task_id)}/`, text: t.task_id })),
      h("td", {}, badge(t.status)),
      h("td", { class: "mono hide-narrow", text: t.description || "–" }),
      h("td", { class: "mono hide-narrow", text: t.queue || "–" }),
      h("td", { class: "hide-narrow", text: when(t.submitted_at) }),
      h("td", { class: "num", text: ms(t.queue_wait_ms) }),
      h("td", { class: "num", text: ms(t.processing_ms) }),
      h("td", { class: "mono hide-narrow", text: t.worker || "–" }),
      h("td", { text: t.failure_type ? `${t.failure_type}: ${t.failure_reason || ""}` : (t.waiting_reason || "") }));
  }

  async function refresh() {
    const status = statusSel.value, q = search.value.trim();
    const res = await api("tasks/?limit=200" + (status ? "&status=" + encodeURIComponent(status) : ""));
    if (!res.ok) { say(errorText(res), "error"); return; }
    let tasks = res.data.tasks;
    if (q) {
      tasks = tasks.filter((t) => t.task_id.startsWith(q));
      if (!tasks.length && /^[A-Za-z0-9_-]{8,128}$/.test(q)) {   // older than the list: ask for it
        const one = await api("tasks/" + encodeURIComponent(q) + "/");
        if (one.ok && (!status || one.data.status === status)) tasks = [one.data];
      }
    }
    replaceRows(document.querySelector("#tasks tbody"), tasks.map(row),
      q ? `No task with an id starting with “${q}”.` : "No task.", 9);
    document.getElementById("count").textContent = `(${tasks.length} shown)`;
  }

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const next = new URLSearchParams();
    if (statusSel.value) next.set("status", statusSel.value);
    if (search.value.trim()) next.set("q", search.value.trim());
    history.replaceState(null, "", "?" + next.toString());
    refresh();
  });
  statusSel.addEventListener("change", () => form.requestSubmit());

  document.getElementById("retry-failed").addEventListener("click", async (ev) => {
    ev.target.disabled = true;
    const res = await api("tasks/retry-failed/", { method: "POST", json: {} });
    ev.target.disabled = false;
    if (!res.ok) { say("Retry refused: " + errorText(res), "error"); return; }
    say(`Retried ${res.data.retried} failed task${res.data.retried === 1 ? "" : "s"}` +
      (res.data.errors.length ? `; ${res.data.errors.length} could not be retried` : "") + ".", "ok");
    refresh();
  });
  if (!mayAct()) document.getElementById("retry-failed").title = "Sign in to retry";

  let first = true;
  every(2000, async () => { if (live.checked || first) { first = false; await refresh(); } });
})();
