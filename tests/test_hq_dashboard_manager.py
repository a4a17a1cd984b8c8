"""The dashboard as a store manager reads it: times in the store's zone, prices and
overrides in words, no field names or engineering figures, thousands separators,
flagged units counted, a conflict form that chooses nothing for them, history in the
order things happened, and a warning when HQ talks in the clear on the network."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.hq.exposure import is_loopback, plain_on_network
from daemon.hq.web import WebSettings
from tests.hq_fixtures_manager import (
    BULK,
    ENGINEER_PAGES,
    FIELD_NAME,
    ISO_TIME,
    MANAGER_PAGES,
    build_store,
    page_text,
)
from tests.hq_fixtures_web import MANAGER, Chain, Client, DashboardServer

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    found = build_store(tmp_path_factory.mktemp("manager"))
    yield found
    found.close()


@pytest.fixture(scope="module")
def server(store: Chain) -> Iterator[DashboardServer]:
    started = DashboardServer(store.source, WebSettings(poll_s=0.05, zone=BERLIN))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def client(server: DashboardServer) -> Client:
    found = Client(server.url)
    assert found.login(MANAGER).status == 303
    return found


def text_of(client: Client, path: str) -> str:
    reply = client.get(path)
    assert reply.status == 200, f"{path}: {reply.status}"
    return " ".join(page_text(reply.text).split())


@pytest.mark.parametrize("path", MANAGER_PAGES + ENGINEER_PAGES)
def test_no_page_shows_a_field_name_or_a_machine_time(client: Client, path: str) -> None:
    text = text_of(client, path)
    assert not ISO_TIME.search(text), ISO_TIME.search(text)
    assert "cents" not in text
    # Field names (price_cents, in_transit, sold_on) are for programs; terminals' own
    # problem messages on the engineers' page may quote them.
    if path in MANAGER_PAGES:
        assert not FIELD_NAME.search(text), FIELD_NAME.search(text)


@pytest.mark.parametrize("path", MANAGER_PAGES)
def test_manager_pages_carry_no_engineering_figures(client: Client, path: str) -> None:
    text = text_of(client, path).lower()
    for figure in ("p99", " ms ", "median ms", "time to locate"):
        assert figure not in f" {text} ", f"{figure!r} on {path}"


def test_the_engineers_page_keeps_the_engineering_figures(client: Client) -> None:
    text = text_of(client, "/terminals")
    assert "P99 ms" in text and "Median ms" in text


@pytest.mark.parametrize("path", MANAGER_PAGES + ENGINEER_PAGES)
def test_numbers_of_a_thousand_and_more_have_separators(client: Client, path: str) -> None:
    text = text_of(client, path)
    # A bare run of five or more digits is a figure without separators (four digits
    # may be a year; serials and documents are words, e.g. BK-1150, so digits joined to
    # letters or a dash are not figures).
    assert not re.search(r"(?<![\w.,…-])\d{5,}(?![\w-])", text)


def test_counts_say_thousands_with_separators_and_count_the_flagged(client: Client) -> None:
    text = text_of(client, "/counts")
    total = BULK + 15
    assert f"{total:,} units" in text and f"{total - 3:,} in stock" in text
    assert "B2 1,205 0 1,205 0" in text  # B2's row: in stock, sold, total, flagged
    # LX-0..LX-2 recalled, LX-1 also in conflict, LX-5 on hold, LX-7 stolen: 5 units.
    assert "5 flagged 1 stolen 3 recalled 1 conflict 1 on hold" in text
    assert "B1 7 3 10 5" in text
    b2 = text_of(client, "/counts?branch=B2")
    assert "flagged" not in b2.split("By product")[0]  # no flagged unit at B2
    lx7 = text_of(client, "/counts?prefix=LX-7")
    assert "1 flagged 1 stolen" in lx7


def test_times_are_local_to_the_store_in_one_format(client: Client) -> None:
    text = text_of(client, "/unit?product=LAP&serial=LX-5")
    # Stored as 09:00, 10:00 and 11:00 UTC; Berlin is an hour ahead in November.
    for local in ("23 Nov 2026 10:00", "23 Nov 2026 11:00", "23 Nov 2026 12:00"):
        assert local in text
    assert "Sold on 23 Nov 2026" in text and "Warranty until 23 Nov 2028" in text
    assert "Times are local to the store (Europe/Berlin)." in text
    terminals = text_of(client, "/terminals")
    assert "23 Nov 2026 10:30" in terminals  # last seen at 09:30 UTC


def test_history_is_in_the_order_things_happened_across_terminals(client: Client) -> None:
    page = client.get("/unit?product=LAP&serial=LX-5").text
    rows = re.findall(
        r'<tr data-kind="(\w+)" data-terminal="(\w+)">\s*<td class="when">([^<]*)<', page
    )
    # HQ stored T2's 11:00 sale before T1's 10:00 hold (T1 was offline): the history
    # shows the hold first.
    assert rows == [
        ("receive", "T1", "23 Nov 2026 10:00"),
        ("flag", "T1", "23 Nov 2026 11:00"),
        ("sell", "T2", "23 Nov 2026 12:00"),
    ]


def test_prices_and_overrides_are_said_in_words(client: Client) -> None:
    text = text_of(client, "/unit?product=LAP&serial=LX-3")
    assert "Override by manager Mia: unit was in transit" in text
    assert "Customer Gina Price 1,249.00" in text
    assert "Supplier Acme" in text and "Document in transit" in text
    assert "overrode" not in text and "Party" not in text


def test_analytics_tables_show_rates_as_the_charts_do(client: Client) -> None:
    page = client.get("/analytics").text
    text = " ".join(page_text(page).split())
    # B1 sold 5 and took 1 back: 20.0% in the chart and in the table alike.
    assert "B1 5 1 20.0% 20.0%" in text
    assert ">20.0%</text>" in page
    assert "Acme LAP 10 1 0 10.0%" in text and "Bolt LAP 1,205 0 0 0.0%" in text


def test_the_conflict_form_chooses_nothing_and_offers_only_the_real_outcomes(
    store: Chain, client: Client
) -> None:
    page = client.get("/conflicts").text
    form = page[
        page.index('<form class="resolve"') : page.index(
            "</form>", page.index('<form class="resolve"')
        )
    ]
    assert " checked" not in form and " selected" not in form
    offered = re.findall(r'name="keep" value="([^"]*)"', form)
    [conflict] = store.central.conflicts()
    assert sorted(offered) == sorted(conflict["events"])  # each side, nothing else
    assert 'value=""' not in form and "as HQ has it now" not in form
    assert "customer Dana" in form and "customer Eve" in form
    refused = client.post(
        "/conflicts/resolve",
        {
            "csrf": client.get("/conflicts").field("csrf"),
            "product": "LAP",
            "serial": "LX-1",
            "note": "decided without choosing",
        },
    )
    assert refused.status == 303
    after = text_of(client, refused.headers["Location"])
    assert 'LAP serial "LX-1": choose which outcome stands' in after
    assert len(store.central.conflicts()) == 1


# -- talking in the clear ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "https", "broker", "warned"),
    [
        ("0.0.0.0", False, None, ["dashboard"]),
        ("::", False, None, ["dashboard"]),
        ("192.168.1.20", False, None, ["dashboard"]),
        ("hq.example.com", False, None, ["dashboard"]),
        ("0.0.0.0", True, None, []),
        ("127.0.0.1", False, None, []),
        ("::1", False, None, []),
        ("localhost", False, None, []),
        ("127.0.0.1", False, "mqtt://10.0.0.5:1883", ["broker"]),
        ("127.0.0.1", False, "mqtt://localhost:1883", []),
        ("127.0.0.1", False, "mqtts://10.0.0.5:8883", []),
        ("0.0.0.0", False, "mqtt://broker.example.com", ["dashboard", "broker"]),
    ],
)
def test_hq_in_the_clear_on_the_network_is_named(
    listen: str, https: bool, broker: str | None, warned: list[str]
) -> None:
    found = plain_on_network(listen=listen, https=https, broker=broker)
    assert [("dashboard" if w.startswith("The dashboard") else "broker") for w in found] == warned


def test_loopback_is_only_this_machine() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("127.5.5.5") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("") and not is_loopback("10.0.0.1")


@pytest.mark.parametrize(
    ("settings", "shown"),
    [
        (WebSettings(poll_s=0.05, listen="0.0.0.0"), "served without TLS on 0.0.0.0"),
        (WebSettings(poll_s=0.05, listen="127.0.0.1"), None),
        (WebSettings(poll_s=0.05, listen="0.0.0.0", https=True), None),
        (
            WebSettings(poll_s=0.05, listen="127.0.0.1", broker="mqtt://10.0.0.5:1883"),
            "MQTT broker is reached without TLS at 10.0.0.5",
        ),
    ],
)
def test_the_page_and_the_log_warn_when_hq_runs_in_the_clear(
    store: Chain, settings: WebSettings, shown: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="daemon.hq.web.app"):
        server = DashboardServer(store.source, settings)
    try:
        viewer = Client(server.url)
        sign_in = viewer.get("/login").text  # before signing in too
        viewer.login(MANAGER)
        counts = viewer.get("/counts").text
    finally:
        server.stop()
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    if shown is None:
        assert "without TLS" not in sign_in and "without TLS" not in counts
        assert not [m for m in logged if "without TLS" in m]
    else:
        assert shown in sign_in and shown in counts
        assert [m for m in logged if shown in m]


def test_the_store_zone_is_refused_when_the_machine_does_not_know_it(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from daemon.cli import build

    (tmp_path / "hq.db").touch()
    result = CliRunner().invoke(
        build(), ["hq", "--db", str(tmp_path / "hq.db"), "web", "--timezone", "Europe/Berln"]
    )
    assert result.exit_code == 2
    assert "'Europe/Berln' is not a time zone this machine knows" in result.output
    assert "did you mean 'Europe/Berlin'?" in result.output


@pytest.mark.parametrize(
    ("url", "warned"),
    [("mqtt://10.255.255.1:1883", True), ("mqtt://127.0.0.1:1883", False)],
)
def test_hq_says_in_its_log_when_its_broker_is_plain_on_the_network(
    tmp_path: Path, url: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    from daemon.config.hq import HqConfig
    from daemon.config.replication import BrokerConfig
    from daemon.hq.connect import open_backend
    from daemon.hq.node import HqNode

    node = HqNode(HqConfig(broker=BrokerConfig(url=url)), open_backend(tmp_path / "hq.db", None))
    stop = threading.Event()
    stop.set()  # start and stop at once: what it says on the way in is the point
    with caplog.at_level(logging.WARNING, logger="daemon.hq.node"):
        node.run(stop)
    said = [r.getMessage() for r in caplog.records if "without TLS" in r.getMessage()]
    assert bool(said) == warned
    if warned:
        assert "at 10.255.255.1" in said[0] and "mqtts://" in said[0]
