"""``spiritnet ui`` in a real browser: Selenium drives Debian's headless chromium.

The server is the command line's (`spiritnet ui` in a subprocess, on a free port of
127.0.0.1). The page is used as a person would: Animate with no photo, an oversized
photo, then a photo with a painted stroke; the files are fetched from the page's
download link and read back. `make test` installs chromium and chromium-driver
(test-tools) and the ui extra, so in CI (CI=true) a missing browser or package fails;
elsewhere the browser test is skipped when they are missing.
"""

import io
import json
import os
import shutil
import socket
import sys
import time
import urllib.request
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

IN_CI = os.environ.get("CI", "").lower() == "true"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _missing():
    missing = [name for name, path in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER))
               if path is None]
    for module in ("gradio", "selenium"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module} (pip install -e '.[dev,ui]')")
    return missing


def _require_browser():
    missing = _missing()
    if missing and IN_CI:
        pytest.fail(f"CI=true but missing: {', '.join(missing)} (make test installs them)")
    if missing:
        pytest.skip(f"browser test needs {', '.join(missing)} (make test installs them)")


def _require_gradio():
    missing = [m for m in _missing() if m.startswith("python package gradio")]
    if missing and IN_CI:
        pytest.fail(f"CI=true but missing: {missing[0]}")
    if missing:
        pytest.skip(f"needs {missing[0]}")


