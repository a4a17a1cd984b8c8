"""What a device check reports: one `Finding` per thing checked, OK, WARN, FAIL or SKIP,
with what to do about it.

    return [fail("display", f"{port} does not exist", "plug the display in; fix display.port")]

Each device kind's check lives with its driver (`DeviceKind.check`) and reports in these
terms; `posd doctor` runs the checks and prints the findings.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


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
