"""docs/ui.png: the page of ``spiritnet ui`` after animating the example (``make ui-picture``).

Serves the page from this process on a free port of 127.0.0.1, opens it in headless
chromium (Selenium, driven like tests/test_ui.py, whose page helpers it uses), uploads
examples/coffee.jpg, paints the cup (it stays still), animates with the bundled weights
and the page's defaults, and saves a screenshot of the browser window (256 colours).
"""

import argparse
import io
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

sys.path.insert(0, ROOT)  # this checkout's spiritnet_tf, whatever is installed

import test_ui  # noqa: E402  (the page helpers: Page, _free_port)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "ui.png"))
    parser.add_argument("--photo", default=os.path.join(ROOT, "examples", "coffee.jpg"))
    args = parser.parse_args(argv)
    from PIL import Image
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    from spiritnet_tf import ui

    if test_ui.CHROMIUM is None or test_ui.CHROMEDRIVER is None:
        sys.exit("needs chromium and chromedriver "
                 "(Debian: apt-get install chromium chromium-driver)")
    with Image.open(args.photo) as im:
        size = im.size
    port = test_ui._free_port()
    app = ui.launch(port=port, block=False)
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--window-size=1400,1280", "--hide-scrollbars"):
        options.add_argument(argument)
    options.binary_location = test_ui.CHROMIUM
    driver = webdriver.Chrome(service=Service(test_ui.CHROMEDRIVER), options=options)
    try:
        page = test_ui.Page(driver, f"http://{ui.HOST}:{port}/")
        page.upload(args.photo)
        page.paint(0.32, 0.66, 0.08, 0.62, size, brush=30)  # the cup stays still
        page.animate()
        page.download_url()
        test_ui._wait(lambda: "frames at" in page.text(), "the result line")
        driver.execute_script("window.scrollTo(0, 0)")
        shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
        shot.quantize(256).save(args.out, optimize=True)  # 256 colours: a third of the bytes
    finally:
        driver.quit()
        app.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
