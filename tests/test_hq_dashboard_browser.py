"""The HQ dashboard in a real (headless) Chromium, driven as a manager and a viewer
would: sign in, find a serial, settle a conflict, make a recall and download its
outreach list, watch counts change while HQ stores events.

Needs Debian's `chromium` and `chromium-driver`; skipped, saying so, without them.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.hq.web import WebSettings
from daemon.rules.units import Flag
from tests.hq_fixtures_manager import build_store
from tests.hq_fixtures_web import MANAGER, PASSWORD, VIEWER, Chain, DashboardServer, build_chain

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 15  # how long to wait for the page before failing (never a measured time)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"NO CHROMIUM ({CHROMIUM}, {CHROMEDRIVER}): the dashboard's browser tests did NOT"
            " run; install the Debian packages chromium and chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(argument)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_window_size(1400, 1000)
    yield driver
    driver.quit()


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    found = build_chain(tmp_path)
    yield found
    found.close()


@pytest.fixture
def site(chain: Chain, browser: Any) -> Iterator[str]:
    server = DashboardServer(chain.source)
    browser.delete_all_cookies()
    yield server.url
    browser.get("about:blank")  # closes the live stream before the server stops
    server.stop()


def wait(browser: Any) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Live figures replace the elements they are in: look again.
    return WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))


def find(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, css)


def find_all(browser: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, css))


def sign_in(browser: Any, site: str, name: str, password: str = PASSWORD) -> None:
    browser.get(site + "/login")
    find(browser, "#name").send_keys(name)
    find(browser, "#password").send_keys(password)
    find(browser, "#sign-in").click()


def signed_in(browser: Any, site: str, name: str) -> None:
    sign_in(browser, site, name)
    wait(browser).until(lambda b: find_all(b, "#who"))
    assert find(browser, "#who").text == f"{name} {'manager' if name == MANAGER else 'viewer'}"


def test_a_bad_sign_in_says_why_and_a_good_one_lets_the_manager_in(browser: Any, site: str) -> None:
    sign_in(browser, site, MANAGER, "not my password")
    assert find(browser, "#login-error").text == (
        "Wrong user name or password: nobody was signed in."
    )
    assert not find_all(browser, "#who")
    find(browser, "#password").send_keys(PASSWORD)
    find(browser, "#sign-in").click()
    wait(browser).until(lambda b: find_all(b, "#who"))
    assert browser.current_url == site + "/counts"


def test_the_manager_finds_a_serial_and_reads_its_history(browser: Any, site: str) -> None:
    signed_in(browser, site, MANAGER)
    find(browser, "nav a[href='/units']").click()
    find(browser, "#q").send_keys("lx-2")  # typed as it comes: the key is normalised
    find(browser, "#find").click()
    wait(browser).until(lambda b: find_all(b, "#history"))
    assert find(browser, "h1").text == "Laptop X1 serial LX-2"
    assert find(browser, "#unit-state").text == "sold"
    rows = find_all(browser, "#history tbody tr")
    assert [r.get_attribute("data-kind") for r in rows] == ["receive", "sell"]
    assert "in stock → sold" in rows[1].text and "invoice INV-3" in rows[1].text
    assert "Frank" in find(browser, "#unit").text
    from selenium.webdriver.support.ui import Select

    find(browser, "nav a[href='/units']").click()
    Select(find(browser, "#mode")).select_by_value("prefix")
    find(browser, "#q").send_keys("LY")
    find(browser, "#find").click()
    wait(browser).until(lambda b: find_all(b, "#units"))
    assert len(find_all(browser, "#units tbody tr")) == 5


def test_the_manager_resolves_a_conflict_and_the_flag_clears(
    browser: Any, site: str, chain: Chain
) -> None:
    signed_in(browser, site, MANAGER)
    assert find(browser, "#conflict-badge").text == "1"
    find(browser, "nav a[href='/conflicts']").click()
    queue = find(browser, "section.conflict")
    assert "LAP serial LX-1" in queue.text
    eve = next(
        r
        for r in find_all(browser, "input[name=keep]")
        if "Eve" in r.find_element("xpath", "..").text
    )
    eve.click()
    find(browser, "input[name=note]").send_keys("Eve took the unit home")
    find(browser, ".resolve-button").click()
    wait(browser).until(lambda b: find_all(b, "#flash"))
    assert 'LAP serial "LX-1": conflict resolved' in find(browser, "#flash").text
    assert find_all(browser, "#no-conflicts") and not find_all(browser, "section.conflict")
    assert not find(browser, "#conflict-badge").is_displayed()
    assert "Eve took the unit home" in find(browser, "#resolved").text
    browser.get(site + "/units?mode=serial&q=LX-1")
    wait(browser).until(lambda b: find_all(b, "#history"))
    assert find(browser, "#unit-flags").text == "none"
    assert "Eve" in find(browser, "#unit").text
    last = find_all(browser, "#history tbody tr")[-1]
    assert last.get_attribute("data-kind") == "resolve"
    assert last.find_element("css selector", ".actor").text == MANAGER
    chain.deliver("T1")  # HQ's resolution reaches the terminal that sold it too
    unit = chain.terminals["T1"].unit("LAP", "LX-1")
    assert unit is not None and Flag.CONFLICT not in unit.flags and unit.customer == "Eve"


def test_the_manager_makes_a_recall_and_downloads_the_outreach_list(
    browser: Any, site: str, tmp_path: Path
) -> None:
    from selenium.webdriver.support.ui import Select

    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    signed_in(browser, site, MANAGER)
    find(browser, "nav a[href='/recalls']").click()
    find(browser, "#notice").send_keys("RC-7")
    find(browser, "#reason").send_keys("battery may swell")
    Select(find(browser, "#recall-product")).select_by_visible_text("LAP")
    find(browser, "#first").send_keys("LX-0")
    find(browser, "#last").send_keys("LX-4")
    find(browser, "#preview").click()
    wait(browser).until(lambda b: find_all(b, "#preview-result"))
    assert find(browser, "#preview-result").text.startswith("5 units match")
    find(browser, "#flag").click()
    wait(browser).until(lambda b: find_all(b, "#flagged"))
    assert "recall RC-7: 5 unit(s) match, 5 flagged recalled" in find(browser, "#flash").text
    assert find(browser, "#flagged").text == "5"
    outreach = [r.text for r in find_all(browser, "#outreach tbody tr")]
    assert len(outreach) == 2 and "Frank" in outreach[1]
    find(browser, "#outreach-csv").click()
    saved = downloads / "outreach-RC-7.csv"
    wait(browser).until(lambda _: saved.exists() and not list(downloads.glob("*.crdownload")))
    rows = list(csv.reader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert rows[0] == ["product", "serial", "customer", "invoice", "branch", "sold_on", "state"]
    assert [(r[0], r[1], r[2], r[3], r[4], r[6]) for r in rows[1:]] == [
        ("LAP", "LX-1", "Eve", "INV-2", "B1", "sold"),
        ("LAP", "LX-2", "Frank", "INV-3", "B1", "sold"),
    ]
    find(browser, "nav a[href='/recalls']").click()
    assert "RC-7" in find(browser, "#recalls").text


def test_counts_change_on_the_open_page_when_hq_stores_events(
    browser: Any, site: str, chain: Chain
) -> None:
    signed_in(browser, site, VIEWER)
    wait(browser).until(lambda b: "live" in find(b, "#live-status").text)
    b2 = "#by-branch td[data-key='B2'][data-state='in_stock']"
    assert find(browser, b2).text == "5"
    assert find(browser, "#total-units").text == "15"
    chain.terminals["T3"].receive("PO-5", "Bolt", "LAP", ["LY-5", "LY-6"], actor="bea")
    chain.send("T3")
    wait(browser).until(lambda b: find(b, b2).text == "7")
    assert find(browser, "#total-units").text == "17"
    assert browser.current_url == site + "/counts"  # no reload: the figures were pushed


def test_a_viewer_has_no_resolve_or_recall_and_a_forged_post_is_refused(
    browser: Any, site: str, chain: Chain
) -> None:
    signed_in(browser, site, VIEWER)
    find(browser, "nav a[href='/conflicts']").click()
    assert "LAP serial LX-1" in find(browser, "section.conflict").text
    assert not find_all(browser, ".resolve-button") and not find_all(browser, "form.resolve")
    find(browser, "nav a[href='/recalls']").click()
    assert not find_all(browser, "#new-recall") and not find_all(browser, "#flag")
    token = find(browser, "form.who input[name=csrf]").get_attribute("value")
    forge = """
        const [url, fields, done] = arguments;
        fetch(url, {method: "POST", body: new URLSearchParams(fields), redirect: "manual"})
            .then(r => r.text().then(t => done([r.status, t])));
    """
    resolve = {"product": "LAP", "serial": "LX-1", "keep": "", "note": "mine now"}
    status, text = browser.execute_async_script(
        forge, "/conflicts/resolve", {**resolve, "csrf": token}
    )
    assert (status, text) == (
        403,
        "resolving a conflict needs a manager; victor is signed in as viewer",
    )
    status, _ = browser.execute_async_script(forge, "/conflicts/resolve", resolve)
    assert status == 403  # and without the token, whoever sends it
    recall = {"csrf": token, "action": "flag", "notice": "RC-9", "reason": "x", "prefix": "LX"}
    status, _ = browser.execute_async_script(forge, "/recalls", recall)
    assert status == 403
    assert len(chain.central.conflicts()) == 1
    lx0 = chain.central.backend.run(
        lambda tx: tx.execute("SELECT flags FROM units WHERE serial = 'LX-0'").fetchone()[0]
    )
    assert lx0 == ""


# -- the pages as a store manager sees them, photographed for the docs --------------------


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the pages' pictures go: `$POSD_DASHBOARD_ARTIFACTS` when set (point it at
    docs/dashboard to refresh the pictures kept there), else the session's temporary folder,
    so a test run never changes the checkout."""
    named = os.environ.get("POSD_DASHBOARD_ARTIFACTS")
    folder = Path(named) if named else tmp_path_factory.mktemp("dashboard")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def store_site(tmp_path: Path, browser: Any) -> Iterator[str]:
    found = build_store(tmp_path)
    server = DashboardServer(
        found.source, WebSettings(poll_s=0.05, zone=ZoneInfo("Europe/Berlin"), listen="0.0.0.0")
    )
    browser.delete_all_cookies()
    yield server.url
    browser.get("about:blank")
    server.stop()
    found.close()


