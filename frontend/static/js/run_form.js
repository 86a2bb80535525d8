// The new-run form (/runs/new/): a preset fills every recipe field, an edit marks the preset as
// changed, and the run's duration is estimated again (debounced) whenever a setting changes.
(function () {
  const ESTIMATE_DELAY_MS = 300;
  // The estimate's phases in the order a run goes through them, as the sentence names them.
  const PHASES = [
    ["preparing_data", "preparing data"], ["training", "training"], ["evaluating", "evaluation"],
    ["occlusion_maps", "occlusion maps"], ["exporting", "export"],
  ];
  // The run's own fields that change what it costs, sent with the recipe when chosen.
  const RUN_FIELDS = ["init_from_run", "teacher_run", "teacher_model"];

  function readValue(input) {
    if (input.type === "checkbox") return input.checked;
    if (input.type === "number" && input.value !== "" && !Number.isNaN(Number(input.value))) return Number(input.value);
    return input.value;
  }

  function writeValue(input, value) {
    if (input.type === "checkbox") input.checked = Boolean(value);
    else input.value = String(value);
  }

  function sameValue(input, value) {
    if (input.type === "checkbox") return input.checked === Boolean(value);
    if (input.type === "number") return input.value !== "" && Number(input.value) === Number(value);
    return input.value === String(value);
  }

  function start() {
    const form = document.getElementById("run-form");
    if (!form) return;
    const presets = JSON.parse(document.getElementById("run-presets").textContent);
    const byName = Object.fromEntries(presets.map((p) => [p.name, p]));
    const presetInput = document.getElementById("id_preset");
    const status = document.getElementById("preset-status");
    const cards = Array.from(document.querySelectorAll("[data-preset]"));
    const inputs = Array.from(form.querySelectorAll("[data-recipe]"));
    const estimate = document.getElementById("run-estimate");
    const dataset = document.getElementById("id_dataset");

    // ---- architecture description

    const architecture = document.getElementById("id_architecture");
    const architectureHelp = document.getElementById("architecture-description");
    function describeArchitecture() {
      if (!architecture || !architectureHelp) return;
      const option = architecture.options[architecture.selectedIndex];
      architectureHelp.textContent = option ? option.dataset.description : "";
    }

    // ---- presets

    function changedFrom(preset) {
      return inputs.some((input) => input.name in preset.config && !sameValue(input, preset.config[input.name]));
    }

    function showPreset() {
      const preset = byName[presetInput.value];
      const changed = preset ? changedFrom(preset) : false;
      status.textContent = preset ? `${preset.name}${changed ? " (changed)" : ""}` : "your own";
      for (const card of cards) {
        const selected = preset !== undefined && card.dataset.preset === preset.name;
        card.classList.toggle("selected", selected);
        card.classList.toggle("changed", selected && changed);
        card.setAttribute("aria-pressed", String(selected));
      }
    }

    // Every field takes the preset's value: its recipe is complete, so nothing of the last one stays.
    function applyPreset(name) {
      const preset = byName[name];
      if (!preset) return;
      for (const input of inputs) {
        if (input.name in preset.config) writeValue(input, preset.config[input.name]);
      }
      presetInput.value = name;
      describeArchitecture();
      showPreset();
      scheduleEstimate();
    }

    for (const card of cards) card.addEventListener("click", () => applyPreset(card.dataset.preset));

    // ---- duration estimate

    let timer = null;
    let asked = 0;

    function requestBody() {
      const body = { dataset: Number(dataset.value) };
      if (presetInput.value) body.preset = presetInput.value;
      for (const input of inputs) body[input.name] = readValue(input);
      for (const name of RUN_FIELDS) {
        const select = document.getElementById(`id_${name}`);
        if (select && select.value) body[name] = name === "teacher_model" ? select.value : Number(select.value);
      }
      return body;
    }

    function labelOf(name) {
      const label = form.querySelector(`label[for="id_${name}"]`) || form.querySelector(`#id_${name}`)?.closest("label");
      return label ? label.textContent.trim() : name;
    }

    function showEstimate(answer) {
      const parts = PHASES.filter(([key]) => Math.round((answer.phases || {})[key] || 0) > 0)
        .map(([key, words]) => `${words} ${FerWeb.format.duration(answer.phases[key])}`);
      const total = document.createElement("p");
      total.className = "estimate-total";
      total.textContent = `About ${FerWeb.format.duration(answer.estimated_seconds)}` +
        (parts.length ? ` (${parts.join(", ")})` : "");
      const basis = document.createElement("p");
      basis.className = "muted estimate-basis";
      basis.textContent = answer.basis || "";
      estimate.replaceChildren(total, basis);
      estimate.dataset.state = "ready";
      estimate.dataset.seconds = String(answer.estimated_seconds);
    }

    function showRefusal(error) {
      const fields = Object.entries(error.fields || {});
      const text = fields.length
        ? fields.map(([name, messages]) => `${labelOf(name)}: ${[].concat(messages).join(" ")}`).join("; ")
        : error.message;
      const line = document.createElement("p");
      line.className = "error";
      line.textContent = `No estimate: ${text}`;
      estimate.replaceChildren(line);
      estimate.dataset.state = "error";
      delete estimate.dataset.seconds;
    }

    async function askEstimate() {
      if (!dataset || !dataset.value) {
        estimate.textContent = "Choose a dataset to see how long the run will take.";
        estimate.dataset.state = "none";
        return;
      }
      const mine = ++asked;
      estimate.dataset.state = "asking";
      try {
        const answer = await FerWeb.api("/api/runs/estimate/", { method: "POST", body: requestBody() });
        if (mine === asked) showEstimate(answer);
      } catch (error) {
        if (mine === asked) showRefusal(error);
      }
    }

    function scheduleEstimate() {
      clearTimeout(timer);
      timer = setTimeout(askEstimate, ESTIMATE_DELAY_MS);
    }

    // ---- wiring

    form.addEventListener("input", (event) => {
      if (event.target.matches("[data-recipe]")) showPreset();
      scheduleEstimate();
    });
    form.addEventListener("change", (event) => {
      if (event.target === architecture) describeArchitecture();
      if (event.target.matches("[data-recipe]")) showPreset();
      scheduleEstimate();
    });

    describeArchitecture();
    showPreset();
    askEstimate();
    const firstError = document.querySelector(".field-error");
    if (firstError) firstError.scrollIntoView({ block: "center" });
  }

  window.FerRunForm = { start };
})();
