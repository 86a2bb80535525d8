// Helpers every page script shares: the class list and colours, one JSON request helper (CSRF, the
// API's error shape), upload with progress, and polling a background job until it leaves its working state.
(function () {
  const POLL_MS = 800;

  // The seven classes in contract order, from ferweb/core/classes.py through base.html.
  const CLASSES = JSON.parse(document.getElementById("fer-classes").textContent);

  // Class colours live once, as CSS variables (--angry, ...) in app.css; charts and overlays read them here.
  function classColor(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(`--${name}`).trim() || "#3b5bdb";
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // The API answers errors as {detail, code, fields}: an Error whose message is the detail, with the
  // rest attached for callers that look closer. Anything else (a proxy's HTML page) falls back to the status.
  function apiError(status, body) {
    const fallback = status === 413 ? "The upload is too large for this server."
      : status ? `The server answered ${status}.` : "The request failed; check the connection and try again.";
    const error = new Error((body && body.detail) || fallback);
    return Object.assign(error, { status, code: body && body.code, fields: (body && body.fields) || {} });
  }

  // fetch for the API: JSON in (a plain object body) or FormData as is, JSON out; rejects with apiError.
  async function api(url, options) {
    options = options || {};
    const method = (options.method || "GET").toUpperCase();
    const headers = { Accept: "application/json" };
    let body = options.body;
    if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
    if (body !== undefined && !(body instanceof FormData)) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, { method, headers, body, credentials: "same-origin" });
    } catch (_) {
      throw apiError(0, null);
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw apiError(response.status, data);
    return data;
  }

  // POSTs a multipart form with upload progress (0-1), which fetch cannot report; resolves with the JSON answer.
  function upload(url, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); });
      xhr.addEventListener("error", () => reject(new Error("The upload was interrupted; check the connection and try again.")));
      xhr.addEventListener("load", () => {
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status >= 200 && xhr.status < 300) resolve(data);
        else reject(apiError(xhr.status, data));
      });
      xhr.send(body);
    });
  }

  // Calls onUpdate with each state while state.status === workingStatus; resolves with the final state.
  function pollUntilDone(url, workingStatus, onUpdate) {
    return new Promise((resolve, reject) => {
      const tick = async () => {
        try {
          const data = await api(url);
          onUpdate(data);
          if (data.status === workingStatus) setTimeout(tick, POLL_MS);
          else resolve(data);
        } catch (error) {
          reject(error);
        }
      };
      tick();
    });
  }

  // One way to write numbers on every page: accuracies and shares as "13.5%", times as "3m 20s".
  const format = {
    percent(share, digits) {
      if (share === null || share === undefined || Number.isNaN(Number(share))) return "–";
      return `${(100 * Number(share)).toFixed(digits === undefined ? 1 : digits)}%`;
    },
    number(value, digits) {
      if (value === null || value === undefined || Number.isNaN(Number(value))) return "–";
      return Number(value).toFixed(digits === undefined ? 3 : digits);
    },
    duration(seconds) {
      if (seconds === null || seconds === undefined || !isFinite(seconds)) return "–";
      seconds = Math.max(0, Math.round(seconds));
      const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
      if (h) return `${h}h ${m}m`;
      if (m) return `${m}m ${s}s`;
      return `${s}s`;
    },
    bytes(n) {
      if (n === null || n === undefined) return "–";
      const units = ["B", "KB", "MB", "GB"];
      let i = 0;
      while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
      return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
    },
    // A queued job's `waiting_behind`, read `elapsed` seconds ago: "behind a cross-validation scan of
    // “fer2013” (about 20m left) and another user's run"; "" when the training worker is free.
    waitingBehind(busy, elapsed) {
      const jobs = (busy || []).map((job) => {
        const what = job.kind === "run" ? (job.mine ? job.name : "another user's run")
          : job.mine ? `a cross-validation scan of ${job.name}` : "another user's cross-validation scan";
        if (job.seconds_left === null) return what;
        const left = job.seconds_left - elapsed;
        return `${what} (${left >= 1 ? `about ${format.duration(left)} left` : "almost done"})`;
      });
      return jobs.length ? `behind ${jobs.join(" and ")}` : "";
    },
  };

  window.FerWeb = { CLASSES, classColor, csrfToken, api, upload, pollUntilDone, format };
})();

// Delete buttons, on every page: <button data-delete-url="/api/datasets/3/" data-delete-next="/datasets/">.
// A click asks the API what the delete would remove (GET <url>delete-preview/) and shows it, with the
// space it frees, in a dialog; "Delete" sends DELETE <url>, then goes to data-delete-next, or else
// removes the button's row (data-delete-row: a selector of the element to remove; default: its <tr>).
(function () {
  const { api, format } = window.FerWeb;

  function element(tag, attrs, text) {
    const node = Object.assign(document.createElement(tag), attrs || {});
    if (text) node.textContent = text;
    return node;
  }

  function dialogFor(title) {
    document.getElementById("delete-dialog")?.remove();
    const dialog = element("dialog", { id: "delete-dialog", className: "confirm" });
    dialog.setAttribute("aria-labelledby", "delete-title");
    const form = element("form", { method: "dialog" });
    const confirm = element("button", { type: "button", id: "delete-confirm", className: "danger" }, "Delete");
    const cancel = element("button", { type: "submit", value: "", id: "delete-cancel", className: "secondary" }, "Cancel");
    const buttons = element("p", { className: "dialog-buttons" });
    buttons.append(confirm, cancel);
    form.append(
      element("h2", { id: "delete-title" }, title),
      element("p", { id: "delete-what" }, "Looking up what goes…"),
      element("p", { id: "delete-frees", className: "muted" }),
      element("p", { id: "delete-error", className: "error", hidden: true }),
      buttons,
    );
    dialog.append(form);
    dialog.addEventListener("close", () => dialog.remove());
    document.body.append(dialog);
    return { dialog, confirm, cancel };
  }

  function showError(dialog, message) {
    const box = dialog.querySelector("#delete-error");
    box.textContent = message;
    box.hidden = false;
  }

  async function askAndDelete(button) {
    const url = button.dataset.deleteUrl;
    const { dialog, confirm, cancel } = dialogFor(`Delete ${button.dataset.deleteName || "this"}?`);
    confirm.disabled = true;
    dialog.showModal();
    cancel.focus();
    try {
      const preview = await api(`${url}delete-preview/`);
      dialog.querySelector("#delete-what").textContent = preview.what;
      dialog.querySelector("#delete-frees").textContent = preview.archived
        ? "Frees no space: it is kept for the runs trained on it."
        : `Frees ${format.bytes(preview.frees_bytes)} of your storage.`;
      confirm.disabled = false;
    } catch (error) {
      dialog.querySelector("#delete-what").textContent = "";
      showError(dialog, error.message);
      return;
    }
    confirm.addEventListener("click", async () => {
      confirm.disabled = true;
      try {
        await api(url, { method: "DELETE" });
      } catch (error) {
        showError(dialog, error.message);
        return;
      }
      if (button.dataset.deleteNext) {
        window.location.href = button.dataset.deleteNext;
        return;
      }
      dialog.close();
      const row = button.closest(button.dataset.deleteRow || "tr");
      if (row) row.remove();
      document.dispatchEvent(new CustomEvent("ferweb:deleted", { detail: { url } }));
    });
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-delete-url]");
    if (!button) return;
    event.preventDefault();
    askAndDelete(button);
  });
})();
