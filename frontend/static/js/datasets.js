// Dataset pages: upload with a real progress bar, import progress by polling, and the analysis charts.
(function () {
  const CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"];
  const POLL_MS = 800;

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  async function fetchDataset(id) {
    const response = await fetch(`/api/datasets/${id}/`, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  }

  // Calls onUpdate with each state until the import ends; resolves with the final state.
  function pollImport(id, onUpdate) {
    return new Promise((resolve, reject) => {
      const tick = async () => {
        try {
          const data = await fetchDataset(id);
          onUpdate(data);
          if (data.status === "importing") setTimeout(tick, POLL_MS);
          else resolve(data);
        } catch (error) {
          reject(error);
        }
      };
      tick();
    });
  }

  function errorText(xhr) {
    try {
      const body = JSON.parse(xhr.responseText);
      if (body.detail) return body.detail;
      return Object.entries(body).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`).join(" ");
    } catch (_) {
      return xhr.status === 413 ? "The file is too large for this server." : `Upload failed (HTTP ${xhr.status}).`;
    }
  }

  // ------------------------------------------------------------ list page
  function setupUpload(form) {
    const status = document.getElementById("upload-status");
    const phase = document.getElementById("upload-phase");
    const percent = document.getElementById("upload-percent");
    const bar = document.getElementById("upload-bar");
    const errorBox = document.getElementById("upload-error");
    const button = document.getElementById("upload-button");

    function show(label, fraction) {
      status.hidden = false;
      phase.textContent = label;
      const pct = Math.round(100 * Math.max(0, Math.min(1, fraction)));
      percent.textContent = `${pct}%`;
      bar.style.width = `${pct}%`;
    }

    function fail(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
      button.disabled = false;
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) return fail("Choose a zip or CSV file first.");
      const body = new FormData(form);
      body.delete("csrfmiddlewaretoken");
      if (!form.querySelector("input[name=drop_unknown_classes]").checked) body.delete("drop_unknown_classes");
      button.disabled = true;
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/api/datasets/");
      xhr.setRequestHeader("X-CSRFToken", csrfToken());
      xhr.setRequestHeader("Accept", "application/json");
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) show("Uploading", e.loaded / e.total);
      });
      xhr.addEventListener("error", () => fail("The upload was interrupted; check the connection and try again."));
      xhr.addEventListener("load", () => {
        if (xhr.status !== 201) {
          status.hidden = true;
          return fail(errorText(xhr));
        }
        const created = JSON.parse(xhr.responseText);
        show("Importing", 0);
        pollImport(created.id, (data) => show("Importing", data.progress / 100))
          .then((data) => {
            if (data.status === "ready") window.location.href = `/datasets/${data.id}/`;
            else {
              phase.textContent = "Import failed";
              fail(data.human_readable_error || data.error);
            }
          })
          .catch((error) => fail(`Could not follow the import: ${error.message}`));
      });
      show("Uploading", 0);
      xhr.send(body);
    });
  }

  function followListRows() {
    document.querySelectorAll("tr[data-status=importing]").forEach((row) => {
      const badge = row.querySelector(".badge");
      const pct = row.querySelector(".pct");
      pollImport(row.dataset.datasetId, (data) => {
        if (pct) pct.textContent = data.status === "importing" ? `${Math.round(data.progress)}%` : "";
        badge.textContent = data.status;
        badge.className = `badge ${data.status}`;
        row.dataset.status = data.status;
        row.querySelector("td.num").textContent = data.num_items;
      }).catch(() => {});
    });
  }

  // ------------------------------------------------------------ detail page
  function fillShares(table) {
    const cells = table.querySelectorAll("td[data-share]");
    const total = Array.from(cells).reduce((sum, cell) => sum + Number(cell.dataset.share), 0);
    cells.forEach((cell) => {
      cell.textContent = total ? `${((100 * Number(cell.dataset.share)) / total).toFixed(1)}%` : "–";
    });
  }

  function drawClassChart(container, data) {
    const bySplit = (data.report && data.report.class_counts_by_split) || {};
    const splits = Object.keys(bySplit);
    const series = splits.length
      ? splits.map((split) => ({ name: split, values: CLASSES.map((c) => bySplit[split][c] || 0) }))
      : [{ name: "", values: CLASSES.map((c) => data.class_counts[c] || 0) }];
    window.FerCharts.barChart(container, CLASSES, series, { width: 560, height: 260 });
  }

  function setupDetail(data) {
    if (data.status === "importing") {
      const bar = document.getElementById("import-bar");
      const percent = document.getElementById("import-percent");
      pollImport(data.id, (state) => {
        bar.style.width = `${Math.round(state.progress)}%`;
        percent.textContent = `${Math.round(state.progress)}%`;
      }).then(() => window.location.reload());
      return;
    }
    if (data.status !== "ready") return;
    document.querySelectorAll("#split-sizes, #class-counts").forEach(fillShares);
    const chart = document.getElementById("class-chart");
    if (chart) drawClassChart(chart, data);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("upload-form");
    if (form) {
      setupUpload(form);
      followListRows();
    }
    const payload = document.getElementById("dataset-data");
    if (payload) setupDetail(JSON.parse(payload.textContent));
  });
})();
