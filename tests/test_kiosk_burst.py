"""The kiosk API under a burst and from other web sites: PIN guesses meet the lock-out
before their hashes run (and the lock-out outlives a restart); requests a foreign page
could make the terminal's browser send are refused before any handler sees them."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import daemon.lane.api as kiosk_api
from daemon.lane.attendants import FILE_NAME, PinGuard
from daemon.rules.attempts import AttemptBook
from simulators.lane import PosdProcess, SimulatedLane
from tests.lane_sim import MAX_PIN, MIA_PIN, max_, mia, run_lane, stocked_copy

GUESSES = 1000
LIMIT = 5  # PinGuard's default per source


def _url(sim: SimulatedLane, path: str) -> str:
    assert sim.daemon is not None
    return f"http://127.0.0.1:{sim.daemon.api_port}{path}"


class HashCount:
    """Counts the PIN checks that reach the slow hash (`_holder_of`)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        real = kiosk_api._holder_of

        def counted(pin: str, holders: Any) -> str | None:
            with self._lock:
                self.calls += 1
            return real(pin, holders)

        monkeypatch.setattr(kiosk_api, "_holder_of", counted)


async def _release(session: aiohttp.ClientSession, sim: SimulatedLane, pin: str) -> int:
    async with session.post(_url(sim, "/api/attendant/release"), json={"pin": pin}) as response:
        await response.read()
        return response.status


