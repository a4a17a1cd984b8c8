"""The lane screen in a real (headless) Chromium against a real `posd run` on simulated
devices, used as a self-checkout customer, an attendant and a cashier use it: buy a
serialized unit, be refused one and call for help, take back the wrong unit, live
through a power cut, read it all in German. Every screen is photographed (see
`tests/screen_browser.py` for where the pictures go).

Needs Debian's `chromium` and `chromium-driver`; skipped, saying so, without them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.lane_sim import CABLE_EAN, LAPTOP_EAN, MAX_PIN, MIA_BADGE, MIA_PIN, PHONE_EAN
from tests.screen_browser import (
    ScreenLane,
    Shots,
    artifacts_folder,
    catalogue,
    chromium,
    find,
    find_all,
    free_port,
    on_screen,
    press,
    screen_of,
    settle,
    tap,
    until,
    visible_text,
)

PHONE_IMEI = "356938035643809"  # a phone in stock; its product masks serials
EN, DE = catalogue("en"), catalogue("de")
WRONG_PIN = (
    "/api/attendant/release - Failed to load resource: the server responded with a status of 403"
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Shots:
    return Shots(artifacts_folder(tmp_path_factory.mktemp("screens")))


@pytest.fixture(autouse=True)
def _blank_between_tests(browser: Any) -> Iterator[None]:
    yield
    browser.get("about:blank")  # closes the page's event stream before its lane stops


def _no_page_errors(browser: Any, *expected: str) -> None:
    """No script error and no failed request but those `expected` (e.g. a wrong PIN's
    403, which the browser reports as a failed request)."""
    problems = [
        entry["message"]
        for entry in browser.get_log("browser")
        if entry["level"] == "SEVERE"
        and "favicon.ico" not in entry["message"]
        and not any(e in entry["message"] for e in expected)
    ]
    assert not problems, problems


def _pin(browser: Any, digits: str) -> None:
    for digit in digits:
        tap(browser, f"#pinpad button[data-digit='{digit}']")
    tap(browser, "#pinpad button[data-act='pin-ok']")


def test_a_customer_buys_a_serialized_unit_alone(
    browser: Any, shots: Shots, tmp_path: Path, template_dir: Path
) -> None:
    lane = ScreenLane(tmp_path, template_dir, screen={"idle_timeout_s": 3})
    with lane.running():
        browser.get(lane.url)
        on_screen(browser, "welcome")
        assert find(browser, "#screen-welcome h1").text == EN["welcome.title"]
        assert find(browser, "#screen-welcome .prompt").text == EN["welcome.prompt"]
        shots.take(browser, "01-welcome")

        lane.scan(PHONE_EAN)  # the box's barcode: the lane wants this unit's serial
        on_screen(browser, "serial")
        assert find(browser, "#serial-product").text == EN["serial.product"].format(
            product="Phone S9"
        )
        assert find(browser, "#screen-serial").text.count("S/N") >= 1
        picture = find(browser, "#serial-picture")
        assert browser.execute_script("return arguments[0].naturalWidth", picture) > 0
        assert picture.get_attribute("alt") == EN["serial.picture"]
        shots.take(browser, "02-serial-number")

        lane.scan(PHONE_IMEI)
        on_screen(browser, "basket")
        lane.scan(CABLE_EAN)
        until(browser, lambda b: len(find_all(b, "#basket-lines li")) == 2, "two lines")
        phone, cable = find_all(browser, "#basket-lines li")
        assert phone.find_element("css selector", ".name").text == "Phone S9"
        # The phone's serial is masked as on its receipt; the whole number is never shown.
        shown = phone.find_element("css selector", ".serial").text
        assert shown == "Serial number •••••••••••3809" and PHONE_IMEI not in visible_text(browser)
        assert phone.find_element("css selector", ".price").text == "799.00"
        assert not cable.find_elements("css selector", ".serial")  # no serial on a cable
        assert find(browser, "#basket-total").text == "814.00"
        assert find(browser, "#basket-count").text == "2 items"
        shots.take(browser, "03-basket")

        tap(browser, "#pay")
        on_screen(browser, "pay")
        assert find(browser, "#pay-total").text == "814.00"
        assert EN["pay.terminal"] in visible_text(browser)
        shots.take(browser, "04-pay")
        tap(browser, "#pay-card")
        on_screen(browser, "done")
        until(
            browser,
            lambda b: find(b, "#done-receipt").text == EN["done.receipt"],
            "the receipt to be printed",
        )
        assert find(browser, "#done-invoice").text == "Receipt number T-001-000001"
        shots.take(browser, "05-thank-you")
        receipt = lane.sim.printer.receipts[-1].text
        assert "T-001-000001" in receipt and "3809" in receipt and PHONE_IMEI not in receipt

        settle(3)  # the customer walks away: the screen goes back to the start by itself
        on_screen(browser, "welcome", timeout_s=5)
        _no_page_errors(browser)
    sold = lane.ledger_rows("SELECT state FROM units WHERE serial = '356938035643809'")
    assert sold == [("sold",)]


def test_a_refusal_locks_the_lane_until_the_attendant_releases_it(
    browser: Any, shots: Shots, tmp_path: Path, template_dir: Path
) -> None:
    lane = ScreenLane(tmp_path, template_dir)
    with lane.running():
        browser.get(lane.url)
        on_screen(browser, "welcome")
        lane.scan("LX-0001")
        on_screen(browser, "basket")
        lane.scan("LX-0010")  # already sold: the lane locks and calls an attendant
        on_screen(browser, "locked")
        assert find(browser, "#screen-locked h1").text == EN["locked.title"]
        assert find(browser, "#locked-reason").text == EN["verdict.already_sold"]
        assert not find(browser, "#help").is_displayed()  # help is already on its way
        shots.take(browser, "06-locked-already-sold")

        lane.scan(LAPTOP_EAN)  # the customer goes on scanning: still locked
        settle(0.5)
        assert screen_of(browser) == "locked"

        tap(browser, "#staff")
        until(browser, lambda b: find(b, "#pinpad").is_displayed(), "the PIN pad")
        _pin(browser, "0000")
        until(
            browser,
            lambda b: find(b, "#pin-message").text == EN["pin.wrong"],
            "a wrong PIN to be refused",
        )
        assert screen_of(browser) == "locked"
        shots.take(browser, "07-staff-pin")
        _pin(browser, MIA_PIN)
        on_screen(browser, "basket")  # back to the sale, the laptop still in it
        assert [e.text for e in find_all(browser, "#basket-lines .name")] == ["Laptop X1"]
        assert not find(browser, "#pinpad").is_displayed()

        lane.scan("LX-0012")  # flagged stolen: refused, in words that accuse nobody
        on_screen(browser, "locked")
        reason = find(browser, "#locked-reason").text
        assert reason == EN["verdict.flag_stolen"] and "stolen" not in visible_text(browser).lower()
        lane.scan(MIA_BADGE)  # the attendant's badge releases it too
        on_screen(browser, "basket")

        tap(browser, "#help")  # the customer asks for help
        on_screen(browser, "locked")
        assert find(browser, "#locked-reason").text == EN["verdict.help_requested"]
        shots.take(browser, "08-help-called")
        lane.scan(MIA_BADGE)
        on_screen(browser, "basket")
        _no_page_errors(browser, WRONG_PIN)
    releases = lane.ledger_rows(
        "SELECT json_extract(body, '$.actor'), json_extract(body, '$.data.method')"
        " FROM events WHERE kind = 'lane_release' ORDER BY id"
    )
    assert releases == [("Mia", "pin"), ("Mia", "badge"), ("Mia", "badge")]


def test_a_cashier_voids_a_line_and_refuses_the_wrong_unit_on_a_return(
    browser: Any, shots: Shots, tmp_path: Path, template_dir: Path
) -> None:
    from selenium.webdriver.common.keys import Keys

    lane = ScreenLane(tmp_path, template_dir, mode="cashier")
    with lane.running():
        browser.get(lane.url)
        on_screen(browser, "cashier")
        assert find(browser, "#c-mode").text == EN["mode.idle"]
        lane.scan("LX-0001")
        lane.scan("LX-0002")
        until(browser, lambda b: len(find_all(b, "#c-lines tr")) == 2, "two basket lines")
        assert [e.text for e in find_all(browser, "#c-lines td.serial")] == ["LX-0001", "LX-0002"]
        press(browser, Keys.ARROW_DOWN)  # choose the first line, then void it
        until(browser, lambda b: find_all(b, "#c-lines tr.selected"), "a chosen line")
        press(browser, Keys.F3)
        until(browser, lambda b: len(find_all(b, "#c-lines tr")) == 1, "the line voided")
        assert find(browser, "#c-lines td.serial").text == "LX-0002"
        assert find(browser, "#c-words").text == EN["verdict.voided"]

        press(browser, Keys.F2)  # pay: the payment dialog, then F2 again for a card
        until(browser, lambda b: find(b, "#paydialog").is_displayed(), "the payment dialog")
        assert find(browser, "#paydialog-total").text == "1,299.00"
        press(browser, Keys.F2)
        until(browser, lambda b: find(b, "#c-words").text == EN["verdict.sale_complete"], "paid")
        assert not find_all(browser, "#c-lines tr")

        press(browser, Keys.F4)  # a customer brings back the laptop sold on INV-OLD
        until(browser, lambda b: find(b, "#c-mode").text == EN["mode.return"], "return mode")
        assert find(browser, "#c-words").text == EN["verdict.return_mode"]
        lane.scan("INV-OLD")
        until(browser, lambda b: find(b, "#c-words").text == EN["verdict.invoice_found"], "found")
        assert find(browser, "#c-document").text == "Invoice INV-OLD"
        lane.scan("LX-0002")  # a laptop of the same model, but not the one sold
        until(
            browser,
            lambda b: find(b, "#c-words").text == EN["verdict.wrong_unit"],
            "the wrong unit refused",
        )
        assert find(browser, "#c-message").get_attribute("class") == "outcome-refused"
        assert "LX-0002" in find(browser, "#c-detail").text  # the lane's full sentence
        assert find(browser, "#c-light").get_attribute("class") == "light light-red"
        shots.take(browser, "09-cashier-wrong-unit")
        lane.scan("LX-0010")  # the unit that invoice sold
        until(
            browser,
            lambda b: find(b, "#c-words").text == EN["verdict.return_accepted"],
            "the return accepted",
        )
        shots.take(browser, "10-cashier-return-accepted")
        press(browser, Keys.F9)
        until(browser, lambda b: find(b, "#c-mode").text == EN["mode.idle"], "back to selling")

        find(browser, "#c-barcode").send_keys("LX-0003" + Keys.ENTER)  # keyed in by hand
        until(browser, lambda b: find_all(b, "#c-lines tr"), "the keyed-in unit")
        press(browser, Keys.ESCAPE)
        until(
            browser,
            lambda b: find(b, "#c-words").text == EN["cashier.confirm_cancel"],
            "the cancel to be confirmed first",
        )
        assert find_all(browser, "#c-lines tr")  # nothing cancelled on one key
        press(browser, Keys.ESCAPE)
        until(browser, lambda b: not find_all(b, "#c-lines tr"), "the sale cancelled")

        lane.scan("LX-0016")  # in transit to another branch: only a manager may let it go
        until(browser, lambda b: find(b, "#pinpad").is_displayed(), "the manager's PIN pad")
        assert find(browser, "#pin-title").text == EN["pin.manager_title"]
        assert find(browser, "#c-mode").text == EN["mode.manager_needed"]
        _pin(browser, MAX_PIN)
        until(browser, lambda b: find_all(b, "#c-lines tr"), "the unit in the basket")
        assert find(browser, "#c-lines td.serial").text == "LX-0016"
        assert not find(browser, "#pinpad").is_displayed()
        press(browser, Keys.F8)  # call a manager to the lane
        until(browser, lambda b: find(b, "#c-mode").text == EN["mode.attendant_needed"], "called")
        assert find(browser, "#pin-hint").text == EN["cashier.release"]
        _pin(browser, MAX_PIN)  # a manager may release the lane as an attendant may
        until(browser, lambda b: find(b, "#c-mode").text == EN["mode.in_sale"], "released")
        _no_page_errors(browser)
    states = lane.ledger_rows(
        "SELECT serial, state FROM units WHERE serial IN ('LX-0002', 'LX-0003', 'LX-0010')"
        " ORDER BY serial"
    )
    assert states == [("LX-0002", "sold"), ("LX-0003", "in_stock"), ("LX-0010", "quarantined")]
    refused = lane.ledger_rows("SELECT count(*) FROM lane_log WHERE code = 'wrong_unit'")
    assert refused == [(1,)]


def test_the_page_reconnects_by_itself_after_a_power_cut_mid_sale(
    browser: Any, shots: Shots, tmp_path: Path, template_dir: Path
) -> None:
    lane = ScreenLane(tmp_path, template_dir)
    with lane.running():
        browser.get(lane.url)
        on_screen(browser, "welcome")
        lane.scan("LX-0001")
        on_screen(browser, "basket")
        lane.power_cut()  # SIGKILL mid-sale: nothing paid
        on_screen(browser, "offline")
        assert find(browser, "#screen-offline h1").text == EN["offline.title"]
        shots.take(browser, "11-reconnecting")
        lane.start()  # systemd starts posd again; nobody touches the page
        on_screen(browser, "welcome")
        until(browser, lambda b: find(b, "#notice").is_displayed(), "the lost sale explained")
        assert find(browser, "#notice").text == EN["notice.last_sale_lost"]
        shots.take(browser, "12-last-sale-not-saved")
        lane.scan("LX-0001")  # scanned again: the notice has done its job
        on_screen(browser, "basket")
        until(browser, lambda b: not find(b, "#notice").is_displayed(), "the notice gone")
        _no_page_errors(browser, "/api/events - Failed to load resource: net::ERR_")  # the cut
    sales = lane.ledger_rows("SELECT state FROM units WHERE serial = 'LX-0001'")
    assert sales == [("in_stock",)]


def test_the_page_follows_a_configuration_changed_while_posd_was_down(
    browser: Any, tmp_path: Path, template_dir: Path
) -> None:
    lane = ScreenLane(tmp_path, template_dir)
    with lane.running():
        browser.get(lane.url)
        on_screen(browser, "welcome")
        assert find(browser, "#screen-welcome h1").text == EN["welcome.title"]
        lane.restart_with({"language": "de", "languages": ["de"]})
        until(
            browser,
            lambda b: find(b, "#screen-welcome h1").text == DE["welcome.title"],
            "the page in the language posd now starts customers in",
        )
        assert not find_all(browser, "#languages button")  # one language: nothing to switch
        _no_page_errors(browser, "/api/events - Failed to load resource: net::ERR_")


def test_every_customer_screen_reads_in_german(
    browser: Any, shots: Shots, tmp_path: Path, template_dir: Path
) -> None:
    lane = ScreenLane(tmp_path, template_dir, screen={"language": "de", "idle_timeout_s": 2})
    # Each language's own name stays in that language on the language buttons.
    english = {v for k, v in EN.items() if v != DE[k] and len(v) > 3 and k != "lang.name"}
    seen: list[str] = []

    def german_only(name: str) -> None:
        text = visible_text(browser)
        untranslated = sorted(e for e in english if e in text)
        assert not untranslated, (name, untranslated)
        for element in find_all(browser, "[data-i18n]"):
            if element.is_displayed():
                key = element.get_attribute("data-i18n")
                assert element.text == DE[key].strip(), key
        seen.append(screen_of(browser))

    with lane.running():
        browser.get(lane.url)
        on_screen(browser, "welcome")
        assert find(browser, "html").get_attribute("lang") == "de"
        assert find(browser, "#screen-welcome h1").text == "Willkommen"
        german_only("welcome")
        tap(browser, "#languages button[data-lang='en']")  # a customer switches …
        until(browser, lambda b: find(b, "#screen-welcome h1").text == "Welcome", "English")
        settle(2.5)  # … walks away, and the next customer starts in German again
        until(browser, lambda b: find(b, "#screen-welcome h1").text == "Willkommen", "German")

        lane.scan(LAPTOP_EAN)
        on_screen(browser, "serial")
        german_only("serial")
        shots.take(browser, "13-de-serial-number")
        lane.scan("LX-0001")
        on_screen(browser, "basket")
        assert find(browser, "#basket-total").text == "1.299,00"
        german_only("basket")
        shots.take(browser, "14-de-basket")
        tap(browser, "#pay")
        on_screen(browser, "pay")
        german_only("pay")
        tap(browser, "#screen-pay button[data-act='back']")
        on_screen(browser, "basket")
        lane.scan("LX-0013")  # recalled
        on_screen(browser, "locked")
        assert find(browser, "#locked-reason").text == DE["verdict.flag_recalled"]
        german_only("locked")
        tap(browser, "#staff")
        until(browser, lambda b: find(b, "#pinpad").is_displayed(), "the PIN pad")
        _pin(browser, "1")
        until(browser, lambda b: find(b, "#pin-message").text == DE["pin.wrong"], "wrong PIN")
        german_only("locked")
        shots.take(browser, "15-de-locked-pin")
        lane.scan(MIA_BADGE)
        on_screen(browser, "basket")
        lane.scan(CABLE_EAN)
        tap(browser, "#pay")
        tap(browser, "#pay-card")
        on_screen(browser, "done")
        until(browser, lambda b: find(b, "#done-receipt").text == DE["done.receipt"], "printed")
        german_only("done")
        shots.take(browser, "16-de-thank-you")
        lane.scan("LX-0010")  # already sold: the lock screen's words in German
        on_screen(browser, "locked")
        assert find(browser, "#locked-reason").text == DE["verdict.already_sold"]
        german_only("locked")
        _no_page_errors(browser, WRONG_PIN)
    assert set(seen) == {"welcome", "serial", "basket", "pay", "locked", "done"}


def test_a_person_at_the_demo_buys_is_refused_and_calls_for_help_by_touch_alone(
    browser: Any, shots: Shots, tmp_path: Path
) -> None:
    """`posd demo --screen`: everything done by touching the screen, nothing else read."""
    port = free_port()
    posd = Path(sys.executable).with_name("posd")
    command = [str(posd), "demo", "--screen", "--no-browser", "--port", str(port)]
    command += ["--keep", str(tmp_path / "demo")]
    demo = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert demo.stderr is not None
        started = time.monotonic()
        while "READY" not in demo.stderr.readline():
            assert demo.poll() is None and time.monotonic() - started < 30, "the demo did not start"
        browser.get(f"http://127.0.0.1:{port}/")
        on_screen(browser, "welcome")
        shelf = find(browser, "#practice")
        assert shelf.is_displayed() and EN["practice.title"] in shelf.text
        shots.take(browser, "00-demo-welcome-and-shelf")

        tap(browser, "#practice button[data-barcode='4006381333931']")  # the laptop's box
        on_screen(browser, "serial")
        tap(browser, "#practice button[data-barcode='LX-0001']")  # its serial sticker
        on_screen(browser, "basket")
        tap(browser, "#practice button[data-barcode='LX-0009']")  # a laptop sold before
        on_screen(browser, "locked")
        assert find(browser, "#locked-reason").text == EN["verdict.already_sold"]
        tap(browser, "#practice button[data-barcode='BADGE-0042']")  # the attendant comes
        on_screen(browser, "basket")
        tap(browser, "#help")
        on_screen(browser, "locked")
        tap(browser, "#staff")
        _pin(browser, "4711")
        on_screen(browser, "basket")
        tap(browser, "#pay")
        tap(browser, "#pay-card")
        on_screen(browser, "done")
        until(browser, lambda b: find(b, "#done-receipt").text == EN["done.receipt"], "printed")
        _no_page_errors(browser)
    finally:
        browser.get("about:blank")
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        output, errors = demo.communicate(timeout=30)
    assert demo.returncode == 0, errors
    assert "LX-0001: sold" in output and "LX-0009: sold" in output
    assert "LX-0002: in_stock" in output
