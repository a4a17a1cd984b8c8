"""What every doctor check shares: the context the checks run in, the report, and
`run_bounded`, which runs checks side by side, each within its own deadline.

    found = run_bounded(context, [("printer", 20.0, check_printer)])

A finding (`Finding`, `ok`, `warn`, `fail`, `skip`) is the drivers' own type, so each
device kind's check, which lives with its driver, reports in the doctor's terms.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gpiozero.pins import Factory

from daemon.config.model import PosdConfig
from daemon.drivers.checks import Finding, Status, fail, ok, skip, warn
from daemon.drivers.kinds import KINDS
from daemon.drivers.registry import DeviceKinds

__all__ = [
    "Check",
    "Context",
    "DoctorOptions",
    "DoctorReport",
    "Finding",
    "Status",
    "fail",
    "ok",
    "run_bounded",
    "skip",
    "warn",
]


@dataclass(frozen=True)
class DoctorOptions:
    scan: bool = True
    scan_timeout_s: float = 30.0
    open_drawer: bool = False
    device_timeout_s: float = 20.0  # a printer, display or GPIO check
    broker_timeout_s: float = 10.0
    ledger_timeout_s: float = 300.0  # integrity check and hash chain of a large ledger
    light_step_s: float = 0.6  # how long each colour of the lane light stays lit
    disk_warn_bytes: int = 1024**3
    disk_warn_fraction: float = 0.10
    disk_fail_bytes: int = 200 * 1024**2
    disk_fail_fraction: float = 0.02


def _settled() -> threading.Event:
    settled = threading.Event()
    settled.set()
    return settled


@dataclass
class Context:
    """What the checks share: the configuration and the outside world's stand-ins."""

    config: PosdConfig
    options: DoctorOptions
    config_path: Path | None = None
    factory: Factory | None = None  # a GPIO pin factory; by default the configured one
    wall: Callable[[], datetime] = lambda: datetime.now(UTC)
    ntp_synchronised: Callable[[], bool | None] | None = None  # None: ask timedatectl
    say: Callable[[str], None] = lambda text: None  # tells the person what to do now
    ticket: str | None = None  # the test ticket's number, once printed
    # While the doctor prints the test ticket, the scanner already listens and waits
    # for it (`run_doctor` clears `ticket_settled` for that time).
    scanner_listening: threading.Event = field(default_factory=threading.Event)
    ticket_settled: threading.Event = field(default_factory=_settled)
    last_event_at: datetime | None = None  # the ledger's newest own event
    kinds: DeviceKinds = KINDS  # the device kinds `config` was read with


@dataclass(frozen=True)
class DoctorReport:
    terminal: str
    branch: str
    findings: tuple[Finding, ...]
    at: datetime

    @property
    def broken(self) -> bool:
        return any(f.status is Status.FAIL for f in self.findings)

    @property
    def exit_status(self) -> int:
        return 1 if self.broken else 0

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": not self.broken,
            "terminal": self.terminal,
            "branch": self.branch,
            "at": self.at.isoformat(timespec="seconds"),
            "checks": [f.as_dict() for f in self.findings],
        }


Check = Callable[[Context], Sequence[Finding]]


@dataclass
class RunningCheck:
    name: str
    timeout_s: float
    thread: threading.Thread
    result: list[Finding] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    started: float = field(default_factory=time.monotonic)


def run_bounded(
    context: Context, checks: Sequence[tuple[str, float, Check]]
) -> dict[str, list[Finding]]:
    """Run the checks side by side, each on its own thread and within its own deadline.

    A check still running at its deadline is reported as FAIL (not answering) and left
    behind on its daemon thread; the others are not held up by it.
    """
    return collect(start_bounded(context, checks))


def start_bounded(
    context: Context, checks: Sequence[tuple[str, float, Check]]
) -> list[RunningCheck]:
    """Start the checks, each on its own thread; `collect` their findings later."""
    running: list[RunningCheck] = []
    for name, timeout_s, check in checks:
        slot = RunningCheck(name, timeout_s, threading.Thread())
        slot.thread = threading.Thread(
            target=_run_one, args=(check, context, slot), name=f"doctor-{name}", daemon=True
        )
        running.append(slot)
        slot.thread.start()
    return running


def collect(running: list[RunningCheck]) -> dict[str, list[Finding]]:
    """The findings of started checks, each waited for until its own deadline."""
    findings: dict[str, list[Finding]] = {}
    for slot in running:
        slot.done.wait(max(0.0, slot.started + slot.timeout_s - time.monotonic()))
        if slot.done.is_set():
            findings[slot.name] = slot.result
        else:
            findings[slot.name] = [
                fail(
                    slot.name,
                    f"no answer within {slot.timeout_s:g} s; the check was abandoned",
                    "check the device's power and cable; it may hang the lane the same way",
                )
            ]
    return findings


def _run_one(check: Check, context: Context, slot: RunningCheck) -> None:
    try:
        slot.result = list(check(context))
    except Exception as error:  # a check that breaks is a finding, not a crash
        slot.result = [
            fail(slot.name, f"the check itself failed: {type(error).__name__}: {error}",
                 "report this with the output of `posd doctor --json`")
        ]  # fmt: skip
    finally:
        slot.done.set()
