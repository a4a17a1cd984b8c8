"""Helpers for ledger tests: a ledger on a fixed clock, stocked with products."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.ledger import Ledger
from daemon.ledger.head import head_path


class FixedClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def make_ledger(
    path: Path | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    terminal: str = "T1",
    branch: str = "B1",
) -> Ledger:
    ledger = Ledger.create(path, terminal=terminal, branch=branch, clock=clock or FixedClock())
    ledger.define_product("LAP", "Laptop X1", actor="setup", warranty_months=24, price_cents=129900)
    ledger.define_product(
        "PHN", "Phone S9", actor="setup", warranty_months=12, serial_rule=r"[0-9]{15}"
    )
    ledger.define_product("CABLE", "USB cable", actor="setup", serial_tracked=False)
    return ledger


def copy_ledger(source: Path, target: Path) -> Path:
    """Copy a closed ledger with its head record, as a backup would be taken."""
    shutil.copyfile(source, target)
    if head_path(source).exists():
        shutil.copyfile(head_path(source), head_path(target))
    return target
