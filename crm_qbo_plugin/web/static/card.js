// The books card (QuickBooks or Xero, named by data-books): renders from the plugin's JSON API (/integrations/quickbooks/api/…).
// This module holds the shared helpers (window.qboCard) and the Overview, Records, History and
// Errors sections; the Settings section is card-settings.js, which registers window.qboCardSettings.
"use strict";
(function () {
  const card = document.getElementById("card");
  if (!card) return;
  const api = card.dataset.api;
  const BOOKS = card.dataset.books || "QuickBooks";  // the accounting system's name, from wording.books_of
  let csrf = card.dataset.csrf;
  const PAGE = 10;
  const records = { status: "failed", q: "", offset: 0, total: 0 };
  const $ = (id) => document.getElementById(id);
  const text = (value) => (value === null || value === undefined ? "" : String(value));

  // One time format everywhere: relative within a day ("2 min ago"), else the viewer's local
  // date and time with its zone; the full local time with zone is always the tooltip.
  const FULL = { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short" };
  function fullTime(iso) { return new Date(iso).toLocaleString(undefined, FULL); }
  function whenText(iso) {
    if (!iso) return "—";
    const seconds = (Date.now() - new Date(iso).getTime()) / 1000;
    if (seconds >= -60 && seconds < 45) return "just now";
    if (seconds >= 45 && seconds < 3600) return Math.max(1, Math.round(seconds / 60)) + " min ago";
    if (seconds >= 3600 && seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return fullTime(iso);
  }
  function timeEl(iso) {
    const el = document.createElement("time");
    if (!iso) { el.textContent = "—"; return el; }
    el.dateTime = iso;
    el.dataset.when = "";
    el.textContent = whenText(iso);
    el.title = fullTime(iso);
    return el;
  }
  function retime() {
    document.querySelectorAll("time[data-when]").forEach((el) => {
      el.textContent = whenText(el.dateTime);
      el.title = fullTime(el.dateTime);
    });
  }

  // The periodic refresh re-renders a list only when its data changed, so keyboard focus on one
  // of its links or buttons is not lost every few seconds (relative times update in place).
  const rendered = {};
  function changed(name, data) {
    const key = JSON.stringify(data);
    if (rendered[name] === key) return false;
    rendered[name] = key;
    return true;
  }

  function showError(message) {
    const box = $("api-error");
    box.textContent = message;
    box.classList.toggle("hidden", !message);
  }

  async function call(method, path, body, withHeaders) {
    const response = await fetch(api + path, {
      method,
      credentials: "same-origin",
      headers: Object.assign({ Accept: "application/json" },
        body !== undefined ? { "Content-Type": "application/json" } : {},
        method !== "GET" ? { "X-CSRF-Token": csrf } : {}),
      body: body !== undefined ? JSON.stringify(body) : undefined,
    });
    csrf = response.headers.get("X-CSRF-Token") || csrf;
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) {
      const fields = data && data.fields ? " — " + Object.entries(data.fields).map(([k, v]) => k + ": " + v).join("; ") : "";
      throw new Error((data && data.error ? data.error : "Request failed (" + response.status + ")") + fields);
    }
    return withHeaders ? { data, headers: response.headers } : data;
  }

  // While a save is in flight the periodic refresh must not re-render the inputs from the
  // server's older answer, or a box the user just ticked would flip back.
  // Saves go one after another, in the order the user made the changes: two at once could reach
  // the server in the other order (a tax mapping saved after "taxes are correct" unconfirms them).
  let saving = 0;
  let saves = 0;  // how many saves have started: a refresh whose reads began before one is stale
  let lastSave = Promise.resolve();
  async function saveSetting(name, value) {
    saving += 1;
    saves += 1;
    const save = lastSave.then(() => call("PATCH", "/settings", { [name]: value }));
    lastSave = save.catch(() => {});
    try {
      await save;
      showError("");
    } catch (err) {
      showError(err.message);
    } finally {
      saving -= 1;
    }
    if (!saving) await refresh().catch((err) => showError(err.message));
  }

  function cell(row, value) {
    const td = document.createElement("td");
    if (value instanceof Node) td.appendChild(value); else td.textContent = text(value);
    row.appendChild(td);
    return td;
  }

  function link(label, href, external) {
    if (!href) {
      const span = document.createElement("span");
      span.textContent = label;
      return span;
    }
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    if (external) { a.target = "_blank"; a.rel = "noopener noreferrer"; }
    return a;
  }

  // "Invoice INV-1007 · Ada Lovelace · 35.00 USD", the title linked to the record's CRM page.
  function recordName(rec) {
    const box = document.createElement("span");
    const label = rec.label || { title: rec.kind + " " + rec.crm_id };
    box.appendChild(link(label.title, label.url, false));
    const rest = [label.subtitle, label.amount].filter(Boolean).join(" · ");
    if (rest) box.appendChild(document.createTextNode(" · " + rest));
    return box;
  }

  function qboName(rec) {
    if (!rec.qbo_url) {
      const span = document.createElement("span");
      span.className = "muted";
      span.textContent = "not in " + BOOKS + " yet";
      return span;
    }
    const box = document.createElement("span");
    box.appendChild(document.createTextNode("→ "));
    box.appendChild(link(rec.qbo_title, rec.qbo_url, true));
    return box;
  }

  function statusText(rec) {
    const detail = rec.detail && rec.detail.crm_total ? " (CRM " + rec.detail.crm_total + " vs " + BOOKS + " " + rec.detail.qbo_total + ")" : "";
    // not synced and changed-in-the-CRM-only records carry their whole story in last_error
    const own = (rec.status === "not_synced" || rec.status === "crm_only") && rec.last_error;
    return (own ? rec.last_error : rec.status.replace(/_/g, " ") + (rec.last_error ? ": " + rec.last_error : "") + detail);
  }

  function actionButtons(rec) {
    const box = document.createElement("span");
    box.className = "qbo-actions";
    (rec.actions || []).forEach((action) => {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "link";
      button.textContent = action === "retry" ? "Retry" : "Ignore";
      const name = (rec.label && rec.label.title) || rec.kind + " " + rec.crm_id;
      button.setAttribute("aria-label", button.textContent + " " + name);
      button.addEventListener("click", async () => {
        if (action === "ignore" && !window.confirm("Ignore " + name + "? It is not sent to " + BOOKS + " until you Retry it."))
          return;
        try {
          await call("POST", "/records/" + encodeURIComponent(rec.kind) + "/" + encodeURIComponent(rec.crm_id) + "/" + action);
          showError("");
          await refresh();
        } catch (err) {
          showError(err.message);
        }
      });
      box.appendChild(button);
    });
    return box;
  }

  function renderHelp() {
    document.querySelectorAll("#records-help [data-for]").forEach((p) => p.classList.toggle("hidden", p.dataset.for !== records.status));
  }

  async function renderRecords() {
    renderHelp();
    const query = "?status=" + encodeURIComponent(records.status) + "&limit=" + PAGE + "&offset=" + records.offset +
      (records.q ? "&q=" + encodeURIComponent(records.q) : "");
    const answer = await call("GET", "/records" + query, undefined, true);
    const rows = answer.data;
    records.total = Number(answer.headers.get("X-Total-Count") || rows.length);
    if (!changed("records", [query, records.total, rows])) return;
    const body = $("records").querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tab = document.querySelector("#record-tabs button[data-status='" + records.status + "']");
      const row = body.insertRow();
      const what = tab ? tab.dataset.label.toLowerCase() : records.status;
      cell(row, records.q ? "No " + what + " record matches “" + records.q + "”." : "Nothing " + what + ".").colSpan = 4;
    }
    rows.forEach((rec) => {
      const row = body.insertRow();
      cell(row, recordName(rec)).dataset.label = "Record";
      cell(row, qboName(rec)).dataset.label = BOOKS;
      const state = cell(row, statusText(rec) + " · ");
      state.dataset.label = "Status";
      state.appendChild(timeEl(rec.updated_at));
      cell(row, actionButtons(rec));
    });
    const first = rows.length ? records.offset + 1 : 0;
    $("records-range").textContent = rows.length ? first + "–" + (records.offset + rows.length) + " of " + records.total.toLocaleString() : "";
    $("records-prev").disabled = records.offset === 0;
    $("records-next").disabled = records.offset + rows.length >= records.total;
  }

  async function renderErrors() {
    const lists = await Promise.all(["failed", "conflict", "not_synced"].map((s) => call("GET", "/records?status=" + s + "&limit=20")));
    const all = [].concat(...lists);
    if (!changed("errors", all)) return;
    const list = $("errors-list");
    list.replaceChildren();
    if (!all.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nothing needs your attention.";
      list.appendChild(li);
    }
    all.forEach((rec) => {
      const li = document.createElement("li");
      const head = document.createElement("div");
      head.appendChild(recordName(rec));
      head.appendChild(document.createTextNode(" "));
      head.appendChild(qboName(rec));
      li.appendChild(head);
      const why = document.createElement("div");
      why.className = "small";
      why.textContent = statusText(rec) + (rec.advice ? " — " + rec.advice : "");
      li.appendChild(why);
      li.appendChild(actionButtons(rec));
      list.appendChild(li);
    });
  }

  function renderHistory(entries) {
    if (!changed("history", entries)) return;
    const list = $("history-list");
    list.replaceChildren();
    if (!entries.length) {
      const li = document.createElement("li");
      li.className = "muted";
      li.textContent = "Nothing synced yet.";
      list.appendChild(li);
    }
    entries.forEach((entry) => {
      const li = document.createElement("li");
      const head = document.createElement("div");
      head.textContent = entry.summary + " · ";
      head.appendChild(timeEl(entry.at));
      li.appendChild(head);
      const problems = document.createElement("ul");
      entry.failures.forEach((f) => {
        const item = document.createElement("li");
        item.className = "small failure";
        item.appendChild(link(f.title, f.url, false));
        item.appendChild(document.createTextNode(": " + f.error + " — " + f.advice));
        problems.appendChild(item);
      });
      entry.errors.forEach((message) => {
        const item = document.createElement("li");
        item.className = "small failure";
        item.textContent = message;
        problems.appendChild(item);
      });
      if (problems.children.length) li.appendChild(problems);
      list.appendChild(li);
    });
  }

  // The import's progress, refreshed every second while it runs, with its pace and time left.
  let importTimer = null;
  function renderImport(runs) {
    const imported = (r) => ((r.counts || {}).customers_done || 0) + ((r.counts || {}).invoices_done || 0);
    const imports = runs.filter((r) => r.kind === "import");
    // the running import, else the latest that brought something (one that found nothing is no news)
    const latest = imports.find((r) => r.status === "running") || imports.find((r) => imported(r) > 0);
    $("import").classList.toggle("hidden", !latest);
    if (!latest) return false;
    const c = latest.counts || {};
    const total = (c.customers_total || 0) + (c.invoices_total || 0);
    const done = imported(latest);
    const running = latest.status === "running";
    const percent = total ? Math.round((100 * done) / total) : (running ? 0 : 100);
    $("import-title").textContent = running ? "Importing from " + BOOKS : "Imported from " + BOOKS;
    $("import-bar").style.width = percent + "%";
    $("import-progress").setAttribute("aria-valuenow", String(percent));
    const counts = (c.customers_done || 0) + " customers, " + (c.invoices_done || 0) + " invoices";
    if (running) {
      const seconds = Math.max(1, (Date.now() - new Date(latest.started_at).getTime()) / 1000);
      const rate = done / seconds;
      const left = rate > 0 && total > done ? Math.ceil((total - done) / rate) : null;
      const leftText = left === null ? "estimating time left" :
        (left < 60 ? "about " + left + " s left" : "about " + Math.ceil(left / 60) + " min left");
      $("import-text").textContent = done + " of " + total + " records (" + counts + ") · " + rate.toFixed(1) + " records/s · " + leftText;
    } else {
      $("import-text").textContent = counts + " · " + whenText(latest.finished_at || latest.started_at);
    }
    return running;
  }
  function followImport(running) {
    if (!running || importTimer) return;
    importTimer = setInterval(async () => {
      try {
        if (!renderImport(await call("GET", "/sync-runs?limit=5"))) {
          clearInterval(importTimer);
          importTimer = null;
          await refresh();
        }
      } catch (err) {
        showError(err.message);
      }
    }, 1000);
  }

  function renderHealth(status) {
    const attention = status.needs_attention || 0;
    const synced = status.last_synced_at ? "Last synced " + whenText(status.last_synced_at) : "Not synced yet";
    const health = $("health");
    health.replaceChildren(document.createTextNode(synced + " · "));
    const need = attention ? link(attention + (attention === 1 ? " needs" : " need") + " attention", "#errors", false)
      : document.createTextNode("nothing needs attention");
    health.appendChild(need);
    if (status.last_synced_at) health.title = fullTime(status.last_synced_at);
    health.classList.toggle("attention", attention > 0);
    $("errors-count").textContent = attention ? "(" + attention + ")" : "";
  }

  async function refresh() {
    if (saving) return;
    const started = saves;
    const [status, settings] = await Promise.all([call("GET", "/status"), call("GET", "/settings")]);
    // A save started while these were on their way (even one already finished): they may predate
    // it, and its own refresh follows.
    if (saving || saves !== started) return;
    document.querySelectorAll("[data-setting='review_request']").forEach((box) => { box.checked = !!settings.review_request; });
    const held = (status.counts || {}).not_synced || 0;
    const note = $("held-note");
    if (note) {
      note.textContent = held ? held + " change(s) made while " + BOOKS + " was disconnected are kept as \"Not synced\": after you reconnect they are listed on this card, and Retry sends each to " + BOOKS + "." : "";
      note.classList.toggle("hidden", !held);
    }
    if (status.status !== card.dataset.status) {
      // The connection changed under the open card (e.g. its stored authorisation became
      // unreadable): say why, and let a reload show the reconnect form.
      showError((status.last_error ? status.last_error + " " : "") + "Reload the page to see the " + BOOKS + " card as it is now.");
      return;
    }
    if (status.status !== "connected") return;
    renderHealth(status);
    const hook = $("webhook-health");
    hook.replaceChildren(status.last_webhook_at ? timeEl(status.last_webhook_at) : document.createTextNode("none received yet (changes still arrive by polling)"));
    const expiry = status.refresh_expires_at ? new Date(status.refresh_expires_at) : null;
    const warn = $("expiry-warning");
    const soon = expiry && expiry - Date.now() < 14 * 24 * 3600 * 1000;
    warn.textContent = soon ? BOOKS + " authorisation expires on " + fullTime(status.refresh_expires_at) + ": reconnect before then to keep syncing." : "";
    warn.classList.toggle("hidden", !soon);
    const budget = $("day-budget");  // Xero's daily budget of calls, worded by the server once it runs low
    budget.textContent = status.day_budget_warning || "";
    budget.classList.toggle("hidden", !status.day_budget_warning);
    document.querySelectorAll("#record-tabs button").forEach((tab) => {
      const n = status.counts[tab.dataset.status];
      tab.querySelector(".count").textContent = n ? "(" + n.toLocaleString() + ")" : "";
    });
    if (window.qboCardSettings) await window.qboCardSettings.render(status, settings);
    const [runs, history] = await Promise.all([call("GET", "/sync-runs?limit=10"), call("GET", "/history?limit=10")]);
    followImport(renderImport(runs));
    renderHistory(history);
    await Promise.all([renderRecords(), renderErrors()]);
    retime();
  }

  // A render that awaited (accounts, tax codes) checks stale(started) before touching inputs.
  const stale = (started) => saving > 0 || saves !== started;
  window.qboCard = { call, saveSetting, showError, refresh, cell, text, isSaving: () => saving > 0, saves: () => saves, stale };

  document.querySelectorAll("#record-tabs button").forEach((tab) => {
    tab.addEventListener("click", () => {
      records.status = tab.dataset.status;
      records.offset = 0;
      document.querySelectorAll("#record-tabs button").forEach((t) => {
        t.classList.toggle("active", t === tab);
        t.setAttribute("aria-pressed", t === tab ? "true" : "false");
      });
      renderRecords().catch((err) => showError(err.message));
    });
  });
  const search = $("record-search-form");
  if (search) {
    search.addEventListener("submit", (event) => {
      event.preventDefault();
      records.q = $("record-search").value.trim();
      records.offset = 0;
      renderRecords().catch((err) => showError(err.message));
    });
    $("records-prev").addEventListener("click", () => {
      records.offset = Math.max(0, records.offset - PAGE);
      renderRecords().catch((err) => showError(err.message));
    });
    $("records-next").addEventListener("click", () => {
      records.offset += PAGE;
      renderRecords().catch((err) => showError(err.message));
    });
  }

  const syncNow = $("sync-now");
  if (syncNow) {
    syncNow.addEventListener("click", async () => {
      syncNow.disabled = true;
      try {
        await call("POST", "/sync-now", {});
        showError("");
        setTimeout(() => refresh().catch((err) => showError(err.message)), 1500);
      } catch (err) {
        showError(err.message);
      } finally {
        setTimeout(() => { syncNow.disabled = false; }, 1500);
      }
    });
  }
  const unlink = $("unlink");
  if (unlink) {
    unlink.addEventListener("click", () => {
      $("unlink-confirm").classList.remove("hidden");
      $("unlink-no").focus();
    });
    $("unlink-no").addEventListener("click", () => { $("unlink-confirm").classList.add("hidden"); unlink.focus(); });
  }

  function start() {
    retime();
    refresh().catch((err) => showError(err.message));
    if (card.dataset.status === "connected") setInterval(() => refresh().catch(() => {}), 5000);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else setTimeout(start, 0);
})();
