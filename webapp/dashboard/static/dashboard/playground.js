/* Playground: a pipeline built from GET /api/filters/ (the registry), run with POST /api/tasks/.
 *
 * The forms are generated from the registry's declarations (type, range, default, choices),
 * and nothing is checked here: the API checks, and its own message is put next to the
 * field it names (error.details: step, param, field). */
"use strict";
(function () {
  const { api, errorText, h, say, ms } = window.PF;
  const form = document.getElementById("playground");
  const stepsBox = document.getElementById("steps");
  const addSel = document.getElementById("add-filter");
  let registry = null, seq = 0;
  const steps = [];          // {uid, spec, el}

  function paramField(uid, p) {
    const id = `step-${uid}-${p.name}`;
    const parts = [p.help, p.min !== null && p.min !== undefined ? `${p.min} to ${p.max}` : null,
      p.default !== null ? `default ${p.default}` : p.nullable ? "empty means none" : null].filter(Boolean);
    const help = h("span", { class: "help", id: id + "-help", text: parts.join("; ") });
    const error = h("span", { class: "field-error", id: id + "-error", role: "alert" });
    const described = `${id}-help ${id}-error`;
    let input;
    if (p.type === "bool") {
      input = h("input", { type: "checkbox", id, name: p.name, checked: !!p.default, "aria-describedby": described });
      return h("div", { class: "param bool", "data-param": p.name }, input, h("label", { for: id, text: p.name }), help, error);
    }
    if (p.type === "choice") {
      input = h("select", { id, name: p.name, "aria-describedby": described },
        p.choices.map((c) => h("option", { value: c, selected: c === p.default, text: c })));
    } else {
      input = h("input", { type: "number", id, name: p.name, inputmode: p.type === "int" ? "numeric" : "decimal",
        min: p.min, max: p.max, step: p.type === "int" ? 1 : "any", value: p.default === null ? "" : p.default,
        placeholder: p.nullable ? "none" : "", "aria-describedby": described });
    }
    return h("div", { class: "param", "data-param": p.name }, h("label", { for: id, text: p.name }), input, help, error);
  }

  function renumber() {
    steps.forEach((s, i) => {
      s.el.querySelector("legend").textContent = `Step ${i + 1}: ${s.spec.name}`;
      s.el.querySelector(".up").setAttribute("aria-label", `Move step ${i + 1} up`);
      s.el.querySelector(".down").setAttribute("aria-label", `Move step ${i + 1} down`);
      s.el.querySelector(".remove").setAttribute("aria-label", `Remove step ${i + 1} (${s.spec.name})`);
      s.el.querySelector(".up").disabled = i === 0;
      s.el.querySelector(".down").disabled = i === steps.length - 1;
    });
  }

  function move(step, delta) {
    const i = steps.indexOf(step), j = i + delta;
    if (j < 0 || j >= steps.length) return;
    [steps[i], steps[j]] = [steps[j], steps[i]];
    stepsBox.replaceChildren(...steps.map((s) => s.el));
    renumber();
    step.el.querySelector(delta < 0 ? ".up" : ".down").focus();
  }

  function addStep(spec) {
    const uid = seq++;
    const step = { uid, spec, el: null };
    step.el = h("fieldset", { class: "step", "data-filter": spec.name, "data-uid": uid },
      h("legend", {}),
      h("p", { class: "help", text: spec.description + (spec.rules.length ? " Rules: " + spec.rules.join("; ") + "." : "") }),
      spec.params.length ? h("div", { class: "params" }, spec.params.map((p) => paramField(uid, p)))
        : h("p", { class: "help", text: "No parameters." }),
      h("p", { class: "field-error step-error", id: `step-${uid}-error`, role: "alert" }),
      h("div", { class: "step-actions" },
        h("button", { type: "button", class: "up", text: "Move up", onclick: () => move(step, -1) }),
        h("button", { type: "button", class: "down", text: "Move down", onclick: () => move(step, 1) }),
        h("button", { type: "button", class: "remove danger", text: "Remove", onclick: () => {
          steps.splice(steps.indexOf(step), 1); step.el.remove(); renumber(); addSel.focus(); } })));
    steps.push(step);
    stepsBox.append(step.el);
    renumber();
    return step;
  }

  function collect() {
    return steps.map((s) => {
      const params = {};
      for (const p of s.spec.params) {
        const input = s.el.querySelector(`#step-${s.uid}-${p.name}`);
        if (p.type === "bool") params[p.name] = input.checked;
        else if (p.type === "choice") params[p.name] = input.value;
        else {
          const raw = input.value.trim();
          if (raw === "") { if (p.nullable) params[p.name] = null; continue; }
          const value = Number(raw);
          params[p.name] = Number.isFinite(value) ? value : raw;   // the API says what is wrong with it
        }
      }
      return { filter: s.spec.name, params };
    });
  }

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((e) => { e.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
  }

  function showAt(errorId, inputId, message) {
    const box = document.getElementById(errorId);
    if (!box) return false;
    box.textContent = message;
    const input = inputId && document.getElementById(inputId);
    if (input) { input.setAttribute("aria-invalid", "true"); input.focus(); }
    return true;
  }

  /* Put the API's message next to the field its details name. */
  function explain(res) {
    const err = (res.data && res.data.error) || {};
    const d = err.details || {};
    const message = err.message || errorText(res);
    let step = Number.isInteger(d.step) ? steps[d.step] : null;
    if (!step && d.filter) step = steps.find((s) => s.spec.name === d.filter) || null;
    if (step && d.param && showAt(`step-${step.uid}-${d.param}-error`, `step-${step.uid}-${d.param}`, message)) return;
    if (step && showAt(`step-${step.uid}-error`, null, message)) return;
    if (["format", "device"].includes(d.field) && showAt(`${d.field}-error`, d.field, message)) return;
    if (d.image || ["invalid_image", "too_many_pixels", "image_too_large"].includes(err.code)) {
      showAt("image-error", "upload", message); return;
    }
    if (err.code === "invalid_steps" && showAt("steps-error", null, message)) return;
    say(message, "error");
  }

  function source() { return form.querySelector('input[name="source"]:checked').value; }

  async function run(ev) {
    ev.preventDefault();
    clearErrors();
    say("");
    const body = { steps: collect(), format: form.format.value, device: form.device.value };
    let res;
    if (source() === "upload") {
      const file = document.getElementById("upload").files[0];
      if (!file) { showAt("image-error", "upload", "Choose an image file, or pick a sample."); return; }
      const data = new FormData();
      data.append("image", file);
      data.append("steps", JSON.stringify(body.steps));
      data.append("format", body.format);
      data.append("device", body.device);
      res = await api("tasks/", { method: "POST", form: data });
    } else {
      res = await api("tasks/", { method: "POST", json: { sample: form.sample.value, ...body } });
    }
    if (!res.ok) { explain(res); return; }
    follow(res.data);
  }

  async function follow(accepted) {
    const id = accepted.task_id, base = `/dashboard/api/tasks/${encodeURIComponent(id)}/`;
    const card = document.getElementById("result-card"), state = document.getElementById("run-state");
    const after = document.getElementById("after");
    card.hidden = false;
    after.hidden = true;
    document.getElementById("after-caption").textContent = "After: running…";
    document.getElementById("before").src = base + "input.png?size=640";
    document.getElementById("task-link").href = `/dashboard/tasks/${encodeURIComponent(id)}/`;
    document.querySelector("#run-timings tbody").replaceChildren();
    state.className = "";
    state.textContent = `Queued on ${accepted.queue}` + (accepted.waiting_reason ? `: ${accepted.waiting_reason}` : "…");
    const deadline = Date.now() + 180000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 400));
      const res = await api(`tasks/${encodeURIComponent(id)}/`);
      if (!res.ok) { state.textContent = errorText(res); state.className = "error"; return; }
      const t = res.data;
      if (t.status === "started" && t.progress) state.textContent = `Running step ${t.progress.step} of ${t.progress.total} (${t.progress.filter}) on ${t.worker}…`;
      else if (t.status === "queued") state.textContent = `Queued on ${t.queue}` + (t.waiting_reason ? `: ${t.waiting_reason}` : "…");
      if (t.status === "finished") {
        const r = t.result || {};
        after.src = base + "output.png?size=640";
        after.hidden = false;
        document.getElementById("after-caption").textContent = `After: ${r.width}×${r.height} ${r.format}, ${r.bytes} bytes`;
        state.textContent = `Finished: ${ms(t.processing_ms)} of processing on ${t.worker} (${[r.backend, r.device].filter(Boolean).join(", ")}), after ${ms(t.queue_wait_ms)} in ${t.queue}.`;
        state.className = "ok";
        document.querySelector("#run-timings tbody").replaceChildren(...(r.timings || []).map((s, i) =>
          h("tr", {}, h("td", { text: i + 1 }), h("td", { text: s.filter }), h("td", { class: "num", text: ms(s.ms) }))));
        return;
      }
      if (t.status === "failed" || t.status === "canceled") {
        state.textContent = `${t.status}: ${t.failure_reason || t.error || ""}`;
        state.className = "error";
        document.getElementById("after-caption").textContent = "After: none";
        return;
      }
    }
    state.textContent = "Still not finished after 3 minutes: follow it on the task's page.";
  }

  function preview() {
    const img = document.getElementById("preview");
    const file = document.getElementById("upload").files[0];
    if (source() === "upload" && file) img.src = URL.createObjectURL(file);
    else img.src = `/dashboard/api/samples/${encodeURIComponent(form.sample.value)}.png?size=320`;
  }

  async function start() {
    const res = await api("filters/");
    if (!res.ok) { say(errorText(res), "error"); return; }
    registry = res.data;
    addSel.replaceChildren(...registry.filters.map((f) => h("option", { value: f.name, text: `${f.name} (${f.capability})` })));
    form.format.replaceChildren(...registry.formats.map((f) => h("option", { value: f, text: f })));
    form.device.replaceChildren(...registry.devices.map((d) => h("option", { value: d, text: d })));
    const describe = () => {
      const spec = registry.filters.find((f) => f.name === addSel.value);
      document.getElementById("filter-help").textContent = spec ? spec.description : "";
    };
    addSel.addEventListener("change", describe);
    describe();
    document.getElementById("add-step").addEventListener("click", () => {
      const spec = registry.filters.find((f) => f.name === addSel.value);
      const step = addStep(spec);
      const first = step.el.querySelector("input, select");
      (first || step.el.querySelector("button")).focus();
    });
    const pixelate = registry.filters.find((f) => f.name === "pixelate");
    if (pixelate) addStep(pixelate);
    addSel.value = pixelate ? "pixelate" : addSel.value;
    describe();
    form.addEventListener("submit", run);
  }

  // At once, not after the registry arrives: a file chosen while the page is still
  // loading must switch the source to it (it used to run the sample instead).
  form.sample.addEventListener("change", () => { form.querySelector('input[value="sample"]').checked = true; preview(); });
  document.getElementById("upload").addEventListener("change", () => { form.querySelector('input[value="upload"]').checked = true; preview(); });
  form.querySelectorAll('input[name="source"]').forEach((r) => r.addEventListener("change", preview));
  start();
})();
