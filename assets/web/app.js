// restock web UI: buttons call the JSON API; pages poll one small JSON
// endpoint and update what changed. Untrusted text is only ever set with
// textContent, never parsed as HTML.
"use strict";
const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
const page = document.body.dataset.page;
const FINAL = ["succeeded", "failed", "skipped", "upstream_failed"];

async function api(method, url, body) {
  const r = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.detail || r.statusText);
  return j;
}

function flash(msg, bad) {
  const f = document.getElementById("flash");
  if (!f) return;
  f.textContent = msg;
  f.className = bad ? "bad" : "good";
}

function el(tag, cls, attrs) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  return e;
}

function square(r) {
  return el("a", "sq st-" + r.state, {
    href: "/runs/" + encodeURIComponent(r.dag_run_id),
    title: r.ds + ": " + r.state,
  });
}

async function act(target) {
  const a = target.dataset.action;
  const dag = target.dataset.dag;
  const run = target.dataset.run;
  const base = "/api/v1/";
  if (a === "trigger") {
    const d = target.querySelector('[name="logical_date"]').value;
    const j = await api("POST", base + "dags/" + encodeURIComponent(dag) + "/runs", d ? { logical_date: d } : {});
    location.href = "/runs/" + encodeURIComponent(j.dag_run_id);
  } else if (a === "backfill") {
    const from = target.querySelector('[name="from"]').value;
    const to = target.querySelector('[name="to"]').value;
    const j = await api("POST", base + "dags/" + encodeURIComponent(dag) + "/backfill", { from, to });
    flash(j.dag_run_ids.length + " backfill run(s) queued");
  } else if (a === "pause") {
    const paused = target.dataset.paused === "true";
    const j = await api("POST", base + "dags/" + encodeURIComponent(dag) + "/pause", { is_paused: !paused });
    target.dataset.paused = String(j.is_paused);
    target.textContent = j.is_paused ? "Unpause" : "Pause";
    flash(j.is_paused ? "paused" : "unpaused");
  } else if (a === "cancel") {
    await api("POST", base + "runs/" + encodeURIComponent(run) + "/cancel");
    flash("cancelling");
  } else if (a === "rerun-failed") {
    const j = await api("POST", base + "runs/" + encodeURIComponent(run) + "/rerun_failed");
    flash("rerunning " + j.cleared.join(", "));
    poll();
  } else if (a === "override") {
    await addOverride(target, dag);
  } else if (a === "override-edit") {
    await editOverride(target.dataset.id, dag);
  } else if (a === "override-cancel") {
    endEdit();
  } else if (a === "withdraw") {
    await withdrawOverride(target, dag);
  } else if (a === "clear") {
    const j = await api("POST", base + "runs/" + encodeURIComponent(run) + "/clear", {
      task_id: target.dataset.task,
      downstream: target.dataset.downstream === "true",
    });
    flash("cleared " + j.cleared.join(", "));
    poll();
  }
}

// ---- overrides: one row per submit; the API's message is the error ----
function overrideRow(target) {
  const v = (n) => target.querySelector('[name="' + n + '"]').value.trim();
  const key = {};
  for (const k of target.querySelectorAll('[name="key"]')) key[k.dataset.key] = k.value.trim();
  const stamp = new Date().toISOString().replace(/[-:.TZ]/g, "").slice(0, 14);
  const row = {
    id: "ui-" + stamp + "-" + Math.random().toString(36).slice(2, 6),
    kind: v("kind"), key, author: v("author"), reason: v("reason"),
  };
  if (v("start_date")) row.start_date = v("start_date");
  if (v("end_date")) row.end_date = v("end_date");
  if (v("value") !== "") row.value = Number(v("value"));
  return row;
}

function cell(text, cls) {
  const td = el("td", cls);
  td.textContent = text == null ? "" : String(text);
  return td;
}

const overridesUrl = (dag, id) =>
  "/api/v1/dags/" + encodeURIComponent(dag) + "/overrides" + (id === undefined ? "" : "/" + encodeURIComponent(id));

function overrideCells(tr, o) {
  const series = Object.entries(o.key).map(([k, v]) => k + "=" + v).join(", ");
  tr.append(cell(o.id), cell(o.kind), cell(series), cell(o.start_date), cell(o.end_date),
    cell(o.value, "num"), cell(o.author), cell(o.reason, "reason"));
}

