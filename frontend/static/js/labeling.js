// Labeling pages: photo upload with progress, processing progress by polling, and the review grid
// (click or keys 1-7 / Enter / s / x / z / arrows), the queue's order and class filter, the done / to go
// counter with labels per minute, bulk accept, the confirmed-count chart and dataset creation.
(function () {
  const { CLASSES, api, upload, pollUntilDone } = window.FerWeb;

  // Calls onUpdate with each state of the set until processing ends; resolves with the final state.
  function pollSet(id, onUpdate) {
    return pollUntilDone(`/api/labeling/sets/${id}/`, "processing", onUpdate);
  }

  // ------------------------------------------------------------ list page
  function setupUploadForm(form) {
    const status = document.getElementById("upload-status");
    const phase = document.getElementById("upload-phase");
    const percent = document.getElementById("upload-percent");
    const bar = document.getElementById("upload-bar");
    const errorBox = document.getElementById("upload-error");
    const button = document.getElementById("labeling-upload-button");

    function show(label, fraction, detail) {
      status.hidden = false;
      phase.textContent = label;
      const pct = Math.round(100 * Math.max(0, Math.min(1, fraction)));
      percent.textContent = detail ? `${detail} (${pct}%)` : `${pct}%`;
      bar.style.width = `${pct}%`;
    }

    function fail(message) {
      errorBox.textContent = message;
      errorBox.hidden = false;
      button.disabled = false;
    }

    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      const files = form.querySelector("input[type=file]").files;
      if (!files.length) return fail("Choose at least one photo (JPEG, PNG, WebP, BMP) or a zip of photos.");
      const body = new FormData(form);
      body.delete("csrfmiddlewaretoken");
      button.disabled = true;
      show("Uploading", 0);
      try {
        const created = await upload("/api/labeling/sets/", body, (f) => show("Uploading", f));
        show("Finding faces", 0);
        await pollSet(created.id, (data) => show("Finding faces", data.progress / 100, `${data.photos_done}/${data.photos_total} photos`));
        window.location.href = `/labeling/${created.id}/`;
      } catch (error) {
        status.hidden = true;
        fail(error.message);
      }
    });
  }

  // ------------------------------------------------------------ detail page
  function drawChart(classCounts) {
    const chart = document.getElementById("confirmed-chart");
    if (!chart || !window.FerCharts) return;
    window.FerCharts.barChart(chart, CLASSES, [{ name: "confirmed", values: CLASSES.map((c) => classCounts[c] || 0) }],
                              { height: 240, yLabel: "confirmed faces" });
  }

  function updateCounts(counts) {
    for (const [name, value] of Object.entries(counts)) {
      const node = document.querySelector(`[data-count="${name}"]`);
      if (node) node.textContent = value;
    }
    const done = document.getElementById("count-done");
    if (done) done.textContent = counts.all - counts.pending;
    const remaining = document.getElementById("count-remaining");
    if (remaining) remaining.textContent = counts.pending;
  }

  // Labels per minute on this page: decisions kept (an undo takes one back) over the minutes since the
  // first decision began; shown from the third decision on, and refreshed while the page stays open.
  const SHOW_RATE_AFTER = 3;
  const pace = { decisions: 0, firstAt: null };

  function showPace() {
    const box = document.getElementById("labels-rate");
    if (!box || pace.firstAt === null) return;
    const minutes = (performance.now() - pace.firstAt) / 60000;
    if (pace.decisions < SHOW_RATE_AFTER || minutes <= 0) {
      box.hidden = true;
      return;
    }
    const rate = pace.decisions / minutes;
    const node = document.getElementById("labels-per-minute");
    node.textContent = rate >= 100 ? Math.round(rate) : rate.toFixed(1);
    node.dataset.rate = rate.toFixed(3);
    box.hidden = false;
  }

  function renderFace(card, face) {
    card.dataset.status = face.status;
    card.dataset.confirmed = face.confirmed_label || "";
    card.classList.remove("pending", "confirmed", "skipped", "rejected");
    card.classList.add(face.status);
    const decision = card.querySelector(".decision");
    decision.dataset.faceLabel = face.confirmed_label || "";
    decision.textContent = face.status === "confirmed" ? `✓ ${face.confirmed_label}`
      : face.status === "rejected" ? "✗ not a face" : face.status;
    card.querySelectorAll("button.cls").forEach((b) => b.classList.toggle("chosen", b.dataset.label === face.confirmed_label));
  }

  function setupGrid(setId, message) {
    const grid = document.getElementById("face-grid");
    if (!grid) return;
    const cards = () => Array.from(grid.querySelectorAll(".lface"));

    async function decide(card, body, advance) {
      card.classList.add("saving");
      if (pace.firstAt === null) pace.firstAt = performance.now();
      try {
        const data = await api(`/api/labeling/faces/${card.dataset.faceId}/`, { method: "PATCH", body });
        renderFace(card, data.face);
        updateCounts(data.counts);
        drawChart(data.class_counts);
        message.textContent = "";
        pace.decisions += 1;
        showPace();
        if (advance) move(card, 1);
      } catch (error) {
        message.textContent = error.message;
      } finally {
        card.classList.remove("saving");
      }
    }

    function move(card, step) {
      const all = cards();
      const next = all[all.indexOf(card) + step];
      if (next) next.focus();
    }

    // Up and down go to the card in the same column of the next row, whatever the grid width.
    function moveVertical(card, direction) {
      const all = cards();
      const left = card.offsetLeft;
      const top = card.offsetTop;
      const candidates = all.filter((c) => (direction > 0 ? c.offsetTop > top : c.offsetTop < top));
      if (!candidates.length) return;
      const rowTop = direction > 0 ? Math.min(...candidates.map((c) => c.offsetTop)) : Math.max(...candidates.map((c) => c.offsetTop));
      const row = candidates.filter((c) => c.offsetTop === rowTop);
      row.sort((a, b) => Math.abs(a.offsetLeft - left) - Math.abs(b.offsetLeft - left));
      row[0].focus();
    }

    grid.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      const card = event.target.closest(".lface");
      if (!card) return;
      if (!button) return card.focus();
      if (button.dataset.label) decide(card, { label: button.dataset.label }, false);
      else if (button.dataset.action === "skip") decide(card, { status: "skipped" }, false);
      else if (button.dataset.action === "reject") decide(card, { status: "rejected" }, false);
    });

    // Z takes back the set's latest decision, stored on the server, so it works after a reload too.
    async function undo() {
      try {
        const data = await api(`/api/labeling/sets/${setId}/undo/`, { method: "POST" });
        const card = grid.querySelector(`.lface[data-face-id="${data.face.id}"]`);
        if (card) {
          renderFace(card, data.face);
          card.focus();
        }
        updateCounts(data.counts);
        drawChart(data.class_counts);
        if (pace.decisions > 0) pace.decisions -= 1;
        showPace();
        const what = data.undone === "confirmed" ? "label" : data.undone === "rejected" ? "rejection" : "skip";
        message.textContent = `Undone: the ${what} of ${data.face.source_name}; it is pending again.`;
      } catch (error) {
        message.textContent = error.message;
      }
    }

    document.addEventListener("keydown", (event) => {
      if (event.key !== "z" && event.key !== "Z") return;
      if (event.altKey || event.ctrlKey || event.metaKey || event.target.closest("input, select, textarea")) return;
      event.preventDefault();
      undo();
    });

    // Ready for the keys at once: the first face waiting for a decision (or the first face) has the focus.
    if (document.activeElement === document.body) {
      (grid.querySelector(".lface.pending") || grid.querySelector(".lface")).focus({ preventScroll: true });
    }

    grid.addEventListener("keydown", (event) => {
      const card = event.target.closest(".lface");
      if (!card || event.altKey || event.ctrlKey || event.metaKey) return;
      const key = event.key;
      if (key >= "1" && key <= "7") decide(card, { label: CLASSES[Number(key) - 1] }, true);
      else if (key === "s" || key === "S") decide(card, { status: "skipped" }, true);
      else if (key === "x" || key === "X") decide(card, { status: "rejected" }, true);
      else if (key === "Enter" && event.target === card) {
        if (card.dataset.proposed) decide(card, { status: "confirmed" }, true);
        else message.textContent = "This face has no proposal: press 1-7 to give its label.";
      } else if (key === "ArrowRight") move(card, 1);
      else if (key === "ArrowLeft") move(card, -1);
      else if (key === "ArrowDown") moveVertical(card, 1);
      else if (key === "ArrowUp") moveVertical(card, -1);
      else return;
      event.preventDefault();
    });
  }

  // The order and class selects reload the page with the queue asked for (the server orders it).
  function setupQueue() {
    const form = document.getElementById("queue-form");
    if (!form) return;
    form.querySelectorAll("select").forEach((select) => select.addEventListener("change", () => {
      if (form.elements.order.value === "upload") form.elements.order.disabled = true;
      if (!form.elements.predicted.value) form.elements.predicted.disabled = true;
      form.submit();
    }));
  }

  function setupAccept(setId, message) {
    const form = document.getElementById("accept-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const percent = Number(form.querySelector("input[name=min_percent]").value);
      try {
        const data = await api(`/api/labeling/sets/${setId}/accept/`, { method: "POST", body: { min_probability: percent / 100 } });
        message.textContent = `Accepted ${data.accepted} proposal${data.accepted === 1 ? "" : "s"} at ${percent}% or more.`;
        updateCounts(data.counts);
        drawChart(data.class_counts);
        if (data.accepted) setTimeout(() => window.location.reload(), 600);
      } catch (error) {
        message.textContent = error.message;
      }
    });
  }

  // One click makes one dataset: the button is off while the request runs, a name the person already
  // gave a dataset is refused by the server (shown at the name field), and the form keeps what was typed.
  function setupDatasetForm(setId) {
    const form = document.getElementById("dataset-form");
    if (!form) return;
    const errorBox = document.getElementById("dataset-error");
    const done = document.getElementById("dataset-created");
    const links = document.getElementById("dataset-links");
    const button = document.getElementById("dataset-button");
    const nameInput = form.querySelector("input[name=name]");
    const target = form.querySelector("select[name=dataset]");
    // Adding to a dataset keeps its name: the name field is for a new one.
    target.addEventListener("change", () => {
      document.getElementById("dataset-name-row").hidden = Boolean(target.value);
      button.textContent = target.value ? "Add confirmed faces to the dataset" : "Create dataset from confirmed faces";
    });
    let busy = false;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (busy) return;
      busy = true;
      errorBox.hidden = true;
      done.hidden = true;
      nameInput.removeAttribute("aria-invalid");
      button.disabled = true;
      try {
        const into = target.value;
        const created = await api(`/api/labeling/sets/${setId}/create-dataset/`, { method: "POST", body: {
          name: nameInput.value,
          test_share: Number(form.querySelector("input[name=test_percent]").value || 0) / 100,
          seed: Number(form.querySelector("input[name=seed]").value || 0),
          ...(into ? { dataset: Number(into) } : {}),
        } });
        const item = document.createElement("li");
        item.dataset.datasetId = created.id;
        const id = document.createElement("span");
        id.className = "muted";
        id.textContent = `#${created.id}`;
        const link = document.createElement("a");
        link.href = created.url;
        link.id = "new-dataset-link";
        link.textContent = created.name;
        const splits = Object.entries(created.split_counts).map(([s, n]) => `${s} ${n}`).join(", ");
        const note = document.createElement("span");
        note.className = "muted";
        note.textContent = ` ${created.num_items} faces (${splits})`;
        item.append(id, " ", link, note);
        links.querySelector("#new-dataset-link")?.removeAttribute("id");
        links.prepend(item);
        links.querySelector(`li[data-dataset-id="${created.id}"]:not(:first-child)`)?.remove();
        done.textContent = into
          ? `Added ${created.added} faces to dataset #${created.id} “${created.name}” as a new version: ${created.num_items} faces now.`
          : `Created dataset #${created.id} “${created.name}” with ${created.num_items} faces.`;
        done.hidden = false;
      } catch (error) {
        if (error.fields && error.fields.name) {
          nameInput.setAttribute("aria-invalid", "true");
          nameInput.focus();
        }
        errorBox.textContent = error.message;
        errorBox.hidden = false;
      } finally {
        busy = false;
        button.disabled = false;
      }
    });
    button.disabled = false;
  }

  function setupMorePhotos(setId) {
    const form = document.getElementById("more-photos-form");
    if (!form) return;
    const errorBox = document.getElementById("more-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      errorBox.hidden = true;
      if (!form.querySelector("input[type=file]").files.length) {
        errorBox.textContent = "Choose at least one photo (JPEG, PNG, WebP, BMP) or a zip of photos.";
        errorBox.hidden = false;
        return;
      }
      try {
        await upload(`/api/labeling/sets/${setId}/photos/`, new FormData(form), () => {});
        window.location.reload();
      } catch (error) {
        errorBox.textContent = error.message;
        errorBox.hidden = false;
      }
    });
  }

  function setupDetail(data) {
    const message = document.getElementById("review-message");
    drawChart(data.class_counts);
    if (data.status === "processing") {
      const bar = document.getElementById("processing-bar");
      const percent = document.getElementById("processing-percent");
      const count = document.getElementById("processing-count");
      pollSet(data.id, (state) => {
        bar.style.width = `${Math.round(state.progress)}%`;
        percent.textContent = `${Math.round(state.progress)}%`;
        count.textContent = `${state.photos_done}/${state.photos_total}`;
      }).then(() => window.location.reload());
    }
    setupGrid(data.id, message);
    setupQueue();
    setInterval(showPace, 5000);
    setupAccept(data.id, message);
    setupDatasetForm(data.id);
    setupMorePhotos(data.id);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("labeling-form");
    if (form) setupUploadForm(form);
    const payload = document.getElementById("labeling-data");
    if (payload) setupDetail(JSON.parse(payload.textContent));
  });
})();
