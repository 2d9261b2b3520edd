"""The demo page in a real browser: Debian's chromium, headless, driven by playwright (no `playwright install`).

Set INFOCLIP_DEMO_SCREENSHOT=docs/demo-screenshot.png to refresh the README's screenshot from this test.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from PIL import Image

from infoclip.segmentation.segmenter import Segmenter
from tests.demo.conftest import needs_gradio

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    needs_gradio,
    pytest.mark.skipif(importlib.util.find_spec("playwright") is None, reason="playwright is not installed (pip install playwright)"),
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no browser at {CHROMIUM} (apt-get install -y chromium)"),
]

CLASSES = "cat, wall, floor"


def test_upload_type_segment_click_the_legend(server, tiny_weights, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from infoclip.demo import example_images

    photo = example_images()[0][0]  # chelsea.jpg
    reference = Segmenter.from_pretrained(tiny_weights, device="cpu").predict(photo, [c.strip() for c in CLASSES.split(",")])
    present = sorted((share, name) for name, share in reference.shares.items() if share > 0)[::-1]
    hosts = set()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.on("request", lambda request: hosts.add(urlparse(request.url).hostname))
            page.set_default_timeout(60_000)
            page.goto(server)
            button = page.get_by_role("button", name="Segment", exact=True)
            expect(button).to_be_visible()

            # a bad request first: the message is on the page, and the page goes on working
            page.locator("input[type=file]").first.set_input_files(str(photo))
            button.click()
            error = page.get_by_text("the classes box is empty").first
            expect(error).to_be_visible()
            page.get_by_test_id("toast-close").first.click()
            expect(error).to_be_hidden()

            page.get_by_label("Classes", exact=True).fill(CLASSES)
            button.click()
            legend = page.locator("button.legend-item")
            expect(legend).to_have_count(len(present))
            names = [text.split(" (")[0] for text in legend.all_inner_texts()]
            assert names == [name for _, name in present]  # largest share first
            expect(page.get_by_text("chelsea.jpg: 451x300, 3 classes")).to_be_visible()

            legend.first.click()  # clicking a class highlights it
            expect(page.get_by_text(f"{present[0][1]}: ", exact=False).filter(has_text="of the image")).to_be_visible()
            page.wait_for_timeout(500)
            shot = tmp_path / "demo.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert hosts <= {"127.0.0.1"}, f"the page loaded from other hosts: {hosts}"
    target = os.environ.get("INFOCLIP_DEMO_SCREENSHOT")
    if target:  # 256 colours: a third of the size, still sharp text
        with Image.open(shot) as image:
            image.convert("RGB").quantize(256, dither=Image.Dither.NONE).save(target, optimize=True)
