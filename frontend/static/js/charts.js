// Small SVG charts shared by every page: bar, grouped bar, line and heatmap.
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#e03131", "#66a80f", "#7048e8", "#f59f00", "#1c7ed6", "#d6336c", "#868e96",
                   "#0ca678", "#f76707", "#495057"];
  const STEPS = [1, 2, 2.5, 5];  // tick steps, times a power of ten
  const LINE = 13;  // height of one line of 11px chart text, in chart units
  const MARKED_POINTS = 24;  // series this short get a dot per point, so one epoch still shows

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(parent, x, y, label, attrs) {
    const node = el("text", Object.assign({ x, y }, attrs || {}), parent);
    node.textContent = label;
    return node;
  }

  function frame(container, width, height) {
    container.innerHTML = "";
    return el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, container);
  }

  function resize(svg, width, height) {
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
  }

  // ------------------------------------------------------------ ticks

  // Digits after the point that print every multiple of step exactly (0.25 needs 2, 2.5 needs 1).
  function decimalsFor(step) {
    for (let digits = 0; digits < 8; digits++) {
      const scaled = step * Math.pow(10, digits);
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return digits;
    }
    return 8;
  }

  function plainFormat(step) {
    const digits = decimalsFor(step);
    return (v) => v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  // The number a label shows: "25%" -> 25, "1.5 s" -> 1.5; NaN for words.
  function labelNumber(label) {
    return parseFloat(String(label).replace(/[^0-9.-]/g, ""));
  }

  // A caller's format prints a tick set exactly when its labels step as evenly as the values:
  // toFixed(1) over 0, 0.25, 0.5 gives "0.0 0.3 0.5", which does not.
  function labelsExact(values, format) {
    const shown = values.map((v) => labelNumber(format(v)));
    if (shown.length < 2 || shown.some((n) => !isFinite(n))) return true;
    const gap = shown[1] - shown[0];
    return gap !== 0 && shown.every((n, i) => Math.abs(n - shown[0] - i * gap) <= Math.abs(gap) * 1e-6);
  }

  function multiples(low, high, step) {
    const out = [];
    for (let i = Math.ceil(low / step - 1e-9); i * step <= high + step * 1e-9; i++) out.push(Number((i * step).toFixed(10)));
    return out;
  }

  // Ticks at the finest "nice" step (1, 2, 2.5 or 5 x 10^k) that leaves at most maxCount intervals
  // and that opts.format (when given) prints exactly. cover: run on to the first tick at or past high.
  function niceTicks(low, high, opts) {
    const span = Math.max(high - low, 1e-9);
    let power = Math.floor(Math.log10(span / opts.maxCount));
    if (opts.integer) power = Math.max(0, power);
    for (let k = power; k <= power + 2; k++) {
      for (const m of STEPS) {
        const step = m * Math.pow(10, k);
        if (opts.integer && !Number.isInteger(step)) continue;
        const ticks = multiples(low, opts.cover ? Math.ceil(high / step - 1e-9) * step : high, step);
        if (ticks.length - 1 > opts.maxCount) continue;
        const format = opts.format || plainFormat(step);
        if (labelsExact(ticks, format)) return { step, ticks, format };
      }
    }
    return { step: span, ticks: [low, high], format: opts.format || plainFormat(span) };
  }

  // Y ticks from 0 up to a fixed top (accuracy: 1), or up to the first tick above the data.
  function yTicks(dataMax, fixedTop, format, integer) {
    const fixed = fixedTop !== undefined;
    const found = niceTicks(0, fixed ? fixedTop : Math.max(dataMax, 1e-9), { maxCount: 5, cover: !fixed, format, integer });
    return Object.assign(found, { top: fixed ? fixedTop : found.ticks[found.ticks.length - 1] });
  }

  function yAxis(svg, box, ticks) {
    for (const value of ticks.ticks) {
      const y = box.bottom - ((box.bottom - box.top) * value) / ticks.top;
      el("line", { x1: box.left, x2: box.right, y1: y, y2: y, stroke: "#eef0f3" }, svg);
      text(svg, box.left - 6, y + 4, ticks.format(value), { "text-anchor": "end", class: "y-tick" });
    }
  }

  // ------------------------------------------------------------ column labels

  // Widest label in chart units; an estimate where the chart is not laid out (a hidden section).
  function widestLabel(svg, labels) {
    let widest = 0;
    for (const label of labels) {
      const probe = text(svg, 0, 0, label);
      widest = Math.max(widest, probe.getComputedTextLength() || 6.2 * String(label).length);
      probe.remove();
    }
    return widest;
  }

  // Labels that fit their column stay level; wider ones tilt 45° (90° in very narrow columns) so that
  // neighbours cannot overlap. reach: how far they extend from the axis; run: how far sideways.
  function labelLayout(svg, labels, slot) {
    const widest = widestLabel(svg, labels);
    const tilt = widest <= slot - 4 ? 0 : slot * Math.SQRT1_2 >= LINE ? 45 : 90;
    const angle = (tilt * Math.PI) / 180;
    return { tilt, reach: tilt ? widest * Math.sin(angle) + LINE * Math.cos(angle) : LINE, run: widest * Math.cos(angle) };
  }

  // below: labels hang from the x axis; otherwise they rise above the top row (heatmap).
  function columnLabel(svg, x, y, label, layout, below) {
    if (!layout.tilt) return text(svg, x, y, label, { "text-anchor": "middle", class: "x-label" });
    const px = x + 4, py = below ? y - LINE + 8 : y;  // the glyphs sit beside the pivot; centre them on the column
    return text(svg, px, py, label, { "text-anchor": below ? "end" : "start", class: "x-label",
                                      transform: `rotate(-${layout.tilt} ${px} ${py})` });
  }

  // ------------------------------------------------------------ charts

  // series: [{name, values: [..], color}] over the same categories; one series = plain bar chart.
  function barChart(container, categories, series, opts) {
    opts = opts || {};
    const width = opts.width || 560;
    const box = { left: 52, right: width - 10, top: 12, bottom: (opts.height || 260) - 40 };
    const svg = frame(container, width, opts.height || 260);
    const slot = (box.right - box.left) / categories.length;
    const layout = labelLayout(svg, categories, slot);
    resize(svg, width, box.bottom + Math.max(40, 12 + layout.reach));
    const values = series.flatMap((s) => s.values);
    const counts = !opts.format && values.every(Number.isInteger);  // no tick between whole faces
    const ticks = yTicks(Math.max(1, ...values), undefined, opts.format, counts);
    const format = opts.format || ((v) => (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(2)));
    yAxis(svg, box, ticks);
    const barWidth = (slot * 0.75) / series.length;
    categories.forEach((category, ci) => {
      series.forEach((s, si) => {
        const value = s.values[ci] || 0;
        const h = ((box.bottom - box.top) * value) / ticks.top;
        const x = box.left + ci * slot + slot * 0.125 + si * barWidth;
        const color = s.color || (series.length === 1 ? PALETTE[ci % PALETTE.length] : PALETTE[si % PALETTE.length]);
        const bar = el("rect", { x, y: box.bottom - h, width: Math.max(1, barWidth - 2), height: h, fill: color, rx: 2 }, svg);
        bar.dataset.value = value;
        el("title", {}, bar).textContent = `${s.name ? s.name + " · " : ""}${category}: ${format(value)}`;
        if (series.length === 1) text(svg, x + barWidth / 2, box.bottom - h - 3, format(value), { "text-anchor": "middle", class: "bar-value" });
      });
      columnLabel(svg, box.left + ci * slot + slot / 2, box.bottom + 16, category, layout, true);
    });
    if (series.length > 1) legend(container, series.map((s, i) => ({ name: s.name, color: s.color || PALETTE[i % PALETTE.length] })));
    return svg;
  }

  // Epoch axes (integerX) start at the first epoch: 1 2 3 or 1 3 5 in small steps, 1 5 10 15 in
  // larger ones (dropping a multiple that would crowd the first tick).
  function xTicks(minX, maxX, first, box, opts) {
    const found = niceTicks(minX, maxX, { maxCount: Math.max(2, Math.floor((box.right - box.left) / 50)),
                                          integer: opts.integerX, format: opts.formatX });
    if (!opts.integerX || first === null) return found;
    const later = found.step <= 2 ? multiples(1, maxX - first, found.step).map((t) => t + first)
                                  : found.ticks.filter((t) => t - first > found.step / 2);
    found.ticks = [first].concat(later);
    return found;
  }

  // series: [{name, points: [[x, y], ...], color, dash}]
  // opts: maxY (fixed top), format (y labels), minX, integerX (epochs), formatX, xLabel, diagonal.
  function lineChart(container, series, opts) {
    opts = opts || {};
    const width = opts.width || 560, height = opts.height || 260;
    const box = { left: 52, right: width - 12, top: 12, bottom: height - 34 };
    const svg = frame(container, width, height);
    const all = series.flatMap((s) => s.points);
    const first = all.length ? Math.min(...all.map((p) => p[0])) : null;
    let minX = opts.minX !== undefined ? opts.minX : opts.integerX ? (first === null ? 1 : first) : Math.min(0, first || 0);
    let maxX = Math.max(opts.integerX ? minX : 1, ...all.map((p) => p[0]));
    if (maxX - minX < 1e-9) { minX -= 0.5; maxX += 0.5; }  // a lone epoch sits mid-chart
    const highest = Math.max(0, ...all.map((p) => p[1]));
    const ticks = yTicks(highest > 0 ? highest : 1, opts.maxY, opts.format);
    yAxis(svg, box, ticks);
    const sx = (x) => box.left + ((box.right - box.left) * (x - minX)) / (maxX - minX);
    const sy = (y) => box.bottom - ((box.bottom - box.top) * y) / ticks.top;
    const xs = xTicks(minX, maxX, first, box, opts);
    for (const x of xs.ticks) text(svg, sx(x), box.bottom + 16, xs.format(x), { "text-anchor": "middle", class: "x-tick" });
    if (opts.xLabel) text(svg, (box.left + box.right) / 2, height - 2, opts.xLabel, { "text-anchor": "middle" });
    if (opts.diagonal) el("line", { x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1), stroke: "#ced4da", "stroke-dasharray": "4 4" }, svg);
    series.forEach((s, i) => {
      if (!s.points.length) return;
      const color = s.color || PALETTE[i % PALETTE.length];
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
      el("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": s.dash || "" }, svg);
      if (s.points.length <= MARKED_POINTS) markers(svg, s, color, sx, sy);
    });
    legend(container, series.map((s, i) => ({ name: s.name, color: s.color || PALETTE[i % PALETTE.length], dash: s.dash })));
    return svg;
  }

  // A path through one point draws nothing, so short series get a dot at every point.
  function markers(svg, s, color, sx, sy) {
    for (const [x, y] of s.points) {
      const dot = el("circle", { cx: sx(x).toFixed(1), cy: sy(y).toFixed(1), r: s.points.length === 1 ? 4 : 2.5,
                                 fill: color, class: "marker" }, svg);
      el("title", {}, dot).textContent = `${s.name ? s.name + " · " : ""}${x}: ${Number(y.toFixed(4))}`;
    }
  }

  // matrix: rows of numbers; labels for rows and columns; values shown in cells.
  function heatmap(container, matrix, rowLabels, colLabels, opts) {
    opts = opts || {};
    const cell = opts.cell || 46, left = 70;
    const svg = frame(container, 1, 1);
    const layout = labelLayout(svg, colLabels, cell);
    const top = layout.tilt ? 8 + layout.reach : 24;
    const lastColumnEnd = left + cell * (colLabels.length - 0.5) + 4 + (layout.tilt ? layout.run : 0);
    const width = Math.ceil(Math.max(left + cell * colLabels.length + 8, lastColumnEnd + 4));
    const height = Math.ceil(top + cell * rowLabels.length + 24);
    resize(svg, width, height);
    const maxValue = opts.max || Math.max(1e-9, ...matrix.flat());
    const format = opts.format || ((v) => (Number.isInteger(v) ? String(v) : v.toFixed(2)));
    colLabels.forEach((label, j) => columnLabel(svg, left + j * cell + cell / 2, top - 8, label, layout, false));
    rowLabels.forEach((label, i) => {
      text(svg, left - 6, top + i * cell + cell / 2 + 4, label, { "text-anchor": "end", class: "y-label" });
      colLabels.forEach((_, j) => {
        const value = matrix[i][j];
        const t = Math.min(1, value / maxValue);
        const fill = `rgba(59, 91, 219, ${0.06 + 0.9 * t})`;
        const rect = el("rect", { x: left + j * cell, y: top + i * cell, width: cell - 2, height: cell - 2, fill, rx: 3 }, svg);
        el("title", {}, rect).textContent = `true ${label}, predicted ${colLabels[j]}: ${format(value)}`;
        text(svg, left + j * cell + cell / 2 - 1, top + i * cell + cell / 2 + 4, format(value),
             { "text-anchor": "middle", style: `fill:${t > 0.55 ? "#fff" : "#1d2330"}` });
      });
    });
    if (opts.xLabel) text(svg, left + (cell * colLabels.length) / 2, height - 4, opts.xLabel, { "text-anchor": "middle" });
    return svg;
  }

  function legend(container, items) {
    const box = document.createElement("div");
    box.className = "legend";
    for (const item of items) {
      if (!item.name) continue;
      const span = document.createElement("span");
      const swatch = document.createElement("i");
      swatch.style.background = item.color;
      span.append(swatch, item.name);
      box.appendChild(span);
    }
    container.appendChild(box);
  }

  window.FerCharts = { barChart, lineChart, heatmap, PALETTE };
})();
