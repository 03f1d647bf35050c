// smartqueue dashboard: polls GET /status and GET /dlq, draws everything with plain DOM + canvas.
// The admin token is asked once, when an admin action first needs it, and lives only in this
// page's memory (never in storage, cookies or the URL).
"use strict";

const POLL_MS = 1500;
const WINDOW_S = 300;
const PRIORITIES = ["high", "normal", "low"];
const COLORS = { high: "#d62828", normal: "#2563eb", low: "#7c8591" };
const ROUTE_COLORS = ["#0f766e", "#9333ea", "#c2410c", "#0369a1", "#4d7c0f", "#be185d"];

const state = { token: null, history: [], polling: false };

// ---- small DOM helpers -------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (name === "class") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function setText(id, value) {
  document.getElementById(id).textContent = value;
}

function fmt(value, digits = 0, unit = "") {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) + unit : "–";
}

function ago(unixSeconds) {
  const seconds = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (seconds < 90) return `${seconds.toFixed(0)} s ago`;
  if (seconds < 5400) return `${(seconds / 60).toFixed(0)} min ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

// ---- talking to smartqueue ---------------------------------------------------------------

function headers() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function getJson(path) {
  const response = await fetch(path, { headers: headers(), cache: "no-store" });
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.json();
}

function askToken() {
  const dialog = document.getElementById("token-dialog");
  const input = document.getElementById("admin-token");
  input.value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" && input.value ? input.value : null);
    }, { once: true });
    dialog.showModal();
  });
}

async function adminCall(method, path) {
  if (!state.token) state.token = await askToken();
  if (!state.token) return null;
  const response = await fetch(path, { method, headers: headers() });
  if (response.status === 401 || response.status === 403) {
    state.token = null; // wrong token: ask again next time
    throw new Error("the admin token was refused");
  }
  if (!response.ok) throw new Error(`${method} ${path}: HTTP ${response.status}`);
  return response.status === 204 ? {} : response.json();
}

// ---- queue depth over time ---------------------------------------------------------------

function routeDepths(depth) {
  const routes = {};
  for (const [route, value] of Object.entries(depth.by_route || {})) {
    if (typeof value === "number") routes[route] = value;
    else if (value && typeof value.total === "number") routes[route] = value.total;
    else if (value) routes[route] = PRIORITIES.reduce((sum, p) => sum + (value[p] || 0), 0);
  }
  return routes;
}

function remember(overview) {
  const now = Date.now() / 1000;
  const sample = { t: now, routes: routeDepths(overview.depth) };
  for (const p of PRIORITIES) sample[p] = overview.depth[p] || 0;
  state.history.push(sample);
  while (state.history.length && state.history[0].t < now - WINDOW_S) state.history.shift();
}

function seriesList() {
  const series = PRIORITIES.map((p) => ({ label: p, color: COLORS[p], dash: [], value: (s) => s[p] }));
  const routes = new Set(state.history.flatMap((s) => Object.keys(s.routes)));
  [...routes].sort().forEach((route, i) => series.push({
    label: `route ${route}`, color: ROUTE_COLORS[i % ROUTE_COLORS.length], dash: [5, 4],
    value: (s) => s.routes[route] || 0,
  }));
  return series;
}

function drawChart(thresholds) {
  const canvas = document.getElementById("depth-chart");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth, height = canvas.clientHeight;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  ctx.clearRect(0, 0, width, height);
  const series = seriesList();
  const peak = Math.max(5, ...state.history.flatMap((s) => series.map((line) => line.value(s))));
  const top = Math.ceil(peak * 1.15);
  const box = { left: 34, right: width - 8, top: 8, bottom: height - 20 };
  const now = Date.now() / 1000;
  const x = (t) => box.left + (box.right - box.left) * (1 - (now - t) / WINDOW_S);
  const y = (v) => box.bottom - (box.bottom - box.top) * (v / top);
  drawAxes(ctx, box, top, y);
  if (thresholds) {
    drawThreshold(ctx, box, y, thresholds.warn, top, "#d98a00", "warn");
    drawThreshold(ctx, box, y, thresholds.overloaded, top, "#d62828", "overloaded");
  }
  for (const line of series) drawLine(ctx, line, x, y);
  drawLegend(series);
}

function drawAxes(ctx, box, top, y) {
  ctx.strokeStyle = "#dde1e7";
  ctx.fillStyle = "#6b7383";
  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  const step = Math.max(1, Math.ceil(top / 4));
  for (let v = 0; v <= top; v += step) {
    ctx.beginPath();
    ctx.moveTo(box.left, y(v));
    ctx.lineTo(box.right, y(v));
    ctx.stroke();
    ctx.fillText(String(v), 4, y(v) + 4);
  }
  ctx.fillText(`-${WINDOW_S / 60} min`, box.left, box.bottom + 15);
  ctx.fillText("now", box.right - 22, box.bottom + 15);
}

function drawThreshold(ctx, box, y, value, top, color, label) {
  if (typeof value !== "number" || value > top) return;
  ctx.save();
  ctx.strokeStyle = color;
  ctx.setLineDash([2, 3]);
  ctx.beginPath();
  ctx.moveTo(box.left, y(value));
  ctx.lineTo(box.right, y(value));
  ctx.stroke();
  ctx.fillStyle = color;
  ctx.fillText(label, box.right - ctx.measureText(label).width, y(value) - 3);
  ctx.restore();
}

function drawLine(ctx, line, x, y) {
  if (!state.history.length) return;
  ctx.save();
  ctx.strokeStyle = line.color;
  ctx.lineWidth = 2;
  ctx.setLineDash(line.dash);
  ctx.beginPath();
  state.history.forEach((s, i) => {
    if (i === 0) ctx.moveTo(x(s.t), y(line.value(s)));
    else ctx.lineTo(x(s.t), y(line.value(s)));
  });
  ctx.stroke();
  ctx.restore();
}

function drawLegend(series) {
  const last = state.history[state.history.length - 1];
  const items = series.map((line) => el("span", { "data-series": line.label },
    el("i", { style: `background:${line.color}` }), `${line.label}: ${last ? line.value(last) : 0}`));
  document.getElementById("legend").replaceChildren(...items);
}

// ---- jobs, GPUs, consumers -----------------------------------------------------------------

function renderJobs(overview) {
  setText("count-queued", overview.depth.total);
  setText("count-processing", overview.in_flight);
  setText("count-retrying", overview.delayed);
  setText("count-dead", overview.dlq_depth);
  setText("count-completed", overview.jobs ? overview.jobs.completed : "–");
  setText("count-cancelled", overview.jobs ? overview.jobs.cancelled : "–");
  const t = overview.thresholds;
  const ceilings = Object.entries(t.ceilings).map(([p, v]) => `${p} ${v}`).join(", ");
  setText("thresholds", `warn at ${t.warn}, overloaded at ${t.overloaded}, closed at ${t.open}; ` +
    `per-priority ceilings: ${ceilings}`);
}

function gpuCondition(gpu) {
  const health = gpu.health;
  if (gpu.breaker.state === "open") return { level: "bad", text: "breaker open" };
  if (health && health.down) return { level: "bad", text: "down" };
  if (gpu.breaker.state === "half_open") return { level: "warn", text: "half-open" };
  if (!health) return { level: "warn", text: "not probed yet" };
  if (health.stale) return { level: "warn", text: "signals stale" };
  return { level: "ok", text: "up" };
}

function signalRows(health) {
  if (!health) return [];
  const rows = [["load score", fmt(health.load_score, 1)], ["signal age", fmt(health.age_s, 1, " s")]];
  const sidecar = health.sidecar;
  if (sidecar) {
    rows.push(["GPU util", fmt(sidecar.gpu_util_pct, 0, " %")]);
    rows.push(["VRAM", `${fmt(sidecar.vram_used_mb / 1024, 1)} / ${fmt(sidecar.vram_total_mb / 1024, 1)} GiB`]);
    rows.push(["temperature", fmt(sidecar.temp_c, 0, " °C")]);
  }
  const engine = health.engine;
  if (engine) {
    rows.push(["engine running", fmt(engine.running)], ["engine waiting", fmt(engine.waiting)]);
    if (engine.kv_cache_pct !== null) rows.push(["KV cache", fmt(engine.kv_cache_pct, 0, " %")]);
  }
  if (health.error) rows.push(["probe error", health.error]);
  return rows;
}

function gpuCard(gpu) {
  const condition = gpuCondition(gpu);
  const breaker = gpu.breaker.reason ? `${gpu.breaker.state} (${gpu.breaker.reason})` : gpu.breaker.state;
  const rows = [["slots", `${gpu.slots_in_use} / ${gpu.slots}`], ["breaker", breaker],
    ["routes", gpu.routes.join(", ")], ...signalRows(gpu.health)];
  const used = Math.min(100, (100 * gpu.slots_in_use) / Math.max(1, gpu.slots));
  return el("article", { class: `gpu ${condition.level}`, id: `gpu-${gpu.name}`,
                         "data-gpu": gpu.name, "data-condition": condition.level },
    el("h3", {}, gpu.name, el("span", { class: "state" }, condition.text)),
    el("div", { class: "muted" }, `${gpu.engine} · ${gpu.model}`),
    el("div", { class: "bar", title: "slots in use" }, el("span", { style: `width:${used}%` })),
    el("dl", {}, ...rows.flatMap(([name, value]) => [el("dt", {}, name), el("dd", {}, value)])));
}

function renderGpus(gpus) {
  document.getElementById("gpu-cards").replaceChildren(...gpus.map(gpuCard));
}

function renderConsumers(consumers) {
  const replicas = new Map();
  for (const c of consumers) {
    const row = replicas.get(c.replica) || { total: 0, busy: 0, done: 0 };
    row.total += 1;
    row.busy += c.current_job || c.state === "busy" ? 1 : 0;
    row.done += c.jobs_done;
    replicas.set(c.replica, row);
  }
  const rows = [...replicas.entries()].sort().map(([replica, r]) => el("tr", { "data-replica": replica },
    el("td", {}, replica), el("td", {}, r.total), el("td", {}, r.busy), el("td", {}, r.total - r.busy),
    el("td", {}, r.done)));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "no live consumer")));
  document.getElementById("consumer-rows").replaceChildren(...rows);
}

// ---- dead-letter queue ---------------------------------------------------------------------

function dlqMessage(text) {
  setText("dlq-message", text);
}

async function retryEntry(id) {
  try {
    const answer = await adminCall("POST", `dlq/${encodeURIComponent(id)}/retry`);
    if (answer) dlqMessage(`entry ${id} requeued as job ${answer.job_id}`);
  } catch (error) {
    dlqMessage(`retry failed: ${error.message}`);
  }
  await refresh();
}

async function discardEntry(id) {
  try {
    const answer = await adminCall("DELETE", `dlq/${encodeURIComponent(id)}`);
    if (answer) dlqMessage(`entry ${id} discarded`);
  } catch (error) {
    dlqMessage(`discard failed: ${error.message}`);
  }
  await refresh();
}

function dlqRow(entry) {
  const error = entry.last_error ? `${entry.last_error.type}: ${entry.last_error.message}` : "";
  return el("tr", { "data-entry": entry.id },
    el("td", {}, entry.id), el("td", {}, entry.job_id ?? "(admin only)"), el("td", {}, entry.route),
    el("td", {}, entry.priority), el("td", {}, entry.reason), el("td", {}, entry.attempts),
    el("td", { class: "error" }, error), el("td", {}, ago(entry.dead_at)),
    el("td", {},
      el("button", { class: "retry", onclick: () => retryEntry(entry.id) }, "Retry"), " ",
      el("button", { class: "discard", onclick: () => discardEntry(entry.id) }, "Discard")));
}

function renderDlq(dlq) {
  setText("dlq-total", dlq.total);
  const rows = dlq.entries.map(dlqRow);
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 9, class: "muted" }, "empty")));
  document.getElementById("dlq-rows").replaceChildren(...rows);
}

// ---- the loop --------------------------------------------------------------------------------

function connection(ok, text) {
  const pill = document.getElementById("connection");
  pill.textContent = text;
  pill.className = `pill ${ok ? "ok" : "bad"}`;
}

async function refresh() {
  try {
    const [overview, dlq] = await Promise.all([getJson("status"), getJson("dlq?limit=50")]);
    remember(overview);
    renderJobs(overview);
    drawChart(overview.thresholds);
    renderGpus(overview.gpus);
    renderConsumers(overview.consumers);
    renderDlq(dlq);
    connection(true, "live");
    setText("updated", `updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    connection(false, `not updating: ${error.message}`);
  }
}

async function poll() {
  if (state.polling) return;
  state.polling = true;
  try {
    await refresh();
  } finally {
    state.polling = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  setText("window-min", WINDOW_S / 60);
  poll();
  setInterval(poll, POLL_MS);
});
