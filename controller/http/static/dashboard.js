// trueup's dashboard: live updates over Server-Sent Events, and the actions.
// Plain JavaScript, no build step, no external code. Every value from the controller is put
// into the page as text (textContent), never as HTML. The API token is kept in
// sessionStorage and sent as "Authorization: Bearer"; no cookie is ever used.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const appName = body.dataset.app || null;
  const TOKEN_KEY = "trueup.token";
  const MAX_LOG_LINES = 2000;
  const $ = (id) => document.getElementById(id);

  // -- small helpers ------------------------------------------------------------------------
  function short(rev) { return rev ? rev.slice(0, 12) : "-"; }
  function when(ts) {
    if (ts === null || ts === undefined) return "-";
    return new Date(ts * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") node.className = v; else node.setAttribute(k, v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function setText(id, text) { const n = $(id); if (n) n.textContent = text; }
  function badge(node, prefix, word) {
    if (!node) return;
    node.textContent = word;
    node.className = "badge " + prefix + word;
  }
  function notice(text, kind) {
    const n = $("notice");
    n.textContent = text;
    n.className = "notice " + (kind || "");
    n.hidden = false;
  }
  function appPath(name) { return "/apps/" + encodeURIComponent(name); }

  // -- the token and the actions -------------------------------------------------------------
  function token() { return sessionStorage.getItem(TOKEN_KEY); }
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const value = $("token").value.trim();
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token").value = "";
    showToken();
  });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showToken();
  });
  function showToken() {
    $("token").placeholder = token() ? "token set (this tab)" : "for actions";
  }
  showToken();

  async function act(what, url, payload) {
    const headers = { "Accept": "application/json" };
    const t = token();
    if (t) headers["Authorization"] = "Bearer " + t;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    let answer;
    try {
      answer = await fetch(url, {
        method: "POST", headers, credentials: "omit", cache: "no-store",
        body: payload === undefined ? undefined : JSON.stringify(payload),
      });
    } catch (err) {
      notice(what + " failed: " + err, "error");
      return null;
    }
    let doc = {};
    try { doc = await answer.json(); } catch (err) { doc = {}; }
    if (answer.status === 401 || answer.status === 403) {
      notice(what + " refused (" + answer.status + "): " + (doc.error || "not authorised") +
        (t ? "" : ". Enter the API token above."), "error");
      return null;
    }
    if (!answer.ok) {
      notice(what + " failed (" + answer.status + "): " + (doc.error || answer.statusText), "error");
      return null;
    }
    notice(what + " accepted.", "ok");
    return doc;
  }

  let pendingRevision = null;
  $("apply").addEventListener("click", () => {
    if (pendingRevision) act("Apply " + short(pendingRevision), "/api/v1/apply", { revision: pendingRevision });
  });
  if (page === "app") {
    const base = "/api/v1/apps/" + encodeURIComponent(appName);
    $("sync-now").addEventListener("click", () =>
      act("Sync now", "/api/v1/reconcile?app=" + encodeURIComponent(appName)));
    $("suspend").addEventListener("click", () => act("Suspend", base + "/suspend"));
    $("resume").addEventListener("click", () => act("Resume", base + "/resume"));
  }

  // -- rendering -----------------------------------------------------------------------------
  function renderController(doc) {
    setText("c-revision", short(doc.revision));
    setText("c-subject", doc.subject || "");
    setText("c-branch", doc.branch || "-");
    setText("c-fetched", when(doc.fetched_at));
    const fe = $("c-fetch-error");
    fe.textContent = doc.fetch_error || ""; fe.hidden = !doc.fetch_error;
    running(doc.running);
    if (doc.last_pass) lastPass(doc.last_pass);
    const ce = $("c-error");
    ce.textContent = doc.last_error || ""; ce.hidden = !doc.last_error;
    renderPending(doc);
  }
  function running(on) {
    const n = $("c-running");
    n.textContent = on ? "running" : "idle";
    n.className = on ? "running" : "idle";
  }
  function lastPass(p) {
    const a = $("c-last-pass");
    a.textContent = when(p.at);
    a.href = p.pass_id ? "/passes/" + p.pass_id : "#";
    setText("c-last-outcome", p.outcome || "");
  }
  function renderPending(doc) {
    const p = doc.pending;
    const box = $("pending");
    if (!p || doc.sync !== "manual") { box.hidden = true; pendingRevision = null; return; }
    pendingRevision = p.revision;
    setText("p-revision", short(p.revision));
    setText("p-subject", p.subject || "");
    setText("p-planned", typeof p.planned_at === "number" ? when(p.planned_at) : (p.planned_at || "-"));
    box.hidden = false;
  }

  function rowCells(a) {
    const change = a.last_change ?
      [el("a", { href: "/passes/" + a.last_change.pass_id }, when(a.last_change.started_at)),
        " " + a.last_change.kind + " " + a.last_change.result] : ["-"];
    const message = a.last_error ? el("span", { class: "error" }, a.last_error) : (a.message || "");
    return [
      el("td", { class: "name" }, el("a", { href: appPath(a.name) }, a.name)),
      el("td", { class: "sync" }, el("span", { class: "badge s-" + a.sync }, a.sync)),
      el("td", { class: "health" }, el("span", { class: "badge h-" + a.health }, a.health)),
      el("td", { class: "ready" }, a.replicas.ready + "/" + a.replicas.desired),
      el("td", { class: "rev" }, el("code", {}, short(a.revision)), " ",
        el("span", { class: "subject" }, a.subject || "")),
      el("td", { class: "change" }, ...change),
      el("td", { class: "message" }, message),
    ];
  }
  function findRow(name) {
    for (const tr of document.querySelectorAll("#apps tbody tr")) {
      if (tr.dataset.app === name) return tr;
    }
    return null;
  }
  function renderApps(doc) {
    const tbody = document.querySelector("#apps tbody");
    const seen = new Set();
    for (const a of doc.apps) {
      seen.add(a.name);
      let tr = findRow(a.name);
      if (!tr) { tr = el("tr"); tr.dataset.app = a.name; tbody.append(tr); }
      tr.replaceChildren(...rowCells(a));
    }
    for (const tr of Array.from(tbody.children)) {
      if (!seen.has(tr.dataset.app)) tr.remove();
    }
    $("no-apps").hidden = doc.apps.length > 0;
  }
  // an "app" event: only the fields it carries change (Progressing carries sync and health)
  function applyApp(a) {
    if (page === "apps") {
      const tr = findRow(a.name);
      if (!tr) { refresh(); return; }
      badge(tr.querySelector(".sync .badge"), "s-", a.sync);
      badge(tr.querySelector(".health .badge"), "h-", a.health);
      if (a.replicas) tr.querySelector(".ready").textContent = a.replicas.ready + "/" + a.replicas.desired;
      if (a.revision !== undefined) tr.querySelector(".rev code").textContent = short(a.revision);
    } else if (page === "app" && a.name === appName) {
      renderAppHeader(a);
    }
  }
  function renderAppHeader(a) {
    badge($("a-sync"), "s-", a.sync);
    badge($("a-health"), "h-", a.health);
    if (a.replicas) setText("a-ready", a.replicas.ready + "/" + a.replicas.desired);
    if (a.revision !== undefined) setText("a-revision", short(a.revision));
    if (a.subject !== undefined) setText("a-subject", a.subject || "");
    if (a.message !== undefined) setText("a-message", a.message || "");
    if (a.last_error !== undefined) {
      const e = $("a-error"); e.textContent = a.last_error || ""; e.hidden = !a.last_error;
    }
  }

  async function getJson(url) {
    const answer = await fetch(url, { headers: { "Accept": "application/json" }, cache: "no-store" });
    if (!answer.ok) { const err = new Error(answer.status); err.status = answer.status; throw err; }
    return answer.json();
  }
  let refreshing = null;
  function refresh() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        const doc = await getJson("/api/v1/overview");
        renderAll(doc);
      } catch (err) { /* the stream's reconnect brings a snapshot */ }
      finally { refreshing = null; }
    })();
    return refreshing;
  }
  function renderAll(doc) {
    renderController(doc);
    if (page === "apps") renderApps(doc);
    if (page === "app") {
      const a = doc.apps.find((x) => x.name === appName);
      if (a) renderAppHeader(a);
      loadPlan(); loadReplicas(); loadActions();
    }
  }

  // -- the app page's plan, replicas and actions -------------------------------------------
  async function loadPlan() {
    const box = $("plan");
    let plan;
    try {
      plan = await getJson("/api/v1/apps/" + encodeURIComponent(appName) + "/plan");
    } catch (err) {
      box.replaceChildren(el("p", { class: "muted" },
        err.status === 404 ? "no pending plan is available" : "the plan could not be read (" + err.message + ")"));
      return;
    }
    const notes = [];
    if (plan.skipped) notes.push(el("p", { class: "muted" }, "Left alone: " + plan.skipped));
    for (const e of plan.errors || []) notes.push(el("p", { class: "error" }, e));
    if (plan.revision === null) {
      box.replaceChildren(el("p", { class: "muted" }, "Nothing approved or pending yet."), ...notes);
      return;
    }
    if (plan.in_sync || !plan.changes || plan.changes.length === 0) {
      box.replaceChildren(el("p", { class: "ok" }, "In sync with " + short(plan.revision) + ": nothing to do."), ...notes);
      return;
    }
    const parts = [el("p", { class: "muted" }, "Against " + short(plan.revision) + ":"), ...notes];
    for (const c of plan.changes) {
      parts.push(el("h3", {}, el("span", { class: "act a-" + c.action }, c.action), " ", c.summary || ""));
      const pre = el("pre", { class: "diff" });
      for (const line of c.diff || []) {
        const cls = line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "";
        pre.append(el("span", { class: cls }, line), "\n");
      }
      parts.push(pre);
    }
    box.replaceChildren(...parts);
  }
  async function loadReplicas() {
    let doc;
    try { doc = await getJson("/api/v1/apps/" + encodeURIComponent(appName) + "/replicas"); }
    catch (err) { return; }
    const rows = doc.replicas.map((r) => el("tr", {},
      el("td", {}, el("code", {}, r.container)), el("td", {}, r.state), el("td", {}, r.health),
      el("td", {}, when(r.started_at)), el("td", {}, r.restarts === null ? "-" : r.restarts),
      el("td", {}, el("code", {}, r.image))));
    if (rows.length === 0) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted" }, "no replicas")));
    document.querySelector("#replicas tbody").replaceChildren(...rows);
  }
  async function loadActions() {
    let doc;
    try { doc = await getJson("/api/v1/apps/" + encodeURIComponent(appName)); } catch (err) { return; }
    const rows = (doc.recent_actions || []).map((a) => el("tr", {},
      el("td", {}, a.at || "-"), el("td", {}, a.action), el("td", { class: "r-" + a.result }, a.result),
      el("td", {}, el("code", {}, short(a.revision))), el("td", {}, a.trigger),
      el("td", { class: "message" }, a.message || "")));
    if (rows.length) document.querySelector("#actions tbody").replaceChildren(...rows);
  }

  // -- the live logs -------------------------------------------------------------------------
  let logs = null;
  let logsPaused = false;
  function logLine(text, cls) {
    const pre = $("logs");
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    pre.append(el("span", { class: cls || "" }, text + "\n"));
    while (pre.childNodes.length > MAX_LOG_LINES) pre.firstChild.remove();
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
  function openLogs(tail) {
    if (logs) logs.close();
    logs = new EventSource("/api/v1/apps/" + encodeURIComponent(appName) + "/logs?follow=1&tail=" + tail);
    logs.addEventListener("reset", () => { if (tail > 0) $("logs").replaceChildren(); tail = 0; });
    logs.addEventListener("line", (ev) => logLine(JSON.parse(ev.data).line));
    logs.addEventListener("dropped", (ev) => {
      const d = JSON.parse(ev.data);
      logLine("[trueup: " + d.lines + " lines dropped, over " + d.max_per_s + " lines/s]", "marker");
    });
    logs.addEventListener("problem", (ev) => logLine("[trueup: " + JSON.parse(ev.data).error + "]", "marker"));
    logs.addEventListener("end", () => logs.close());
  }
  function closeLogs() { if (logs) { logs.close(); logs = null; } }
  if (page === "app") {
    openLogs(100);
    $("logs-toggle").addEventListener("click", () => {
      logsPaused = !logsPaused;
      $("logs-toggle").textContent = logsPaused ? "follow" : "pause";
      if (logsPaused) closeLogs(); else openLogs(0);
    });
    loadPlan();
  }

  // -- the events stream ---------------------------------------------------------------------
  function live(state) {
    const n = $("live");
    n.textContent = state;
    n.className = "live " + state;
  }
  function openEvents() {
    const since = encodeURIComponent(body.dataset.eventId || "");
    const events = new EventSource("/api/v1/events?last_event_id=" + since);
    events.onopen = () => live("live");
    events.onerror = () => live(events.readyState === EventSource.CLOSED ? "offline" : "reconnecting");
    const data = (ev) => JSON.parse(ev.data);
    events.addEventListener("snapshot", (ev) => renderAll(data(ev)));
    events.addEventListener("app", (ev) => applyApp(data(ev)));
    events.addEventListener("app_removed", () => refresh());
    // mid-pass: only the header changes now; pass_finished refreshes the rest
    events.addEventListener("revision", (ev) => setText("c-revision", short(data(ev).revision)));
    events.addEventListener("pass_started", () => running(true));
    events.addEventListener("pass_finished", (ev) => {
      running(false);
      lastPass(data(ev));
      refresh();
    });
    events.addEventListener("pending", () => refresh());
    return events;
  }
  const stream = openEvents();
  window.addEventListener("pagehide", () => { stream.close(); closeLogs(); });
  if (page === "apps" || page === "app") refresh();
})();
