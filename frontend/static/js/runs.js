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

  // ------------------------------------------------------------ /runs/new/

  function newRunPage() {
    const select = document.getElementById("id_architecture");
    const help = document.getElementById("architecture-description");
    if (!select || !help) return;
    const show = () => {
      const option = select.options[select.selectedIndex];
      help.textContent = option ? option.dataset.description : "";
    };
    select.addEventListener("change", show);
    show();
    const first = document.querySelector(".field-error");
    if (first) first.scrollIntoView({ block: "center" });
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
          row.querySelector("[data-progress]").style.width = `${run.progress}%`;
          for (const key of ["accuracy", "macro_f1", "macro_auc"]) {
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

  // One run's training (solid) and validation (dashed) curve of a metric, in the run's colour.
  function curvePair(history, metric, color, prefix) {
    const pick = (key) => history.filter((h) => h[key] !== null && h[key] !== undefined).map((h) => [h.epoch, h[key]]);
    return [
      { name: `${prefix}training ${metric}`, points: pick(`train_${metric}`), color },
      { name: `${prefix}validation ${metric}`, points: pick(`val_${metric}`), color, dash: "dash" },
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

  function drawEvaluation(run, classes) {
    const metrics = run.metrics || {};
    const section = document.getElementById("evaluation");
    if (run.status !== "succeeded" || metrics.accuracy === undefined) { section.hidden = true; return; }
    section.hidden = false;
    const version = run.model_version;
    kv(document.getElementById("summary"), [
      ["Accuracy", pct(metrics.accuracy)],
      ["Macro F1", fmt(metrics.macro_f1)],
      ["Macro AUC", fmt(metrics.macro_auc)],
      ["Micro AUC", fmt(metrics.micro_auc)],
      ["Calibration error (ECE)", fmt(metrics.ece)],
      ["Evaluated on", `${metrics.test_split || "test"} split`],
      ["Best epoch", run.best_epoch === null ? "–" : String(run.best_epoch)],
      ["Wall time", duration(run.wall_time_s)],
      ["Parameters", run.param_count ? run.param_count.toLocaleString() : "–"],
      ["ONNX latency (CPU, batch 1, median)", version && version.latency_ms ? `${version.latency_ms.toFixed(2)} ms` : "–"],
    ]);
    const actions = document.getElementById("model-actions");
    actions.innerHTML = "";
    if (version) {
      actions.append(make("a", { className: "button secondary", href: version.onnx_url, id: "download-onnx", text: "Download ONNX" }), " ");
      const activate = make("button", { type: "button", id: "make-active", text: version.is_active ? "Active" : "Make active" });
      activate.disabled = version.is_active;
      activate.addEventListener("click", async () => {
        activate.disabled = true;
        try {
          await api(`/api/models/${version.id}/activate/`, { method: "POST", body: {} });
          activate.textContent = "Active";
        } catch (error) {
          activate.disabled = false;
          activate.textContent = `Make active (failed: ${error.message})`;
        }
      });
      actions.append(activate);
    }
    const perClass = document.getElementById("per-class");
    perClass.innerHTML = "";
    perClass.append(perClassTable(metrics, classes));
    if (metrics.confusion_matrix) {
      FerCharts.heatmap(document.getElementById("confusion-counts"), metrics.confusion_matrix, classes, classes);
      FerCharts.heatmap(document.getElementById("confusion-normalized"), metrics.confusion_matrix_normalized, classes, classes,
                        { max: 1, format: ".2f" });
    }
    FerCharts.lineChart(document.getElementById("roc-chart"), rocSeries(metrics, classes),
                        { maxY: 1, minX: 0, diagonal: true, format: ".1f", formatX: ".1f", hoverFormat: ".2f", height: 340,
                          xLabel: "false positive rate", yLabel: "true positive rate" });
    document.getElementById("roc-auc").textContent =
      `Macro AUC ${fmt(metrics.macro_auc)} · micro AUC ${fmt(metrics.micro_auc)}`;
    drawOcclusion(document.getElementById("occlusion"), metrics.occlusion, document.getElementById("occlusion-scale"));
  }

  // ------------------------------------------------------------ /runs/{id}/

  function runDetailPage() {
    let run = jsonData("run-data");
    let history = run.history || [];
    let lastBatch = run.last_batch || {};
    const bar = document.getElementById("run-progress");
    const text = document.getElementById("run-progress-text");
    const badge = document.getElementById("run-status");
    const cancel = document.getElementById("cancel-run");
    const errorBox = document.getElementById("run-error");
    let socket = null, retry = 500;

    function setProgress(progress) {
      if (progress === undefined || progress === null) return;
      bar.querySelector("div").style.width = `${progress}%`;
      bar.setAttribute("aria-valuenow", String(progress));
    }

    function describe() {
      const last = history[history.length - 1];
      const parts = [`${fmt(run.progress, 1)}%`];
      if (run.status === "queued") parts.push("waiting for a free training worker");
      if (!FINISHED.includes(run.status)) {
        if (lastBatch.epoch) parts.push(`epoch ${lastBatch.epoch}/${lastBatch.epochs} · batch ${lastBatch.batch}/${lastBatch.batches}`);
        else if (last) parts.push(`epoch ${last.epoch}/${last.epochs}`);
        if (lastBatch.images_per_s) parts.push(`${Math.round(lastBatch.images_per_s)} images/s`);
        if (run.eta_seconds !== null && run.eta_seconds !== undefined) parts.push(`ETA ${duration(run.eta_seconds)}`);
      }
      if (last) parts.push(`val accuracy ${pct(last.val_accuracy)} (best ${pct(last.best_val_accuracy)})`);
      if (run.message) parts.push(run.message);
      text.textContent = parts.join(" · ");
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
      run = await api(`/api/runs/${run.id}/`);
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
        Object.assign(run, { status: e.status, progress: e.progress, eta_seconds: e.eta_seconds,
                             human_readable_error: e.human_readable_error });
        setStatus(e.status);
        setProgress(e.progress);
        drawCurves(history);
        if (FINISHED.includes(e.status) && (run.metrics || {}).accuracy === undefined && e.status === "succeeded") reload();
      },
      "run.epoch": (e) => {
        addEpoch(e);
        run.eta_seconds = e.eta_seconds;
        run.progress = e.progress;
        setProgress(e.progress);
      },
      "run.batch": (e) => {
        lastBatch = e;
        run.progress = e.progress;
        setProgress(e.progress);
      },
      "run.status": (e) => {
        Object.assign(run, { progress: e.progress, message: e.message, error: e.error,
                             human_readable_error: e.human_readable_error });
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
    }
  }

  // ------------------------------------------------------------ /runs/compare/

  function comparePage() {
    const runs = jsonData("runs-data") || [];
    if (!runs.length) return;
    const table = document.getElementById("compare-table");
    const keys = [
      ["status", (r) => r.status],
      ["architecture", (r) => r.architecture],
      ["optimizer", (r) => `${r.optimizer} · lr ${r.config.learning_rate}`],
      ["epochs run", (r) => String(r.epochs_done)],
      ["accuracy", (r) => pct(r.metrics.accuracy)],
      ["macro F1", (r) => fmt(r.metrics.macro_f1)],
      ["macro AUC", (r) => fmt(r.metrics.macro_auc)],
      ["micro AUC", (r) => fmt(r.metrics.micro_auc)],
      ["best val accuracy", (r) => pct(r.best_val_accuracy)],
      ["parameters", (r) => (r.param_count ? r.param_count.toLocaleString() : "–")],
      ["wall time", (r) => duration(r.wall_time_s)],
      ["ONNX latency", (r) => (r.model_version && r.model_version.latency_ms ? `${r.model_version.latency_ms.toFixed(2)} ms` : "–")],
    ];
    const head = make("tr", {}, [make("th", { text: "" })].concat(runs.map((r) =>
      make("th", {}, [make("a", { href: `/runs/${r.id}/`, text: `#${r.id} ${r.name}` })]))));
    const body = keys.map(([label, get]) => make("tr", {}, [make("td", { text: label })].concat(
      runs.map((r) => make("td", { className: "num", text: get(r) })))));
    table.append(make("table", { id: "compare-metrics" }, [make("thead", {}, [head]), make("tbody", {}, body)]));

    // One colour per run; its training curve solid, its validation curve dashed.
    const palette = FerCharts.PALETTE;
    const series = (metric) => runs.flatMap((r, i) => curvePair(r.history || [], metric, palette[i % palette.length], `#${r.id} `));
    FerCharts.lineChart(document.getElementById("compare-accuracy"), series("accuracy"),
                        Object.assign({ integerX: true, xLabel: "epoch" }, ACCURACY_AXIS));
    FerCharts.lineChart(document.getElementById("compare-loss"), series("loss"), { integerX: true, xLabel: "epoch", yLabel: "loss" });
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
    document.querySelectorAll("button.activate").forEach((button) => {
      button.addEventListener("click", async () => {
        button.disabled = true;
        const body = button.dataset.siteDefault ? { site_default: true } : {};
        try {
          await api(`/api/models/${button.dataset.model}/activate/`, { method: "POST", body });
          window.location.reload();
        } catch (error) {
          button.disabled = false;
          button.textContent = `failed: ${error.message}`;
        }
      });
    });
  }

  window.FerRuns = { newRunPage, runListPage, runDetailPage, comparePage, modelsPage, drawEvaluation };
})();
