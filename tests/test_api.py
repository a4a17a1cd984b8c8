"""The kiosk API, used as the kiosk front end uses it: over HTTP on the loopback interface
of a lane running on simulated devices."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp

from simulators.lane import SimulatedLane
from tests.lane_sim import MIA_PIN, mia, run_lane

JSON = {"Content-Type": "application/json"}


def _url(sim: SimulatedLane, path: str) -> str:
    assert sim.daemon is not None
    return f"http://127.0.0.1:{sim.daemon.api_port}{path}"


async def _post(
    session: aiohttp.ClientSession, sim: SimulatedLane, path: str, body: Any
) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, str) else json.dumps(body)
    async with session.post(_url(sim, path), data=data, headers=JSON) as response:
        return response.status, await response.json()


def test_the_live_lane_and_the_cashiers_commands(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            async with session.get(_url(sim, "/api/lane")) as response:
                lane = (await response.json())["lane"]
            assert lane["mode"] == "idle" and lane["display"] == ["WELCOME", "PLEASE SCAN AN ITEM"]
            await sim.scan("LX-0001")
            async with session.get(_url(sim, "/api/lane")) as response:
                basket = (await response.json())["lane"]["basket"]
            assert basket["lines"][0]["serial"] == "LX-0001" and basket["total"] == "1299.00"
            status, reply = await _post(
                session, sim, "/api/commands", {"command": "tender", "argument": "CARD"}
            )
            assert status == 200 and reply["verdict"]["code"] == "sale_complete"
            assert (
                reply["lane"]["mode"] == "idle" and reply["lane"]["last_receipt"] == "T-001-000001"
            )
            await sim.settled()  # the reply comes before the glass has been redrawn
            assert sim.glass == ("THANK YOU", "TOTAL        1299.00")
            status, reply = await _post(session, sim, "/api/commands", {"command": "return"})
            assert reply["lane"]["mode"] == "return" and reply["lane"]["display"][0] == "RETURNS"
            async with session.get(_url(sim, "/api/health")) as response:
                assert await response.json() == {"ok": True, "mode": "return", "devices": {}}
            async with session.get(_url(sim, "/api/journal?limit=4")) as response:
                entries = (await response.json())["entries"]
            assert "return_mode" in [e["code"] for e in entries] and len(entries) == 4

    run_lane(tmp_path, template_dir, play)


BAD_REQUESTS = [
    ({"command": "fly"}, "command: must be one of start, void, cancel"),
    ({"command": "void", "line": 2}, "line: unknown key"),
    ({}, "command: is required"),
    ("not json", "the body must be a JSON object"),
]


def test_bad_requests_are_refused_naming_the_field(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with aiohttp.ClientSession() as session:
            for body, message in BAD_REQUESTS:
                status, reply = await _post(session, sim, "/api/commands", body)
                assert status == 400 and message in reply["error"], (body, reply)
            async with session.get(_url(sim, "/api/journal?limit=0")) as response:
                assert response.status == 400

    run_lane(tmp_path, template_dir, play)


def test_verdicts_stream_to_the_kiosk_as_they_happen(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.get(_url(sim, "/api/events")) as response,
        ):
            assert response.headers["Content-Type"] == "text/event-stream"
            first = await _next_event(response)
            assert first["event"] == "lane" and first["data"]["lane"]["mode"] == "idle"
            await sim.scan("LX-0010")
            event = await _next_event(response)
            assert event["event"] == "verdict"
            assert event["data"]["verdict"]["code"] == "already_sold"
            assert event["data"]["lane"]["display"] == ["Laptop X1", "ALREADY SOLD"]
            assert int(event["id"]) >= 1  # the journal's sequence number

    run_lane(tmp_path, template_dir, play)


async def _next_event(response: aiohttp.ClientResponse) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    while True:
        raw = await asyncio.wait_for(response.content.readline(), 5)
        line = raw.decode().rstrip("\n")
        if not line:
            if fields:
                fields["data"] = json.loads(fields["data"])
                return fields
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        fields[name] = value


def test_an_attendant_releases_a_locked_lane_with_a_pin(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.scan("LX-0012")  # flagged stolen: the self-checkout locks
        assert sim.lane.state.mode.value == "attendant_needed"
        async with aiohttp.ClientSession() as session:
            status, reply = await _post(session, sim, "/api/attendant/release", {"pin": "0000"})
            assert status == 403 and "not an attendant's" in reply["error"]
            assert sim.lane.state.mode.value == "attendant_needed"
            status, reply = await _post(session, sim, "/api/attendant/release", {"pin": MIA_PIN})
            assert status == 200 and reply["lane"]["mode"] == "idle"
            assert "released by Mia (pin)" in reply["verdict"]["message"]
        rows = await sim.lane.ledger.call(
            lambda led: led.db.execute(
                "SELECT json_extract(body, '$.actor'), json_extract(body, '$.data.method')"
                " FROM events WHERE kind = 'lane_release'"
            ).fetchall()
        )
        assert rows == [("Mia", "pin")]
        journal = await sim.lane.ledger.call(lambda _: sim.lane.ledger.journal.entries(10))
        assert "bad_pin" in [e["code"] for e in journal]
        assert MIA_PIN not in json.dumps(journal)

    run_lane(tmp_path, template_dir, play, mode="self_checkout", attendants=[mia()])


def test_guessing_pins_is_stopped(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        await sim.command("HELP")
        async with aiohttp.ClientSession() as session:
            statuses = []
            for guess in ("1111", "2222", "3333", "4444", "5555", MIA_PIN):
                status, _ = await _post(session, sim, "/api/attendant/release", {"pin": guess})
                statuses.append(status)
        assert statuses == [403] * 5 + [429]  # even the right PIN waits now
        assert sim.lane.state.mode.value == "attendant_needed"

    run_lane(tmp_path, template_dir, play, mode="self_checkout", attendants=[mia()])
