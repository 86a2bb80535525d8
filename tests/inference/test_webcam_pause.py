"""Pause on the webcam page stays paused: no frame goes out, no box stays drawn, a reconnect changes nothing."""
import pytest


from ..conftest import signup
from .test_webcam import fake_camera_page

# Counts the frames the page sends (binary messages) and keeps each socket, so the test can drop one.
SOCKET_SPY = """
(() => {
  const Native = window.WebSocket;
  window.__frames = [];
  window.__sockets = [];
  window.WebSocket = class extends Native {
    constructor(...args) { super(...args); window.__sockets.push(this); }
    send(data) {
      if (typeof data !== "string") window.__frames.push(performance.now());
      return super.send(data);
    }
  };
})();
"""

OVERLAY_INK = """() => {
  const c = document.getElementById("overlay");
  if (!c.width || !c.height) return 0;
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let ink = 0;
  for (let i = 3; i < data.length; i += 4) if (data[i]) ink++;
  return ink;
}"""


@pytest.mark.browser
def test_pause_stays_paused_through_answers_and_a_reconnect_and_resume_goes_live(
    served_model, live_asgi, browser_factory, tmp_path
):
    page = fake_camera_page(browser_factory, tmp_path)
    page.add_init_script(SOCKET_SPY)
    signup(page, live_asgi.url, "pauser")
    page.goto(f"{live_asgi.url}/webcam/")
    page.locator("[data-face-label]").first.wait_for()
    page.wait_for_function(f"({OVERLAY_INK})() > 0")  # a box is drawn: its going away below means something

    # Click Pause from inside the page, so the time it returns is when the page was already paused.
    paused_at = page.evaluate("() => { document.getElementById('toggle').click(); return performance.now(); }")
    status = page.locator("#webcam-status")
    assert status.inner_text().startswith("Paused") and page.inner_text("#toggle") == "Resume"
    page.wait_for_timeout(1500)  # the answer to a frame sent before the pause arrives meanwhile
    page.evaluate("window.__sockets.at(-1).close()")  # the connection drops; the page reconnects
    page.wait_for_function("window.__sockets.length === 2 && window.__sockets[1].readyState === WebSocket.OPEN")
    page.wait_for_timeout(2000)

    assert status.inner_text().startswith("Paused"), status.inner_text()
    assert status.get_attribute("data-kind") == "info"
    assert page.evaluate(f"window.__frames.filter((t) => t > {paused_at}).length") == 0
    assert page.evaluate(OVERLAY_INK) == 0

    sent = page.evaluate("window.__frames.length")
    page.click("#toggle")
    assert page.inner_text("#toggle") == "Pause"
    page.wait_for_function(f"window.__frames.length > {sent}")
    page.wait_for_function("document.getElementById('webcam-status').textContent === 'Live.'")
    page.wait_for_function(f"({OVERLAY_INK})() > 0")
