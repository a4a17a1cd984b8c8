"""Helpers for the HQ dashboard tests: an HQ built from real terminal events, the
dashboard served on a loopback port, and a small cookie-keeping HTTP client."""

from __future__ import annotations

import asyncio
import html
import json
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path

from aiohttp import web

from daemon.hq import Central
from daemon.hq.connect import open_backend
from daemon.hq.users import Role, add_user, ensure_tables
from daemon.hq.web import HqSource, WebSettings, create_app
from daemon.ledger import Ledger, SaleLine
from daemon.ledger.remote import apply_remote_many
from daemon.replication.protocol import Presence
from tests.ledger_fixtures import make_ledger
from tests.test_hq_ingest import batches, watermark

PASSWORD = "correct horse battery"
MANAGER = "olga"
VIEWER = "victor"


@dataclass
class Chain:
    """An HQ database fed by three terminals' real events.

    T1 and T2 (branch B1) both sold LAP LX-1 while apart: a conflict. T1 also sold
    LX-2 to Frank. T3 (branch B2) received LY-0..LY-4. T1 is online, T2 offline.
    """

    source: HqSource
    central: Central
    terminals: dict[str, Ledger] = field(default_factory=dict)

    def send(self, name: str) -> None:
        """Store at HQ whatever terminal `name` has not sent yet."""
        ledger = self.terminals[name]
        self.central.ingest(batches(ledger, after=watermark(self.central, ledger)))

    def deliver(self, name: str) -> None:
        """Apply HQ's feed for the terminal's branch to the terminal, as replication does."""
        ledger = self.terminals[name]
        for feed in self.central.answer_pull(name, 0):
            apply_remote_many(ledger, [(e.body, e.hash) for e in feed.events if e.terminal != name])

    def close(self) -> None:
        self.central.close()
        for ledger in self.terminals.values():
            ledger.close()


def build_chain(tmp_path: Path, pg: str | None = None) -> Chain:
    """The chain on HQ's SQLite file in `tmp_path`, or on PostgreSQL at DSN `pg`."""
    source = HqSource(pg=pg) if pg else HqSource(db=tmp_path / "hq.db")
    chain = Chain(source, Central(open_backend(source.db, source.pg)))
    t1 = make_ledger(tmp_path / "t1.db", terminal="T1")
    t2 = make_ledger(tmp_path / "t2.db", terminal="T2")
    t3 = make_ledger(tmp_path / "t3.db", terminal="T3", branch="B2")
    chain.terminals = {"T1": t1, "T2": t2, "T3": t3}
    t1.receive("PO-1", "Acme", "LAP", [f"LX-{i}" for i in range(10)], actor="ann", cost_cents=90000)
    t3.receive("PO-2", "Bolt", "LAP", [f"LY-{i}" for i in range(5)], actor="bea")
    for name in chain.terminals:
        chain.send(name)
    chain.deliver("T2")  # T2 learns of T1's units, as a terminal at the same branch
    t1.sell("INV-1", "Dana", [SaleLine("LAP", "LX-1", 129900)], actor="bob")
    t1.sell("INV-3", "Frank", [SaleLine("LAP", "LX-2", 129900)], actor="bob")
    t2.sell("INV-2", "Eve", [SaleLine("LAP", "LX-1", 119900)], actor="sue")
    chain.send("T1")
    chain.send("T2")
    chain.central.presence(
        [
            Presence(
                terminal=name,
                branch=ledger.branch,
                epoch=ledger.epoch,
                session=1,
                state="online" if name != "T2" else "offline",
                at="2026-11-23T09:30:00Z",
            )
            for name, ledger in chain.terminals.items()
        ]
    )
    ensure_tables(chain.central.backend)
    for name, role in ((MANAGER, Role.MANAGER), (VIEWER, Role.VIEWER)):
        add_user(chain.central.backend, name, role, PASSWORD, at="2026-11-23T08:00:00Z")
    return chain


class DashboardServer:
    """The dashboard app served on a free loopback port, on a thread of its own."""

    def __init__(self, source: HqSource, settings: WebSettings | None = None) -> None:
        self.app = create_app(source, settings or WebSettings(poll_s=0.05))
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port = 0
        self._thread = threading.Thread(target=self._serve, name="dashboard", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = int(self._runner.addresses[0][1])
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    def stop(self) -> None:
        if self._error is None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@dataclass
class Reply:
    status: int
    headers: Mapping[str, str]
    text: str

    def field(self, name: str) -> str:
        """The value of the first form field `name` on the page."""
        found = re.search(rf'name="{name}" value="([^"]*)"', self.text)
        assert found, f"no field {name!r} on the page"
        return html.unescape(found.group(1))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Client:
    """A browser without the browser: keeps cookies, shows redirects as they are."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirects()
        )

    def get(self, path: str) -> Reply:
        return self._open(urllib.request.Request(self.base + path))

    def post(
        self, path: str, form: Mapping[str, str], headers: Mapping[str, str] | None = None
    ) -> Reply:
        body = urllib.parse.urlencode(form).encode()
        request = urllib.request.Request(
            self.base + path, data=body, headers=dict(headers or {}), method="POST"
        )
        return self._open(request)

    def login(self, name: str, password: str = PASSWORD) -> Reply:
        form = self.get("/login")
        return self.post(
            "/login", {"csrf": form.field("csrf"), "name": name, "password": password, "next": ""}
        )

    def _open(self, request: urllib.request.Request) -> Reply:
        try:
            with self._opener.open(request, timeout=30) as response:
                return Reply(response.status, response.headers, response.read().decode())
        except urllib.error.HTTPError as error:
            return Reply(error.code, error.headers, error.read().decode())


class EventStream:
    """A server-sent event stream, read one event at a time."""

    def __init__(self, client: Client, path: str) -> None:
        self._response = client._opener.open(client.base + path, timeout=30)
        self.status = self._response.status

    def next(self) -> tuple[str, dict[str, object]]:
        """The next event (name, data); keep-alive comments are passed over."""
        name, data = "", ""
        while True:
            line = self._response.readline().decode()
            assert line, "the stream ended"
            line = line.rstrip("\n")
            if line.startswith(":"):
                continue
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and name:
                return name, json.loads(data)

    def close(self) -> None:
        self._response.close()


def cell(page: str, table: str, key: str, state: str) -> int:
    """A figure of a counts table on a counts page (or fragment)."""
    part = page[page.index(f'id="by-{table}"') :]
    found = re.search(rf'data-key="{re.escape(key)}" data-state="{state}">([\d,]+)<', part)
    assert found, f"no {state} cell for {key} in the {table} table"
    return int(found.group(1).replace(",", ""))