def test_ui_without_gradio_names_the_extra(monkeypatch, capsys):
    from spiritnet_tf import cli

    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert cli.main(["ui", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert "spiritnet ui: error: spiritnet ui needs the ui extra (Gradio)" in err
    assert "pip install 'spiritnet-tf[ui]'" in err


def test_mask_from_layers():
    from spiritnet_tf.ui import mask_from_layers

    layer = np.zeros((4, 6, 4), np.uint8)
    assert mask_from_layers([layer], (4, 6)) is None  # nothing painted
    layer[1:3, 2, :] = (255, 64, 160, 255)
    other = np.zeros((4, 6, 4), np.uint8)
    other[0, 5, 3] = 10  # faint paint counts
    mask = mask_from_layers([layer, other], (4, 6))
    assert mask.dtype == np.float32 and mask.shape == (4, 6)
    assert set(zip(*np.nonzero(mask))) == {(1, 2), (2, 2), (0, 5)}
    with pytest.raises(ValueError, match="does not match the 5x4 photo"):
        mask_from_layers([layer], (4, 5))


def test_page_action_refuses_bad_requests(tmp_path):
    """The page's action (what Animate calls) answers bad requests with gr.Error, the
    message the page shows, before any model is loaded."""
    _require_gradio()
    from spiritnet_tf import ui

    gr = ui._import_gradio()
    action = ui._Animator(gr, weights=None, working_side=64, max_pixels=5000,
                          out_root=str(tmp_path))
    photo = {"background": np.full((64, 96, 4), 255, np.uint8), "layers": []}
    fine = dict(direction=0, random_direction=True, magnitude=1, frames=6, loop="none",
                edges="zoom", output="GIF", fps=8, seed=0)
    cases = [(None, {}, "Open a photo first"),
             ({"background": None, "layers": [], "composite": None}, {}, "Open a photo first"),
             (photo, {}, r"the photo: too many pixels \(96x64 = 6,144, limit 5,000\)"),
             ({"background": np.zeros((20, 40, 3), np.uint8), "layers": []}, {},
              "the photo: too small"),
             (dict(photo, background=photo["background"][:50]), {"seed": None},
              "Seed is empty"),
             (dict(photo, background=photo["background"][:50]), {"output": "BMP"},
              "Unknown output 'BMP'")]
    for editor, changes, message in cases:
        with pytest.raises(gr.Error, match=message):
            action(editor, **dict(fine, **changes))
    assert action._model is None and os.listdir(tmp_path) == []


def test_page_shows_the_progress_of_animate(tmp_path, monkeypatch):
    """Animate's handler asks Gradio for a tracker of tqdm bars and turns on animate's
    bars (the model's steps, then the frames written), which the page then shows."""
    _require_gradio()
    import inspect

    from spiritnet_tf import animation, ui

    gr = ui._import_gradio()
    app = ui.build_app(out_root=str(tmp_path))
    handler = next(f.fn for f in app.fns.values() if f.name == "animate")
    tracker = inspect.signature(handler).parameters["progress"].default
    assert isinstance(tracker, gr.Progress) and tracker.track_tqdm
    seen = {}

    def recording_animate(*args, **kwargs):
        seen.update(kwargs)
        raise ValueError("stopped by the test")

    monkeypatch.setattr(animation, "animate", recording_animate)
    photo = {"background": np.full((64, 96, 4), 255, np.uint8), "layers": []}
    with pytest.raises(gr.Error, match="stopped by the test"):
        handler(photo, 0, True, 1, 6, "none", "zoom", "GIF", 8, 0)
    assert seen["progress"] is True


def test_ui_port_in_use(capsys):
    _require_gradio()
    from spiritnet_tf import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["ui", "--port", str(port)]) == 1
    assert f"spiritnet ui: error: --port {port}: 127.0.0.1:{port} is in use" in (
        capsys.readouterr().err)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_stopped_by_ctrl_c_deletes_its_animation_folder(monkeypatch):
    _require_gradio()
    from spiritnet_tf import ui

    def interrupt(_seconds):
        raise KeyboardInterrupt

    monkeypatch.setattr(ui, "time", SimpleNamespace(sleep=interrupt))  # Ctrl-C while serving
    built = []
    original = ui.build_app
    monkeypatch.setattr(ui, "build_app", lambda **kw: built.append(original(**kw)) or built[-1])
    with pytest.raises(KeyboardInterrupt):
        ui.launch(port=_free_port(), working_side=64, block=True)
    folder = built[0]._spiritnet_out_root
    assert not os.path.exists(folder) and not built[0].is_running


def _photo(path, width, height, seed):
    """A textured photo (gradient + noise): any motion changes its pixels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 120, width)[None, :, None] * np.ones((height, 1, 3))
    Image.fromarray((ramp + rng.integers(0, 135, (height, width, 3))).astype(np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def server():
    """The page of `spiritnet ui` served from this process (TensorFlow and the bundled
    weights already loaded: no second start-up) on a free port of 127.0.0.1, with a
    working side of 64 (fast) and at most 5000 pixels per photo."""
    _require_browser()
    from spiritnet_tf import ui

    port = _free_port()
    app = ui.launch(port=port, working_side=64, max_pixels=5000, block=False)
    try:
        yield f"http://{ui.HOST}:{port}/"
    finally:
        app.close()


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _wait(condition, what, timeout=120):
    """``condition()``'s first true value, polled; an element the page replaced between
    finding and reading it (Gradio re-renders its outputs) counts as not yet."""
    from selenium.common.exceptions import StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Page:
    """The page's controls, found by their elem_id (`spiritnet_tf.ui.build_app`)."""

    def __init__(self, driver, url):
        from selenium.webdriver.common.by import By

        self.d, self.By = driver, By
        driver.get(url)
        for css in ("#photo input[type=file]", "#animate", "#output input", "#download"):
            self.element(css)

    def element(self, css):
        found = _wait(lambda: self.d.find_elements(self.By.CSS_SELECTOR, css), css, timeout=30)
        return found[0]

    def text(self):
        return self.element("body").text

    def upload(self, path):
        """Opens ``path`` in the editor of a freshly loaded page (its zoom then changes)."""
        before = self.element("#photo .zoom-number").text
        self.element("#photo input[type=file]").send_keys(path)
        _wait(lambda: self.element("#photo .zoom-number").text not in (before, ""),
              "the photo in the editor", timeout=30)

    def paint(self, left, right, top, bottom, size, brush=8):
        """Strokes covering the photo's box [left, right] x [top, bottom] (fractions of
        the photo ``size`` = (w, h) px) with the brush radius set to ``brush`` px (its
        size control): the brush's centre runs through the box shrunk by the radius, in
        rows 1.2 radii apart; few moves, as each costs chromium's software WebGL time."""
        from selenium.webdriver.common.action_chains import ActionChains

        self.element("#photo button[aria-label='Brush']").click()
        self.element("#photo button[aria-label='Brush Size']").click()
        self.d.execute_script(
            "const r = arguments[0]; r.value = arguments[1];"
            "r.dispatchEvent(new Event('input', {bubbles: true}));"
            "r.dispatchEvent(new Event('change', {bubbles: true}));",
            self.element("#photo input[type=range]"), brush)
        self.element("#photo button[aria-label='Brush Size']").click()  # close it
        zoom = float(self.element("#photo .zoom-number").text.strip("%")) / 100
        canvas = next(c for c in self.d.find_elements(self.By.CSS_SELECTOR, "#photo canvas")
                      if c.is_displayed())
        (width, height), r = size, brush
        x0, x1 = left * width + r, max(left * width + r, right * width - r)
        y0, y1 = top * height + r, max(top * height + r, bottom * height - r)

        def at(x, y):  # photo pixels -> offsets from the canvas centre (the photo's)
            return int((x - width / 2) * zoom), int((y - height / 2) * zoom)

        rows = max(1, int(np.ceil((y1 - y0) / (1.2 * r))) + 1)
        actions = ActionChains(self.d, duration=0)
        actions.move_to_element_with_offset(canvas, *at(x0, y0)).click_and_hold()
        for i, y in enumerate(np.linspace(y0, y1, rows)):
            ends = (x0, x1) if i % 2 == 0 else (x1, x0)
            for x in ends:
                actions.move_to_element_with_offset(canvas, *at(x, y))
        actions.release().perform()

    def choose(self, output):
        self.element("#output input").click()
        self.element(f"#output li[role=option][aria-label='{output}']").click()

    def animate(self):
        self.element("#animate").click()

    def download_url(self, previous=None):
        def link():
            links = self.d.find_elements(self.By.CSS_SELECTOR, "#download a[href]")
            href = links[0].get_attribute("href") if links else None
            return href if href and href != previous else None

        return _wait(link, "the download link")


def _error_shown(page, words):
    return _wait(lambda: all(w in page.text() for w in words), f"the message {words}", timeout=60)


def _fetch(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def test_page_animates_a_painted_photo(server, browser, tmp_path):
    big = _photo(str(tmp_path / "big.png"), 96, 64, seed=1)  # 6144 px > --max-pixels 5000
    small = _photo(str(tmp_path / "small.png"), 80, 56, seed=2)  # 4480 px
    page = Page(browser, server)

    page.animate()  # no photo
    _error_shown(page, ["Open a photo first"])

    page.upload(big)
    page.animate()
    _error_shown(page, ["6,144", "5,000"])  # load_image's limit message, on the page

    page = Page(browser, server)  # a fresh page for the next photo
    page.upload(small)
    page.paint(0.08, 0.35, 0.1, 0.9, (80, 56))  # the left third stays still
    page.animate()
    gif_url = page.download_url()
    assert gif_url.endswith("spiritnet.gif")
    frames = []
    with Image.open(io.BytesIO(_fetch(gif_url))) as gif:
        assert gif.format == "GIF" and gif.n_frames == 7  # 6 generated + the input
        for i in range(gif.n_frames):
            gif.seek(i)
            frames.append(np.asarray(gif.convert("RGB"), np.float32))
    assert frames[0].shape == (56, 80, 3)
    change = np.mean([np.abs(f - frames[0]).mean(axis=2) for f in frames[1:]], axis=0)
    painted, free = change[12:44, 10:24].mean(), change[12:44, 50:76].mean()
    assert free > 8, free  # the texture moves where nothing was painted
    assert painted < free / 4, (painted, free)  # and stays (up to GIF dithering) where it was
    assert "7 frames at 80x56" in page.text() and "static region painted" in page.text()

    page.choose("Motion Photo (.MP.jpg)")
    page.animate()
    mp_url = page.download_url(previous=gif_url)
    assert mp_url.endswith("spiritnet.MP.jpg")
    data = _fetch(mp_url)
    assert data[:2] == b"\xff\xd8" and b'Camera:MotionPhoto="1"' in data
    with Image.open(io.BytesIO(data)) as still:
        assert still.format == "JPEG" and still.size == (80, 56)
    assert data.index(b"ftyp") > data.index(b"\xff\xd9")  # the MP4 after the JPEG

    # Offline: every request the page made went to the server itself (no fonts, no CDN).
    hosts = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            request_url = message["params"]["request"]["url"]
            if not request_url.startswith(("data:", "blob:")):
                hosts.add(request_url.split("/")[2])
    assert hosts == {server.split("/")[2]}, hosts
