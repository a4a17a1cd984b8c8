"""What a device check reports, and what it may use of the doctor's run.

    def check(section: DisplayConfig, context: CheckContext, where: Where) -> list[Finding]:
        if not os.path.exists(section.port):
            return [fail(where.name, f"{section.port} does not exist", f"fix {where.key}.port")]

Each device kind's check lives with its driver (`DeviceKind.check`): it drives the
device through the same driver and section the lane uses, and says what it found, one
`Finding` per thing checked (OK, WARN, FAIL or SKIP), with what to do about it. `posd
doctor` runs the checks, each within a deadline, and hands them a `CheckContext`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gpiozero.pins import Factory

    from daemon.drivers.printer import Receipt


class Status(enum.Enum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: what was found and, unless it is OK, what to do."""

    check: str
    status: Status
    detail: str
    action: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "check": self.check,
            "status": self.status.value,
            "detail": self.detail,
            "action": self.action,
        }


def ok(check: str, detail: str, action: str = "") -> Finding:
    return Finding(check, Status.OK, detail, action)


def warn(check: str, detail: str, action: str) -> Finding:
    return Finding(check, Status.WARN, detail, action)


def fail(check: str, detail: str, action: str) -> Finding:
    return Finding(check, Status.FAIL, detail, action)


def skip(check: str, detail: str, action: str = "") -> Finding:
    return Finding(check, Status.SKIP, detail, action)


@dataclass(frozen=True)
class Where:
    """Where a checked section sits: the name its findings go under (`scanner till 2`)
    and its key in `posd.toml` (`scanners[1]`), for the advice."""

    name: str
    key: str


class CheckOptions(Protocol):
    """What the person running the doctor asked for."""

    @property
    def scan(self) -> bool: ...  # wait for a test scan

    @property
    def scan_timeout_s(self) -> float: ...

    @property
    def open_drawer(self) -> bool: ...  # also open the cash drawer

    @property
    def light_step_s(self) -> float: ...  # how long each lamp of the lane light stays lit


class CheckContext(Protocol):
    """What a device check may use of the doctor's run."""

    @property
    def options(self) -> CheckOptions: ...

    @property
    def terminal_id(self) -> str: ...

    @property
    def factory(self) -> Factory | None:
        """The GPIO pin factory to use; None: the one the configuration names."""

    @property
    def ticket(self) -> str | None:
        """The test ticket's number once the printer printed it (its barcode is what a
        person then scans)."""

    @ticket.setter
    def ticket(self, number: str | None) -> None: ...

    def say(self, text: str) -> None:
        """Tell the person at the terminal what to do now (e.g. scan a barcode)."""

    def scanner_open(self) -> None:
        """The scanner is open and listening: the test ticket may print now, and a scan
        of it the moment it is out counts."""

    def wait_for_ticket(self) -> None:
        """Until the printer's check is over: the test ticket printed (`ticket`) or not."""

    def test_ticket(self) -> Receipt:
        """A ticket that says which terminal this is and how to reach it."""
