// steward dashboard: lists tasks, controls them, creates them, and shows one task's history
// and log. Plain JavaScript against the REST API under /api/v1; no build step, no libraries.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "steward.token";
const REFRESH_MS = 2000;
const LIST_QUERY = "limit=100&sort=-created_at";
const MAX_LOG_LINES = 2000;
const CONFIG_TEMPLATES = {
  noop: {},
  sleep: { secs: 30 },
  command: { program: "sh", args: ["-c", "echo hello; echo '@steward {\"progress\": 100}'"] },
};
// Which controls make sense in which status (SPEC §2.1); the server has the last word.
const ACTIONS = {
  pending: ["start", "cancel"],
  running: ["pause", "cancel"],
  paused: ["resume", "cancel"],
  success: ["delete"],
  failed: ["restart", "retry", "delete"],
  cancelled: ["restart", "delete"],
};

const state = {
  selected: null,      // id of the task shown in the detail panel
  logAfter: 0,         // id of the last log line fetched for it
  needToken: false,    // a 401 came back and the token form is showing
  timer: null,
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------------------
// API access

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls the API; answers the parsed JSON body (null for 204) or throws an ApiError. */
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, "network", `cannot reach the server (${e.message})`);
  }
  if (res.status === 401) {
    if (token) sessionStorage.removeItem(TOKEN_KEY);
    askForToken(Boolean(token));
    throw new ApiError(401, "unauthorized", "a valid bearer token is required");
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (_) {
    data = null;
  }
  if (!res.ok) {
    const err = data && data.error;
    throw new ApiError(
      res.status,
      err ? err.code : `http_${res.status}`,
      err ? err.message : `${method} ${path} answered HTTP ${res.status}`,
    );
  }
  return data;
}

function askForToken(rejected) {
  if (state.needToken) return;
  state.needToken = true;
  $("token-form").hidden = false;
  $("token-input").focus();
  const rows = $("task-rows");
  if (!rows.querySelector("tr[data-id]")) {
    rows.replaceChildren(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "Waiting for a token…")));
  }
  if (rejected) showNotice("The stored token was rejected; enter another one.", "error");
}

// ---------------------------------------------------------------------------------------
// Small DOM helpers (text goes in through textContent only, never as HTML)

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? d.toLocaleTimeString() : d.toLocaleString();
}

function fmtPct(p) {
  // Floor to a tenth, so that 99.97 shows as 99.9% and only a finished task shows 100%.
  const v = Math.floor((Number(p) || 0) * 10) / 10;
  return `${Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)}%`;
}

function fmtSecs(s) {
  if (s === null || s === undefined) return "";
  const n = Math.round(Number(s));
  if (n < 60) return `${n}s`;
  if (n < 3600) return `${Math.floor(n / 60)}m ${n % 60}s`;
  return `${Math.floor(n / 3600)}h ${Math.floor((n % 3600) / 60)}m`;
}

function shortId(id) {
  // UUID v7 ids start with a timestamp, so the tail tells tasks apart.
  return `…${String(id).slice(-8)}`;
}

let noticeTimer = null;

function showNotice(text, kind) {
  $("notice-text").textContent = text;
  $("notice").className = `notice ${kind || "info"}`;
  $("notice").hidden = false;
  clearTimeout(noticeTimer);
  if (kind !== "error") noticeTimer = setTimeout(hideNotice, 4000);
}

function hideNotice() {
  $("notice").hidden = true;
}

function showError(e) {
  if (e && e.status === 401) return; // the token form says it
  showNotice(e && e.message ? e.message : String(e), "error");
}

// ---------------------------------------------------------------------------------------
// Task list

function progressBar(task) {
  const pct = Math.max(0, Math.min(100, Number(task.progress) || 0));
  return el("div", { class: `bar status-${task.status}`, title: fmtPct(pct) },
    el("span", { style: `width:${pct}%` }),
    el("em", {}, fmtPct(pct)));
}

function statusBadge(status) {
  return el("span", { class: `badge status-${status}` }, status);
}

function whatCell(task) {
  if (task.status === "pending" && task.waiting_detail) {
    return el("span", { class: "waiting", title: `waiting on: ${task.waiting_on}` }, task.waiting_detail);
  }
  if (task.status === "failed" && task.error) {
    return el("span", { class: "error-text" }, task.error);
  }
  const parts = [task.stage, task.message].filter(Boolean);
  const eta = task.status === "running" && task.eta_secs ? ` (eta ${fmtSecs(task.eta_secs)})` : "";
  return parts.join(" — ") + eta;
}

