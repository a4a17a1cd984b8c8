"""A real `posd run` on simulated devices, and a real (headless) Chromium looking at its
lane screen: what the lane screen's browser tests are made of.

    lane = ScreenLane(tmp_path, template_dir, mode="self_checkout")
    with lane.running():                 # posd run --config …, in its own process
        browser.get(lane.url)
        lane.scan("LX-0001")             # typed by the simulated serial scanner
        on_screen(browser, "basket")
        lane.power_cut(); lane.start()   # SIGKILL, then posd again on the same port

Screenshots go to `$POSD_SCREEN_ARTIFACTS` when it is set (CI keeps that folder),
else to the test session's temporary folder; `Shots.folder` says where.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.lane import PosdProcess, SimulatedLane
from tests.lane_sim import max_, mia, stocked_copy

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT_S = 15  # how long to wait for the page before failing (never a measured time)
CATALOGUES = Path(__file__).resolve().parent.parent / "daemon/lane/screen/static/i18n"


def chromium(profile: Path, width: int = 1280, height: int = 800) -> Any:
    """Debian's Chromium under chromedriver, headless, offline; skips without them."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            f"NO CHROMIUM ({CHROMIUM}, {CHROMEDRIVER}): the lane screen's browser tests did "
            "NOT run; install the Debian packages chromium and chromium-driver"
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
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SE_OFFLINE", "true")  # Selenium Manager must never fetch a browser
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # The page itself is `width` x `height` (the window's frame would take some of it).
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    return driver


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ScreenLane:
    """A stocked lane on simulated devices whose daemon runs as `posd run` does."""

    def __init__(
        self,
        tmp: Path,
        template_dir: Path,
        *,
        mode: str = "self_checkout",
        screen: dict[str, Any] | None = None,
    ) -> None:
        self.port = free_port()
        self.sim = SimulatedLane(
            tmp / "lane",
            mode=mode,
            attendants=[mia()],
            managers=[max_()],
            api_port=self.port,
            screen=screen,
        )
        stocked_copy(self.sim.folder, template_dir)
        self.config = self.sim.write_config(self.sim.folder / "posd.toml")
        self.posd: PosdProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        self.posd = PosdProcess(self.config).start()

    def power_cut(self) -> None:
        assert self.posd is not None
        self.posd.kill()

    def restart_with(self, screen: dict[str, Any]) -> None:
        """Stop posd as systemd does, change the [screen] table, start it again."""
        assert self.posd is not None
        output = self.posd.stop()
        assert self.posd.returncode == 0, output
        self.sim.screen_section = screen
        self.sim.write_config(self.config)
        self.start()

    @contextlib.contextmanager
    def running(self) -> Iterator[ScreenLane]:
        self.start()
        try:
            yield self
        finally:
            if self.posd is not None:
                output = self.posd.stop()
                assert "Traceback" not in output, output
            self.sim.close()

    def scan(self, text: str) -> None:
        self.sim.scanner.scan(text)

    def ledger_rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Read the lane's ledger as an auditor would (read-only, beside the daemon)."""
        import sqlite3

        uri = f"file:{self.sim.ledger_path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
            return list(db.execute(sql).fetchall())


class Shots:
    """Screenshots of each screen, kept as the test run's artifacts."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.taken: list[Path] = []

    def take(self, browser: Any, name: str) -> Path:
        path = self.folder / f"{name}.png"
        browser.save_screenshot(str(path))
        self.taken.append(path)
        return path


def artifacts_folder(fallback: Path) -> Path:
    named = os.environ.get("POSD_SCREEN_ARTIFACTS")
    return Path(named) if named else fallback


def wait(browser: Any, timeout_s: float = WAIT_S) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # Every event redraws parts of the page: look again rather than fail.
    return WebDriverWait(browser, timeout_s, ignored_exceptions=(StaleElementReferenceException,))


def find(browser: Any, css: str) -> Any:
    from selenium.webdriver.common.by import By

    return browser.find_element(By.CSS_SELECTOR, css)


def find_all(browser: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.find_elements(By.CSS_SELECTOR, css))


def screen_of(browser: Any) -> str:
    return str(browser.execute_script("return document.body.dataset.screen || ''"))


def on_screen(browser: Any, name: str, timeout_s: float = WAIT_S) -> None:
    """Wait until the page shows the screen `name` (welcome, serial, basket, …)."""
    try:
        wait(browser, timeout_s).until(lambda b: screen_of(b) == name)
    except Exception as error:
        raise AssertionError(
            f"the page shows {screen_of(browser)!r}, not {name!r}; it reads: "
            f"{visible_text(browser)!r}"
        ) from error


def until(browser: Any, condition: Callable[[Any], Any], what: str) -> None:
    try:
        wait(browser).until(condition)
    except Exception as error:
        raise AssertionError(f"{what}; the page reads: {visible_text(browser)!r}") from error


def visible_text(browser: Any) -> str:
    return str(browser.execute_script("return document.body.innerText"))


def tap(browser: Any, css: str) -> None:
    find(browser, css).click()


def press(browser: Any, key: str) -> None:
    """A key on the cashier's keyboard, wherever the focus is."""
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(key).perform()


def catalogue(language: str) -> dict[str, str]:
    return dict(json.loads((CATALOGUES / f"{language}.json").read_text(encoding="utf-8")))


def settle(seconds: float) -> None:
    """Let real time pass (a screen's own time-out), never to wait for an answer."""
    time.sleep(seconds)
