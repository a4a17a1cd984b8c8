"""Whatever HQ has stored, every dashboard page renders (never a 500) and escapes it:
names with HTML in them, sums of money beyond any till, times no clock writes."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.hq.web import WebSettings
from daemon.hq.web.present import Presenter
from tests.hq_fixtures_manager import ENGINEER_PAGES, MANAGER_PAGES, build_store
from tests.hq_fixtures_web import MANAGER, Chain, Client, DashboardServer

MARK = '<i data-hostile="1">'  # would be an element on the page if it were not escaped

hostile_text = st.builds(
    lambda before, after: f"{before}{MARK}{after}",
    st.text(max_size=40),
    st.text(max_size=40),
)
odd_time = st.one_of(
    st.sampled_from(
        [
            "",
            "not a time",
            "2026-02-30T10:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "2026-11-23T09:00:00.123456789Z",
            "2026-11-23",
            "2026-11-23 09:00",
            "+275760-09-13T00:00:00Z",
        ]
    ),
    st.datetimes().map(lambda d: d.isoformat()),
    hostile_text,
)
huge = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, -1, 10**30]))


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    found = build_store(tmp_path_factory.mktemp("hostile"))
    yield found
    found.close()


@pytest.fixture(scope="module")
def client(store: Chain) -> Iterator[Client]:
    server = DashboardServer(store.source, WebSettings(poll_s=0.05, zone=ZoneInfo("Asia/Tokyo")))
    found = Client(server.url)
    assert found.login(MANAGER).status == 303
    yield found
    server.stop()


def spoil(chain: Chain, name: str, at: str, cents: int, seen_at: str) -> None:
    """Write hostile values where the pages read them, as a damaged or hostile HQ
    database would hold them."""
    assert chain.source.db is not None
    with closing(sqlite3.connect(chain.source.db)) as db, db:
        # A damaged database, not HQ's doing: the log's append-only guard is let go.
        for (trigger,) in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'events'"
        ).fetchall():
            db.execute(f'DROP TRIGGER "{trigger}"')
        db.execute("UPDATE products SET name = ? WHERE code = 'LAP'", [name])
        db.execute(
            "UPDATE units SET customer = ?, sold_on = ? WHERE customer IS NOT NULL", [name, at]
        )
        for uuid, body in db.execute(
            "SELECT e.uuid, e.body FROM events e JOIN units u ON u.id = e.unit_id"
            " WHERE u.serial IN ('LX-1', 'LX-3', 'LX-5')"
        ).fetchall():
            event = json.loads(body)
            event["at"] = at
            data = event.setdefault("data", {})
            if "price_cents" in data:
                data["price_cents"] = cents
            if "party" in data:
                data["party"] = name
            if event["kind"] == "override":
                data["manager"] = name
                data["overrode"] = [name]
            db.execute("UPDATE events SET body = ? WHERE uuid = ?", [json.dumps(event), uuid])
        db.execute("UPDATE hq_terminals SET seen_at = ?, waiting_since = ?", [at, seen_at])
        db.execute("UPDATE hq_conflicts SET opened_at = ?", [at])
        db.execute("UPDATE documents SET opened_at = ? WHERE type = 'recall'", [at])


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(name=hostile_text, at=odd_time, cents=huge, seen_at=odd_time)
def test_every_page_renders_and_escapes_whatever_hq_stored(
    store: Chain, client: Client, name: str, at: str, cents: int, seen_at: str
) -> None:
    spoil(store, name, at, cents, seen_at)
    for path in MANAGER_PAGES + ENGINEER_PAGES:
        reply = client.get(path)
        assert reply.status == 200, f"{path}: {reply.status} {reply.text[:300]}"
        assert MARK not in reply.text, f"{path} shows stored HTML unescaped"


@given(value=st.one_of(odd_time, huge, st.floats(), st.none(), st.booleans()))
def test_a_time_the_dashboard_cannot_read_is_shown_as_it_is(value: object) -> None:
    for zone in (None, ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")):
        shown = Presenter(zone).when(value)
        assert isinstance(shown, str)


@given(
    column=st.sampled_from(["price_cents", "return_rate", "accuracy", "day", "sold_on", "n"]),
    value=st.one_of(huge, st.floats(), st.text(max_size=20), st.none(), st.booleans()),
)
def test_a_table_cell_is_always_said(column: str, value: object) -> None:
    assert isinstance(Presenter().cell(column, value), str)
