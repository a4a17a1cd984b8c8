"""The lane screen's side of the kiosk API, attacked as a hostile web page would: the
page and its files under a strict Content-Security-Policy, `GET /api/screen`, masked
serials and the restart notice in the lane's JSON, and every request another site could
make the terminal's browser send (a foreign Origin, a rebound Host name, a cross-site
fetch) refused before it does anything.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp.test_utils import make_mocked_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.lane.crosssite import CONTENT_SECURITY_POLICY, LOOPBACK_NAMES, host_name, refusal
from daemon.lane.screen.web import STATIC
from simulators.lane import SimulatedLane
from tests.lane_sim import PHONE_EAN, mia, run_lane, stocked_copy

PHONE_IMEI = "356938035643809"


def _url(sim: SimulatedLane, path: str) -> str:
    assert sim.daemon is not None
    return f"http://127.0.0.1:{sim.daemon.api_port}{path}"


# ------------------------------------------------------------------- the page itself


def test_the_page_and_its_files_come_with_a_strict_content_security_policy(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            for path, kind in (
                ("/", "text/html"),
                ("/screen/screen.js", "javascript"),
                ("/screen/screen.css", "text/css"),
                ("/screen/i18n/de.json", "application/json"),
                ("/screen/img/serial-sticker.svg", "image/svg+xml"),
                ("/api/screen", "application/json"),
                ("/api/lane", "application/json"),
                ("/screen/no-such-file.js", ""),  # a 404 carries it too
            ):
                async with session.get(_url(sim, path)) as response:
                    assert kind in response.headers["Content-Type"], path
                    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
                    assert response.headers["X-Content-Type-Options"] == "nosniff"
                    assert response.headers["X-Frame-Options"] == "DENY"
                    assert response.status == (404 if "no-such" in path else 200), path
            async with session.get(_url(sim, "/api/events")) as response:
                assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            async with session.get(_url(sim, "/")) as response:
                page = await response.text()
            assert '<script src="/screen/screen.js"' in page
        policy = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
        assert policy["default-src"] == "'self'" and policy["script-src"] == "'self'"
        assert "unsafe" not in CONTENT_SECURITY_POLICY and "http" not in CONTENT_SECURITY_POLICY
        assert policy["frame-ancestors"] == "'none'"

    run_lane(tmp_path, template_dir, play)


def test_api_screen_tells_the_page_who_it_serves_and_in_which_language(
    tmp_path: Path, template_dir: Path
) -> None:
    items = [{"label": "Laptop X1", "barcode": "4006381333931", "kind": "product"}]

    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(_url(sim, "/api/screen")) as response:
                screen = (await response.json())["screen"]
            assert screen == {
                "enabled": True,
                "mode": "customer",
                "terminal": "T-001",
                "store_name": "Simulated Store",
                "currency": "",
                "language": "de",
                "languages": ["de", "en"],
                "idle_timeout_s": 45.0,
                "practice_items": items,
                "catalogues": {"de": "/screen/i18n/de.json", "en": "/screen/i18n/en.json"},
            }
            for catalogue in screen["catalogues"].values():
                async with session.get(_url(sim, catalogue)) as response:
                    assert response.status == 200 and "lang.name" in await response.json()

    screen = {
        "language": "de",
        "languages": ["de", "en"],
        "idle_timeout_s": 45,
        "practice_items": items,
    }
    run_lane(
        tmp_path,
        template_dir,
        play,
        mode="self_checkout",
        attendants=[mia()],
        screen=screen,
    )


def test_a_terminal_without_a_screen_serves_the_api_only(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            for path in ("/", "/screen/screen.js", "/screen/i18n/en.json"):
                async with session.get(_url(sim, path)) as response:
                    assert response.status == 404, path
            async with session.get(_url(sim, "/api/screen")) as response:
                assert (await response.json())["screen"]["enabled"] is False
            async with session.get(_url(sim, "/api/lane")) as response:
                assert response.status == 200

    run_lane(tmp_path, template_dir, play, screen={"enabled": False})


# --------------------------------------------------------- what the page reads


def test_a_basket_line_shows_the_serial_as_the_products_policy_allows(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")  # laptops: serial shown in full
        await sim.scan(PHONE_EAN)
        await sim.scan(PHONE_IMEI)  # phones: masked but the last four
        async with (
            aiohttp.ClientSession() as session,
            session.get(_url(sim, "/api/lane")) as response,
        ):
            lines = (await response.json())["lane"]["basket"]["lines"]
        assert [(line["serial"], line["serial_shown"], line["mask_serial"]) for line in lines] == [
            ("LX-0001", "LX-0001", False),
            (PHONE_IMEI, "•••••••••••3809", True),
        ]

    run_lane(tmp_path, template_dir, play)


def test_a_screen_that_connects_after_a_restart_reads_that_the_sale_was_lost(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0001")
        await sim.stop()  # the lane stops with the basket open, unpaid
        await sim.start()
        async with aiohttp.ClientSession() as session:
            async with session.get(_url(sim, "/api/lane")) as response:
                notice = (await response.json())["lane"]["notice"]
            assert notice["code"] == "last_sale_lost" and notice["invoice"] == "T-001-000001"
            assert "scan its items again" in notice["message"]
            async with session.get(_url(sim, "/api/events")) as response:
                first = await response.content.readuntil(b"\n\n")
            assert b'"last_sale_lost"' in first  # the stream's first event carries it too
            await sim.lane.ask(_tick())  # time passing does not clear it …
            assert sim.lane.snapshot()["notice"] is not None
            await sim.scan("LX-0001")  # … a customer scanning again does
            async with session.get(_url(sim, "/api/lane")) as response:
                assert (await response.json())["lane"]["notice"] is None

    run_lane(tmp_path, template_dir, play)


def _tick() -> Any:
    from daemon.rules.lane.types import Tick

    return Tick()


# ------------------------------------------------------------- other web sites


FOREIGN = [
    ({"Origin": "http://evil.example"}, "a page from 'http://evil.example'"),
    ({"Origin": "null"}, "a page from 'null'"),
    ({"Origin": "https://127.0.0.1:{port}"}, "a page from"),  # another scheme
    ({"Origin": "http://127.0.0.1:1"}, "a page from"),  # another local port
    ({"Host": "evil.example:{port}"}, "is not this terminal's loopback address"),
    ({"Host": "127.0.0.1.nip.io:{port}"}, "is not this terminal's loopback address"),
    ({"Sec-Fetch-Site": "cross-site"}, "a cross-site request"),
    ({"Sec-Fetch-Site": "same-site"}, "a same-site request"),
]


def test_a_request_another_site_could_make_is_refused_and_changes_nothing(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        assert sim.daemon is not None
        port = sim.daemon.api_port
        async with aiohttp.ClientSession() as session:
            for headers, said in FOREIGN:
                sent = {k: v.format(port=port) for k, v in headers.items()}
                taken = sim.lane.taken
                for method, path, body in (
                    ("POST", "/api/scan", {"text": "LX-0001"}),
                    ("POST", "/api/commands", {"command": "help"}),
                    ("POST", "/api/attendant/release", {"pin": "4821"}),
                    ("GET", "/api/lane", None),
                    ("GET", "/", None),
                ):
                    async with session.request(
                        method, _url(sim, path), json=body, headers=sent
                    ) as response:
                        assert response.status == 403, (sent, path)
                        assert said in (await response.json())["error"], (sent, path)
                        assert "Content-Security-Policy" in response.headers
                assert sim.lane.taken == taken  # no scan, command or PIN reached the lane
            assert sim.lane.snapshot()["basket"] is None
            # The lane's own page: same origin, as the browser says it.
            own = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
            async with session.post(
                _url(sim, "/api/scan"), json={"text": "LX-0001"}, headers=own
            ) as response:
                assert response.status == 200
                assert (await response.json())["verdict"]["code"] == "unit_added"
            typed = {"Sec-Fetch-Site": "none", "Host": f"localhost:{port}"}
            async with session.get(_url(sim, "/"), headers=typed) as response:
                assert response.status == 200

    run_lane(tmp_path, template_dir, play, mode="self_checkout", attendants=[mia()])


# ------------------------------------------------------------------- fuzzing


_PRINTABLE = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=0, max_size=40
)
_LATIN = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=40,
).map(str.strip)


@settings(max_examples=500)
@given(host=st.one_of(_LATIN, st.sampled_from(["[::1]:1", "LOCALHOST", "[::1", "127.0.0.1:x"])))
def test_host_name_never_fails_and_names_loopback_only_for_loopback(host: str) -> None:
    name = host_name(host)
    if name in LOOPBACK_NAMES:
        bare = host.lower().removeprefix("[").split("]")[0]
        assert bare == name or bare.rpartition(":")[0] == name, host


@settings(max_examples=500)
@given(
    host=st.one_of(st.none(), _LATIN, st.sampled_from(["127.0.0.1:80", "localhost", "[::1]"])),
    origin=st.one_of(st.none(), _LATIN, st.just("http://127.0.0.1:80")),
    site=st.one_of(st.none(), _LATIN, st.sampled_from(["none", "same-origin", "cross-site"])),
)
def test_only_the_lanes_own_page_gets_past_the_checks(
    host: str | None, origin: str | None, site: str | None
) -> None:
    headers = {
        name: value
        for name, value in (("Host", host), ("Origin", origin), ("Sec-Fetch-Site", site))
        if value is not None
    }
    request = make_mocked_request("POST", "/api/scan", headers=headers)
    why = refusal(request)
    own_host = host is not None and host_name(host) in LOOPBACK_NAMES  # HTTP/1.1 needs one
    own_origin = origin is None or origin == f"http://{request.host}"
    own_fetch = site is None or site in ("same-origin", "none")
    assert (why is None) == (own_host and own_origin and own_fetch), (headers, why)


class LaneInThread:
    """A lane on simulated devices serving its API from a thread of its own, so that a
    plain blocking HTTP client (and hypothesis) can hammer it."""

    def __init__(self, folder: Path, template_dir: Path) -> None:
        self.sim = SimulatedLane(folder)
        stocked_copy(self.sim.folder, template_dir)
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        daemon = await self.sim.start()
        self.port = daemon.api_port or 0
        self._ready.set()
        await self._stop.wait()
        await self.sim.stop()

    def __enter__(self) -> LaneInThread:
        self._thread.start()
        assert self._ready.wait(30), "the lane did not start"
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.sim.close()

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_host="Host" in headers)
            for name, value in headers.items():
                connection.putheader(name, value.encode("latin-1"))
            if body is not None:
                connection.putheader("Content-Type", "application/json")
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


@pytest.fixture(scope="module")
def live_lane(tmp_path_factory: pytest.TempPathFactory, template_dir: Path) -> Iterator[Any]:
    with LaneInThread(tmp_path_factory.mktemp("live") / "lane", template_dir) as lane:
        yield lane


_HEADER = st.one_of(
    st.none(),
    _LATIN.filter(lambda v: v == v.strip() and v != ""),
    st.sampled_from(["null", "http://127.0.0.1:{port}", "http://localhost:{port}", "none"]),
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(host=_HEADER, origin=_HEADER, site=_HEADER)
def test_no_header_a_browser_can_send_gets_a_500_or_slips_through(
    live_lane: LaneInThread, host: str | None, origin: str | None, site: str | None
) -> None:
    port = live_lane.port
    headers = {
        name: value.replace("{port}", str(port))
        for name, value in (("Host", host), ("Origin", origin), ("Sec-Fetch-Site", site))
        if value is not None
    }
    taken = live_lane.sim.lane.taken
    # A body the lane would refuse anyway: a request let through answers 400, not 403.
    status, answer_headers, body = live_lane.request("POST", "/api/scan", headers, b"{}")
    assert status in (400, 403), (headers, status, body)
    assert live_lane.sim.lane.taken == taken
    shown_host = headers.get("Host", f"127.0.0.1:{port}")
    allowed = (
        host_name(shown_host) in LOOPBACK_NAMES
        and headers.get("Origin", f"http://{shown_host}") == f"http://{shown_host}"
        and headers.get("Sec-Fetch-Site", "none") in ("none", "same-origin")
    )
    if status == 403:
        assert not allowed and json.loads(body)["ok"] is False, headers
        assert answer_headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    elif b"text: is required" in body:
        assert allowed, headers  # let through to the handler, which refused the body
    else:
        assert not allowed, (headers, body)  # refused by the HTTP parser itself


_FILES = {path.read_bytes() for path in STATIC.rglob("*") if path.is_file()}
_TRAVERSALS = [
    "../web.py",
    "..%2fweb.py",
    "%2e%2e/%2e%2e/pyproject.toml",
    "i18n/../../web.py",
    "i18n/..%2f..%2f__init__.py",
    "/etc/passwd",
    "img/../../../../../../etc/passwd",
    "i18n/en.json",
    "screen.js",
]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.one_of(st.text(max_size=60), st.sampled_from(_TRAVERSALS)))
def test_no_path_under_screen_serves_a_file_from_outside_its_folder(
    live_lane: LaneInThread, path: str
) -> None:
    sent = "/screen/" + (path if path in _TRAVERSALS else quote(path, safe="/"))
    status, headers, body = live_lane.request("GET", sent, {})
    assert status in (200, 400, 403, 404), (sent, status)
    assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY or status == 400
    if status == 200:
        assert body in _FILES, sent  # one of the screen's own files, never another
