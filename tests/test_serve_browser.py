"""``activity serve``'s pages in a real headless Chromium (Debian's chromium and chromium-driver, driven by
Selenium; no browser is downloaded): upload, the predicted label, the timeline, seeking, the evaluation viewer."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")
uvicorn = pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")

from activity.data.synthetic import order_clip, write_video  # noqa: E402
from activity.serve.app import create_app  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="no Chromium here (apt-get install chromium chromium-driver)")

#: Set to a path to keep the test's screenshot of the page there (the README's docs/serve.png is one:
#: ACTIVITY_SCREENSHOT=docs/serve.png pytest tests/test_serve_browser.py).
SCREENSHOT_ENV = "ACTIVITY_SCREENSHOT"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def site(trained_run, tmp_path_factory, cli):
    """The server on a free localhost port, in a thread, with an evaluation report; its address."""
    run = trained_run()
    root = tmp_path_factory.mktemp("browser")
    assert cli(["evaluate", run.ckpt, "--data", run.data, "--out", root / "eval", "--cache", run.cache, "--quiet"]).code == 0
    parts = [order_clip(c, num_frames=36, size=(96, 72), seed=i) for i, c in enumerate(["growing", "moving_right", "shrinking"])]
    video = write_video(root / "three actions.webm", np.concatenate(parts), 12.0)  # VP9: Chromium plays it
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(run.ckpt, reports=root / "eval"), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "video": video}
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(DRIVER))
    yield driver
    driver.quit()


def _until(browser, condition, seconds: float = 120, what: str = "the page"):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(browser, seconds, poll_frequency=0.1).until(lambda d: condition(d))
    except Exception:
        status = browser.find_element("id", "status").text
        raise AssertionError(f"{what} did not happen in {seconds} s; the page says: {status!r}") from None


def test_upload_predict_timeline_seek(site, browser, tmp_path):
    browser.get(site["url"] + "/")
    _until(browser, lambda d: "growing" in d.find_element("id", "card-list").text, what="the model card")
    statuses = []
    browser.find_element("id", "file").send_keys(str(site["video"]))
    # The progress line says what happens before the result comes.
    _until(browser, lambda d: statuses.append(d.find_element("id", "status").text)
           or d.find_elements("css selector", "#track .segment"), what="the timeline")
    assert any(s.startswith(("uploading", "waiting", "starting", "decoding", "encoding")) for s in statuses), statuses
    top = browser.find_elements("css selector", "#topk li .label")
    assert top and top[0].text in ("growing", "moving_right", "shrinking")
    segments = browser.find_elements("css selector", "#track .segment")
    labels = [r.find_elements("tag name", "td")[2].text for r in browser.find_elements("css selector", "#segments tbody tr")]
    assert len(segments) == len(labels) >= 2 and labels[0] == "growing" and "shrinking" in labels, labels
    assert browser.find_elements("css selector", "#legend span")
    player = browser.find_element("id", "player")
    _until(browser, lambda d: d.execute_script("return arguments[0].readyState", player) >= 1, 30, "the video's metadata")
    last = segments[-1]
    start = float(browser.find_elements("css selector", "#segments tbody tr")[-1].find_element("tag name", "td").text)
    last.click()
    _until(browser, lambda d: abs(d.execute_script("return arguments[0].currentTime", player) - start) < 0.5, 30,
           "seeking to the clicked segment")
    assert "current" in last.get_attribute("class")  # the segment under the play head is highlighted
    shot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "serve.png")
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"


def test_the_evaluation_viewer_lists_and_plays_a_cells_clips(site, browser):
    browser.get(site["url"] + "/reports")
    _until(browser, lambda d: d.find_elements("css selector", "#confusion td.cell"), what="the confusion matrix")
    cell = browser.find_elements("css selector", "#confusion td.cell.diagonal")[0]
    count = int(cell.text)
    cell.click()
    rows = _until(browser, lambda d: d.find_elements("css selector", "#clips tbody tr"), 30, "the cell's clips")
    assert len(rows) == count and all(r.find_elements("tag name", "td")[1].text == cell.get_attribute("data-true")
                                      for r in rows)
    rows[0].click()
    player = browser.find_element("id", "clip-player")
    _until(browser, lambda d: d.execute_script("return arguments[0].currentSrc", player).endswith("/api/reports/videos/"
                                                                                                  + rows[0].get_attribute("data-row")),
           30, "the clip's video")
    assert "top1" in browser.find_element("id", "metrics").text
