// Dataset pages: upload with a real progress bar, then the import's phases (checking the archive,
// importing the faces) by polling, with the new dataset in the list at once; and the analysis charts.
(function () {
  const { CLASSES, api, upload, pollUntilDone } = window.FerWeb;

  // The import's phases (Dataset.phase), as the pages name them.
  const PHASES = {
    queued: "Waiting for the import worker",
    checking_archive: "Checking archive",
    importing: "Importing",
  };

  // "Checking archive", "Importing 37%": what an importing dataset is doing now ("" once it ended).
  function phaseText(data) {
    if (data.status !== "importing") return "";
    const phase = data.phase || "importing";
    const name = PHASES[phase] || phase;
    return phase === "importing" ? `${name} ${Math.round(data.progress)}%` : name;
  }

  // Calls onUpdate with each state until the import ends; resolves with the final state.
  function pollImport(id, onUpdate) {
    return pollUntilDone(`/api/datasets/${id}/`, "importing", onUpdate);
  }

  // ------------------------------------------------------------ list page
  function renderRow(row, data) {
    row.dataset.status = data.status;
    row.dataset.phase = data.phase || "";
    const badge = row.querySelector(".badge");
    badge.textContent = data.status;
    badge.className = `badge ${data.status}`;
    let pct = row.querySelector(".pct");
    if (!pct) {
      pct = document.createElement("span");
      pct.className = "muted pct";
      badge.after(" ", pct);
    }
    pct.textContent = phaseText(data);
    row.querySelector("td.num").textContent = data.num_items;
  }

  // A new dataset's row at the top of the list, before its import has read a face.
  function addRow(data) {
    const table = document.getElementById("dataset-table");
    document.getElementById("no-datasets").hidden = true;
    table.hidden = false;
    const staff = table.querySelectorAll("thead th").length > 5;
    const row = document.createElement("tr");
    row.dataset.datasetId = data.id;
    const cells = [];
    const name = document.createElement("td");
    const link = document.createElement("a");
    link.href = `/datasets/${data.id}/`;
    const id = document.createElement("span");
    id.className = "muted";
    id.textContent = `#${data.id}`;
    link.append(id, ` ${data.name}`);
    name.append(link);
    cells.push(name);
    const status = document.createElement("td");
    status.append(Object.assign(document.createElement("span"), { className: "badge" }));
    cells.push(status);
    cells.push(Object.assign(document.createElement("td"), { className: "num" }));
    cells.push(Object.assign(document.createElement("td"), { className: "muted", textContent: data.created_at.slice(0, 16).replace("T", " ") }));
    if (staff) cells.push(Object.assign(document.createElement("td"), { textContent: data.owner }));
    const remove = document.createElement("td");
    const button = Object.assign(document.createElement("button"), { type: "button", className: "link delete-link", textContent: "Delete" });
    button.dataset.deleteUrl = `/api/datasets/${data.id}/`;
    button.dataset.deleteName = `dataset #${data.id} “${data.name}”`;
    remove.append(button);
    cells.push(remove);
    row.append(...cells);
    table.querySelector("tbody").prepend(row);
    renderRow(row, data);
    return row;
  }

  function setupUpload(form) {
    const status = document.getElementById("upload-status");
    const phase = document.getElementById("upload-phase");
    const percent = document.getElementById("upload-percent");
    const progress = document.getElementById("upload-progress");
    const bar = document.getElementById("upload-bar");
    const errorBox = document.getElementById("upload-error");
    const button = document.getElementById("upload-button");
    const nameInput = form.querySelector("input[name=name]");

    // fraction null: a phase without a measure of its own (checking, waiting): the bar only moves.
    function show(label, fraction) {
      status.hidden = false;
      phase.textContent = label;
      progress.classList.toggle("indeterminate", fraction === null);
      if (fraction === null) {
        percent.textContent = "";
        return;
      }
      const pct = Math.round(100 * Math.max(0, Math.min(1, fraction)));
      percent.textContent = `${pct}%`;
      bar.style.width = `${pct}%`;
    }

    function showImport(data) {
      if (data.status !== "importing") return;
      const label = PHASES[data.phase || "importing"] || data.phase;
      show(label, data.phase === "importing" ? data.progress / 100 : null);
    }

    function fail(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
      button.disabled = false;
    }

    // The same rule as the server's, checked before the bytes are sent: one name, one dataset.
    async function nameTaken(name) {
      if (!name) return "";
      const twin = (await api("/api/datasets/")).find((d) => d.name === name);
      return twin ? `You already have a dataset named "${name}" (#${twin.id}): choose another name.` : "";
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      nameInput.removeAttribute("aria-invalid");
      const file = form.querySelector("input[type=file]").files[0];
      if (!file) return fail("Choose a zip or CSV file first.");
      button.disabled = true;
      try {
        const taken = await nameTaken(nameInput.value.trim());
        if (taken) {
          nameInput.setAttribute("aria-invalid", "true");
          return fail(taken);
        }
      } catch (_) { /* the server checks it too */ }
      const body = new FormData(form);
      body.delete("csrfmiddlewaretoken");
      if (!form.querySelector("input[name=drop_unknown_classes]").checked) body.delete("drop_unknown_classes");
      show("Uploading", 0);
      let created;
      try {
        // Once the bytes are sent, the server stores the file and checks the archive before it answers.
        created = await upload("/api/datasets/", body, (fraction) => {
          if (fraction >= 1) show(PHASES.checking_archive, null);
          else show("Uploading", fraction);
        });
      } catch (error) {
        status.hidden = true;
        if (error.fields && error.fields.name) nameInput.setAttribute("aria-invalid", "true");
        return fail(error.message);
      }
      let row = null;
      let data;
      try {
        data = await pollImport(created.id, (state) => {
          showImport(state);
          if (!row) row = addRow(state);
          else renderRow(row, state);
        });
      } catch (error) {
        return fail(`Could not follow the import: ${error.message}`);
      }
      if (data.status === "ready") {
        window.location.href = `/datasets/${data.id}/`;
        return;
      }
      progress.classList.remove("indeterminate");
      phase.textContent = "Import failed";
      percent.textContent = "";
      fail(data.human_readable_error || data.error);
    });
    button.disabled = false;
  }

  function followListRows() {
    document.querySelectorAll("#dataset-table tr[data-status=importing]").forEach((row) => {
      pollImport(row.dataset.datasetId, (data) => renderRow(row, data)).catch(() => {});
    });
    // The last row deleted: say so rather than show an empty table.
    document.addEventListener("ferweb:deleted", () => {
      const table = document.getElementById("dataset-table");
      if (!table.querySelector("tbody tr")) {
        table.hidden = true;
        document.getElementById("no-datasets").hidden = false;
      }
    });
  }

  // ------------------------------------------------------------ detail page
  function fillShares(table) {
    const cells = table.querySelectorAll("td[data-share]");
    const total = Array.from(cells).reduce((sum, cell) => sum + Number(cell.dataset.share), 0);
    cells.forEach((cell) => {
      cell.textContent = total ? FerWeb.format.percent(Number(cell.dataset.share) / total) : "–";
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
      const text = document.getElementById("import-phase");
      const show = (state) => {
        text.textContent = phaseText(state);
        bar.parentElement.classList.toggle("indeterminate", state.phase !== "importing");
        bar.style.width = `${Math.round(state.progress)}%`;
      };
      show(data);
      pollImport(data.id, show).then(() => window.location.reload());
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

// Dataset page: the changes between two versions of the chain, face by face.
(function () {
  const form = document.getElementById("version-diff-form");
  if (!form) return;
  const { api } = window.FerWeb;
  const data = JSON.parse(document.getElementById("dataset-data").textContent);
  const out = document.getElementById("version-diff");
  const SHOWN = 120;

  function faceOf(face) {
    const figure = document.createElement("figure");
    figure.className = "diff-face";
    figure.dataset.change = face.change;
    figure.dataset.item = face.item;
    const img = document.createElement("img");
    img.src = `/api/datasets/${data.id}/items/${face.index}.png`;
    img.alt = `face ${face.index}`;
    img.title = face.source_name || `face ${face.index + 1}`;
    img.loading = "lazy";
    const caption = document.createElement("figcaption");
    caption.textContent = face.change === "relabeled" || face.change === "moved"
      ? `${face.before} → ${face.after}` : `${face.change} (${face.after || face.before})`;
    figure.append(img, caption);
    return figure;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const from = form.querySelector("#diff-from").value;
    const to = form.querySelector("#diff-to").value;
    out.textContent = "Comparing…";
    try {
      const diff = await api(`/api/datasets/${data.id}/versions/diff/?from=${from}&to=${to}&limit=${SHOWN}`);
      out.replaceChildren();
      const head = document.createElement("p");
      head.id = "version-diff-summary";
      head.textContent = `v${diff.from} → v${diff.to}: ${diff.summary}.`;
      out.append(head);
      if (diff.faces.length) {
        const faces = document.createElement("div");
        faces.className = "diff-faces";
        faces.append(...diff.faces.map(faceOf));
        out.append(faces);
      }
      if (diff.count > diff.faces.length) {
        const more = document.createElement("p");
        more.className = "muted";
        more.textContent = `Showing ${diff.faces.length} of ${diff.count} changed faces.`;
        out.append(more);
      }
    } catch (error) {
      out.textContent = error.message;
      out.className = "error";
    }
  });
})();
