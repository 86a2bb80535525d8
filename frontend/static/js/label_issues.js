// The label-error finder: start a scan of the dataset, follow its progress, then review the flagged faces
// one at a time, most suspect first, with the keyboard (1-7 relabel, Enter accept, X exclude, S skip, Z undo).
(function () {
  const { CLASSES, api, format } = window.FerWeb;
  const dataNode = document.getElementById("finder-data");
  if (!dataNode) return;
  const finder = JSON.parse(dataNode.textContent);
  if (!finder.ready) return;
  const base = `/api/datasets/${finder.dataset}`;
  const $ = (id) => document.getElementById(id);
  const PHASES = { queued: "Waiting for a worker", classifying: "Scoring every face", ranking: "Ranking the faces" };
  const CROSS_VALIDATION = "cross-validation";
  const POLL_MS = 800;

  let issues = [];
  let position = 0; // the face under review
  let history = []; // decisions, newest last: {position, item, before, after} (after null: skipped)
  // Keys pressed while a save is on its way wait their turn instead of being lost: each decision runs
  // after the one before it, on the face under review when its turn comes.
  let pending = Promise.resolve();
  const enqueue = (step) => { pending = pending.then(step); };

  function showChoiceWarning() {
    const select = $("finder-model");
    const option = select.options[select.selectedIndex];
    const inSample = select.value === "active" ? finder.active_in_sample
      : select.value === "default" ? finder.default_in_sample : Boolean(option && option.dataset.inSample);
    const warning = $("finder-choice-warning");
    warning.hidden = !inSample;
    warning.textContent = inSample ? finder.in_sample_warning : "";
  }

  function phaseName(phase) {
    const fold = /^fold_(\d+)_of_(\d+)$/.exec(phase || "");
    return fold ? `Training fold ${fold[1]} of ${fold[2]} and scoring its faces` : PHASES[phase] || "Working";
  }

  function minutes(seconds) {
    return seconds < 90 ? `${Math.max(1, Math.round(seconds))} s` : `${Math.round(seconds / 60)} min`;
  }

  // Cross-validation: the folds input and the estimate, asked again whenever the folds change. Only the
  // newest question's answer is shown: an earlier one may come back later.
  let estimateAsked = 0;
  async function showEstimate() {
    const crossValidation = $("finder-model").value === CROSS_VALIDATION;
    $("finder-folds-field").hidden = !crossValidation;
    $("finder-estimate").hidden = !crossValidation;
    const asked = ++estimateAsked;
    if (!crossValidation) return;
    $("finder-estimate-time").textContent = "estimating…";
    let text;
    try {
      const estimate = await api(`${base}/label-issues/estimate/`, { method: "POST", body: { folds: Number($("finder-folds").value) } });
      text = `about ${minutes(estimate.estimated_seconds)} on the training worker (${estimate.label}).`;
    } catch (error) {
      text = error.message;
    }
    if (asked === estimateAsked) $("finder-estimate-time").textContent = text;
  }

  async function start(event) {
    event.preventDefault();
    $("finder-error").textContent = "";
    $("finder-run").disabled = true;
    const model = $("finder-model").value;
    const body = model === CROSS_VALIDATION ? { model, folds: Number($("finder-folds").value) } : { model };
    try {
      const state = await api(`${base}/label-issues/`, { method: "POST", body });
      follow(state);
    } catch (error) {
      $("finder-error").textContent = error.message;
    } finally {
      $("finder-run").disabled = false;
    }
  }

  function follow(state) {
    const working = state.status === "queued" || state.status === "running";
    $("finder-progress").hidden = !working;
    $("finder-run").disabled = working;
    if (working) {
      $("finder-results").hidden = true;
      const behind = format.waitingBehind(state.waiting_behind, 0);
      $("finder-phase").textContent = state.phase === "queued" && behind
        ? `Waiting for the training worker · ${behind}` : phaseName(state.phase);
      // Cross-validation: the time left, from the estimate and the share done (its folds score their faces at the end).
      const left = state.estimated_seconds * (1 - state.progress / 100);
      const estimate = state.estimated_seconds
        ? `about ${minutes(left)} left of ${minutes(state.estimated_seconds)}` : "";
      const faces = state.total ? `${state.processed.toLocaleString("en")} of ${state.total.toLocaleString("en")} faces scored` : "";
      $("finder-count").textContent = [faces, estimate].filter(Boolean).join(" · ");
      $("finder-bar").style.width = `${state.progress}%`;
      setTimeout(async () => {
        try {
          follow(await api(`${base}/label-issues/`));
        } catch (error) {
          $("finder-error").textContent = error.message;
        }
      }, POLL_MS);
      return;
    }
    if (state.status === "failed" || state.status === "cancelled") {
      $("finder-error").textContent = `The last scan ${state.status}: ${state.human_readable_error}`;
      return;
    }
    if (state.status === "succeeded") review(state);
  }

  function review(state) {
    issues = state.issues;
    history = [];
    const counts = state.counts;
    const model = state.model.choice === "default" ? "the default model"
      : state.model.choice === CROSS_VALIDATION ? state.model.version : `model ${state.model.version}`;
    $("finder-summary").textContent = counts.flagged
      ? `${counts.flagged.toLocaleString("en")} of ${counts.scored.toLocaleString("en")} faces flagged by ${model}, most likely wrong first.`
      : `Nothing flagged: ${model} agrees with the labels of all ${counts.scored.toLocaleString("en")} faces.`;
    $("finder-warning").hidden = !state.warning;
    $("finder-warning").textContent = state.warning;
    // Faces already decided on an earlier visit (relabeled or excluded) count as done.
    position = issues.findIndex((issue) => issue.label === issue.given && !issue.excluded);
    if (position < 0) position = issues.length;
    $("finder-results").hidden = false;
    $("finder-review").hidden = !issues.length;
    show();
    $("finder-review").focus();
  }

  function show() {
    $("finder-done").textContent = position;
    $("finder-remaining").textContent = issues.length - position;
    const finished = position >= issues.length;
    $("finder-finished").hidden = !finished || !issues.length;
    $("finder-review").classList.toggle("finished", finished);
    if (finished) return;
    const issue = issues[position];
    $("finder-face").src = `${base}/items/${issue.index}.png`;
    $("finder-given").textContent = issue.given;
    $("finder-suggested").textContent = issue.suggested;
    $("finder-score").textContent = format.percent(issue.score);
    $("finder-source").textContent = issue.source_name ? `From ${issue.source_name}` : "";
    const state = $("finder-state");
    state.textContent = issue.excluded ? `${issue.label}, excluded` : issue.label;
    state.dataset.label = issue.label;
    state.dataset.excluded = issue.excluded ? "true" : "false";
  }

  // `choose(issue)` gives the change for the face under review (null: skip it).
  async function decide(choose, note) {
    if (position >= issues.length) return;
    const issue = issues[position];
    const before = { label: issue.label, excluded: issue.excluded };
    const after = choose(issue);
    try {
      if (after) Object.assign(issue, await api(`${base}/items/${issue.item}/`, { method: "POST", body: { ...after, source: "review" } }));
      history.push({ position, item: issue.item, before, after });
      position += 1;
      $("finder-message").textContent = typeof note === "function" ? note(after) : note;
      show();
    } catch (error) {
      $("finder-message").textContent = `Not saved: ${error.message}`;
    }
  }

  async function undo() {
    const last = history[history.length - 1];
    if (!last) {
      $("finder-message").textContent = "Nothing to undo.";
      return;
    }
    try {
      const issue = issues[last.position];
      if (last.after) {
        Object.assign(issue, await api(`${base}/items/${issue.item}/`, { method: "POST", body: { ...last.before, source: "review" } }));
      }
      history.pop();
      position = last.position;
      $("finder-message").textContent = "Undone.";
      show();
    } catch (error) {
      $("finder-message").textContent = `Could not undo: ${error.message}`;
    }
  }

  function onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey || $("finder-results").hidden) return;
    if (event.target.closest && event.target.closest("input, select, textarea, button, a")) return;
    const key = event.key;
    if (key >= "1" && key <= String(CLASSES.length)) {
      const label = CLASSES[Number(key) - 1];
      enqueue(() => decide(() => ({ label, excluded: false }), `Relabeled ${label}.`));
    } else if (key === "Enter") {
      enqueue(() => decide((issue) => ({ label: issue.suggested, excluded: false }), (after) => `Accepted: ${after.label}.`));
    } else if (key === "x" || key === "X") enqueue(() => decide(() => ({ excluded: true }), "Excluded."));
    else if (key === "s" || key === "S") enqueue(() => decide(() => null, "Skipped."));
    else if (key === "z" || key === "Z") enqueue(undo);
    else return;
    event.preventDefault();
  }

  $("finder-form").addEventListener("submit", start);
  $("finder-model").addEventListener("change", showChoiceWarning);
  $("finder-model").addEventListener("change", showEstimate);
  $("finder-folds").addEventListener("change", showEstimate);
  document.addEventListener("keydown", onKey);
  showChoiceWarning();
  api(`${base}/label-issues/`).then(follow).catch((error) => { $("finder-error").textContent = error.message; });
})();