// The row's buttons: Edit loads it into the form; Withdraw sends who and why.
function changeCell(o, dag) {
  const td = el("td");
  if (!o.id) return td;
  const edit = el("button", "override-edit", { type: "button", "data-action": "override-edit", "data-dag": dag, "data-id": o.id });
  edit.textContent = "Edit";
  const form = el("form", "withdraw", { "data-action": "withdraw", "data-dag": dag, "data-id": o.id, novalidate: "" });
  form.append(el("input", "", { name: "author", type: "text", placeholder: "who", "aria-label": "who withdraws" }),
    el("input", "", { name: "reason", type: "text", placeholder: "why", "aria-label": "why" }));
  const b = el("button", "", { type: "submit" });
  b.textContent = "Withdraw";
  form.append(b);
  td.append(edit, form);
  return td;
}

async function listOverrides(dag) {
  const j = await api("GET", overridesUrl(dag));
  const rows = j.overrides.map((o) => {
    const tr = el("tr", "", { "data-id": o.id || "" });
    overrideCells(tr, o);
    tr.append(cell(o.file + " row " + o.row, "muted"), changeCell(o, dag));
    return tr;
  });
  document.querySelector("#overrides tbody").replaceChildren(...rows);
  document.getElementById("override-count").textContent = String(j.total_entries);
  const gone = j.withdrawn.map((o) => {
    const tr = el("tr", "", { "data-id": o.id || "" });
    overrideCells(tr, o);
    tr.append(cell(o.withdrawn_by), cell(o.withdrawn_at), cell(o.withdrawn_reason, "reason"));
    return tr;
  });
  document.querySelector("#withdrawn tbody").replaceChildren(...gone);
  document.getElementById("withdrawn-count").textContent = String(j.withdrawn.length);
}

// Editing: the form holds the row and its submit replaces it (PUT).
async function editOverride(id, dag) {
  const j = await api("GET", overridesUrl(dag));
  const o = j.overrides.find((x) => x.id === id);
  if (!o) throw new Error("override " + id + " is no longer stored");
  const f = document.getElementById("override-form");
  const set = (n, v) => { f.querySelector('[name="' + n + '"]').value = v == null ? "" : String(v); };
  set("kind", o.kind);
  for (const k of f.querySelectorAll('[name="key"]')) k.value = o.key[k.dataset.key] || "";
  set("start_date", o.start_date); set("end_date", o.end_date); set("value", o.value);
  set("author", ""); set("reason", o.reason);
  f.dataset.editing = id;
  document.getElementById("override-heading").textContent = "Edit override " + id;
  document.getElementById("override-submit").textContent = "Save override";
  document.getElementById("override-cancel").hidden = false;
  f.querySelector('[name="author"]').focus();
}

function endEdit() {
  const f = document.getElementById("override-form");
  delete f.dataset.editing;
  document.getElementById("override-heading").textContent = "New override";
  document.getElementById("override-submit").textContent = "Add override";
  document.getElementById("override-cancel").hidden = true;
}

async function addOverride(target, dag) {
  const err = document.getElementById("override-error");
  err.textContent = "";
  const row = overrideRow(target);
  const editing = target.dataset.editing;
  if (editing) row.id = editing;
  try {
    if (editing) await api("PUT", overridesUrl(dag, editing), row);
    else await api("POST", overridesUrl(dag), { rows: [row] });
  } catch (e) {
    err.textContent = e.message;
    throw e;
  }
  target.querySelector('[name="reason"]').value = "";
  if (editing) endEdit();
  flash("override " + row.id + (editing ? " replaced" : " stored") + "; the next run applies it");
  await listOverrides(dag);
}

async function withdrawOverride(target, dag) {
  const v = (n) => target.querySelector('[name="' + n + '"]').value.trim();
  const err = document.getElementById("override-error");
  err.textContent = "";
  const id = target.dataset.id;
  try {
    await api("DELETE", overridesUrl(dag, id), { author: v("author"), reason: v("reason") });
  } catch (e) {
    err.textContent = e.message;
    throw e;
  }
  flash("override " + id + " withdrawn; the next run does not apply it");
  await listOverrides(dag);
}

function onAction(e) {
  const t = e.target.closest("[data-action]");
  if (!t) return;
  if (e.type === "click" && t.tagName === "FORM") return;
  e.preventDefault();
  act(t).catch((err) => flash(err.message, true));
}
document.addEventListener("click", onAction);
document.addEventListener("submit", onAction);

