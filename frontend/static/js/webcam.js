// Live webcam: capture, send one JPEG frame at a time over /ws/webcam/, draw what comes back.
(function () {
  const { CLASSES, classColor, api } = window.FerWeb;
  const COLORS = Object.fromEntries(CLASSES.map((c) => [c, classColor(c)]));  // read once: the overlay redraws every frame
  const SEND_WIDTH = 640;          // frames are scaled to this width before encoding
  const MIN_INTERVAL_MS = 33;      // at most ~30 frames per second
  const SMOOTH_FRAMES = 5;
  const JPEG_QUALITY = 0.7;
  const STALE_MS = 1500;           // boxes with no newer answer for this long are taken off: the face has moved on

  const video = document.getElementById("video");
  const overlay = document.getElementById("overlay");
  const statusEl = document.getElementById("webcam-status");
  const facesEl = document.getElementById("faces");
  const fpsEl = document.getElementById("fps");
  const latencyEl = document.getElementById("latency");
  const serverEl = document.getElementById("server-ms");
  const modelEl = document.getElementById("model-version");
  const smoothBox = document.getElementById("smooth");
  const toggle = document.getElementById("toggle");
  const grab = document.createElement("canvas");

  let socket = null, reconnectDelay = 500, inFlight = false, sentAt = 0, lastSend = 0;
  let paused = false, cameraReady = false, frameSize = { w: 640, h: 480 };
  // The answer in flight belongs to a frame taken before a pause: when it comes, it is dropped, not drawn.
  let staleAnswer = false, staleTimer = null;
  let fps = 0, lastReply = 0, latency = 0;
  const history = new Map();       // face id -> last probability vectors

  function setStatus(text, kind) {
    statusEl.textContent = text;
    statusEl.dataset.kind = kind || "info";
  }

  // While paused the status says so, whatever the socket does: only the Resume button ends a pause.
  function setLiveStatus(text, kind) {
    if (!paused) setStatus(text, kind);
  }

  function clearOverlay() {
    clearTimeout(staleTimer);
    overlay.getContext("2d").clearRect(0, 0, overlay.width, overlay.height);
  }

  async function startCamera() {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setStatus("This browser cannot use a camera here (it needs HTTPS or localhost, and camera support).", "error");
      return;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
      video.srcObject = stream;
      await video.play().catch(() => {});
      cameraReady = true;
      setLiveStatus("Camera on. Connecting…", "info");
      pump();
    } catch (error) {
      if (error.name === "NotAllowedError" || error.name === "SecurityError") {
        setStatus("Camera access was refused. Allow the camera for this site in the browser's address bar, then reload.", "error");
      } else if (error.name === "NotFoundError" || error.name === "OverconstrainedError" || error.name === "DevicesNotFoundError") {
        setStatus("No camera found. Connect a camera and reload the page.", "error");
      } else if (error.name === "NotReadableError") {
        setStatus("The camera is in use by another application.", "error");
      } else {
        setStatus(`The camera could not start (${error.name || error}).`, "error");
      }
    }
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(`${scheme}://${location.host}/ws/webcam/`);
    socket.binaryType = "arraybuffer";
    socket.onopen = () => {
      reconnectDelay = 500;
      inFlight = false;
      staleAnswer = false;
      if (cameraReady) setLiveStatus("Live.", "ok");
      pump();
    };
    socket.onmessage = (event) => handle(JSON.parse(event.data));
    socket.onclose = (event) => {
      inFlight = false;
      clearOverlay();
      if (event.code === 4401) {
        setStatus("You are logged out: log in again to use the webcam.", "error");
        return;
      }
      setLiveStatus(`Connection to the server lost; reconnecting in ${(reconnectDelay / 1000).toFixed(1)} s…`, "warn");
      setTimeout(connect, reconnectDelay);
      reconnectDelay = Math.min(5000, reconnectDelay * 2);
    };
  }

  function handle(message) {
    if (message.type === "ready" || message.type === "pong") return;
    inFlight = false;
    if (paused || staleAnswer) {  // the answer to a frame from before the pause: nothing to show
      staleAnswer = false;
      pump();
      return;
    }
    const now = performance.now();
    if (message.type === "busy") {
      setStatus("The server is busy; frames are being skipped.", "warn");
      setTimeout(pump, 200);
      return;
    }
    if (message.type === "dropped") { pump(); return; }
    if (message.type === "error") {
      setStatus(message.message, "error");
      setTimeout(pump, 1000);
      return;
    }
    if (message.type !== "prediction") return;
    latency = latency ? latency * 0.8 + (now - sentAt) * 0.2 : now - sentAt;
    if (lastReply) fps = fps ? fps * 0.9 + (1000 / (now - lastReply)) * 0.1 : 1000 / (now - lastReply);
    lastReply = now;
    fpsEl.textContent = fps.toFixed(1);
    latencyEl.textContent = `${latency.toFixed(0)} ms`;
    serverEl.textContent = `${message.timing_ms.total.toFixed(1)} ms (detect ${message.timing_ms.detect.toFixed(1)}, classify ${message.timing_ms.classify.toFixed(1)})`;
    modelEl.textContent = message.model_version;
    if (statusEl.dataset.kind !== "ok") setLiveStatus("Live.", "ok");
    render(message.faces.map(smooth));
    keepFrame(message.faces);
    pump();
  }

  function smooth(face) {
    const vector = CLASSES.map((c) => face.probabilities[c] || 0);
    const past = history.get(face.id) || [];
    past.push(vector);
    if (past.length > SMOOTH_FRAMES) past.shift();
    history.set(face.id, past);
    if (!smoothBox.checked) return Object.assign({}, face, { shown: vector });
    const mean = CLASSES.map((_, i) => past.reduce((sum, v) => sum + v[i], 0) / past.length);
    return Object.assign({}, face, { shown: mean });
  }

  function render(faces) {
    const live = new Set(faces.map((f) => f.id));
    for (const id of history.keys()) if (!live.has(id)) history.delete(id);
    const rect = video.getBoundingClientRect();
    overlay.width = rect.width;
    overlay.height = rect.height;
    const ctx = overlay.getContext("2d");
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    const sx = rect.width / frameSize.w, sy = rect.height / frameSize.h;
    facesEl.innerHTML = "";
    if (!faces.length) facesEl.innerHTML = '<p class="muted">No face in view.</p>';
    faces.forEach((face) => {
      const best = face.shown.indexOf(Math.max(...face.shown));
      const label = CLASSES[best];
      const color = COLORS[label] || "#3b5bdb";
      const [x, y, w, h] = face.box;
      ctx.strokeStyle = color;
      ctx.lineWidth = 3;
      ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
      const text = `#${face.id} ${label} ${(face.shown[best] * 100).toFixed(0)}%`;
      ctx.font = "600 15px system-ui, sans-serif";
      const tw = ctx.measureText(text).width;
      ctx.fillStyle = color;
      ctx.fillRect(x * sx, Math.max(0, y * sy - 22), tw + 10, 22);
      ctx.fillStyle = "#fff";
      ctx.fillText(text, x * sx + 5, Math.max(16, y * sy - 6));
      // Probability bars under the box.
      const barTop = (y + h) * sy + 4, barW = w * sx;
      CLASSES.forEach((c, i) => {
        ctx.fillStyle = "rgba(0,0,0,.45)";
        ctx.fillRect(x * sx, barTop + i * 7, barW, 5);
        ctx.fillStyle = COLORS[c];
        ctx.fillRect(x * sx, barTop + i * 7, barW * face.shown[i], 5);
      });
      facesEl.appendChild(faceCard(face, label));
    });
    clearTimeout(staleTimer);
    if (faces.length) staleTimer = setTimeout(clearOverlay, STALE_MS);
  }

  function faceCard(face, label) {
    const card = document.createElement("div");
    card.className = "face-card";
    card.dataset.faceId = face.id;
    const title = document.createElement("p");
    const name = document.createElement("strong");
    name.dataset.faceLabel = label;
    name.textContent = label;
    title.append(`Face #${face.id}: `, name);
    if (face.too_small) title.append(" (small: less reliable)");
    card.appendChild(title);
    CLASSES.forEach((c, i) => {
      const row = document.createElement("div");
      row.className = "prob-row";
      row.innerHTML = `<span>${c}</span><span class="prob-bar"><i style="width:${(face.shown[i] * 100).toFixed(1)}%;background:${COLORS[c]}"></i></span><span class="num">${(face.shown[i] * 100).toFixed(0)}%</span>`;
      card.appendChild(row);
    });
    return card;
  }

  // Send the next frame when none is in flight, the socket is open and the camera runs.
  function pump() {
    if (paused || inFlight || !cameraReady || !socket || socket.readyState !== WebSocket.OPEN) return;
    if (!video.videoWidth) { setTimeout(pump, 50); return; }
    const wait = MIN_INTERVAL_MS - (performance.now() - lastSend);
    if (wait > 0) { setTimeout(pump, wait); return; }
    const scale = Math.min(1, SEND_WIDTH / video.videoWidth);
    frameSize = { w: Math.round(video.videoWidth * scale), h: Math.round(video.videoHeight * scale) };
    grab.width = frameSize.w;
    grab.height = frameSize.h;
    grab.getContext("2d").drawImage(video, 0, 0, frameSize.w, frameSize.h);
    inFlight = true;
    lastSend = performance.now();
    grab.toBlob((blob) => {
      if (paused) { inFlight = false; return; }  // paused while encoding: the frame is not sent
      if (!blob || !socket || socket.readyState !== WebSocket.OPEN) { inFlight = false; setTimeout(pump, 100); return; }
      sentAt = performance.now();
      socket.send(blob);
    }, "image/jpeg", JPEG_QUALITY);
  }

  // Saving is the only way a frame is kept: the faces on screen, each with some margin, go to a labeling set.
  const saveButton = document.getElementById("save-faces");
  const saveStatus = document.getElementById("save-status");
  const SET_KEY = "ferweb-webcam-labeling-set";
  let lastFaces = [], lastFrame = document.createElement("canvas");

  function keepFrame(faces) {
    lastFaces = faces;
    lastFrame.width = grab.width;
    lastFrame.height = grab.height;
    lastFrame.getContext("2d").drawImage(grab, 0, 0);
    saveButton.disabled = !faces.length;
  }

  async function faceBlobs() {
    return Promise.all(lastFaces.map((face) => new Promise((resolve) => {
      const [x, y, w, h] = face.box;
      const side = Math.round(Math.max(w, h) * 1.6);
      const crop = document.createElement("canvas");
      crop.width = crop.height = side;
      crop.getContext("2d").drawImage(lastFrame, x + w / 2 - side / 2, y + h / 2 - side / 2, side, side, 0, 0, side, side);
      crop.toBlob(resolve, "image/jpeg", 0.92);
    })));
  }

  saveButton.addEventListener("click", async () => {
    const blobs = await faceBlobs();
    const body = new FormData();
    blobs.forEach((blob, i) => body.append("files", blob, `webcam-face-${Date.now()}-${i + 1}.jpg`));
    const setId = localStorage.getItem(SET_KEY);
    const newSet = () => {
      body.append("name", `Webcam faces ${new Date().toISOString().slice(0, 10)}`);
      return api("/api/labeling/sets/", { method: "POST", body });
    };
    let data;
    saveStatus.hidden = false;
    try {
      // Add to the set this browser saved to before; start a new one when there is none, or it is gone.
      data = setId ? await api(`/api/labeling/sets/${setId}/photos/`, { method: "POST", body })
                       .catch((error) => { if (error.status === 404) return newSet(); throw error; })
                   : await newSet();
    } catch (error) {
      saveStatus.textContent = `Saving failed: ${error.message}`;
      return;
    }
    localStorage.setItem(SET_KEY, data.id);
    saveStatus.innerHTML = `Saved ${blobs.length} face${blobs.length === 1 ? "" : "s"} to <a href="/labeling/${data.id}/">labeling set #${data.id}</a>.`;
  });

  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.textContent = paused ? "Resume" : "Pause";
    toggle.setAttribute("aria-pressed", String(paused));
    if (paused) {
      staleAnswer = inFlight;  // its frame was taken before the pause
      history.clear();  // no smoothing across the pause: the face may not be the same
      clearOverlay();
      setStatus("Paused: no frames are sent.", "info");
    } else {
      setStatus(socket && socket.readyState === WebSocket.OPEN ? "Resuming…" : "Reconnecting…", "info");
      pump();
    }
  });

  connect();
  startCamera();
})();
