"""report.html in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, driven by selenium; ``.ci/run`` installs them) opens the report of a
small real ``compare`` run. Every image has loaded, the table sorts, the method picker
switches, the console has no error, and the page is not blank."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from featkit.data import Dataset
from featkit.evaluate import compare

CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _browser_or_skip():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')"
    )
    from selenium.webdriver.chrome.service import Service

    binary = next((shutil.which(name) for name in CHROMIUM if shutil.which(name)), None)
    driver = shutil.which("chromedriver")
    if binary is None or driver is None:
        pytest.skip(
            "no headless Chromium: apt-get install chromium chromium-driver "
            f"(found browser {binary}, driver {driver})"
        )
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    # --no-sandbox: CI and containers run as root, where Chromium's sandbox cannot start.
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.fixture(scope="module")
def browser():
    driver = _browser_or_skip()
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def report(tmp_path_factory, browser):
    """The report folder of a small real compare run on digit images written as PNG files,
    one of which is unreadable by the time the report is written."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    root = tmp_path_factory.mktemp("digits")
    paths = []
    for i, (pixels, label) in enumerate(zip(digits.images[:300], digits.target[:300], strict=True)):
        image = np.round(pixels * 255 / 16).astype(np.uint8)
        paths.append(root / f"{i:03d}_{label}.png")
        Image.fromarray(image).resize((32, 32)).save(paths[-1])
    data = Dataset.from_items([str(p) for p in paths], digits.target[:300], name="digits-png")
    result = compare(data, extractors=["pixels", "hog"], classifiers=["knn", "logreg"])
    # Spoil an image some method got wrong: the page must name it, not show a broken <img>.
    row = next(r for r in result.rows if r["y_true"] != r["y_pred"])
    spoiled = next(
        i
        for i, t, p in zip(*(row[k] for k in ("test_ids", "y_true", "y_pred")), strict=True)
        if t != p
    )
    with open(spoiled, "wb") as fh:
        fh.write(b"not a png")
    out = result.save(tmp_path_factory.mktemp("report") / "report")
    browser.get((out / "report.html").as_uri())
    return out, spoiled


def test_every_image_has_loaded(browser, report):
    _, spoiled = report
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])"
    )
    assert len(images) > 100  # thumbnails and the accuracy chart
    # Each thumbnail is in the page once and the script fills the <img> that name it: an
    # image it did not fill has no source, and a naturalWidth of 0.
    assert [i for i in images if not i[1] or i[2] == 0] == []
    # The views' pictures (SVG <image>, filled the same way) decode too.
    sizes = browser.execute_async_script(
        """var done = arguments[arguments.length - 1];
        var pictures = Array.from(document.querySelectorAll('svg image'));
        Promise.all(pictures.map(function (p) {
          var img = new Image();
          img.src = p.getAttribute('href') || '';
          return img.decode().then(function () { return img.naturalWidth; },
                                   function () { return 0; });
        })).then(done);"""
    )
    assert len(sizes) >= 40 and 0 not in sizes
    named = browser.execute_script(
        "return Array.from(document.querySelectorAll('.noimg')).map(e => e.textContent)"
    )
    assert any(spoiled in text and "not shown" in text for text in named)


def test_the_table_sorts_on_a_click(browser, report):
    from selenium.webdriver.common.by import By

    def column(k: int) -> list[str]:
        rows = browser.find_elements(By.CSS_SELECTOR, "#ranking-table tbody tr")
        return [r.find_elements(By.TAG_NAME, "td")[k].text for r in rows]

    out, _ = report
    ranked_dims = [s["dim"] for s in json.loads((out / "results.json").read_text())["summary"]]

    headers = browser.find_elements(By.CSS_SELECTOR, "#ranking-table thead th")
    names = [h.text for h in headers]
    rank, dim, extractor = (names.index(n) for n in ("rank", "dim", "extractor"))
    assert column(rank) == ["1", "2", "3", "4"]  # as written: best first
    headers[rank].click()  # ascending: as it was
    assert headers[rank].get_attribute("aria-sort") == "ascending"
    headers[rank].click()
    assert headers[rank].get_attribute("aria-sort") == "descending"
    assert column(rank) == ["4", "3", "2", "1"]
    headers[dim].click()
    dims = [int(v) for v in column(dim)]
    assert dims == sorted(dims) and len(set(dims)) == 2  # numbers sort as numbers
    headers[extractor].click()
    by_name = column(extractor)
    assert by_name == sorted(by_name)
    # Whole rows move: each rank keeps its own row's values.
    assert sorted(zip(column(rank), column(dim), strict=True)) == sorted(
        zip(["1", "2", "3", "4"], [str(d) for d in ranked_dims], strict=True)
    )


def test_the_method_picker_switches_the_section_shown(browser, report):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    sections = browser.find_elements(By.CSS_SELECTOR, "section.method")
    assert len(sections) == 4
    assert [s.is_displayed() for s in sections].count(True) == 1
    pick = Select(browser.find_element(By.ID, "method-pick"))
    last = pick.options[-1].get_attribute("value")
    pick.select_by_value(last)
    shown = [s.get_attribute("id") for s in sections if s.is_displayed()]
    assert shown == [last]


def test_hovering_a_view_point_shows_its_image_and_name(browser, report):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    # A drawn point with a hover thumbnail that no other point or picture covers.
    point = browser.execute_script(
        """var svg = document.querySelector('svg.points');
        svg.scrollIntoView({block: 'center'});
        for (const p of svg.querySelectorAll('circle[data-tip]')) {
          var b = p.getBoundingClientRect();
          if (document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2) === p) {
            return p;
          }
        }
        return null;"""
    )
    assert point is not None
    name = point.get_attribute("data-n")  # the script took it from the point's <title>
    assert name and "(" in name
    tip = browser.find_element(By.ID, "tip")
    assert not tip.is_displayed()
    ActionChains(browser).move_to_element(point).perform()
    WebDriverWait(browser, 5).until(lambda b: tip.is_displayed())
    assert tip.text == name
    loaded = """var img = document.querySelector('#tip img');
        return img ? [img.complete, img.naturalWidth] : null;"""
    WebDriverWait(browser, 5).until(lambda b: (b.execute_script(loaded) or [0])[0])
    assert browser.execute_script(loaded)[1] > 0
    ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
    WebDriverWait(browser, 5).until(lambda b: not tip.is_displayed())
    # The keyboard: a view focused, the arrow keys step through its points.
    view = browser.find_element(By.CSS_SELECTOR, "svg.points")
    first = view.find_element(By.CSS_SELECTOR, "circle").get_attribute("data-n")
    view.send_keys(Keys.ARROW_RIGHT)
    WebDriverWait(browser, 5).until(lambda b: tip.is_displayed())
    assert tip.text.startswith(first)
    view.send_keys(Keys.ESCAPE)
    assert not tip.is_displayed()


def test_no_console_errors(browser, report):
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def test_a_screenshot_is_not_blank(browser, report, tmp_path):
    browser.execute_script("window.scrollTo(0, 0)")
    shot = np.asarray(Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L"))
    assert shot.shape[0] > 500 and shot.shape[1] > 500
    # Text, tables and charts: many grey levels and real contrast, not a white page.
    assert len(np.unique(shot)) > 32 and shot.std() > 20
    assert (shot < 128).mean() > 0.01