function actionButtons(task) {
  const cell = el("td", { class: "actions" });
  for (const action of ACTIONS[task.status] || []) {
    if (action === "start" && task.waiting_on !== "start") continue;
    cell.append(el("button", {
      type: "button",
      class: action === "delete" || action === "cancel" ? "danger" : "",
      dataset: { action, id: task.id },
    }, action));
  }
  return cell;
}

function renderTasks(page) {
  const body = $("task-rows");
  body.replaceChildren();
  if (!page.items.length) {
    body.append(el("tr", {}, el("td", { colspan: 8, class: "empty" }, "No tasks match.")));
  }
  for (const t of page.items) {
    const row = el("tr", { dataset: { id: t.id }, class: t.id === state.selected ? "selected" : "" },
      el("td", { title: t.id }, el("strong", {}, t.name), " ", el("small", {}, shortId(t.id))),
      el("td", {}, t.type),
      el("td", {}, statusBadge(t.status), t.attempt > 1 ? el("small", {}, ` #${t.attempt}`) : null),
      el("td", { class: "num" }, t.priority),
      el("td", {}, progressBar(t)),
      el("td", { class: "what" }, whatCell(t)),
      el("td", { title: t.created_at }, fmtTime(t.created_at)),
      actionButtons(t));
    body.append(row);
  }
  const shown = page.items.length;
  $("task-count").textContent = page.total > shown ? `(${shown} of ${page.total})` : `(${page.total})`;
}

async function loadTasks() {
  const status = $("status-filter").value;
  const query = status ? `${LIST_QUERY}&status=${encodeURIComponent(status)}` : LIST_QUERY;
  renderTasks(await api("GET", `/tasks?${query}`));
}

async function loadHealth() {
  const pill = $("health");
  try {
    const res = await fetch("/readyz");
    const body = await res.json();
    pill.textContent = body.status;
    pill.className = `pill ${res.ok ? "ok" : "warn"}`;
  } catch (_) {
    pill.textContent = "unreachable";
    pill.className = "pill bad";
  }
}

// ---------------------------------------------------------------------------------------
// Detail panel: one task, its history and its log

function jsonBlock(v) {
  return el("pre", { class: "json" }, JSON.stringify(v, null, 2));
}

