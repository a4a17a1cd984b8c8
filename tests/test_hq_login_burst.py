"""The dashboard's sign-in under a burst and against redirects elsewhere: guesses meet
the limit before their password hash runs, the count outlives a restart, and `next`
only ever sends a browser to a page of the dashboard itself."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import aiohttp
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import daemon.hq.web.auth as auth
from daemon.hq.users import verify_password
from daemon.hq.web import WebSettings
from daemon.hq.web.auth import local_target
from tests.hq_fixtures_web import (
    MANAGER,
    PASSWORD,
    VIEWER,
    Chain,
    Client,
    DashboardServer,
    build_chain,
)

GUESSES = 1000
LIMIT = 5  # WebSettings.login_attempts: per name from one address


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    found = build_chain(tmp_path)
    yield found
    found.close()


class HashCount:
    """Counts the passwords that reach the slow hash."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        real = verify_password

        def counted(password: str, stored: str) -> bool:
            with self._lock:
                self.calls += 1
            return real(password, stored)

        monkeypatch.setattr(auth, "verify_password", counted)


async def _burst(base: str, name: str, count: int) -> list[int]:
    connector = aiohttp.TCPConnector(limit=count)
    jar = aiohttp.CookieJar(unsafe=True)  # keep the sign-in form's cookie for 127.0.0.1
    async with aiohttp.ClientSession(connector=connector, cookie_jar=jar) as session:
        async with session.get(f"{base}/login") as form:
            found = re.search(r'name="csrf" value="([^"]*)"', await form.text())
            assert found
            token = found.group(1)

        async def guess(n: int) -> int:
            fields = {"csrf": token, "name": name, "password": f"guess number {n}", "next": ""}
            async with session.post(
                f"{base}/login", data=fields, allow_redirects=False
            ) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(guess(n) for n in range(count))))


def test_a_thousand_sign_ins_at_once_meet_the_limit_and_it_outlives_a_restart(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = HashCount(monkeypatch)
    server = DashboardServer(chain.source, WebSettings(poll_s=0.05))
    try:
        statuses = asyncio.run(_burst(server.url, MANAGER, GUESSES))
        assert hashes.calls <= LIMIT
        assert statuses.count(401) == hashes.calls
        assert statuses.count(429) == GUESSES - hashes.calls >= GUESSES - LIMIT
        assert Client(server.url).login(MANAGER).status == 429  # the right one waits too
    finally:
        server.stop()
    checked = hashes.calls
    again = DashboardServer(chain.source, WebSettings(poll_s=0.05))  # a restart
    try:
        locked = Client(again.url).login(MANAGER)
        assert locked.status == 429 and "Too many failed sign-ins" in locked.text
        assert hashes.calls == checked  # refused before any hash
        assert Client(again.url).login(VIEWER).status == 303  # another user is not locked
    finally:
        again.stop()


def test_a_right_password_takes_back_only_its_own_users_failures(chain: Chain) -> None:
    server = DashboardServer(chain.source, WebSettings(poll_s=0.05))
    try:
        client = Client(server.url)
        for _ in range(4):
            assert client.login(MANAGER, "guess guess guess").status == 401
        assert client.login(VIEWER).status == 303  # victor's right password …
        assert client.login(MANAGER, "guess guess guess").status == 401
        assert client.login(MANAGER).status == 429  # … left olga's five failures counted
    finally:
        server.stop()


# ------------------------------------------------------------- where `next` may lead

ELSEWHERE = [
    "//evil.example",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/%2F/evil.example",
    "/%2f%2fevil.example",
    "%2F%2Fevil.example",
    "/%09/evil.example",
    "/%5Cevil.example",
    "/%5cevil.example",
    "https:evil.example",
    "https://evil.example",
    "http:/evil.example",
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "/\u3002evil.example",
    "/\uff0f/evil.example",
    "",
]
LOCAL = ["/", "/counts", "/unit?product=LAP&serial=LX-3", "/units?q=LX+3%C3%A9", "/a//b"]


@pytest.mark.parametrize("target", ELSEWHERE)
def test_next_never_leads_off_the_dashboard(target: str) -> None:
    assert local_target(target) == ""


@pytest.mark.parametrize("target", LOCAL)
def test_next_leads_back_to_the_page_asked_for(target: str) -> None:
    assert local_target(target) == target


def _browser_reads(location: str) -> str:
    """Where a browser goes for a Location: tabs and line breaks dropped, `\\` read as
    `/` (as the WHATWG URL parser does for http)."""
    cleaned = re.sub(r"^[\x00-\x20]+|[\x00-\x20]+$", "", location)
    cleaned = re.sub(r"[\t\n\r]", "", cleaned).replace("\\", "/")
    return urljoin("http://hq.example/", cleaned)


@settings(max_examples=2000)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="/\\%2Ff5Cc09:.\t\n @evil", max_size=20),
        st.sampled_from(ELSEWHERE).flatmap(
            lambda attack: st.text(alphabet="/\\\t ", max_size=3).map(lambda pre: pre + attack)
        ),
    )
)
@example("/\t/evil.example")
def test_whatever_next_says_the_browser_stays_on_the_dashboard(target: str) -> None:
    kept = local_target(target)
    assert kept in ("", target)
    if kept:
        assert urlsplit(_browser_reads(kept)).netloc == "hq.example", kept
        assert kept.startswith("/") and not kept.startswith("//")


@pytest.mark.parametrize("target", ["/\t/evil.example", "/\r\n/evil.example"])
def test_signing_in_with_a_foreign_next_lands_on_the_dashboard(chain: Chain, target: str) -> None:
    server = DashboardServer(chain.source, WebSettings(poll_s=0.05))
    try:
        client = Client(server.url)
        form = client.get("/login")
        fields = {"csrf": form.field("csrf"), "name": MANAGER, "password": PASSWORD}
        signed = client.post("/login", fields | {"next": target})
        assert signed.status == 303 and signed.headers["Location"] == "/"
    finally:
        server.stop()


def test_two_dashboards_on_one_postgresql_share_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.mqtt_broker import fresh_pg_database

    dsns = fresh_pg_database()
    dsn = next(dsns)
    chain = build_chain(tmp_path, pg=dsn)
    hashes = HashCount(monkeypatch)
    first = DashboardServer(chain.source, WebSettings(poll_s=0.05))
    second = DashboardServer(chain.source, WebSettings(poll_s=0.05))

    async def both() -> list[int]:
        halves = await asyncio.gather(
            _burst(first.url, MANAGER, 150), _burst(second.url, MANAGER, 150)
        )
        return halves[0] + halves[1]

    try:
        statuses = asyncio.run(both())
        assert hashes.calls <= LIMIT and statuses.count(401) == hashes.calls
        assert statuses.count(429) == len(statuses) - hashes.calls
    finally:
        first.stop()
        second.stop()
        chain.close()
        for _ in dsns:  # drops the database
            pass
