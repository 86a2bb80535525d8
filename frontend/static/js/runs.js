// Training pages: the new-run form, the live run list, one run's live page, the compare view, models.
(function () {
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const RUN_QUIET_MS = 15000;  // a running job reports at least every few seconds; quieter than this, read the row

  const { api, CLASSES, classColor } = window.FerWeb;

  function jsonData(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  const fmt = FerWeb.format.number;
  const pct = FerWeb.format.percent;
  const duration = FerWeb.format.duration;

  function make(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children || []) node.append(child);
    return node;
  }

  function kv(dl, pairs) {
    dl.innerHTML = "";
    for (const [label, value] of pairs) {
      dl.append(make("dt", { text: label }), make("dd", { text: value }));
    }
  }

  // ------------------------------------------------------------ accuracy against the baseline and the active model

  const known = (value) => value !== null && value !== undefined;

  // True when always answering the commonest class of the evaluation split beats the run.
  function belowBaseline(accuracy, baseline) {
    return known(accuracy) && Boolean(baseline) && accuracy < baseline.majority_accuracy;
  }

  function baselineWords(baseline) {
    return `always answering ${baseline.majority_class}`;
  }

  // The list's accuracy cell: "13.5%", and a mark when the run is below its baseline.
  function fillAccuracyCell(cell, run) {
    const accuracy = (run.metrics || {}).accuracy;
    cell.textContent = pct(accuracy);
    if (belowBaseline(accuracy, run.baseline)) {
      const why = `Below ${baselineWords(run.baseline)} (${pct(run.baseline.majority_accuracy)})`;
      cell.append(" ", make("span", { className: "below-baseline", "data-below-baseline": "", title: why,
                                      "aria-label": "below the baseline", text: "⚠" }));
    }
  }

  // Asks before a model serves predictions, with its accuracy against the model serving them now.
  // candidate: {title: "run 12 (fast_resnet, 13.5%)", accuracy, baseline}; active: {version, accuracy};
  // options: staff (may set it for everyone), mine (already active for this user), site (already the site default).
  // Resolves with "me", "everyone" or "" (cancelled).
  function confirmActivation(candidate, active, options) {
    options = options || {};
    document.getElementById("activate-dialog")?.remove();
    const warnings = [];
    if (belowBaseline(candidate.accuracy, candidate.baseline)) {
      warnings.push(`It scores less than ${baselineWords(candidate.baseline)} ` +
                    `(${pct(candidate.baseline.majority_accuracy)}): it has not learnt to tell the expressions apart. ` +
                    "Do not make it active.");
    }
    if (known(candidate.accuracy) && active && known(active.accuracy) && candidate.accuracy < active.accuracy) {
      warnings.push(`It is less accurate than the model you use now: ${pct(candidate.accuracy)} against ${pct(active.accuracy)}.`);
    }
    const now = active ? `Right now your predictions come from ${active.version} (${pct(active.accuracy)}).` : "";
    const choices = [];
    if (!options.mine) choices.push(make("button", { type: "submit", value: "me", id: "activate-me", text: "For me" }));
    if (options.staff && !options.site) {
      choices.push(make("button", { type: "submit", value: "everyone", id: "activate-everyone", className: "secondary",
                                    title: "The site default: it serves everyone who has not chosen a model",
                                    text: "For everyone" }));
    }
    const cancel = make("button", { type: "submit", value: "", id: "activate-cancel", className: "secondary", text: "Cancel" });
    const dialog = make("dialog", { id: "activate-dialog", className: "confirm", "aria-labelledby": "activate-question" }, [
      make("form", { method: "dialog" }, [
        make("h2", { id: "activate-question", text: `Make ${candidate.title} the active model?` }),
        make("p", { id: "activate-now", text: now }),
        ...warnings.map((text) => make("p", { className: "warning", "data-warning": "", text })),
        options.staff && !options.site
          ? make("p", { className: "muted", text: "“For everyone” makes it the site default: it serves everyone who has not chosen a model." })
          : "",
        make("p", { className: "dialog-buttons" }, [...choices, cancel]),
      ]),
    ]);
    document.body.append(dialog);
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => { resolve(dialog.returnValue || ""); dialog.remove(); });
      dialog.showModal();
      (warnings.length || !choices.length ? cancel : choices[0]).focus();  // a warned choice is not one Enter away
    });
  }

  // ------------------------------------------------------------ /runs/

  function runListPage() {
    const table = document.getElementById("runs-table");
    const compare = document.getElementById("compare-selected");
    const boxes = () => Array.from(document.querySelectorAll(".compare-box:checked")).map((b) => b.value);
    document.addEventListener("change", (event) => {
      if (event.target.classList.contains("compare-box")) compare.disabled = boxes().length < 2;
    });
    compare.addEventListener("click", () => { window.location = `/runs/compare/?ids=${boxes().join(",")}`; });
    if (!table) return;

    async function refresh() {
      let active = false;
      try {
        const runs = await api("/api/runs/");
        for (const run of runs) {
          const row = table.querySelector(`tr[data-run="${run.id}"]`);
          if (!row) continue;
          const badge = row.querySelector("[data-status]");
          badge.textContent = run.status;
          badge.className = `badge ${run.status}`;
          row.querySelector("[data-progress]").style.width = `${run.progress.percent}%`;
          fillAccuracyCell(row.querySelector('[data-metric="accuracy"]'), run);
          for (const key of ["macro_f1", "macro_auc"]) {
            row.querySelector(`[data-metric="${key}"]`).textContent = fmt(run.metrics[key]);
          }
          if (!FINISHED.includes(run.status)) active = true;
        }
      } catch (error) {
        active = true; // try again: the server may be restarting
      }
      if (active) setTimeout(refresh, 2000);
    }
    const anyActive = Array.from(table.querySelectorAll("[data-status]")).some((b) => !FINISHED.includes(b.textContent.trim()));
    if (anyActive) setTimeout(refresh, 1000);
  }

  // ------------------------------------------------------------ charts of one run

  // One run's training (dashed) and validation (solid: the one that tells how well it does) curve of a
  // metric, in the run's colour.
  function curvePair(history, metric, color, prefix) {
    const pick = (key) => history.filter((h) => h[key] !== null && h[key] !== undefined).map((h) => [h.epoch, h[key]]);
    return [
      { name: `${prefix}training ${metric}`, points: pick(`train_${metric}`), color, dash: "dash" },
      { name: `${prefix}validation ${metric}`, points: pick(`val_${metric}`), color },
    ];
  }

  const ACCURACY_AXIS = { maxY: 1, format: ".0%", hoverFormat: ".1%", yLabel: "accuracy" };

  function drawCurves(history) {
    const color = FerCharts.PALETTE[0];
    FerCharts.lineChart(document.getElementById("loss-chart"), curvePair(history, "loss", color, ""),
                        { xLabel: "epoch", yLabel: "loss", integerX: true });
    FerCharts.lineChart(document.getElementById("accuracy-chart"), curvePair(history, "accuracy", color, ""),
                        Object.assign({ xLabel: "epoch", integerX: true }, ACCURACY_AXIS));
  }

  function perClassTable(metrics, classes) {
    const perClass = metrics.per_class || {};
    const rows = classes.filter((c) => perClass[c]).map((c) => {
      const m = perClass[c];
      return make("tr", { "data-class": c }, [
        make("td", { text: c }),
        make("td", { className: "num", text: fmt(m.precision) }),
        make("td", { className: "num", text: fmt(m.recall) }),
        make("td", { className: "num", text: fmt(m.f1) }),
        make("td", { className: "num", text: fmt(m.specificity) }),
        make("td", { className: "num", text: m.support === undefined ? "–" : String(m.support) }),
        make("td", { className: "num", text: metrics.roc && metrics.roc[c] ? fmt(metrics.roc[c].auc) : "–" }),
      ]);
    });
    const head = make("tr", {}, ["class", "precision", "recall", "F1", "specificity", "support", "AUC"].map(
      (h, i) => make("th", { className: i ? "num" : "", text: h })));
    return make("table", { id: "per-class-table" }, [make("thead", {}, [head]), make("tbody", {}, rows)]);
  }

  function rocSeries(metrics, classes) {
    const roc = metrics.roc || {};
    return classes.filter((c) => roc[c] && roc[c].fpr && roc[c].fpr.length).map((c) => ({
      name: `${c} (AUC ${fmt(roc[c].auc)})`,
      points: roc[c].fpr.map((x, i) => [x, roc[c].tpr[i]]),
      color: classColor(c),
    }));
  }

  // Map values are drops of p(true class) in probability units (0.2 = twenty points). One scale for
  // every face, so faces compare; and a floor, so that a map of tiny drops stays faint, not bright red.
  const OCCLUSION_FLOOR = 0.05;

  function occlusionScale(items) {
    const peak = Math.max(0, ...items.map((item) => Math.max(...item.map.flat())));
    return Math.max(OCCLUSION_FLOOR, peak);
  }

  function describeOcclusionScale(node, scale) {
    if (!node) return;
    const why = scale === OCCLUSION_FLOOR ? "a floor: no face here loses that much, so small drops stay faint" : "the largest drop among these faces";
    node.textContent = `One scale for all faces: full red = p(true class) drops by ${fmt(scale, 2)} or more (${why}); no red = no drop.`;
  }

  // Each face with a red veil where hiding it lowers the probability of its true class.
  function drawOcclusion(container, items, scaleNode) {
    container.innerHTML = "";
    if (!items || !items.length) {
      container.append(make("p", { className: "muted", text: "No occlusion maps for this run." }));
      if (scaleNode) scaleNode.textContent = "";
      return;
    }
    const side = 144;
    const scale = occlusionScale(items);
    describeOcclusionScale(scaleNode, scale);
    for (const item of items) {
      const map = item.map, rows = map.length, cols = map[0].length;
      const overlay = make("canvas", { width: cols, height: rows });
      const ctx = overlay.getContext("2d");
      const image = ctx.createImageData(cols, rows);
      map.forEach((row, y) => row.forEach((value, x) => {
        const i = 4 * (y * cols + x);
        image.data[i] = 230; image.data[i + 1] = 20; image.data[i + 2] = 20;
        image.data[i + 3] = Math.round(200 * Math.min(1, Math.max(0, value) / scale));
      }));
      ctx.putImageData(image, 0, 0);
      overlay.style.width = overlay.style.height = `${side}px`;
      const face = make("img", { src: item.face, alt: `${item.label} face`, width: side, height: side });
      const caption = `${item.label} · p=${fmt(item.base_prob, 2)}` + (item.predicted !== item.label ? ` (predicted ${item.predicted})` : "");
      container.append(make("figure", { className: "occlusion", "data-class": item.label },
                            [make("div", { className: "stack" }, [face, overlay]), make("figcaption", { text: caption })]));
    }
  }

  // "Accuracy 13.5% · always answering happy: 25.1% · active model: 69.3%", and a warning when the
  // run does worse than always answering the commonest class.
  function drawAccuracyLine(run) {
    const line = document.getElementById("accuracy-line");
    const warning = document.getElementById("baseline-warning");
    if (!line) return;
    const accuracy = (run.metrics || {}).accuracy, baseline = run.baseline, active = run.active_model;
    const version = run.model_version;
    line.innerHTML = "";
    line.append("Accuracy ", make("strong", { id: "run-accuracy", text: pct(accuracy) }));
    if (baseline) {
      line.append(" · ", make("span", { id: "run-baseline", title: "the commonest class of the evaluation split",
                                        text: `${baselineWords(baseline)}: ${pct(baseline.majority_accuracy)}` }));
    }
    if (active) {
      const self = version && active.id === version.id;
      line.append(" · ", make("span", { id: "run-active-model", title: `the model serving your predictions: ${active.version}`,
                                        text: self ? "active model: this one" : `active model: ${pct(active.accuracy)}` }));
    }
    if (warning) {
      warning.hidden = !belowBaseline(accuracy, baseline);
      warning.textContent = warning.hidden ? "" :
        `This model does worse than ${baselineWords(baseline)}, which scores ${pct(baseline.majority_accuracy)} here: ` +
        "it has not learnt to tell the expressions apart. Do not make it active; train longer or with another recipe.";
    }
  }

  function drawEvaluation(run, classes) {
    const metrics = run.metrics || {};
    const section = document.getElementById("evaluation");
    if (run.status !== "succeeded" || metrics.accuracy === undefined) { section.hidden = true; return; }
    section.hidden = false;
    const version = run.model_version;
    drawAccuracyLine(run);
    kv(document.getElementById("summary"), [
      ["Macro F1", fmt(metrics.macro_f1)],
      ["Macro AUC", fmt(metrics.macro_auc)],
      ["Micro AUC", fmt(metrics.micro_auc)],
      ["Calibration error (ECE)", fmt(metrics.ece)],
      ["Evaluated on", `${metrics.test_split || "test"} split`],
      ["Best epoch", run.best_epoch === null ? "–" : String(run.best_epoch)],
      ["Wall time", duration(run.wall_time_s)],
      ["Parameters", run.param_count ? run.param_count.toLocaleString() : "–"],
      ["ONNX latency (CPU, batch 1, median)", version && version.latency_ms ? `${fmt(version.latency_ms, 2)} ms` : "–"],
    ]);
    const actions = document.getElementById("model-actions");
    actions.innerHTML = "";
    if (version) {
      actions.append(make("a", { className: "button secondary", href: version.onnx_url, id: "download-onnx", text: "Download ONNX" }), " ");
      const staff = actions.dataset.staff === "true";
      const activate = make("button", { type: "button", id: "make-active" });
      const outcome = make("span", { className: "muted", id: "activate-outcome" });
      const label = () => {
        activate.textContent = version.is_active ? "Active" : "Make active";
        activate.disabled = version.is_active && !(staff && !version.is_site_default);
        if (version.is_active && !activate.disabled) activate.textContent = "Active · make it the site default";
      };
      label();
      activate.addEventListener("click", async () => {
        const choice = await confirmActivation(
          { title: `run ${run.id} (${run.architecture}, ${pct(metrics.accuracy)})`, accuracy: metrics.accuracy,
            baseline: run.baseline },
          run.active_model, { staff, mine: version.is_active, site: version.is_site_default });
        if (!choice) return;
        activate.disabled = true;
        try {
          const answer = await api(`/api/models/${version.id}/activate/`,
                                   { method: "POST", body: choice === "everyone" ? { site_default: true } : {} });
          Object.assign(version, { is_active: answer.is_active, is_site_default: answer.is_site_default });
          if (answer.is_active) run.active_model = { id: answer.id, version: answer.version, accuracy: answer.metrics.accuracy };
          outcome.textContent = choice === "everyone" ? " Now the site default: it serves everyone who has not chosen a model."
                                                      : " Your predictions now come from this model.";
          drawAccuracyLine(run);
        } catch (error) {
          outcome.textContent = ` Not changed: ${error.message}`;
        }
        label();
      });
      actions.append(activate, outcome);
    }
    const perClass = document.getElementById("per-class");
    perClass.innerHTML = "";
    perClass.append(perClassTable(metrics, classes));
    if (metrics.confusion_matrix) {
      const onCell = (truth, predicted) => openConfusionCell(run, truth, predicted);
      FerCharts.heatmap(document.getElementById("confusion-counts"), metrics.confusion_matrix, classes, classes, { onCell });
      FerCharts.heatmap(document.getElementById("confusion-normalized"), metrics.confusion_matrix_normalized, classes, classes,
                        { max: 1, format: ".2f", onCell });
    }
    FerCharts.lineChart(document.getElementById("roc-chart"), rocSeries(metrics, classes),
                        { maxY: 1, minX: 0, diagonal: true, format: ".1f", formatX: ".1f", hoverFormat: ".2f", height: 340,
                          xLabel: "false positive rate", yLabel: "true positive rate" });
    document.getElementById("roc-auc").textContent =
      `Macro AUC ${fmt(metrics.macro_auc)} · micro AUC ${fmt(metrics.micro_auc)}`;
    drawOcclusion(document.getElementById("occlusion"), metrics.occlusion, document.getElementById("occlusion-scale"));
  }

  // ------------------------------------------------------------ the faces behind a confusion-matrix cell

  const CELL_LIMIT = 60;  // faces listed per cell, the most confident first
  let cellShown = null;  // {run, truth, predicted, faces}: what the panel lists now

  function cellTitle(truth, predicted, count) {
    const faces = count === null ? "" : `: ${count.toLocaleString()} face${count === 1 ? "" : "s"}`;
    return truth === predicted ? `${truth} recognised as ${truth}${faces}` : `${truth} taken for ${predicted}${faces}`;
  }

  function topProbabilities(probabilities, n) {
    return Object.entries(probabilities).sort((a, b) => b[1] - a[1]).slice(0, n)
      .map(([name, p]) => `${name} ${Math.round(p * 100)}%`).join(" · ");
  }

  function faceState(face) {
    if (face.excluded) return "excluded";
    if (face.label && cellShown && face.label !== cellShown.truth) return `now labeled ${face.label}`;
    return "";
  }

  function faceCard(face) {
    const box = make("input", { type: "checkbox", value: String(face.item), "aria-label": `choose ${face.source_name}` });
    const card = make("label", { className: "cell-face", "data-item": String(face.item) }, [
      box,
      make("img", { src: face.image, width: "72", height: "72", alt: face.source_name, loading: "lazy" }),
      make("span", { className: "cell-face-name", text: face.source_name, title: face.source_name }),
      make("span", { className: "cell-face-probs", text: topProbabilities(face.probabilities, 3) }),
      make("span", { className: "cell-face-state", text: faceState(face) }),
    ]);
    card.classList.toggle("excluded", Boolean(face.excluded));
    return card;
  }

  function chosenItems() {
    return [...document.querySelectorAll("#confusion-cell-faces input[type=checkbox]:checked")].map((b) => Number(b.value));
  }

  const facesWord = (n) => `${n} face${n === 1 ? "" : "s"}`;

  // Relabel or exclude: one decision per face on the dataset's item (the call every screen uses);
  // review: one call that copies the faces into a new labeling set.
  async function actOnCell(action) {
    const outcome = document.getElementById("confusion-cell-outcome");
    const items = chosenItems();
    outcome.className = "";
    if (!cellShown || !items.length) {
      outcome.textContent = "Choose at least one face first.";
      return;
    }
    const { run } = cellShown;
    const label = document.getElementById("confusion-cell-label").value;
    const buttons = document.querySelectorAll("#confusion-cell-actions button");
    buttons.forEach((b) => { b.disabled = true; });
    let done = 0;
    try {
      if (action === "review") {
        const answer = await api(`/api/runs/${run.id}/confusion/review/`, { method: "POST", body: { items } });
        outcome.textContent = answer.detail + " ";
        outcome.append(make("a", { href: answer.labeling_set.url, text: "Open the labeling set" }));
        return;
      }
      const body = action === "relabel" ? { label } : { excluded: true };
      for (const item of items) {
        await api(`/api/datasets/${run.dataset.id}/items/${item}/`, { method: "POST", body: { ...body, source: "confusion" } });
        done += 1;
        const face = cellShown.faces.find((f) => f.item === item);
        if (face) Object.assign(face, action === "relabel" ? { label } : { excluded: true });
        const card = document.querySelector(`#confusion-cell-faces .cell-face[data-item="${item}"]`);
        if (card && face) card.replaceWith(faceCard(face));
      }
      outcome.textContent = (action === "relabel" ? `${facesWord(done)} relabeled as ${label}.`
                                                  : `${facesWord(done)} excluded from the dataset.`)
        + " The dataset's newest version records it; runs keep the version they trained on.";
      document.getElementById("confusion-cell-all").checked = false;
    } catch (error) {
      outcome.className = "error";
      const partly = done ? `${facesWord(done)} changed, then: ` : "";
      outcome.textContent = `${partly}${error.message}`;
    } finally {
      buttons.forEach((b) => { b.disabled = false; });
    }
  }

  function bindCellPanel() {
    const panel = document.getElementById("confusion-cell");
    if (panel.dataset.bound) return;
    panel.dataset.bound = "true";
    const select = document.getElementById("confusion-cell-label");
    for (const name of CLASSES) select.append(make("option", { value: name, text: name }));
    document.getElementById("confusion-cell-relabel").addEventListener("click", () => actOnCell("relabel"));
    document.getElementById("confusion-cell-exclude").addEventListener("click", () => actOnCell("exclude"));
    document.getElementById("confusion-cell-review").addEventListener("click", () => actOnCell("review"));
    document.getElementById("confusion-cell-all").addEventListener("change", (event) => {
      document.querySelectorAll("#confusion-cell-faces input[type=checkbox]").forEach((b) => { b.checked = event.target.checked; });
    });
  }

  // Lists the evaluation faces of one cell (true class `truth`, predicted `predicted`) below the matrices.
  async function openConfusionCell(run, truth, predicted) {
    const panel = document.getElementById("confusion-cell");
    if (!panel) return;
    bindCellPanel();
    const title = document.getElementById("confusion-cell-title");
    const note = document.getElementById("confusion-cell-note");
    const grid = document.getElementById("confusion-cell-faces");
    const actions = document.getElementById("confusion-cell-actions");
    const outcome = document.getElementById("confusion-cell-outcome");
    const asked = { run, truth, predicted, faces: [] };
    cellShown = asked;
    Object.assign(panel.dataset, { true: truth, predicted });
    panel.hidden = false;
    title.textContent = `${cellTitle(truth, predicted, null)}…`;
    note.textContent = "";
    outcome.textContent = "";
    outcome.className = "";
    grid.innerHTML = "";
    actions.hidden = true;
    document.getElementById("confusion-cell-all").checked = false;
    document.getElementById("confusion-cell-label").value = predicted;
    let cell;
    try {
      cell = await api(`/api/runs/${run.id}/confusion/?true=${encodeURIComponent(truth)}` +
                       `&predicted=${encodeURIComponent(predicted)}&limit=${CELL_LIMIT}`);
    } catch (error) {
      if (cellShown !== asked) return;
      title.textContent = cellTitle(truth, predicted, null);
      note.textContent = error.message;
      return;
    }
    if (cellShown !== asked) return;  // another cell was clicked meanwhile
    asked.faces = cell.faces;
    title.textContent = cellTitle(truth, predicted, cell.count);
    note.textContent = cell.count > cell.faces.length
      ? `The ${cell.faces.length} most confident of them, most confident first.`
      : cell.count ? "Most confident first." : "No face of the evaluation split landed in this cell.";
    actions.hidden = !cell.faces.length;
    for (const face of cell.faces) grid.append(faceCard(face));
    panel.scrollIntoView({ block: "nearest" });
  }

  // ------------------------------------------------------------ /runs/{id}/

  // The run JSON's progress.phase, named for people.
  const PHASE_NAMES = {
    queued: "Waiting for the training worker", preparing_data: "Preparing data", training: "Training",
    evaluating: "Evaluating", occlusion_maps: "Occlusion maps", exporting: "Exporting",
  };

  function runDetailPage() {
    let run = jsonData("run-data");
    let history = run.history || [];
    let lastBatch = run.last_batch || {};
    let progress = run.progress || { percent: 0, phase: "", eta_seconds: null };
    let progressAt = Date.now();  // when progress.eta_seconds was true: the page counts down from there
    let busyAt = Date.now();  // when run.waiting_behind was read
    const bar = document.getElementById("run-progress");
    const text = document.getElementById("run-progress-text");
    const log = document.getElementById("run-log");
    const badge = document.getElementById("run-status");
    const cancel = document.getElementById("cancel-run");
    const errorBox = document.getElementById("run-error");
    let socket = null, retry = 500;

    function setProgress(next) {
      if (!next || typeof next !== "object") return;
      progress = next;
      progressAt = Date.now();
      bar.querySelector("div").style.width = `${next.percent}%`;
      bar.setAttribute("aria-valuenow", String(next.percent));
    }

    function secondsLeft() {
      if (progress.eta_seconds === null || progress.eta_seconds === undefined) return null;
      return progress.eta_seconds - (Date.now() - progressAt) / 1000;
    }

    // Every half minute while queued: what the worker is busy with may have changed.
    async function refreshWaiting() {
      try {
        const fresh = await api(`/api/runs/${run.id}/`);
        if (run.status !== "queued") return;
        run.waiting_behind = fresh.waiting_behind;
        busyAt = Date.now();
      } catch (error) {
        // the live stream reports trouble; the line keeps what it had
      }
    }

    // "Training · 42.0% · epoch 2/5 · batch 106/202 · 760 images/s · about 2m 10s left": what the run
    // is doing, never a log line (those go to the quieter line below it).
    function describe() {
      const last = history[history.length - 1];
      const parts = [];
      if (run.status === "queued") {
        parts.push(PHASE_NAMES.queued);
        const behind = FerWeb.format.waitingBehind(run.waiting_behind, (Date.now() - busyAt) / 1000);
        if (behind) parts.push(behind);
        if (run.estimated_seconds !== null && run.estimated_seconds !== undefined) parts.push(`estimated ${duration(run.estimated_seconds)}`);
      } else if (!FINISHED.includes(run.status)) {
        parts.push(PHASE_NAMES[progress.phase] || "Starting", pct(progress.percent / 100));
        if (progress.phase === "training" && lastBatch.epoch) {
          parts.push(`epoch ${lastBatch.epoch}/${lastBatch.epochs}`, `batch ${lastBatch.batch}/${lastBatch.batches}`);
          if (lastBatch.images_per_s) parts.push(`${Math.round(lastBatch.images_per_s)} images/s`);
        }
        const left = secondsLeft();
        if (left !== null) parts.push(left >= 1 ? `about ${duration(left)} left` : "almost done");
      } else if (run.status === "succeeded" && run.started_at && run.finished_at) {
        const took = (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
        parts.push(`Finished in ${duration(took)}` +
                   (run.estimated_seconds ? ` (estimated ${duration(run.estimated_seconds)})` : ""));
      }
      if (last) parts.push(`val accuracy ${pct(last.val_accuracy)} (best ${pct(last.best_val_accuracy)})`);
      text.textContent = parts.join(" · ");
      if (log) log.textContent = !FINISHED.includes(run.status) && run.message ? run.message : "";
    }

    function setStatus(status) {
      run.status = status;
      badge.textContent = status;
      badge.className = `badge ${status}`;
      cancel.hidden = FINISHED.includes(status);
      if (run.human_readable_error && status !== "succeeded") {
        errorBox.textContent = run.human_readable_error;
        errorBox.hidden = false;
      }
    }

    function addEpoch(event) {
      history = history.filter((h) => h.epoch !== event.epoch).concat([event]).sort((a, b) => a.epoch - b.epoch);
      drawCurves(history);
    }

    async function reload() {
      run = Object.assign(await api(`/api/runs/${run.id}/`), { message: run.message });
      history = run.history || history;
      setStatus(run.status);
      setProgress(run.progress);
      drawCurves(history);
      describe();
      drawEvaluation(run, CLASSES);
    }

    const handlers = {
      "run.history": (e) => {
        history = e.history || [];
        lastBatch = e.last_batch || {};
        Object.assign(run, { status: e.status, human_readable_error: e.human_readable_error });
        setStatus(e.status);
        setProgress(e.progress);
        drawCurves(history);
        if (FINISHED.includes(e.status) && (run.metrics || {}).accuracy === undefined && e.status === "succeeded") reload();
      },
      "run.epoch": (e) => {
        addEpoch(e);
        setProgress(e.progress);
      },
      "run.batch": (e) => {
        lastBatch = e;
        setProgress(e.progress);
      },
      "run.progress": (e) => setProgress(e.progress),
      "run.status": (e) => {
        Object.assign(run, { error: e.error, human_readable_error: e.human_readable_error });
        if (e.message) run.message = e.message;
        setStatus(e.status);
        setProgress(e.progress);
        if (FINISHED.includes(e.status)) reload();
      },
    };

    // Socket events are best effort; after a quiet spell the run's row (the truth) is read instead,
    // so a dropped final event cannot leave the page showing a run that has ended.
    let lastHeard = Date.now();
    function watchQuiet() {
      if (FINISHED.includes(run.status)) return;
      let check = Promise.resolve();
      if (Date.now() - lastHeard >= RUN_QUIET_MS) {
        lastHeard = Date.now();
        check = reload().catch(() => {});
      }
      check.finally(() => setTimeout(watchQuiet, RUN_QUIET_MS / 3));
    }

    function connect() {
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      socket = new WebSocket(`${scheme}://${location.host}/ws/runs/${run.id}/`);
      socket.onopen = () => { retry = 500; };
      socket.onmessage = (message) => {
        lastHeard = Date.now();
        const event = JSON.parse(message.data);
        const handle = handlers[event.type];
        if (handle) handle(event);
        describe();
      };
      socket.onclose = () => {
        if (FINISHED.includes(run.status)) return;
        setTimeout(connect, retry);
        retry = Math.min(10000, retry * 2);
      };
    }

    cancel.addEventListener("click", async () => {
      // One stray click must not end hours of training.
      if (!window.confirm(`Cancel run ${run.id}? Training stops within a batch; this cannot be undone.`)) return;
      cancel.disabled = true;
      cancel.textContent = "Cancelling…";
      try {
        const answer = await api(`/api/runs/${run.id}/cancel/`, { method: "POST", body: {} });
        if (FINISHED.includes(answer.status)) setStatus(answer.status);
      } catch (error) {
        cancel.disabled = false;
        cancel.textContent = "Cancel";
        errorBox.textContent = error.message;
        errorBox.hidden = false;
      }
    });

    setStatus(run.status);
    setProgress(run.progress);
    drawCurves(history);
    describe();
    drawEvaluation(run, CLASSES);
    if (!FINISHED.includes(run.status)) {
      connect();
      watchQuiet();
      let ticks = 0;
      const countdown = setInterval(() => {  // the seconds left tick down between the worker's reports
        if (FINISHED.includes(run.status)) clearInterval(countdown);
        ticks += 1;
        if (run.status === "queued" && ticks % 30 === 0) refreshWaiting();
        describe();
      }, 1000);
    }
  }

  // ------------------------------------------------------------ /runs/compare/

  // A recipe value as the table shows it: yes/no, numbers as given, a checkpoint by its file name.
  function settingText(value) {
    if (value === undefined || value === null || value === "") return "–";
    if (typeof value === "boolean") return value ? "yes" : "no";
    if (typeof value === "string" && value.includes("/")) return value.split("/").pop();
    return String(value);
  }

  // Rows of the compare table: [key, label, value(run) -> text, raw(run) -> what is compared].
  function resultRows() {
    const metric = (r, key) => (r.metrics || {})[key];
    return [
      ["status", "status", (r) => r.status, (r) => r.status],
      ["accuracy", "accuracy", (r) => pct(metric(r, "accuracy")), (r) => metric(r, "accuracy"), "best"],
      ["baseline", "always answering the commonest class",
       (r) => (r.baseline ? `${r.baseline.majority_class}: ${pct(r.baseline.majority_accuracy)}` : "–"),
       (r) => r.baseline && r.baseline.majority_accuracy],
      ["macro_f1", "macro F1", (r) => fmt(metric(r, "macro_f1")), (r) => metric(r, "macro_f1"), "best"],
      ["macro_auc", "macro AUC", (r) => fmt(metric(r, "macro_auc")), (r) => metric(r, "macro_auc"), "best"],
      ["best_val_accuracy", "best validation accuracy", (r) => pct(r.best_val_accuracy), (r) => r.best_val_accuracy, "best"],
      ["epochs_done", "epochs run", (r) => String(r.epochs_done), (r) => r.epochs_done],
      ["wall_time_s", "wall time", (r) => duration(r.wall_time_s), (r) => r.wall_time_s],
      ["latency", "ONNX latency (CPU, batch 1)",
       (r) => (r.model_version && r.model_version.latency_ms ? `${fmt(r.model_version.latency_ms, 2)} ms` : "–"),
       (r) => r.model_version && r.model_version.latency_ms],
    ];
  }

  function inputRows(fields) {
    const rows = [
      ["dataset", "dataset", (r) => `#${r.dataset.id} ${r.dataset.name}`, (r) => r.dataset.id],
      ["param_count", "parameters", (r) => (r.param_count ? r.param_count.toLocaleString() : "–"), (r) => r.param_count],
      ["init_from_run", "fine-tuned from", (r) => (r.init_from_run ? `run ${r.init_from_run}` : "–"), (r) => r.init_from_run],
    ];
    const groups = [["Data", rows]];
    for (const field of fields) {
      let group = groups.find(([title]) => title === field.group);
      if (!group) { group = [field.group, []]; groups.push(group); }
      group[1].push([field.name, field.label, (r) => settingText((r.config || {})[field.name]),
                     (r) => (r.config || {})[field.name]]);
    }
    return groups;
  }

  // Every setting and result side by side; settings that differ are highlighted, the best result is bold.
  function compareTable(runs, fields) {
    const head = make("tr", {}, [make("th", { text: "" })].concat(runs.map((r) =>
      make("th", { scope: "col" }, [make("a", { href: `/runs/${r.id}/`, text: `#${r.id} ${r.name}` })]))));
    const body = [];
    const section = (title, rows, compare) => {
      const group = make("tr", { className: "group-row" }, [make("th", { colspan: String(runs.length + 1), text: title })]);
      body.push(group);
      let differing = 0;
      for (const [key, label, show, raw, best] of rows) {
        const values = runs.map((r) => JSON.stringify(raw(r) === undefined ? null : raw(r)));
        const same = values.every((v) => v === values[0]);
        const cells = runs.map((r) => make("td", { className: "num", text: show(r) }));
        if (best && runs.length > 1) {
          const numbers = runs.map((r) => raw(r)).filter(known);
          const top = numbers.length ? Math.max(...numbers) : null;
          runs.forEach((r, i) => { if (known(raw(r)) && raw(r) === top && !same) cells[i].classList.add("best"); });
        }
        let className = "";
        if (compare) {
          className = same ? "same" : "diff";
          if (!same) differing += 1;
        }
        body.push(make("tr", { "data-field": key, className }, [make("th", { scope: "row", text: label })].concat(cells)));
      }
      if (compare && !differing) group.classList.add("same");
    };
    section("Results", resultRows(), false);
    for (const [title, rows] of inputRows(fields)) section(title, rows, true);
    return make("table", { id: "compare-metrics", className: "compare-table" }, [make("thead", {}, [head]), make("tbody", {}, body)]);
  }

  function rowNormalised(run) {
    return (run.metrics || {}).confusion_matrix_normalized || null;
  }

  function drawDifference(runs) {
    const box = document.getElementById("compare-difference");
    const caption = document.getElementById("difference-caption");
    const pickA = document.getElementById("difference-a"), pickB = document.getElementById("difference-b");
    if (!box) return;
    const named = (r) => `#${r.id} ${r.architecture}`;
    if (runs.length > 2) {
      document.getElementById("difference-pick").hidden = false;
      for (const [select, chosen] of [[pickA, runs[0]], [pickB, runs[1]]]) {
        select.innerHTML = "";
        runs.forEach((r) => select.append(make("option", { value: String(r.id), text: named(r) })));
        select.value = String(chosen.id);
      }
    }
    const draw = () => {
      const byId = (id) => runs.find((r) => String(r.id) === id);
      const a = runs.length > 2 ? byId(pickA.value) : runs[0];
      const b = runs.length > 2 ? byId(pickB.value) : runs[1];
      const ma = rowNormalised(a), mb = rowNormalised(b);
      if (window.Plotly) window.Plotly.purge(box);
      box.innerHTML = "";
      if (!ma || !mb) {
        caption.textContent = `Run ${(ma ? b : a).id} is not evaluated yet: there is no matrix to compare.`;
        return;
      }
      caption.textContent = `B (${named(b)}) minus A (${named(a)}), in shares of each true class. Green: B does better ` +
        "there (more faces right on the diagonal, fewer confused elsewhere); red: B does worse.";
      const diff = mb.map((row, i) => row.map((v, j) => v - ma[i][j]));
      FerCharts.differenceHeatmap(box, diff, CLASSES, { cell: 34, hoverSuffix: ` (B minus A)` });
    };
    if (pickA) pickA.addEventListener("change", draw);
    if (pickB) pickB.addEventListener("change", draw);
    draw();
  }

  function comparePage() {
    const runs = jsonData("runs-data") || [];
    const fields = jsonData("recipe-fields") || [];
    if (!runs.length) return;
    const holder = document.getElementById("compare-table");
    const table = compareTable(runs, fields);
    holder.append(table);
    const only = document.getElementById("only-differences");
    const differing = table.querySelectorAll("tr.diff").length;
    document.getElementById("differences-count").textContent =
      runs.length < 2 ? "" : differing === 1 ? "1 setting differs." : `${differing} settings differ.`;
    only.addEventListener("change", () => table.classList.toggle("only-differences", only.checked));

    // One colour per run; its validation curve solid, its training curve dashed.
    const series = (metric) => runs.flatMap((r, i) => curvePair(r.history || [], metric, FerCharts.runColor(i), `#${r.id} `));
    FerCharts.lineChart(document.getElementById("compare-accuracy"), series("accuracy"),
                        Object.assign({ integerX: true, xLabel: "epoch" }, ACCURACY_AXIS));
    FerCharts.lineChart(document.getElementById("compare-loss"), series("loss"), { integerX: true, xLabel: "epoch", yLabel: "loss" });

    // Recall of each class, one bar per run, in the run's colour.
    const evaluated = runs.map((r, i) => [r, i]).filter(([r]) => (r.metrics || {}).per_class);
    const recall = document.getElementById("compare-recall");
    if (evaluated.length) {
      FerCharts.barChart(recall, CLASSES, evaluated.map(([r, i]) => ({
        name: `#${r.id} ${r.architecture}`, color: FerCharts.runColor(i),
        values: CLASSES.map((c) => (r.metrics.per_class[c] ? r.metrics.per_class[c].recall : null)),
      })), { format: ".0%", hoverFormat: ".1%", maxY: 1, yLabel: "recall", xLabel: "true class", height: 300 });
    } else {
      recall.append(make("p", { className: "muted", text: "None of these runs is evaluated yet." }));
    }
    if (runs.length > 1) drawDifference(runs);

    // Every box first, then the matrices: each chart takes the width its box has beside the others.
    const confusion = document.getElementById("compare-confusion");
    const boxes = runs.map((r) => {
      const box = make("div", { className: "chart", id: `confusion-run-${r.id}` });  // the id names its PNG download
      confusion.append(make("div", {}, [make("h3", { text: `#${r.id} ${r.architecture}` }), box]));
      return box;
    });
    runs.forEach((r, i) => {
      const box = boxes[i];
      if (r.metrics.confusion_matrix_normalized) {
        FerCharts.heatmap(box, r.metrics.confusion_matrix_normalized, CLASSES, CLASSES,
                          { max: 1, cell: 34, format: ".2f" });
      } else {
        box.append(make("p", { className: "muted", text: "Not evaluated yet." }));
      }
    });
  }

  // ------------------------------------------------------------ /models/

  function modelsPage() {
    const table = document.getElementById("models-table");
    if (!table) return;
    const staff = table.dataset.staff === "true";
    const number = (text) => (text === undefined || text === "" ? null : Number(text));
    const activeRow = table.querySelector("tr.active-row");
    const active = { version: document.getElementById("active-model").textContent.trim(),
                     accuracy: activeRow ? number(activeRow.dataset.accuracy) : null };
    table.querySelectorAll("button.activate").forEach((button) => {
      button.addEventListener("click", async () => {
        const row = button.closest("tr");
        const accuracy = number(row.dataset.accuracy);
        const what = row.dataset.run ? `run ${row.dataset.run}` : row.dataset.model === "default" ? "the shipped model" : row.dataset.version;
        const baseline = row.dataset.baselineClass
          ? { majority_class: row.dataset.baselineClass, majority_accuracy: number(row.dataset.baseline) } : null;
        const choice = await confirmActivation(
          { title: `${what} (${row.dataset.architecture || row.dataset.version}, ${pct(accuracy)})`, accuracy, baseline },
          active, { staff, mine: row.classList.contains("active-row"), site: row.dataset.isSiteDefault === "true" });
        if (!choice) return;
        button.disabled = true;
        try {
          await api(`/api/models/${row.dataset.model}/activate/`,
                    { method: "POST", body: choice === "everyone" ? { site_default: true } : {} });
          window.location.reload();
        } catch (error) {
          button.disabled = false;
          button.textContent = `failed: ${error.message}`;
        }
      });
    });
  }

  window.FerRuns = { runListPage, runDetailPage, comparePage, modelsPage, drawEvaluation, openConfusionCell };

  // ------------------------------------------------------------ notes and tags (/runs/{id}/)

  // The owner's notes (saved with "Save notes") and tags (saved as each is added or removed), by
  // PATCH /api/runs/{id}/; "Saved" says it reached the server.
  function runNotes() {
    const card = document.getElementById("run-notes");
    if (!card) return;
    const run = JSON.parse(document.getElementById("run-data").textContent);
    const notes = document.getElementById("id_run_notes");
    const list = document.getElementById("run-tags");
    const input = document.getElementById("id_new_tag");
    const status = document.getElementById("notes-status");
    const errorBox = document.getElementById("notes-error");
    let tags = Array.from(list.querySelectorAll(".tag")).map((node) => node.dataset.tag);

    function drawTags() {
      list.replaceChildren(...tags.map((tag) => {
        const link = make("a", { href: `/runs/?tag=${encodeURIComponent(tag)}`, text: tag });
        const remove = make("button", { type: "button", "aria-label": `Remove the tag ${tag}`, text: "×" });
        remove.addEventListener("click", () => save({ tags: tags.filter((t) => t !== tag) }));
        const node = make("span", { className: "tag", "data-tag": tag }, [link, remove]);
        return node;
      }));
    }

    async function save(body) {
      status.textContent = "Saving…";
      errorBox.hidden = true;
      try {
        const saved = await api(`/api/runs/${run.id}/`, { method: "PATCH", body });
        tags = saved.tags;
        drawTags();
        status.textContent = "Saved";
        return true;
      } catch (error) {
        status.textContent = "";
        errorBox.textContent = error.message;
        errorBox.hidden = false;
        return false;
      }
    }

    list.querySelectorAll(".tag button").forEach((button) => {
      button.addEventListener("click", () => save({ tags: tags.filter((t) => t !== button.closest(".tag").dataset.tag) }));
    });
    document.getElementById("save-notes").addEventListener("click", () => save({ notes: notes.value }));
    notes.addEventListener("input", () => { status.textContent = ""; });
    async function addTag() {
      const tag = input.value.trim();
      if (!tag) return;
      if (await save({ tags: [...tags, tag] })) input.value = "";
    }
    document.getElementById("add-tag").addEventListener("click", addTag);
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        addTag();
      }
    });
  }

  window.FerRuns.runNotes = runNotes;
})();

// "Train again on version N" (/runs/{id}/): the run's recipe on its dataset's newest version
// (POST /api/runs/{id}/retrain/), then the new run's page.
window.FerRuns.retrainButton = function () {
  const button = document.getElementById("retrain-run");
  if (!button) return;
  const run = JSON.parse(document.getElementById("run-data").textContent);
  const errorBox = document.getElementById("retrain-error");
  button.addEventListener("click", async () => {
    button.disabled = true;
    errorBox.hidden = true;
    try {
      const created = await FerWeb.api(`/api/runs/${run.id}/retrain/`, { method: "POST", body: {} });
      window.location.href = `/runs/${created.id}/`;
    } catch (error) {
      errorBox.textContent = error.message;
      errorBox.hidden = false;
      button.disabled = false;
    }
  });
};
