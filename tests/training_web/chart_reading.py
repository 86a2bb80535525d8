"""Read a page's charts the way a person does. plotly.js keeps each chart's figure on its element
(`el.data`, `el.layout`; `_fullLayout` once drawn); the rest is what is drawn: tick labels, the
hover box, the modebar's buttons, and whether labels collide or are cut off."""
import os
from pathlib import Path

# The figure as given to Plotly, without its private (underscored) bookkeeping.
_FIGURE = """(selector) => {
  const el = document.querySelector(selector);
  const clean = (value) => JSON.parse(JSON.stringify(value, (key, v) => (key.startsWith("_") ? undefined : v)));
  return { data: clean(el.data), layout: clean(el.layout) };
}"""

# Each text's box turned the way it is drawn (rotations included), in page pixels, with its chart's box.
_TEXT_CORNERS = """(selector) => Array.from(document.querySelectorAll(selector)).map((node) => {
  const b = node.getBBox(), m = node.getScreenCTM();
  const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]];
  const svg = node.ownerSVGElement.getBoundingClientRect();
  return { text: node.textContent, svg: [svg.left, svg.top, svg.right, svg.bottom],
           corners: corners.map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]) };
})"""

# Where a point of a trace is on screen (heatmaps: point = [row, column]; bars: halfway up), in
# viewport pixels, after scrolling the chart into view.
_POINT = """([selector, curve, point]) => {
  const el = document.querySelector(selector);
  el.scrollIntoView({ block: "center" });
  const trace = el._fullData[curve], xa = el._fullLayout.xaxis, ya = el._fullLayout.yaxis;
  const [x, y] = trace.type === "heatmap" ? [trace.x[point[1]], trace.y[point[0]]]
    : [trace.x[point], trace.type === "bar" ? trace.y[point] / 2 : trace.y[point]];
  const box = el.getBoundingClientRect();
  return [box.left + xa._offset + xa.d2p(x), box.top + ya._offset + ya.d2p(y)];
}"""

# The hover box's lines (a multi-line label has one tspan per line).
_HOVER_LINES = """(selector) => Array.from(document.querySelectorAll(`${selector} .hoverlayer text`)).flatMap((t) => {
  const rows = t.querySelectorAll("tspan.line");
  return (rows.length ? Array.from(rows) : [t]).map((row) => row.textContent.trim());
}).filter(Boolean)"""


def wait_for_chart(page, selector):
    """Until Plotly has drawn into the element."""
    page.wait_for_function("(s) => { const el = document.querySelector(s); return !!(el && el._fullLayout); }",
                           arg=selector)


def figure(page, selector) -> dict:
    """{"data": [traces], "layout": {...}} of the chart in `selector`, once drawn."""
    wait_for_chart(page, selector)
    return page.evaluate(_FIGURE, selector)


def series(fig) -> list[tuple[str, str, str]]:
    """(name, line dash, colour) of each line trace, in legend order."""
    return [(t["name"], t["line"].get("dash", "solid"), t["line"]["color"]) for t in fig["data"]]


def axis_title(fig, axis) -> str:
    return fig["layout"][axis]["title"]["text"]


def ticks(page, selector, axis="x") -> list[str]:
    """The tick labels drawn along the x axis (left to right) or the y axis (top to bottom)."""
    wait_for_chart(page, selector)
    side = "left" if axis == "x" else "top"
    return page.eval_on_selector_all(f"{selector} .{axis}tick text", f"""nodes => nodes
        .map((n) => [n.getBoundingClientRect().{side}, n.textContent]).sort((a, b) => a[0] - b[0]).map((p) => p[1])""")


def texts(page, selector):
    """The texts of the elements `selector`, in drawing order."""
    return page.eval_on_selector_all(selector, "nodes => nodes.map((n) => n.textContent)")


def hover(page, selector, curve=0, point=0) -> list[str]:
    """The lines of the hover box when the mouse rests on one point of one trace."""
    wait_for_chart(page, selector)
    x, y = page.evaluate(_POINT, [selector, curve, point])
    page.mouse.move(x, y)
    page.wait_for_function("(s) => document.querySelector(`${s} .hoverlayer text`)", arg=selector)
    lines = page.evaluate(_HOVER_LINES, selector)
    page.mouse.move(0, 0)
    page.wait_for_function("(s) => !document.querySelector(`${s} .hoverlayer text`)", arg=selector)
    return lines


def modebar_buttons(page, selector) -> list[str]:
    """The titles of the modebar's buttons (zoom, pan, download as PNG...)."""
    wait_for_chart(page, selector)
    return page.eval_on_selector_all(f"{selector} .modebar-btn", "nodes => nodes.map((n) => n.dataset.title)")


def _apart(p, q):
    """Two convex polygons are apart when some edge normal separates them (touching counts as apart)."""
    for poly in (p, q):
        for (x1, y1), (x2, y2) in zip(poly, poly[1:] + poly[:1]):
            nx, ny = y2 - y1, x1 - x2
            a = [x * nx + y * ny for x, y in p]
            b = [x * nx + y * ny for x, y in q]
            slack = 0.5 * (nx * nx + ny * ny) ** 0.5  # half a pixel
            if max(a) <= min(b) + slack or max(b) <= min(a) + slack:
                return True
    return False


def overlapping_labels(page, selector):
    """Pairs of label texts whose drawn boxes overlap."""
    boxes = page.evaluate(_TEXT_CORNERS, selector)
    return [(a["text"], b["text"]) for i, a in enumerate(boxes) for b in boxes[i + 1:]
            if not _apart(a["corners"], b["corners"])]


def clipped_labels(page, selector):
    """Label texts that reach outside their chart (and so are cut off)."""
    out = []
    for box in page.evaluate(_TEXT_CORNERS, selector):
        left, top, right, bottom = box["svg"]
        if any(x < left - 1 or x > right + 1 or y < top - 1 or y > bottom + 1 for x, y in box["corners"]):
            out.append(box["text"])
    return out


def shot(page, name):
    """A screenshot to look at, when FERWEB_SHOTS names a folder."""
    folder = os.environ.get("FERWEB_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)
