// The card's Settings section (templates/crm_qbo/_settings.html): setup, tax mapping and the
// toggles. Uses the helpers card.js shares as window.qboCard; card.js calls render() on refresh.
"use strict";
(function () {
  const core = window.qboCard;
  if (!core) return;
  const $ = (id) => document.getElementById(id);
  const card = document.getElementById("card");
  const taxCode = card.dataset.books + " " + card.dataset.taxCode;  // e.g. "Xero tax rate"

  document.querySelectorAll("[data-setting]").forEach((input) => {
    input.addEventListener("change", () => core.saveSetting(input.dataset.setting, input.checked));
  });

  let setupShown = false;
  async function render(status, settings) {
    if (!$("setup")) return;
    const started = core.saves();  // a save from here on makes `settings` stale: inputs stay as the user left them
    const setup = status.setup || {};
    $("setup-state").textContent = setup.complete ? "— complete" : "— needs your attention";
    // The finished setup collapses; it opens by itself only while something is missing.
    if (!setupShown || !setup.complete) $("setup").open = !setup.complete;
    setupShown = true;
    $("taxes-confirmed").checked = !!settings.taxes_confirmed;
    $("auto-sync").checked = !!settings.auto_sync;
    $("review-request").checked = !!settings.review_request;
    $("review-note").classList.toggle("hidden", !settings.review_request);
    const currency = $("currency-message");
    currency.textContent = core.text(setup.currency_message);
    currency.classList.toggle("hidden", !setup.currency_message);
    await renderTaxMapping(status, settings, setup, started);
    const select = $("revenue-account");
    // Renders can overlap (the periodic refresh, the import's follow-up): load the accounts once
    // (again after a failure), and never overwrite a choice being saved.
    accountsLoaded = accountsLoaded || loadAccounts(select).catch((err) => { accountsLoaded = null; throw err; });
    await accountsLoaded;
    if (!core.stale(started)) select.value = settings.revenue_account_id || "";
  }

  let accountsLoaded = null;
  async function loadAccounts(select) {
    const accounts = await core.call("GET", "/accounts");
    select.replaceChildren(new Option("Choose an income account…", ""));
    accounts.forEach((a) => select.appendChild(new Option(a.name + (a.account_type ? " (" + a.account_type + ")" : ""), a.id)));
    select.dataset.loaded = "1";
    select.addEventListener("change", () => core.saveSetting("revenue_account_id", select.value || null));
  }

  let taxCodes = null;
  async function renderTaxMapping(status, settings, setup, started) {
    const box = $("tax-mapping");
    box.classList.toggle("hidden", !setup.tax_mapping_needed);
    if (!setup.tax_mapping_needed) return;
    taxCodes = taxCodes || (await core.call("GET", "/tax-codes"));
    if (core.stale(started)) return;
    const mapping = settings.tax_mapping || {};
    const body = box.querySelector("tbody");
    body.replaceChildren();
    (status.crm_taxes || []).forEach((tax) => {
      const row = body.insertRow();
      const name = tax.name + " (" + tax.rate_percent + "%)";
      core.cell(row, name);
      const select = document.createElement("select");
      select.dataset.crmTax = tax.id;
      select.setAttribute("aria-label", taxCode + " for " + name);
      select.appendChild(new Option("Choose a " + taxCode + "…", ""));
      taxCodes.forEach((code) => select.appendChild(new Option(code.name, code.id)));
      select.value = mapping[tax.id] || "";
      select.addEventListener("change", () => {
        const next = {};
        body.querySelectorAll("select").forEach((s) => { if (s.value) next[s.dataset.crmTax] = s.value; });
        core.saveSetting("tax_mapping", next);
      });
      row.insertCell().appendChild(select);
    });
  }

  window.qboCardSettings = { render };
})();
