"""Read the SVG charts of a page the way a person does: the labels drawn, and whether they collide."""
import os
from pathlib import Path

# Each text's box turned the way it is drawn (rotations included), in page pixels.
_TEXT_CORNERS = """(selector) => Array.from(document.querySelectorAll(selector)).map((node) => {
  const b = node.getBBox(), m = node.getScreenCTM();
  const corners = [[b.x, b.y], [b.x + b.width, b.y], [b.x + b.width, b.y + b.height], [b.x, b.y + b.height]];
  const svg = node.ownerSVGElement.getBoundingClientRect();
  return { text: node.textContent, svg: [svg.left, svg.top, svg.right, svg.bottom],
           corners: corners.map(([x, y]) => [m.a * x + m.c * y + m.e, m.b * x + m.d * y + m.f]) };
})"""


def texts(page, selector):
    """The label texts, in drawing order."""
    return page.eval_on_selector_all(selector, "nodes => nodes.map((n) => n.textContent)")


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
    """Label texts that reach outside their SVG (and so are cut off)."""
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
