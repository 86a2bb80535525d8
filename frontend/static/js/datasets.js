// Dataset pages: upload with a real progress bar, import progress by polling, and the analysis charts.
(function () {
  const { CLASSES, upload, pollUntilDone } = window.FerWeb;

  // Calls onUpdate with each state until the import ends; resolves with the final state.
  function pollImport(id, onUpdate) {
    return pollUntilDone(`/api/datasets/${id}/`, "importing", onUpdate);
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
      show("Uploading", 0);
      upload("/api/datasets/", body, (fraction) => show("Uploading", fraction))
        .catch((error) => {
          status.hidden = true;
          throw error;
        })
        .then((created) => {
          show("Importing", 0);
          return pollImport(created.id, (data) => show("Importing", data.progress / 100))
            .catch((error) => { throw new Error(`Could not follow the import: ${error.message}`); });
        })
        .then((data) => {
          if (data.status === "ready") window.location.href = `/datasets/${data.id}/`;
          else {
            phase.textContent = "Import failed";
            fail(data.human_readable_error || data.error);
          }
        })
        .catch((error) => fail(error.message));
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
    window.FerCharts.barChart(container, CLASSES, series, { yLabel: "faces" });
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
