"""`posd doctor`: a self-test of everything a lane depends on, one finding per check.

    report = run_doctor(config, DoctorOptions(scan_timeout_s=30), config_path=path)
    print(render(report)); sys.exit(report.exit_status)

Each configured device is exercised through the daemon's own drivers, so a pass proves
the wiring: a test ticket with the terminal's identity and address on the printer, a
test pattern on the customer display, the buzzer, the lane light's three colours, and
a scan (the test ticket's barcode, or any). Then the broker login over TLS, the
ledger's SQLite integrity and hash chain, free disk and the clock.

Every check runs on its own thread with a deadline: a device that hangs is reported
as not answering, and never holds up the others. A finding is OK, WARN (works, but
look at it), FAIL (something a store depends on is broken; exit status 1) or SKIP
(not configured, or not asked for), with what to do about it.
"""

from __future__ import annotations

import enum
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from gpiozero.pins import Factory

from daemon.config.model import PosdConfig


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
    last_event_at: datetime | None = None  # the ledger's newest own event


@dataclass(frozen=True)
class Report:
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
class _Running:
    name: str
    timeout_s: float
    thread: threading.Thread
    result: list[Finding] = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)


def run_bounded(
    context: Context, checks: Sequence[tuple[str, float, Check]]
) -> dict[str, list[Finding]]:
    """Run the checks side by side, each on its own thread and within its own deadline.

    A check still running at its deadline is reported as FAIL (not answering) and left
    behind on its daemon thread; the others are not held up by it.
    """
    running: list[_Running] = []
    for name, timeout_s, check in checks:
        slot = _Running(name, timeout_s, threading.Thread())
        slot.thread = threading.Thread(
            target=_run_one, args=(check, context, slot), name=f"doctor-{name}", daemon=True
        )
        running.append(slot)
        slot.thread.start()
    started = time.monotonic()
    findings: dict[str, list[Finding]] = {}
    for slot in running:
        slot.done.wait(max(0.0, started + slot.timeout_s - time.monotonic()))
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


def _run_one(check: Check, context: Context, slot: _Running) -> None:
    try:
        slot.result = list(check(context))
    except Exception as error:  # a check that breaks is a finding, not a crash
        slot.result = [
            fail(slot.name, f"the check itself failed: {type(error).__name__}: {error}",
                 "report this with the output of `posd doctor --json`")
        ]  # fmt: skip
    finally:
        slot.done.set()


def run_doctor(context: Context) -> Report:
    """Every check for this terminal, in the order a person reads them."""
    from daemon.doctor.broker import check_broker
    from daemon.doctor.devices import check_display, check_gpio, check_printer, check_scanners
    from daemon.doctor.system import (
        check_clock,
        check_disk,
        check_ledger,
        check_permissions,
        check_service,
    )

    options = context.options
    found = run_bounded(context, [("service", 2.0, check_service)])
    # The ledger first, so that the clock can be compared with its newest event.
    found |= run_bounded(context, [("ledger", options.ledger_timeout_s, check_ledger)])
    found |= run_bounded(
        context,
        [
            ("printer", options.device_timeout_s, check_printer),
            ("display", options.device_timeout_s, check_display),
            ("gpio", options.device_timeout_s + 4 * options.light_step_s, check_gpio),
            ("broker", options.broker_timeout_s + 2.0, check_broker),
            ("disk", 10.0, check_disk),
            ("clock", 10.0, check_clock),
            ("permissions", 5.0, check_permissions),
        ],
    )
    # The scan last: the test ticket, once printed, has a barcode to scan.
    wait_s = options.scan_timeout_s + options.device_timeout_s
    found |= run_bounded(context, [("scanner", wait_s, check_scanners)])
    order = ("service", "printer", "display", "gpio", "scanner", "broker", "ledger", "disk",
             "clock", "permissions")  # fmt: skip
    terminal = context.config.terminal
    findings = tuple(f for name in order for f in found.get(name, []))
    return Report(terminal.id, terminal.branch, findings, context.wall())


# --------------------------------------------------------------------------- report


def render(report: Report, config_path: str = "") -> str:
    """One line per check, then a verdict a person can act on."""
    where = f" ({config_path})" if config_path else ""
    lines = [f"posd doctor: terminal {report.terminal} at branch {report.branch}{where}"]
    width = max((len(f.check) for f in report.findings), default=8)
    for finding in report.findings:
        text = f"{finding.status.value:<5} {finding.check:<{width}}  {finding.detail}"
        if finding.action:
            text += f" -> {finding.action}"
        lines.append(text)
    counts = {s: sum(1 for f in report.findings if f.status is s) for s in Status}
    summary = ", ".join(f"{counts[s]} {s.value}" for s in Status if counts[s])
    verdict = "BROKEN: fix each FAIL above" if report.broken else "ready"
    lines.append(f"{summary}: {verdict}")
    return "\n".join(lines)


def render_json(report: Report) -> str:
    return json.dumps(report.as_dict(), indent=2)
