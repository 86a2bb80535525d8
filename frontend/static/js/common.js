// Helpers every page script shares: CSRF, error text of a failed request, upload with progress,
// and polling a background job until it leaves its working state.
(function () {
  const POLL_MS = 800;

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // DRF answers {detail} or {field: [messages]}; anything else falls back to the status.
  function errorText(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body.detail) return body.detail;
      return Object.entries(body).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`).join(" ");
    } catch (_) {
      return xhr.status === 413 ? "The upload is too large for this server." : `Upload failed (HTTP ${xhr.status}).`;
    }
  }

  // POSTs a multipart form with upload progress (0-1); resolves with the JSON answer.
  function upload(url, body, onProgress) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", url);
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); });
      xhr.addEventListener("error", () => reject(new Error("The upload was interrupted; check the connection and try again.")));
      xhr.addEventListener("load", () => {
        if (xhr.status >= 200 && xhr.status < 300) resolve(JSON.parse(xhr.responseText));
        else reject(new Error(errorText(xhr)));
      });
      xhr.send(body);
    });
  }

  async function getJson(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  // Calls onUpdate with each state while state.status === workingStatus; resolves with the final state.
  function pollUntilDone(url, workingStatus, onUpdate) {
    return new Promise((resolve, reject) => {
      const tick = async () => {
        try {
          const data = await getJson(url);
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

  window.FerWeb = { csrfToken, errorText, upload, getJson, pollUntilDone };
})();
