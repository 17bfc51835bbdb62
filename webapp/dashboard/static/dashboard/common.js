/* Pixelfleet dashboard: what every page shares. Plain JavaScript, no library.
 *
 * PF.api() talks to /dashboard/api/ (the API's own views behind the session sign-in),
 * sending the CSRF token on every action. Everything shown comes from Redis through the
 * API, so it is put on the page as text (textContent), never as HTML.
 */
"use strict";
(function () {
  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  function csrfToken() {
    return cookie("csrftoken") || document.querySelector('meta[name="csrf-token"]').content;
  }

  /* fetch /dashboard/api/<path>: {ok, status, data}; a network failure reads like an API error. */
  async function api(path, opts = {}) {
    const method = opts.method || "GET";
    const init = { method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRFToken"] = csrfToken();
    if (opts.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(opts.json);
    } else if (opts.form) {
      init.body = opts.form;
    }
    let res;
    try {
      res = await fetch("/dashboard/api/" + path, init);
    } catch (err) {
      return { ok: false, status: 0, data: { error: { code: "network", message: "The API cannot be reached: " + err.message } } };
    }
    let data;
    try {
      data = await res.json();
    } catch (err) {
      data = { error: { code: "bad_response", message: "HTTP " + res.status + " without a JSON body" } };
    }
    return { ok: res.ok, status: res.status, data };
  }

  function errorText(res) {
    const e = res.data && res.data.error;
    return e && e.message ? e.message : "HTTP " + res.status;
  }

  /* h("td", {class: "num", text: "3"}, child…): a DOM element, text only. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "text") el.textContent = String(value);
      else if (key === "class") el.className = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function say(message, kind) {
    const box = document.getElementById("status");
    if (!box) return;
    box.textContent = message || "";
    box.className = "status" + (kind ? " " + kind : "");
  }

  function ms(v) {
    if (v === null || v === undefined) return "–";
    if (v < 10) return v.toFixed(1) + " ms";
    if (v < 1000) return Math.round(v) + " ms";
    return (v / 1000).toFixed(2) + " s";
  }

  function age(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " min";
  }

  function num(v, digits) {
    if (v === null || v === undefined) return "–";
    return Number(v).toFixed(digits || 0);
  }

  function when(iso) {
    if (!iso) return "–";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleTimeString();
  }

  function badge(text, cls) {
    return h("span", { class: "badge " + (cls || "s-" + text), text });
  }

  function replaceRows(tbody, rows, emptyText, columns) {
    tbody.replaceChildren(...(rows.length ? rows
      : [h("tr", {}, h("td", { colspan: columns, class: "muted", text: emptyText }))]));
  }

  /* Repeat `fn` every `period` ms, never overlapping, slower while the tab is hidden. */
  function every(period, fn) {
    async function tick() {
      try { await fn(); } catch (err) { say("Refresh failed: " + err.message, "error"); }
      setTimeout(tick, document.hidden ? period * 5 : period);
    }
    tick();
  }

  /* A line chart as inline SVG. series: [{values: [number|null], cls: "s1", label}]. */
  function lineChart(container, series, opts) {
    const W = 600, H = 190, L = 46, R = 8, T = 10, B = 24;
    const n = Math.max(1, ...series.map((s) => s.values.length));
    const all = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
    const top = niceMax(all.length ? Math.max(...all) : 0);
    const x = (i) => L + (n === 1 ? 0 : (i * (W - L - R)) / (n - 1));
    const y = (v) => T + (H - T - B) * (1 - v / top);
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", opts.label(series));
    const add = (tag, attrs, text) => {
      const el = document.createElementNS(ns, tag);
      for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
      if (text !== undefined) el.textContent = text;
      svg.append(el);
      return el;
    };
    for (const frac of [0, 0.5, 1]) {
      add("line", { class: "axis", x1: L, x2: W - R, y1: y(top * frac), y2: y(top * frac) });
      add("text", { x: L - 4, y: y(top * frac) + 4, "text-anchor": "end" }, opts.format(top * frac));
    }
    const minutes = (opts.windowS || 900) / 60;
    for (const frac of [0, 1 / 3, 2 / 3, 1]) {
      const label = frac === 1 ? "now" : "-" + Math.round(minutes * (1 - frac)) + " min";
      add("text", { x: L + frac * (W - L - R), y: H - 6, "text-anchor": frac === 0 ? "start" : frac === 1 ? "end" : "middle" }, label);
    }
    for (const s of series) {
      const points = s.values.map((v, i) => (v === null || v === undefined ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`));
      // A gap (no sample in a bucket) breaks the line instead of drawing it through zero.
      let run = [];
      const flush = () => {
        if (run.length === 1) {   // a lone bucket with samples: a dot, since a one-point line draws nothing
          const [cx, cy] = run[0].split(",");
          add("circle", { class: s.cls, cx, cy, r: 3 });
        } else if (run.length) {
          add("polyline", { class: s.cls, points: run.join(" ") });
        }
        run = [];
      };
      for (const p of points) { if (p === null) flush(); else run.push(p); }
      flush();
    }
    container.replaceChildren(svg);
  }

  function niceMax(v) {
    if (!(v > 0)) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function mayAct() { return document.body.dataset.mayAct === "1"; }

  window.PF = { api, errorText, h, say, ms, age, num, when, badge, replaceRows, every, lineChart, mayAct };
})();
