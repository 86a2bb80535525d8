// Predict page (upload a photo, show boxes and probabilities) and job pages (upload, progress, timeline).
(function () {
  const { CLASSES, classColor, api, upload } = window.FerWeb;
  const FINISHED = ["succeeded", "failed", "cancelled"];
  const POLL_MS = 2000;  // how often the job page checks that it has heard from the socket lately
  const QUIET_MS = 5000;  // longer than this without an event (they come every 0.5 s while a job runs): ask the API

  function show(el, text) { el.textContent = text; el.hidden = !text; }

  function probRows(probabilities) {
    return CLASSES.map((c) => {
      const p = probabilities[c] || 0;
      return `<div class="prob-row"><span>${c}</span><span class="prob-bar"><i style="width:${(p * 100).toFixed(1)}%;background:${classColor(c)}"></i></span><span class="num">${FerWeb.format.percent(p, 0)}</span></div>`;
    }).join("");
  }

  // ---- /predict/
  const predictForm = document.getElementById("predict-form");
  if (predictForm) {
    const errorEl = document.getElementById("predict-error");
    const stage = document.getElementById("predict-stage");
    const img = document.getElementById("predict-image");
    const list = document.getElementById("predict-faces");
    let attempt = 0;  // only the newest submission may fill the page
    // A new attempt starts from a blank page: no earlier photo, boxes or result stay beside a new error.
    const clearResult = () => {
      show(errorEl, "");
      stage.hidden = true;
      stage.querySelectorAll(".box").forEach((b) => b.remove());
      if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
      img.removeAttribute("src");
      list.innerHTML = "";
      document.getElementById("predict-message").textContent = "";
      document.getElementById("predict-model").textContent = "–";
      document.getElementById("predict-timing").textContent = "–";
    };
    predictForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      const mine = ++attempt;
      clearResult();
      const file = document.getElementById("id_image").files[0];
      if (!file) { show(errorEl, "Choose a photo first."); return; }
      const body = new FormData();
      body.append("image", file);
      let data;
      try {
        data = await api("/api/predict/", { method: "POST", body });
      } catch (error) {
        if (mine === attempt) show(errorEl, error.message);
        return;
      }
      if (mine !== attempt) return;
      img.src = URL.createObjectURL(file);
      await img.decode().catch(() => {});
      if (mine !== attempt) return;
      stage.hidden = false;
      // EXIF-rotated photos: the browser shows them upright, as the server saw them.
      const w = img.naturalWidth, h = img.naturalHeight;
      data.faces.forEach((face, i) => {
        const [x, y, bw, bh] = face.box;
        const box = document.createElement("div");
        box.className = "box";
        Object.assign(box.style, { left: `${(100 * x) / w}%`, top: `${(100 * y) / h}%`, width: `${(100 * bw) / w}%`, height: `${(100 * bh) / h}%`, borderColor: classColor(face.label) });
        box.innerHTML = `<span style="background:${classColor(face.label)}">${i + 1}: ${face.label}</span>`;
        stage.appendChild(box);
        const card = document.createElement("div");
        card.className = "face-card";
        card.innerHTML = `<p>Face ${i + 1}: <strong data-face-label="${face.label}">${face.label}</strong>${face.too_small ? " (small: less reliable)" : ""}</p>${probRows(face.probabilities)}`;
        list.appendChild(card);
      });
      document.getElementById("predict-message").textContent = data.message;
      document.getElementById("predict-model").textContent = data.model_version;
      const t = data.timing_ms;
      const ms = (value) => FerWeb.format.number(value, 1);
      document.getElementById("predict-timing").textContent = `${ms(t.total)} ms (decode ${ms(t.decode)}, detect ${ms(t.detect)}, classify ${ms(t.classify)})`;
    });
  }

  // ---- /jobs/
  const jobForm = document.getElementById("job-form");
  if (jobForm) {
    const errorEl = document.getElementById("job-error");
    jobForm.addEventListener("submit", (event) => {
      event.preventDefault();
      show(errorEl, "");
      const file = document.getElementById("id_file").files[0];
      if (!file) { show(errorEl, "Choose a zip or a video first."); return; }
      const body = new FormData(jobForm);
      body.delete("csrfmiddlewaretoken");
      document.getElementById("job-upload").hidden = false;
      const bar = document.getElementById("job-upload-bar");
      upload("/api/jobs/", body, (fraction) => { bar.style.width = `${100 * fraction}%`; })
        .then((data) => { location.href = `/jobs/${data.id}/`; })
        .catch((error) => show(errorEl, error.message));
    });
  }

  // ---- /jobs/{id}/
  const jobEl = document.getElementById("job");
  if (jobEl) {
    const id = jobEl.dataset.jobId;
    let finished = false;
    const update = (job) => {
      document.getElementById("job-bar").style.width = `${job.progress}%`;
      document.getElementById("job-processed").textContent = job.processed;
      document.getElementById("job-total").textContent = job.total;
      document.getElementById("job-faces").textContent = job.num_faces;
      const badge = document.getElementById("job-status");
      badge.textContent = job.status;
      badge.className = `badge ${job.status}`;
      jobEl.dataset.status = job.status;
      show(document.getElementById("job-error"), job.human_readable_error || "");
      const done = FINISHED.includes(job.status);
      document.getElementById("job-cancel").hidden = done;
      if (done && !finished) {
        finished = true;
        api(`/api/jobs/${id}/`).then(showSummary).catch((error) => show(document.getElementById("job-error"), error.message));
      }
    };
    const showSummary = (job) => {
      if (job.status !== "succeeded") return;
      document.getElementById("job-csv").hidden = false;
      document.getElementById("job-json").hidden = false;
      const summary = job.summary;
      document.getElementById("job-summary").hidden = false;
      window.FerCharts.barChart(document.getElementById("job-share"), CLASSES, [{ name: "share", values: CLASSES.map((c) => summary.share[c] || 0) }],
                                { format: ".0%", yLabel: "share of detections" });
      const holder = document.getElementById("job-faces-summary");
      holder.innerHTML = "";
      if (summary.kind === "images") {
        holder.innerHTML = `<p class="muted">${summary.items} photos, ${summary.detections} faces${summary.unreadable ? `, ${summary.unreadable} unreadable` : ""}.</p>`;
      }
      (summary.faces || []).forEach((face) => {
        const card = document.createElement("div");
        card.className = "face-card";
        card.dataset.faceId = face.id;
        const shares = CLASSES.filter((c) => face.share[c] > 0).map((c) => `${c} ${FerWeb.format.percent(face.share[c], 0)}`).join(", ");
        // The words come from the server ("mostly happy", or a tie as "angry, fear and sad equally").
        const headline = face.headline || `mostly ${face.dominant}`;
        card.innerHTML = `<h2>Face #${face.id}: <span data-face-label="${face.dominant}">${headline}</span></h2>
          <p class="muted">Seen from ${FerWeb.format.number(face.first_s, 1)} s to ${FerWeb.format.number(face.last_s, 1)} s in ${face.detections} frames. Time per emotion: ${shares}.</p>
          <div class="chart timeline"></div>`;
        holder.appendChild(card);
        const series = CLASSES.map((c) => ({ name: c, color: classColor(c), points: face.timeline.map((p) => [p.t, p.probabilities[c]]) }));
        window.FerCharts.lineChart(card.querySelector(".timeline"), series,
                                   { maxY: 1, xLabel: "seconds", yLabel: "probability", format: ".1f", hoverFormat: ".0%" });
      });
    };
    document.getElementById("job-cancel").addEventListener("click", async () => {
      // A long video job is minutes of work; one stray click must not end it.
      if (!window.confirm(`Cancel job ${id}? The analysis stops and cannot be resumed.`)) return;
      try {
        update(await api(`/api/jobs/${id}/cancel/`, { method: "POST", body: {} }));
      } catch (error) {
        show(document.getElementById("job-error"), error.message);
      }
    });
    // Socket events are best effort (a closed socket or a dropped event is possible); the job's row
    // is the truth, so whenever the socket has been quiet for a while the page asks the API.
    let lastHeard = Date.now();
    const poll = async () => {
      if (finished) return;
      if (Date.now() - lastHeard >= QUIET_MS) {
        try { update(await api(`/api/jobs/${id}/`)); } catch (e) { /* retry */ }
      }
      setTimeout(poll, POLL_MS);
    };
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}/ws/jobs/${id}/`);
    socket.onmessage = (event) => { lastHeard = Date.now(); update(JSON.parse(event.data)); };
    socket.onclose = () => { lastHeard = 0; };  // the stream is gone: poll from now on
    setTimeout(poll, POLL_MS);
    if (FINISHED.includes(jobEl.dataset.status)) update({
      progress: jobEl.dataset.status === "succeeded" ? 100 : 0, processed: document.getElementById("job-processed").textContent,
      total: document.getElementById("job-total").textContent, num_faces: document.getElementById("job-faces").textContent,
      status: jobEl.dataset.status, human_readable_error: document.getElementById("job-error").textContent.trim(),
    });
  }
})();
