// The charts every page draws, over plotly.js (served by frontend/views.py): values on hover, zoom and
// pan, legend entries that hide their series on click, and a PNG download in the modebar.
(function () {
  // One colour per run (compare page) or per split; classes take theirs from the CSS variables (FerWeb.classColor).
  const PALETTE = ["#1c7ed6", "#e03131", "#66a80f", "#7048e8", "#f59f00", "#d6336c", "#0ca678", "#f76707",
                   "#868e96", "#495057"];
  const EPOCH_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000];
  const MARKED_POINTS = 24;  // series this short get a dot per point, so a lone epoch still shows
  const INK = "#1d2330", MUTED = "#667085", GRID = "#eef0f3";

  function cssVar(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  // The colour of the i-th run on a page that shows several (--series-1, ... in app.css).
  function runColor(i) {
    const n = PALETTE.length;
    return cssVar(`--series-${(i % n) + 1}`, PALETTE[i % n]);
  }

  function axis(title, extra) {
    return Object.assign({
      title: { text: title || "", font: { color: INK, size: 12 }, standoff: 8 },
      gridcolor: GRID, linecolor: "#d0d5dd", zeroline: false, automargin: true,
    }, extra || {});
  }

  function layoutFor(opts, extra) {
    return Object.assign({
      height: opts.height || 280,
      margin: { l: 52, r: 12, t: 12, b: 40 },
      font: { family: 'system-ui, -apple-system, "Segoe UI", sans-serif', size: 11, color: MUTED },
      paper_bgcolor: "#fff",  // the cards' white, and a PNG download that is not transparent
      plot_bgcolor: "#fff",
      modebar: { bgcolor: "rgba(255, 255, 255, 0.9)", color: "#98a2b3", activecolor: cssVar("--accent", "#3b5bdb") },
      legend: { orientation: "h", x: 0, xanchor: "left", y: 1.02, yanchor: "bottom", font: { size: 12 } },
      hoverlabel: { namelength: -1 },
      uirevision: "keep",  // zoom and hidden series survive the redraws of a live run
    }, extra);
  }

  function draw(container, traces, layout) {
    if (!window.Plotly) {  // the bundle did not load: say so, and let the page's other parts work
      container.textContent = "The chart library could not be loaded; reload the page to see this chart.";
      return container;
    }
    window.Plotly.react(container, traces, layout, {
      responsive: true,  // follows its card's width, down to a phone's
      displaylogo: false,
      showSendToCloud: false,  // the figure's data stay here: no "Share chart" upload to Plotly's cloud
      plotlyServerURL: "",
      modeBarButtonsToRemove: ["select2d", "lasso2d"],
      toImageButtonOptions: { filename: container.id || "ferweb-chart", scale: 2 },
    });
    return container;
  }

  // series: [{name, points: [[x, y], ...], color, dash}]; dash "dash" marks validation curves.
  // opts: xLabel, yLabel, maxY (fixed top), minX, integerX (epochs), format and formatX (d3, y and x ticks),
  //       hoverFormat (d3, values on hover), diagonal (ROC chance line), height.
  function lineChart(container, series, opts) {
    opts = opts || {};
    const hover = opts.hoverFormat || opts.format || ".3f";
    // Curves that share their x values (epochs, seconds) read best as one column of values per x;
    // ROC curves do not share them, so each point answers for itself, with both its rates.
    const hovermode = opts.diagonal ? "closest" : "x unified";
    const hovertemplate = hovermode === "closest" ? `${opts.xLabel || "x"} %{x:.2f}<br>${opts.yLabel || "y"} %{y:${hover}}`
                                                  : `%{y:${hover}}`;
    const traces = series.map((s, i) => ({ s, color: s.color || PALETTE[i % PALETTE.length] }))
      .filter(({ s }) => s.points.length)
      .map(({ s, color }) => ({
        type: "scatter",
        mode: s.points.length <= MARKED_POINTS ? "lines+markers" : "lines",
        name: s.name,
        x: s.points.map((p) => p[0]),
        y: s.points.map((p) => p[1]),
        line: { color, width: 2, dash: s.dash || "solid" },
        // Open dots on dashed curves: a lone epoch, which has no line, still shows which curve it is.
        marker: { size: s.points.length === 1 ? 8 : 5, symbol: s.dash ? "circle-open" : "circle" },
        cliponaxis: false,
        hovertemplate,
      }));
    const xs = series.flatMap((s) => s.points.map((p) => p[0]));
    const first = xs.length ? Math.min(...xs) : 1, last = xs.length ? Math.max(...xs) : 1;
    const xaxis = axis(opts.xLabel, { tickformat: opts.formatX || "" });
    if (opts.integerX) {
      // Whole epochs from the first one on (1 3 5 ..., 1 6 11 ...), as many as the width holds.
      const most = Math.max(2, Math.floor((container.clientWidth || 560) / 60));
      const dtick = EPOCH_STEPS.find((step) => (last - first) / step <= most) || undefined;
      Object.assign(xaxis, { tickformat: "d", tick0: first, dtick });
      if (last === first) xaxis.range = [first - 0.5, first + 0.5];  // a lone epoch sits mid-chart
    } else if (opts.minX !== undefined) {
      xaxis.range = [opts.minX, Math.max(last, opts.minX + 1)];
    }
    const yaxis = axis(opts.yLabel, { rangemode: "tozero", tickformat: opts.format || "" });
    if (opts.maxY !== undefined) yaxis.range = [0, opts.maxY];
    const shapes = opts.diagonal ? [{ type: "line", x0: 0, y0: 0, x1: 1, y1: 1, layer: "below",
                                      line: { color: "#ced4da", dash: "dash", width: 1 } }] : [];
    // On a phone a long legend wraps into rows above the plot: grow by them rather than squash the plot.
    const rows = container.clientWidth && container.clientWidth < 520 ? Math.max(0, traces.length - 2) : 0;
    const height = (opts.height || 280) + 18 * rows;
    return draw(container, traces, layoutFor(opts, { height, xaxis, yaxis, shapes, hovermode }));
  }

  // series: [{name, values, color}] over the same categories. One series: each bar in its class's colour
  // with its value on top; several: grouped, one colour per series, in a legend.
  // opts: format (d3, e.g. ".0%"), hoverFormat (d3, values on hover and on top), maxY, xLabel, yLabel, height.
  function barChart(container, categories, series, opts) {
    opts = opts || {};
    const one = series.length === 1;
    const values = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    const counts = !opts.format && values.every(Number.isInteger);
    const format = opts.format || (counts ? ",d" : ".2f");
    const hover = opts.hoverFormat || format;
    const top = Math.max(1, ...values);
    const traces = series.map((s, i) => ({
      type: "bar",
      name: s.name,
      x: categories,
      y: s.values,
      marker: { color: one ? categories.map((c) => window.FerWeb.classColor(c)) : s.color || PALETTE[i % PALETTE.length] },
      texttemplate: one ? `%{y:${hover}}` : "",
      textposition: "outside",
      cliponaxis: false,
      hovertemplate: `%{x}: %{y:${hover}}<extra>${s.name || ""}</extra>`,
    }));
    const yaxis = axis(opts.yLabel, { rangemode: "tozero", tickformat: format });
    if (counts && top <= 10) yaxis.dtick = top <= 5 ? 1 : 2;  // no tick between whole faces
    if (one) yaxis.range = [0, top * 1.15];  // room for the values above the bars
    else if (opts.maxY !== undefined) yaxis.range = [0, opts.maxY];
    return draw(container, traces, layoutFor(opts, {
      height: opts.height || 260, barmode: "group", bargap: 0.2, showlegend: !one, hovermode: "closest",
      xaxis: axis(opts.xLabel, { type: "category" }), yaxis,
    }));
  }

  // matrix: rows of numbers, the true class down the side and the predicted one along the bottom.
  // opts: max (top of the colour scale), format (d3, the numbers in the cells), cell (px per row),
  //       xLabel, yLabel (default: a confusion matrix's), onCell(row, column): called with the labels of a
  //       clicked cell.
  function heatmap(container, matrix, rowLabels, colLabels, opts) {
    opts = opts || {};
    const format = opts.format || (matrix.flat().every(Number.isInteger) ? ",d" : ".2f");
    const cell = opts.cell || 40;
    const trace = {
      type: "heatmap", z: matrix, x: colLabels, y: rowLabels, zmin: 0, zmax: opts.max,
      colorscale: [[0, "#f1f3fd"], [1, cssVar("--accent", "#3b5bdb")]], showscale: false, xgap: 2, ygap: 2,
      texttemplate: `%{z:${format}}`,
      hovertemplate: `true %{y}, predicted %{x}: %{z:${format}}<extra></extra>`,
    };
    draw(container, [trace], layoutFor(opts, {
      height: cell * rowLabels.length + 110,
      margin: { l: 8, r: 8, t: 8, b: 8 },
      hovermode: "closest",
      xaxis: axis(opts.xLabel || "predicted class", { type: "category", showgrid: false }),
      yaxis: axis(opts.yLabel || "true class", { type: "category", autorange: "reversed", showgrid: false }),
    }));
    if (opts.onCell && container.on) {
      // Redraws (a live page) bind again: one listener at a time.
      if (container.removeAllListeners) container.removeAllListeners("plotly_click");
      container.on("plotly_click", (event) => {
        const point = event && event.points && event.points[0];
        if (point) opts.onCell(point.y, point.x);
      });
      container.style.cursor = "pointer";
    }
    return container;
  }

  // matrix: B minus A of two row-normalised confusion matrices (true class down the side). Each cell says
  // the signed change; its colour says what the change means: green where B does better (more faces
  // on the diagonal, fewer confused elsewhere), red where it does worse, white where nothing changed.
  // opts: floor (the change that gets full colour at least, so that noise stays pale), cell, hoverSuffix.
  function differenceHeatmap(container, matrix, labels, opts) {
    opts = opts || {};
    const better = matrix.map((row, i) => row.map((d, j) => (i === j ? d : -d)));
    const peak = Math.max(opts.floor || 0.05, ...matrix.flat().map(Math.abs));
    const signed = (d) => (Math.abs(d) < 0.005 ? "0" : `${d > 0 ? "+" : "-"}${Math.abs(d).toFixed(2)}`);
    const text = matrix.map((row) => row.map(signed));
    const trace = {
      type: "heatmap", z: better, x: labels, y: labels, zmin: -peak, zmax: peak, zmid: 0, text,
      colorscale: [[0, cssVar("--bad", "#c92a2a")], [0.5, "#ffffff"], [1, cssVar("--ok", "#2f9e44")]],
      showscale: false, xgap: 2, ygap: 2, texttemplate: "%{text}",
      hovertemplate: `true %{y}, predicted %{x}: %{text}${opts.hoverSuffix || ""}<extra></extra>`,
    };
    const cell = opts.cell || 40;
    return draw(container, [trace], layoutFor(opts, {
      height: cell * labels.length + 110,
      margin: { l: 8, r: 8, t: 8, b: 8 },
      hovermode: "closest",
      xaxis: axis("predicted class", { type: "category", showgrid: false }),
      yaxis: axis("true class", { type: "category", autorange: "reversed", showgrid: false }),
    }));
  }

  window.FerCharts = { lineChart, barChart, heatmap, differenceHeatmap, runColor, PALETTE };
})();