// ---- pollers: one request per page per tick ----
let timer = null;
function every(ms, f) {
  const tick = async () => {
    try { await f(); } catch (e) { /* keep polling */ }
    timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
}

async function pollDags() {
  const j = await api("GET", "/api/v1/dags?limit=100");
  for (const d of j.dags) {
    const row = document.querySelector('tr[data-dag="' + CSS.escape(d.dag_id) + '"]');
    if (!row) continue;
    const sq = row.querySelector(".squares");
    sq.replaceChildren(...d.recent_runs.map(square));
    row.querySelector(".paused").textContent = d.is_paused ? "paused" : "active";
  }
}

async function pollGrid() {
  const b = document.body.dataset;
  const j = await api("GET", "/api/v1/dags/" + encodeURIComponent(b.dag) + "/grid?limit=" + b.limit + "&offset=" + b.offset);
  const head = el("tr");
  head.append(Object.assign(el("th"), { textContent: "task \\ run" }));
  for (const r of j.runs) { const th = el("th"); th.append(square(r)); head.append(th); }
  const body = j.tasks.map((t, ti) => {
    const tr = el("tr");
    tr.append(Object.assign(el("th"), { textContent: t }));
    j.runs.forEach((r, ri) => {
      const st = j.cells[ri][ti];
      const td = el("td");
      td.append(el("span", "cell st-" + (st || "none"), { title: r.ds + " " + t + ": " + (st || "no record") }));
      tr.append(td);
    });
    return tr;
  });
  const g = document.getElementById("grid");
  g.tHead.replaceChildren(head);
  g.tBodies[0].replaceChildren(...body);
}

async function pollRun() {
  const run = document.body.dataset.run;
  const j = await api("GET", "/api/v1/runs/" + encodeURIComponent(run) + "/tasks");
  const rs = document.getElementById("run-state");
  rs.textContent = j.dag_run.state;
  rs.className = "badge st-" + j.dag_run.state;
  for (const t of j.task_instances) {
    const row = document.querySelector('tr[data-task="' + CSS.escape(t.task_id) + '"]');
    if (!row) continue;
    const st = row.querySelector(".state");
    st.textContent = t.state || "—";
    st.className = "state badge st-" + (t.state || "none");
    const tries = row.querySelector(".try");
    const links = [];
    for (let n = 1; n <= t.try_number; n++) {
      const a = el("a", "log-link", { href: "/runs/" + encodeURIComponent(run) + "/tasks/" + encodeURIComponent(t.task_id) + "/tries/" + n });
      a.textContent = String(n);
      links.push(a, document.createTextNode(" "));
    }
    tries.replaceChildren(...links);
    row.querySelector(".dur").textContent = t.duration == null ? "" : t.duration.toFixed(1) + " s";
    row.querySelector(".err").textContent = t.error || "";
  }
}

// ---- log viewer: chunked pages, tail and follow ----
const log = { offset: 0, next: 0, size: 0, history: [] };
async function showLog(params, append) {
  const b = document.body.dataset;
  const j = await api("GET", b.log + "?" + params);
  const pre = document.getElementById("log");
  if (append) {
    pre.append(document.createTextNode(j.content));
    // Keep the page light: at most ~2 MB of text in the document.
    while (pre.textContent.length > 2e6 && pre.firstChild) pre.firstChild.remove();
  } else {
    pre.textContent = j.content;
  }
  log.offset = append ? log.offset : j.offset;
  log.next = j.next_offset;
  log.size = j.size;
  document.getElementById("log-size").textContent = j.size;
  document.getElementById("log-pos").textContent = "bytes " + log.offset + "–" + log.next + " of " + j.size + (j.running ? " (running)" : "");
  return j;
}

function initLog() {
  const chunk = Number(document.body.dataset.chunk);
  showLog("offset=0&limit=" + chunk);
  document.addEventListener("click", (e) => {
    const b = e.target.closest("[data-log-nav]");
    if (!b) return;
    const nav = b.dataset.logNav;
    if (nav === "first") { log.history = []; showLog("offset=0&limit=" + chunk); }
    if (nav === "next" && log.next < log.size) { log.history.push(log.offset); showLog("offset=" + log.next + "&limit=" + chunk); }
    if (nav === "prev" && log.history.length) showLog("offset=" + log.history.pop() + "&limit=" + chunk);
    if (nav === "tail") showLog("tail=" + chunk);
  });
  every(1500, async () => {
    if (!document.getElementById("follow").checked) return;
    if (log.next < log.size || document.body.dataset.running === "true") {
      const j = await showLog("offset=" + log.next + "&limit=" + chunk, true);
      window.scrollTo(0, document.body.scrollHeight);
      document.body.dataset.running = String(j.running);
    }
  });
}

function poll() {
  if (page === "dags") return pollDags();
  if (page === "dag") return pollGrid();
  if (page === "run") return pollRun();
}

if (page === "log") initLog();
else if (page === "dags" || page === "dag" || page === "run") every(2000, poll);
