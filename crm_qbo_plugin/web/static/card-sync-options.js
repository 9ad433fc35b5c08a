// The card's sync options (sync start date, automatic export, field mapping): PATCH /api/settings.
"use strict";
(function () {
  const card = document.getElementById("card");
  const panel = document.getElementById("sync-options");
  if (!card || !panel) return;
  const api = card.dataset.api;
  const $ = (id) => document.getElementById(id);

  // The words about taxes belong next to "My taxes are correct", wherever the card shows it.
  const confirm = $("taxes-confirmed");
  const toggle = confirm && confirm.closest("label");
  if (toggle) {
    toggle.after($("tax-explainer"));
    confirm.setAttribute("aria-describedby", "tax-explainer");
  }

  async function call(method, body) {
    const csrf = card.dataset.csrf;
    const response = await fetch(api + "/settings", {
      method, credentials: "same-origin",
      headers: Object.assign({ Accept: "application/json" }, body ? { "Content-Type": "application/json", "X-CSRF-Token": csrf } : {}),
      body: body ? JSON.stringify(body) : undefined,
    });
    const token = response.headers.get("X-CSRF-Token");
    if (token) card.dataset.csrf = token;
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const fields = data && data.fields ? " — " + Object.entries(data.fields).map(([k, v]) => k + ": " + v).join("; ") : "";
      throw new Error((data && data.error ? data.error : "Request failed (" + response.status + ")") + fields);
    }
    return data;
  }

  function showError(message) {
    const box = $("api-error");
    if (!box) return;
    box.textContent = message;
    box.classList.toggle("hidden", !message);
  }

  function render(settings) {
    $("sync-from").value = settings.sync_from || "";
    $("export-on-send").checked = settings.export_on_send !== false;
    const mapping = settings.field_mapping || {};
    panel.querySelectorAll("select[data-map]").forEach((select) => {
      select.value = mapping[select.dataset.map] || select.options[0].value;
    });
  }

  async function save(changes) {
    try {
      render(await call("PATCH", changes));
      showError("");
      panel.dataset.saved = String(Number(panel.dataset.saved || 0) + 1);
    } catch (err) {
      showError(err.message);
      render(await call("GET").catch(() => ({})));
    }
  }

  $("sync-from").addEventListener("change", () => save({ sync_from: $("sync-from").value || null }));
  $("sync-from-clear").addEventListener("click", () => save({ sync_from: null }));
  $("export-on-send").addEventListener("change", () => save({ export_on_send: $("export-on-send").checked }));
  panel.querySelectorAll("select[data-map]").forEach((select) => {
    select.addEventListener("change", () => {
      const mapping = {};
      panel.querySelectorAll("select[data-map]").forEach((s) => { mapping[s.dataset.map] = s.value; });
      save({ field_mapping: mapping });
    });
  });
  call("GET").then(render).catch((err) => showError(err.message));
})();
