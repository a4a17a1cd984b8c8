"""A stocked ledger and a simulated lane for end-to-end lane tests.

The store: laptops (GTIN 4006381333931), phones, tablets and USB cables (a plain item),
with units in every state the lane must refuse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from daemon.config.pins import hash_pin
from daemon.ledger import Ledger, SaleLine, UnitRef
from daemon.rules.units import Flag, Op
from simulators.lane import BRANCH, TERMINAL, SimulatedLane
from tests.ledger_fixtures import copy_ledger

T = TypeVar("T")

LAPTOP_EAN = "4006381333931"
CABLE_EAN = "4012345678901"
PHONE_EAN = "5012345678900"
UNKNOWN_EAN = "5901234123457"
BAD_EAN = "4006381333932"  # check digit wrong
MIA_BADGE = "BADGE-0042"
MIA_PIN = "4821"
MAX_BADGE = "BADGE-9001"  # a manager
MAX_PIN = "9001"
# A real scrypt hash of MIA_PIN, made once: hashing costs tens of milliseconds.
_PIN_HASHES: dict[str, str] = {}


def mia() -> dict[str, str]:
    if MIA_PIN not in _PIN_HASHES:
        _PIN_HASHES[MIA_PIN] = hash_pin(MIA_PIN)
    return {"name": "Mia", "badge": MIA_BADGE, "pin_hash": _PIN_HASHES[MIA_PIN]}


def max_() -> dict[str, str]:
    """Max, a manager, with a badge and a PIN."""
    if MAX_PIN not in _PIN_HASHES:
        _PIN_HASHES[MAX_PIN] = hash_pin(MAX_PIN)
    return {"name": "Max", "badge": MAX_BADGE, "pin_hash": _PIN_HASHES[MAX_PIN]}


def stock(path: Path) -> None:
    """Create the store's ledger at `path`."""
    ledger = Ledger.create(path, terminal=TERMINAL, branch=BRANCH)
    try:
        ledger.define_product(
            "LAP-X1",
            "Laptop X1",
            actor="setup",
            gtin=LAPTOP_EAN,
            warranty_months=24,
            price_cents=129900,
        )
        ledger.define_product(
            "PHN-S9",
            "Phone S9",
            actor="setup",
            gtin=PHONE_EAN,
            warranty_months=12,
            price_cents=79900,
            mask_serial=True,
        )
        ledger.define_product("TAB-T2", "Tablet T2", actor="setup", price_cents=49900)
        ledger.define_product(
            "CABLE",
            "USB cable",
            actor="setup",
            gtin=CABLE_EAN,
            serial_tracked=False,
            price_cents=1500,
        )
        laptops = [f"LX-{n:04d}" for n in (1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 16, 17)]
        ledger.receive("PO-1", "Acme", "LAP-X1", [*laptops, "SN-7"], actor="ann")
        ledger.receive("PO-2", "Acme", "LAP-X1", ["LX-0015"], actor="ann", branch="SOUTH")
        ledger.receive("PO-3", "Tabs Ltd", "TAB-T2", ["SN-7"], actor="ann")
        ledger.receive("PO-4", "Phones Ltd", "PHN-S9", ["356938035643809"], actor="ann")
        ledger.sell("INV-OLD", "Dana Smith", [SaleLine("LAP-X1", "LX-0010", 129900)], actor="bob")
        ledger.move(Op.QUARANTINE, [UnitRef("LAP-X1", "LX-0011")], actor="ann", reason="dent")
        for serial, flag in (
            ("LX-0012", Flag.STOLEN),
            ("LX-0013", Flag.RECALLED),
            ("LX-0014", Flag.CONFLICT),
            ("LX-0017", Flag.ON_HOLD),
        ):
            ledger.set_flag([UnitRef("LAP-X1", serial)], flag, actor="hq", reason="notice")
        ledger.transfer_out("TR-1", "SOUTH", [UnitRef("LAP-X1", "LX-0016")], actor="ann")
    finally:
        ledger.close()


_TEMPLATE: dict[str, Path] = {}


def stocked_copy(folder: Path, template_dir: Path) -> Path:
    """A fresh copy of the stocked ledger in `folder` (made once per test session)."""
    if "ledger" not in _TEMPLATE:
        template = template_dir / "stocked.db"
        stock(template)
        _TEMPLATE["ledger"] = template
    target = folder / "ledger.db"
    return copy_ledger(_TEMPLATE["ledger"], target)


def run_lane(
    tmp: Path,
    template_dir: Path,
    body: Callable[[SimulatedLane], Awaitable[T]],
    **options: Any,
) -> T:
    """Boot posd on simulated devices over a stocked ledger, run `body`, tear down."""

    async def main() -> T:
        sim = SimulatedLane(tmp / "lane", **options)
        stocked_copy(sim.folder, template_dir)
        try:
            await sim.start()
            try:
                return await body(sim)
            finally:
                await sim.stop()
        finally:
            sim.close()

    return asyncio.run(main())
