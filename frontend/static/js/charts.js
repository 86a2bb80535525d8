// Small SVG charts shared by every page: bar, grouped bar, line and heatmap.
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const PALETTE = ["#e03131", "#66a80f", "#7048e8", "#f59f00", "#1c7ed6", "#d6336c", "#868e96",
                   "#0ca678", "#f76707", "#495057"];

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

  function niceMax(value) {
    if (value <= 0) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function frame(container, width, height) {
    container.innerHTML = "";
    return el("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, container);
  }

  function yAxis(svg, box, maxValue, format) {
    for (let i = 0; i <= 4; i++) {
      const value = (maxValue * i) / 4;
      const y = box.bottom - ((box.bottom - box.top) * i) / 4;
      el("line", { x1: box.left, x2: box.right, y1: y, y2: y, stroke: "#eef0f3" }, svg);
      text(svg, box.left - 6, y + 4, format(value), { "text-anchor": "end" });
    }
  }

  // series: [{name, values: [..], color}] over the same categories; one series = plain bar chart.
  function barChart(container, categories, series, opts) {
    opts = opts || {};
    const width = opts.width || 560, height = opts.height || 260;
    const box = { left: 52, right: width - 10, top: 12, bottom: height - 40 };
    const svg = frame(container, width, height);
    const maxValue = niceMax(Math.max(1, ...series.flatMap((s) => s.values)));
    const format = opts.format || ((v) => (Number.isInteger(v) ? v.toLocaleString() : v.toFixed(2)));
    yAxis(svg, box, maxValue, format);
    const slot = (box.right - box.left) / categories.length;
    const barWidth = (slot * 0.75) / series.length;
    categories.forEach((category, ci) => {
      series.forEach((s, si) => {
        const value = s.values[ci] || 0;
        const h = ((box.bottom - box.top) * value) / maxValue;
        const x = box.left + ci * slot + slot * 0.125 + si * barWidth;
        const color = s.color || (series.length === 1 ? PALETTE[ci % PALETTE.length] : PALETTE[si % PALETTE.length]);
        const bar = el("rect", { x, y: box.bottom - h, width: Math.max(1, barWidth - 2), height: h, fill: color, rx: 2 }, svg);
        bar.dataset.value = value;
        el("title", {}, bar).textContent = `${s.name ? s.name + " · " : ""}${category}: ${value.toLocaleString()}`;
        if (series.length === 1) text(svg, x + barWidth / 2, box.bottom - h - 3, value.toLocaleString(), { "text-anchor": "middle" });
      });
      text(svg, box.left + ci * slot + slot / 2, box.bottom + 16, category, { "text-anchor": "middle" });
    });
    if (series.length > 1) legend(container, series.map((s, i) => ({ name: s.name, color: s.color || PALETTE[i % PALETTE.length] })));
    return svg;
  }

  // series: [{name, points: [[x, y], ...], color, dash}]
  function lineChart(container, series, opts) {
    opts = opts || {};
    const width = opts.width || 560, height = opts.height || 260;
    const box = { left: 52, right: width - 12, top: 12, bottom: height - 34 };
    const svg = frame(container, width, height);
    const all = series.flatMap((s) => s.points);
    const maxX = Math.max(1, ...all.map((p) => p[0]));
    const minX = opts.minX !== undefined ? opts.minX : Math.min(0, ...all.map((p) => p[0]));
    const maxY = opts.maxY !== undefined ? opts.maxY : niceMax(Math.max(1e-9, ...all.map((p) => p[1])));
    const format = opts.format || ((v) => v.toFixed(maxY <= 2 ? 2 : 0));
    yAxis(svg, box, maxY, format);
    const sx = (x) => box.left + ((box.right - box.left) * (x - minX)) / Math.max(1e-9, maxX - minX);
    const sy = (y) => box.bottom - ((box.bottom - box.top) * y) / maxY;
    for (let i = 0; i <= 4; i++) {
      const x = minX + ((maxX - minX) * i) / 4;
      text(svg, sx(x), box.bottom + 16, opts.formatX ? opts.formatX(x) : String(Math.round(x * 100) / 100), { "text-anchor": "middle" });
    }
    if (opts.xLabel) text(svg, (box.left + box.right) / 2, height - 2, opts.xLabel, { "text-anchor": "middle" });
    if (opts.diagonal) el("line", { x1: sx(0), y1: sy(0), x2: sx(1), y2: sy(1), stroke: "#ced4da", "stroke-dasharray": "4 4" }, svg);
    series.forEach((s, i) => {
      if (!s.points.length) return;
      const color = s.color || PALETTE[i % PALETTE.length];
      const d = s.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
      el("path", { d, fill: "none", stroke: color, "stroke-width": 2, "stroke-dasharray": s.dash || "" }, svg);
    });
    legend(container, series.map((s, i) => ({ name: s.name, color: s.color || PALETTE[i % PALETTE.length], dash: s.dash })));
    return svg;
  }

  // matrix: rows of numbers; labels for rows and columns; values shown in cells.
  function heatmap(container, matrix, rowLabels, colLabels, opts) {
    opts = opts || {};
    const cell = opts.cell || 46, left = 70, top = 24;
    const width = left + cell * colLabels.length + 8, height = top + cell * rowLabels.length + 24;
    const svg = frame(container, width, height);
    const maxValue = opts.max || Math.max(1e-9, ...matrix.flat());
    const format = opts.format || ((v) => (Number.isInteger(v) ? String(v) : v.toFixed(2)));
    colLabels.forEach((label, j) => text(svg, left + j * cell + cell / 2, top - 8, label, { "text-anchor": "middle" }));
    rowLabels.forEach((label, i) => {
      text(svg, left - 6, top + i * cell + cell / 2 + 4, label, { "text-anchor": "end" });
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
