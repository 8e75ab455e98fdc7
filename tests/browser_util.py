"""Open a report in real headless Chromium (Debian ``chromium`` + ``chromium-driver``, driven
by selenium) and read back what a person would see: images loaded, console errors, tables.

The page is opened from ``file://`` with every network feature off, so an image or script
that needed the network would fail to load and show up here.  Tests skip with the install
command when the browser is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"


def browser() -> Any:
    """A headless Chromium session (flags the closed network here needs), or skip."""
    webdriver = pytest.importorskip("selenium.webdriver", reason=f"selenium missing: {INSTALL}")
    if not (CHROMIUM and DRIVER):
        pytest.skip(f"headless Chromium missing: {INSTALL}")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(DRIVER), options=opts)


def render(page: Path) -> dict[str, Any]:
    """Load ``page`` and return images (src kind, loaded, natural width), console errors and the
    first sortable table's first-column texts before and after clicking its second header twice."""
    from selenium.webdriver.common.by import By

    drv = browser()
    try:
        drv.get(page.resolve().as_uri())
        drv.execute_async_script("""var done = arguments[arguments.length - 1];
            Promise.all(Array.from(document.images).map(i => i.complete ? 1 :
                new Promise(r => { i.onload = i.onerror = r; }))).then(done);""")
        images = drv.execute_script("""return Array.from(document.images).map(i =>
            ({data: i.src.startsWith('data:'), loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth}));""")
        errors = [e for e in drv.get_log("browser") if e.get("level") == "SEVERE"]
        tables = drv.find_elements(By.CSS_SELECTOR, "table.sortable")
        column = lambda t, k: [r.find_elements(By.TAG_NAME, "td")[k].text  # noqa: E731
                               for r in t.find_elements(By.CSS_SELECTOR, "tbody tr")]
        sort = {}
        if tables:
            t = tables[0]
            header = t.find_elements(By.TAG_NAME, "th")
            k = len(header) - 1
            sort["before"] = column(t, k)
            header[k].click()
            sort["asc"] = column(t, k)
            header[k].click()
            sort["desc"] = column(t, k)
        return {"images": images, "errors": errors, "tables": len(tables), "sort": sort,
                "title": drv.title}
    finally:
        drv.quit()


def commonmark_images(md: str) -> tuple[int, int]:
    """(image links written, images a CommonMark renderer shows) in a Markdown text."""
    import re

    from markdown_it import MarkdownIt

    written = len(re.findall(r"!\[[^\]]*\]\(", md))
    shown = MarkdownIt("commonmark").render(md).count("<img ")
    return written, shown