function renderDetail(t) {
  $("detail-title").replaceChildren(`${t.name} `, statusBadge(t.status));
  const rows = [
    ["id", t.id],
    ["type", t.type],
    ["progress", `${fmtPct(t.progress)}${t.stage ? ` — ${t.stage}` : ""}${t.message ? ` — ${t.message}` : ""}`],
    ["eta", t.status === "running" && t.eta_secs ? fmtSecs(t.eta_secs) : null],
    ["waiting", t.waiting_on ? `${t.waiting_on}: ${t.waiting_detail || ""}` : null],
    ["error", t.error],
    ["attempt", `${t.attempt} (max_retries ${t.max_retries}, ${t.retry_backoff} from ${t.retry_delay_secs}s)`],
    ["priority", t.priority],
    ["mutex", t.mutex ? `${t.mutex} (${t.mutex_policy})` : null],
    ["tags", t.tags && t.tags.length ? t.tags.join(", ") : null],
    ["unit", t.unit_id],
    ["source", t.retry_of ? `${t.source} of ${t.retry_of}` : t.source],
    ["created", fmtTime(t.created_at)],
    ["started", fmtTime(t.started_at)],
    ["finished", fmtTime(t.finished_at)],
    ["run time", t.running_secs ? fmtSecs(t.running_secs) : null],
    ["config", jsonBlock(t.config)],
    ["checkpoint", t.checkpoint ? jsonBlock(t.checkpoint) : null],
    ["result", t.result ? jsonBlock(t.result) : null],
  ];
  const dl = $("detail-fields");
  dl.replaceChildren();
  for (const [k, v] of rows) {
    if (v === null || v === undefined || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", { class: k === "error" ? "error-text" : "" }, v));
  }
}

function renderHistory(page) {
  const body = $("history-rows");
  body.replaceChildren();
  for (const h of page.items) {
    body.append(el("tr", {},
      el("td", { title: h.at }, fmtTime(h.at)),
      el("td", {}, h.from || "—"),
      el("td", {}, statusBadge(h.to)),
      el("td", {}, h.by),
      el("td", {}, h.reason || "")));
  }
}

function appendLogs(items) {
  const box = $("log-lines");
  const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
  for (const l of items) {
    box.append(el("div", { class: `log level-${l.level}` },
      el("time", { title: l.timestamp }, fmtTime(l.timestamp)), " ",
      el("b", {}, l.level.padEnd(7)), " ",
      el("span", {}, l.message)));
    state.logAfter = Math.max(state.logAfter, l.id);
  }
  while (box.childElementCount > MAX_LOG_LINES) box.firstElementChild.remove();
  if (atBottom) box.scrollTop = box.scrollHeight;
}

async function loadDetail() {
  const id = state.selected;
  if (!id) return;
  let task;
  try {
    task = await api("GET", `/tasks/${id}`);
  } catch (e) {
    if (e.status === 404) {
      closeDetail();
      return;
    }
    throw e;
  }
  const [history, logs] = await Promise.all([
    api("GET", `/tasks/${id}/history?limit=1000`),
    api("GET", `/tasks/${id}/logs?limit=1000${state.logAfter ? `&after=${state.logAfter}` : ""}`),
  ]);
  if (state.selected !== id) return; // another task was picked meanwhile
  renderDetail(task);
  renderHistory(history);
  appendLogs(logs.items);
}

function selectTask(id) {
  if (state.selected === id) return;
  state.selected = id;
  state.logAfter = 0;
  $("log-lines").replaceChildren();
  $("detail").hidden = false;
  for (const tr of $("task-rows").querySelectorAll("tr")) {
    tr.classList.toggle("selected", tr.dataset.id === id);
  }
  loadDetail().catch(showError);
}

function closeDetail() {
  state.selected = null;
  $("detail").hidden = true;
}

// ---------------------------------------------------------------------------------------
// Actions and creation

async function runAction(action, id) {
  if (action === "delete") {
    if (!confirm(`Delete task ${id}? Its history and logs go with it.`)) return;
    await api("DELETE", `/tasks/${id}`);
    if (state.selected === id) closeDetail();
    showNotice(`Task ${shortId(id)} deleted.`);
  } else {
    const task = await api("POST", `/tasks/${id}/${action}`);
    if (action === "retry") {
      showNotice(`Retry created as a new task ${shortId(task.id)}.`);
      selectTask(task.id);
    }
  }
  await refresh();
}

async function createTask(form) {
  // form.elements, not form.name: a form's own `name` property would shadow the input.
  const field = (n) => form.elements.namedItem(n);
  let config;
  try {
    config = JSON.parse(field("config").value.trim() || "{}");
  } catch (e) {
    throw new ApiError(400, "invalid_json", `config is not valid JSON: ${e.message}`);
  }
  const spec = { type: field("type").value, priority: Number(field("priority").value), config };
  const name = field("name").value.trim();
  if (name) spec.name = name;
  if (!field("autostart").checked) spec.autostart = false;
  const task = await api("POST", "/tasks", spec);
  showNotice(`Created ${task.type} task ${shortId(task.id)}.`);
  field("name").value = "";
  selectTask(task.id);
  await refresh();
}

function setConfigTemplate() {
  const area = $("create-config");
  const current = area.value.trim();
  const isTemplate = !current || Object.values(CONFIG_TEMPLATES)
    .some((t) => JSON.stringify(t, null, 2) === current);
  if (isTemplate) area.value = JSON.stringify(CONFIG_TEMPLATES[$("create-type").value] || {}, null, 2);
}

// ---------------------------------------------------------------------------------------
// Refresh loop

async function refresh() {
  if (state.needToken) return;
  try {
    await Promise.all([loadTasks(), loadDetail()]);
  } catch (e) {
    showError(e);
  }
}

function schedule() {
  clearTimeout(state.timer);
  if (!$("auto-refresh").checked) return;
  state.timer = setTimeout(async () => {
    await Promise.all([refresh(), loadHealth()]);
    schedule();
  }, REFRESH_MS);
}

function wire() {
  $("task-rows").addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (button) {
      ev.stopPropagation();
      button.disabled = true;
      runAction(button.dataset.action, button.dataset.id)
        .catch(showError)
        .finally(() => { button.disabled = false; });
      return;
    }
    const row = ev.target.closest("tr[data-id]");
    if (row) selectTask(row.dataset.id);
  });
  $("create-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const submit = ev.target.querySelector("button[type=submit]");
    submit.disabled = true;
    createTask(ev.target).catch(showError).finally(() => { submit.disabled = false; });
  });
  $("create-type").addEventListener("change", setConfigTemplate);
  $("status-filter").addEventListener("change", refresh);
  $("auto-refresh").addEventListener("change", schedule);
  $("refresh-now").addEventListener("click", () => { refresh(); loadHealth(); });
  $("notice-close").addEventListener("click", hideNotice);
  $("detail-close").addEventListener("click", () => {
    closeDetail();
    for (const tr of $("task-rows").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  });
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $("token-input").value = "";
    $("token-form").hidden = true;
    state.needToken = false;
    hideNotice();
    refresh();
  });
}

wire();
setConfigTemplate();
loadHealth();
refresh().then(schedule);