def test_a_thousand_pin_guesses_at_once_meet_the_lock_out_and_it_outlives_a_restart(
    tmp_path: Path, template_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashes = HashCount(monkeypatch)

    async def burst(sim: SimulatedLane) -> list[int]:
        await sim.scan("LX-0012")  # flagged stolen: the self-checkout locks
        assert sim.lane.state.mode.value == "attendant_needed"
        connector = aiohttp.TCPConnector(limit=GUESSES)
        async with aiohttp.ClientSession(connector=connector) as session:
            guesses = [f"{n:04d}" for n in range(GUESSES) if f"{n:04d}" != MIA_PIN]
            statuses = await asyncio.gather(*(_release(session, sim, g) for g in guesses))
            # Locked: even the right PIN is refused now, without being checked.
            statuses.append(await _release(session, sim, MIA_PIN))
        assert sim.lane.state.mode.value == "attendant_needed"
        return statuses

    statuses = run_lane(
        tmp_path, template_dir, burst, mode="self_checkout", attendants=[mia()], managers=[max_()]
    )
    assert hashes.calls <= LIMIT
    assert statuses.count(403) == hashes.calls and statuses.count(429) == len(statuses) - LIMIT
    assert set(statuses) == {403, 429}
    assert (tmp_path / "lane" / FILE_NAME).exists()

    async def after_restart(sim: SimulatedLane) -> int:
        await sim.scan("LX-0012")
        async with aiohttp.ClientSession() as session:
            return await _release(session, sim, MIA_PIN)

    checked = hashes.calls
    status = run_lane(
        tmp_path, template_dir, after_restart, mode="self_checkout", attendants=[mia()]
    )
    assert status == 429 and hashes.calls == checked  # still locked, nothing hashed


def test_a_right_pin_does_not_wipe_the_wrong_ones_before_it(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> list[int]:
        await sim.scan("LX-0012")
        statuses = []
        async with aiohttp.ClientSession() as session:
            for pin in ("1111", "2222", "3333", "4444", MIA_PIN, "5555", "6666", MIA_PIN):
                statuses.append(await _release(session, sim, pin))
                if pin == MIA_PIN and sim.lane.state.mode.value == "idle":
                    await sim.scan("LX-0012")  # lock it again for the next try
        return statuses

    statuses = run_lane(tmp_path, template_dir, play, mode="self_checkout", attendants=[mia()])
    # Four wrong, the right one (taken back), one more wrong: the fifth; then locked.
    assert statuses == [403, 403, 403, 403, 200, 403, 429, 429]


def test_manager_and_attendant_pins_share_the_lock_out(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> list[int]:
        await sim.scan("LX-0015")
        statuses = []
        async with aiohttp.ClientSession() as session:
            for pin in ("1111", "2222", "3333"):
                async with session.post(
                    _url(sim, "/api/manager/approve"), json={"pin": pin}
                ) as response:
                    statuses.append(response.status)
            for pin in ("4444", "5555", MAX_PIN):
                statuses.append(await _release(session, sim, pin))
        return statuses

    statuses = run_lane(tmp_path, template_dir, play, attendants=[mia()], managers=[max_()])
    assert statuses == [403] * 5 + [429]


def test_the_lock_out_lasts_its_window_on_the_wall_clock(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    path = tmp_path / FILE_NAME

    async def guesses() -> tuple[list[float], float, float]:
        guard = PinGuard(attempts=3, window_s=300, path=path, wall=lambda: clock[0])
        waits = [(await guard.reserve("127.0.0.1"))[0] for _ in range(4)]
        clock[0] += 100
        # A new process (monotonic time starts again; the wall clock does not).
        again = PinGuard(attempts=3, window_s=300, path=path, wall=lambda: clock[0])
        locked = again.blocked_for("127.0.0.1")
        clock[0] += 200
        return waits, locked, again.blocked_for("127.0.0.1")

    waits, locked, later = asyncio.run(guesses())
    assert waits == [0, 0, 0, 300] and locked == 200 and later == 0


def test_a_damaged_attempts_file_is_said_and_counting_starts_afresh(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / FILE_NAME
    path.write_bytes(b"\x00garbage")
    guard = PinGuard(path=path)
    assert guard.blocked_for("127.0.0.1") == 0
    assert "could not be read" in caplog.text
    asyncio.run(guard.reserve("127.0.0.1"))
    assert len(json.loads(path.read_bytes())["attempts"]) == 2  # one per key


@settings(max_examples=200)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.integers(0, 400)),
        max_size=60,
    )
)
def test_no_order_of_attempts_gets_past_a_limit(steps: list[tuple[str, bool, int]]) -> None:
    book = AttemptBook(300, {"source": 3, "user": 2})
    now = 0.0
    live: list[tuple[float, str, str]] = []  # (at, user, attempt) counted and not taken back
    for n, (user, correct, later) in enumerate(steps):
        now += later
        live = [entry for entry in live if now - entry[0] < 300]
        keys = {"source": "s", "user": user}
        counted = book.reserve(keys, f"#{n}", now) == 0
        held_user = sum(1 for _, u, _ in live if u == user)
        assert counted == (len(live) < 3 and held_user < 2)
        if counted:
            live.append((now, user, f"#{n}"))
            if correct:
                book.release(f"#{n}")
                live.pop()
    assert len(book.records(now)) == 2 * len(live)


# ------------------------------------------------------------- other web sites

REFUSED_TYPES = [
    None,  # no Content-Type at all
    "text/plain",  # what a cross-site "simple" request sends, here with a JSON body
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
    "application/jsonp",
    "application/json-patch+json",
    "application/json, text/plain",
]
ACCEPTED_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "Application/JSON;charset=UTF-8",
]


def test_a_post_whose_body_is_not_declared_json_is_refused(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        body = json.dumps({"text": "LX-0001"}).encode()
        async with aiohttp.ClientSession(skip_auto_headers=["Content-Type"]) as session:
            for kind in REFUSED_TYPES:
                taken = sim.lane.taken
                headers = {} if kind is None else {"Content-Type": kind}
                async with session.post(
                    _url(sim, "/api/scan"), data=body, headers=headers
                ) as response:
                    assert response.status == 415, kind
                    assert "application/json" in (await response.json())["error"]
                assert sim.lane.taken == taken, kind  # nothing reached the lane
            assert sim.lane.snapshot()["basket"] is None
            for kind in ACCEPTED_TYPES:
                async with session.post(
                    _url(sim, "/api/commands"),
                    data=json.dumps({"command": "help"}).encode(),
                    headers={"Content-Type": kind},
                ) as response:
                    assert response.status == 200, kind

    run_lane(tmp_path, template_dir, play)


async def _raw(port: int, head: str) -> int:
    """The status of a request sent byte for byte as written."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = b'{"text": "LX-0001"}'
    writer.write(
        head.format(port=port, length=len(body)).replace("\n", "\r\n").encode() + b"\r\n" + body
    )
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 5)
    writer.close()
    return int(line.split()[1])


POST = "POST /api/scan HTTP/1.1\nContent-Type: application/json\nContent-Length: {length}\n"
FOREIGN_HOSTS = [
    POST,  # no Host at all
    POST.replace("HTTP/1.1", "HTTP/1.0"),
    POST + "Host: 127.0.0.1:{port}\nHost: evil.example\n",  # two of them
    POST + "Host: evil.example\n",
    POST + "Host: localhost.:{port}\n",  # a trailing dot is another name to DNS
    POST + "Host: localhost.evil.example:{port}\n",
    POST + "Host: 127.0.0.1.nip.io:{port}\n",
    POST + "Host: 127.1:{port}\n",
    POST + "Host: 2130706433:{port}\n",
    POST + "Host: 0x7f000001:{port}\n",
    POST + "Host: 0.0.0.0:{port}\n",
    POST + "Host: [::ffff:127.0.0.1]:{port}\n",
    POST + "Host: evil@127.0.0.1:{port}\n",
    POST + "Host: 127.0.0.1:1\n",  # another port: not what this API serves
    POST + "Host: 127.0.0.1\n",  # port 80, by default
    POST + "Host: 127.0.0.1:{port}\nOrigin: null\n",
    POST + "Host: 127.0.0.1:{port}\nOrigin: http://127.0.0.1:{port}.evil.example\n",
    POST + "Host: 127.0.0.1:{port}\nOrigin: http://localhost:{port}\n",
]


def test_a_host_or_origin_other_than_the_lanes_own_is_refused(
    tmp_path: Path, template_dir: Path
) -> None:
    async def play(sim: SimulatedLane) -> None:
        assert sim.daemon is not None
        port = sim.daemon.api_port
        assert port is not None
        for head in FOREIGN_HOSTS:
            taken = sim.lane.taken
            # 400 where aiohttp's parser refuses it first (HTTP/1.1 without a Host).
            assert await _raw(port, head) in (400, 403), head
            assert sim.lane.taken == taken, head
        assert sim.lane.snapshot()["basket"] is None
        own = POST + "Host: localhost:{port}\nOrigin: http://localhost:{port}\n"
        assert await _raw(port, own) == 200

    run_lane(tmp_path, template_dir, play)


@pytest.mark.slow
def test_the_lock_out_outlives_a_power_cut_of_the_daemon(
    tmp_path: Path, template_dir: Path
) -> None:
    with socket.socket() as probe:  # a free port, for the daemon in its own process
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    lane = SimulatedLane(tmp_path / "lane", mode="self_checkout", attendants=[mia()], api_port=port)
    stocked_copy(lane.folder, template_dir)
    config = lane.write_config(lane.folder / "posd.toml")
    base = f"http://127.0.0.1:{port}/api/attendant/release"

    async def guesses(pins: list[str]) -> list[int]:
        async with aiohttp.ClientSession() as session:

            async def one(pin: str) -> int:
                async with session.post(base, json={"pin": pin}) as response:
                    return response.status

            return list(await asyncio.gather(*(one(pin) for pin in pins)))

    try:
        posd = PosdProcess(config).start()
        try:
            statuses = asyncio.run(guesses([f"9{n:03d}" for n in range(200)]))
        finally:
            posd.kill()  # SIGKILL: no clean shutdown writes anything for it
        assert statuses.count(403) <= LIMIT and statuses.count(429) >= 200 - LIMIT
        posd = PosdProcess(config).start()
        try:
            assert asyncio.run(guesses([MIA_PIN])) == [429]
        finally:
            posd.stop()
    finally:
        lane.close()
