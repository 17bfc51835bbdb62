/* Queues: depth and oldest task from GET /api/queues/; pause, resume and empty through the API. */
"use strict";
(function () {
  const { api, errorText, h, say, age, badge, replaceRows, every, mayAct } = window.PF;
  const dialog = document.getElementById("empty-dialog");
  let current = [];

  async function act(queue, action, body) {
    const res = await api(`queues/${encodeURIComponent(queue)}/${action}/`, { method: "POST", json: body || {} });
    if (!res.ok) { say(`${action} refused: ${errorText(res)}`, "error"); return; }
    const words = { pause: "Paused", resume: "Resumed", empty: "Emptied" }[action];
    say(`${words} ${queue}` + (action === "empty" ? `: ${res.data.canceled} task(s) canceled (retry them from Tasks).` : "."), "ok");
    await refresh();
  }

  function askEmpty(q) {
    document.getElementById("empty-name").textContent = q.name;
    document.getElementById("empty-text").textContent =
      `This cancels the ${q.depth} task(s) queued on ${q.name}. They stay on the Tasks page as canceled and can be retried.`;
    dialog.returnValue = "";
    dialog.onclose = () => { if (dialog.returnValue === "confirm") act(q.name, "empty", { confirm: q.name }); };
    dialog.showModal();
  }

  function row(q) {
    const label = q.name;
    return h("tr", { "data-queue": q.name },
      h("th", { scope: "row", class: "mono", text: q.name }),
      h("td", { class: "num depth", text: q.depth }),
      h("td", { class: "num oldest", text: q.oldest_age_s === null ? "–" : age(q.oldest_age_s) }),
      h("td", { class: "state" }, badge(q.paused ? "paused" : "running")),
      h("td", {}, h("div", { class: "actions" },
        q.paused
          ? h("button", { type: "button", class: "primary", "aria-label": `Resume ${label}`, text: "Resume", onclick: () => act(q.name, "resume") })
          : h("button", { type: "button", "aria-label": `Pause ${label}`, text: "Pause", onclick: () => act(q.name, "pause") }),
        h("button", { type: "button", class: "danger", "aria-label": `Empty ${label}`, text: "Empty…", disabled: q.depth === 0,
          onclick: () => askEmpty(q) }))));
  }

  async function refresh() {
    const res = await api("queues/");
    if (!res.ok) { say(errorText(res), "error"); return; }
    current = res.data.queues;
    // Keep the focused button where it is: rebuild only when something shown changed.
    const tbody = document.querySelector("#queues tbody");
    const key = JSON.stringify(current.map((q) => [q.name, q.depth, q.paused, q.oldest_age_s === null ? null : Math.round(q.oldest_age_s)]));
    if (tbody.dataset.key !== key) {
      const active = document.activeElement;
      const focusedRow = active && tbody.contains(active) ? active.closest("tr").dataset.queue : null;
      replaceRows(tbody, current.map(row), "No queue.", 5);
      tbody.dataset.key = key;
      if (focusedRow) {   // the button may have changed (Pause → Resume): focus the row's first one
        const again = tbody.querySelector(`tr[data-queue="${CSS.escape(focusedRow)}"] button`);
        if (again) again.focus();
      }
    }
    document.getElementById("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  }

  if (!mayAct()) say("Read only: sign in to pause, resume or empty a queue.");
  every(2000, refresh);
})();