def photograph(browser: Any, name: str, shots: Path) -> Path:
    """The whole page, however long, as <shots>/<name>.png."""
    height = int(browser.execute_script("return document.documentElement.scrollHeight"))
    browser.set_window_size(1400, max(600, min(height + 160, 5000)))
    path = shots / f"{name}.png"
    browser.save_screenshot(str(path))
    browser.set_window_size(1400, 1000)
    return path


@pytest.mark.slow
def test_each_page_reads_as_a_manager_expects_and_is_photographed(
    browser: Any, store_site: str, shots: Path
) -> None:
    browser.get(store_site + "/login")
    warning = find(browser, "p.insecure").text
    assert "served without TLS on 0.0.0.0" in warning  # before anyone signs in
    photograph(browser, "login", shots)
    signed_in(browser, store_site, MANAGER)
    assert "without TLS" in find(browser, "p.insecure").text
    pages = {
        "counts": "/counts",
        "search": "/units?mode=prefix&q=LX",
        "passport-override": "/unit?product=LAP&serial=LX-3",
        "passport-two-terminals": "/unit?product=LAP&serial=LX-5",
        "conflicts": "/conflicts",
        "terminals": "/terminals",
        "recalls": "/recalls",
        "recall": "/recall?notice=RC-1",
        "analytics": "/analytics",
    }
    for name, path in pages.items():
        browser.get(store_site + path)
        wait(browser).until(lambda b: find_all(b, "footer.zone"))
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        assert photograph(browser, name, shots).stat().st_size > 10_000
    browser.get(store_site + "/counts")
    # Live figures replace the elements they are in: read them through the wait.
    wait(browser).until(lambda b: find(b, "#total-units").text == "1,215")
    wait(browser).until(lambda b: find(b, "#flagged-units").text == "5")
    # The live figures say when, in the dashboard's one format and the store's zone.
    wait(browser).until(
        lambda b: re.fullmatch(
            r"live · updated \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}", find(b, "#live-status").text
        )
    )
    browser.get(store_site + "/unit?product=LAP&serial=LX-5")
    when = [c.text for c in find_all(browser, "#history td.when")]
    assert when == ["23 Nov 2026 10:00", "23 Nov 2026 11:00", "23 Nov 2026 12:00"]
    browser.get(store_site + "/conflicts")
    radios = find_all(browser, "form.resolve input[name=keep]")
    assert len(radios) == 2 and not any(r.is_selected() for r in radios)
    find(browser, "input[name=note]").send_keys("decided without choosing")
    find(browser, ".resolve-button").click()  # the browser asks for a choice first
    assert browser.current_url == store_site + "/conflicts" and not find_all(browser, "#flash")
    assert find_all(browser, "section.conflict")
