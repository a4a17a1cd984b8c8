"""`posd run` with a `[replication]` section: the lane's sales reach HQ, HQ's flags
reach the lane, and the lane sells on while the broker is away."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.hq import Central
from daemon.hq.backend import SqliteBackend
from daemon.rules.units import Flag
from simulators.lane import SimulatedLane, wait_until
from tests.lane_sim import stocked_copy
from tests.mqtt_broker import Broker, HqThread, running_broker


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from running_broker(tmp_path)


class ReplicatingLane(SimulatedLane):
    """The simulated lane, configured to replicate to a broker."""

    def __init__(self, folder: Path, url: str) -> None:
        super().__init__(folder)
        self.url = url

    def config(self, *, gpio: bool = True) -> dict[str, Any]:
        config = super().config(gpio=gpio)
        config["replication"] = {
            "url": self.url,
            "reconnect_min_s": 0.1,
            "reconnect_max_s": 0.5,
            "ack_timeout_s": 2.0,
            "ack_timeout_max_s": 4.0,
            "feed_poll_s": 2.0,
            "poll_s": 0.02,
            "keepalive_s": 5,
        }
        return config


def hq_invoices(hq_path: Path) -> set[str]:
    if not hq_path.exists():
        return set()
    with sqlite3.connect(hq_path) as db:
        try:
            rows = db.execute("SELECT body FROM events WHERE kind = 'sell'").fetchall()
        except sqlite3.OperationalError:  # HQ has not made its tables yet
            return set()
    return {json.loads(body)["doc"]["no"] for (body,) in rows}


def test_the_running_lane_replicates_to_hq_and_hears_its_flags(
    broker: Broker, tmp_path: Path, template_dir: Path
) -> None:
    hq_path = tmp_path / "hq.db"
    hq = HqThread(broker.url, db=hq_path)

    async def play() -> None:
        sim = ReplicatingLane(tmp_path / "lane", broker.url)
        stocked_copy(sim.folder, template_dir)
        await sim.start()
        try:
            await sim.scan("LX-0001")
            await sim.command("TENDER", "CARD")
            await wait_until(
                lambda: "T-001-000001" in hq_invoices(hq_path), "the sale at HQ", timeout_s=30
            )

            # The WAN goes down: the lane keeps selling, and HQ gets the sale later.
            broker.stop()
            await sim.scan("LX-0002")
            sold = await sim.command("TENDER", "CARD")
            assert sold["verdict"]["code"] == "sale_complete"
            broker.start()
            await wait_until(
                lambda: "T-001-000002" in hq_invoices(hq_path),
                "the offline sale at HQ",
                timeout_s=30,
            )

            # HQ flags a unit stolen: the lane refuses it from then on.
            central = Central(SqliteBackend(hq_path))
            central.flag("LAP-X1", "LX-0003", Flag.STOLEN, reason="police report 4711")
            central.close()
            assert sim.daemon is not None
            await wait_until(
                lambda: _flagged(sim.ledger_path, "LX-0003"), "the flag at the lane", timeout_s=30
            )
            refused = await sim.scan("LX-0003")
            assert refused["verdict"]["code"] == "flag_stolen"
            assert sim.glass[1].strip() == "BLOCKED: SEE STAFF"  # the customer is not told why
        finally:
            await sim.stop()
            sim.close()

    try:
        asyncio.run(play())
    finally:
        hq.stop()


def _flagged(ledger_path: Path, serial: str) -> bool:
    with sqlite3.connect(ledger_path) as db:
        row = db.execute("SELECT flags FROM units WHERE serial = ?", [serial]).fetchone()
    return row is not None and "stolen" in row[0]
