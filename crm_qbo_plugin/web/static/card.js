// The QuickBooks card: renders from the plugin's JSON API (/integrations/quickbooks/api/…).
"use strict";
(function () {
  const card = document.getElementById("card");
  if (!card) return;
  const api = card.dataset.api;
  let csrf = card.dataset.csrf;
  let recordStatus = "failed";
  const $ = (id) => document.getElementById(id);
  const text = (value) => (value === null || value === undefined ? "" : String(value));
  const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");

  function showError(message) {
    const box = $("api-error");
    box.textContent = message;
    box.classList.toggle("hidden", !message);
  }

  async function call(method, path, body) {
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
    return data;
  }

  // While a save is in flight the periodic refresh must not re-render the inputs from the
  // server's older answer, or a box the user just ticked would flip back.
  let saving = 0;
  async function saveSetting(name, value) {
    saving += 1;
    try {
      await call("PATCH", "/settings", { [name]: value });
      showError("");
    } catch (err) {
      showError(err.message);
    } finally {
      saving -= 1;
    }
    await refresh().catch((err) => showError(err.message));
  }

  document.querySelectorAll("[data-setting]").forEach((input) => {
    input.addEventListener("change", () => saveSetting(input.dataset.setting, input.checked));
  });

  function cell(row, value) {
    const td = document.createElement("td");
    td.textContent = text(value);
    row.appendChild(td);
    return td;
  }

  function renderRuns(runs) {
    const body = $("runs").querySelector("tbody");
    body.replaceChildren();
    if (!runs.length) {
      const row = body.insertRow();
      cell(row, "No syncs yet.").colSpan = 5;
      return;
    }
    runs.forEach((run) => {
      const row = body.insertRow();
      cell(row, when(run.started_at));
      cell(row, run.kind);
      cell(row, run.status);
      cell(row, Object.entries(run.counts || {}).map(([k, v]) => k.replace(/_/g, " ") + " " + v).join(", "));
      cell(row, (run.errors || []).map((e) => (typeof e === "string" ? e : e.message || JSON.stringify(e))).join("; "));
    });
    const imports = runs.filter((r) => r.kind === "import");
    const latest = imports.find((r) => r.status === "running") || imports[0];
    if (latest) {
      const c = latest.counts || {};
      const total = (c.customers_total || 0) + (c.invoices_total || 0);
      const done = (c.customers_done || 0) + (c.invoices_done || 0);
      const running = latest.status === "running";
      $("import").classList.remove("hidden");
      $("import-title").textContent = running ? "Importing from QuickBooks" : "Imported from QuickBooks";
      $("import-bar").style.width = total ? Math.round((100 * done) / total) + "%" : (running ? "0" : "100%");
      $("import-text").textContent = (running ? done + " of " + total + " records: " : "") +
        (c.customers_done || 0) + " customers, " + (c.invoices_done || 0) + " invoices" +
        (running ? "" : " (" + when(latest.finished_at || latest.started_at) + ")");
    }
  }

  async function renderRecords() {
    const rows = await call("GET", "/records?status=" + encodeURIComponent(recordStatus));
    const body = $("records").querySelector("tbody");
    body.replaceChildren();
    if (!rows.length) {
      const tab = document.querySelector("#record-tabs button[data-status='" + recordStatus + "']");
      const row = body.insertRow();
      cell(row, "Nothing " + (tab ? tab.dataset.label.toLowerCase() : recordStatus) + ".").colSpan = 4;
      return;
    }
    rows.forEach((rec) => {
      const row = body.insertRow();
      cell(row, rec.kind + " " + rec.crm_id);
      cell(row, rec.qbo_id ? "#" + rec.qbo_id : "—");
      const detail = rec.detail && rec.detail.crm_total ? " (CRM " + rec.detail.crm_total + " vs QuickBooks " + rec.detail.qbo_total + ")" : "";
      // not synced and changed-in-the-CRM-only records carry their whole story in last_error
      const own = (rec.status === "not_synced" || rec.status === "crm_only") && rec.last_error;
      cell(row, own ? rec.last_error : rec.status + (rec.last_error ? ": " + rec.last_error : "") + detail);
      const actions = cell(row, "");
      if (rec.status === "crm_only") return;  // stays local on purpose: nothing to retry or ignore
      ["retry", "ignore"].forEach((action) => {
        if (action === "ignore" && rec.status === "ignored") return;
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.textContent = action === "retry" ? "Retry" : "Ignore";
        button.addEventListener("click", async () => {
          try {
            await call("POST", "/records/" + encodeURIComponent(rec.kind) + "/" + encodeURIComponent(rec.crm_id) + "/" + action);
            await refresh();
          } catch (err) {
            showError(err.message);
          }
        });
        actions.appendChild(button);
      });
    });
  }

  async function renderSetup(status, settings) {
    const setup = status.setup || {};
    $("setup-state").textContent = setup.complete ? "— complete" : "— needs your attention";
    $("setup").open = !setup.complete;
    $("taxes-confirmed").checked = !!settings.taxes_confirmed;
    $("auto-sync").checked = !!settings.auto_sync;
    $("review-request").checked = !!settings.review_request;
    $("review-note").classList.toggle("hidden", !settings.review_request);
    const currency = $("currency-message");
    currency.textContent = text(setup.currency_message);
    currency.classList.toggle("hidden", !setup.currency_message);
    await renderTaxMapping(status, settings, setup);
    const select = $("revenue-account");
    if (!select.dataset.loaded) {
      const accounts = await call("GET", "/accounts");
      select.replaceChildren(new Option("Choose an income account…", ""));
      accounts.forEach((a) => select.appendChild(new Option(a.name + (a.account_type ? " (" + a.account_type + ")" : ""), a.id)));
      select.dataset.loaded = "1";
      select.addEventListener("change", () => saveSetting("revenue_account_id", select.value || null));
    }
    select.value = settings.revenue_account_id || "";
  }

  let taxCodes = null;
  async function renderTaxMapping(status, settings, setup) {
    const box = $("tax-mapping");
    box.classList.toggle("hidden", !setup.tax_mapping_needed);
    if (!setup.tax_mapping_needed) return;
    taxCodes = taxCodes || (await call("GET", "/tax-codes"));
    const mapping = settings.tax_mapping || {};
    const body = box.querySelector("tbody");
    body.replaceChildren();
    (status.crm_taxes || []).forEach((tax) => {
      const row = body.insertRow();
      cell(row, tax.name + " (" + tax.rate_percent + "%)");
      const select = document.createElement("select");
      select.dataset.crmTax = tax.id;
      select.appendChild(new Option("Choose a QuickBooks tax code…", ""));
      taxCodes.forEach((code) => select.appendChild(new Option(code.name, code.id)));
      select.value = mapping[tax.id] || "";
      select.addEventListener("change", () => {
        const next = {};
        body.querySelectorAll("select").forEach((s) => { if (s.value) next[s.dataset.crmTax] = s.value; });
        saveSetting("tax_mapping", next);
      });
      row.insertCell().appendChild(select);
    });
  }

  async function refresh() {
    if (saving) return;
    const [status, settings] = await Promise.all([call("GET", "/status"), call("GET", "/settings")]);
    if (saving) return;  // a save started while these were on their way: its own refresh follows
    document.querySelectorAll("[data-setting='review_request']").forEach((box) => { box.checked = !!settings.review_request; });
    const held = (status.counts || {}).not_synced || 0;
    const note = $("held-note");
    if (note) {
      note.textContent = held ? held + " change(s) made while QuickBooks was disconnected are kept as \"Not synced\": after you reconnect they are listed on this card, and Retry sends each to QuickBooks." : "";
      note.classList.toggle("hidden", !held);
    }
    if (status.status !== card.dataset.status) {
      // The connection changed under the open card (e.g. its stored authorisation became
      // unreadable): say why, and let a reload show the reconnect form.
      showError((status.last_error ? status.last_error + " " : "") + "Reload the page to see the QuickBooks card as it is now.");
      return;
    }
    if (status.status !== "connected") return;
    $("webhook-health").textContent = status.last_webhook_at ? when(status.last_webhook_at) : "none received yet (changes still arrive by polling)";
    const expiry = status.refresh_expires_at ? new Date(status.refresh_expires_at) : null;
    const warn = $("expiry-warning");
    const soon = expiry && expiry - Date.now() < 14 * 24 * 3600 * 1000;
    warn.textContent = soon ? "QuickBooks authorisation expires on " + expiry.toLocaleDateString() + ": reconnect before then to keep syncing." : "";
    warn.classList.toggle("hidden", !soon);
    document.querySelectorAll("#record-tabs button").forEach((tab) => {
      tab.querySelector(".count").textContent = status.counts[tab.dataset.status] ? "(" + status.counts[tab.dataset.status] + ")" : "";
    });
    await renderSetup(status, settings);
    renderRuns(await call("GET", "/sync-runs?limit=10"));
    await renderRecords();
  }

  document.querySelectorAll("#record-tabs button").forEach((tab) => {
    tab.addEventListener("click", () => {
      recordStatus = tab.dataset.status;
      document.querySelectorAll("#record-tabs button").forEach((t) => t.classList.toggle("active", t === tab));
      renderRecords().catch((err) => showError(err.message));
    });
  });

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
    unlink.addEventListener("click", () => $("unlink-confirm").classList.remove("hidden"));
    $("unlink-no").addEventListener("click", () => $("unlink-confirm").classList.add("hidden"));
  }

  refresh().catch((err) => showError(err.message));
  if (card.dataset.status === "connected") setInterval(() => refresh().catch(() => {}), 5000);
})();
