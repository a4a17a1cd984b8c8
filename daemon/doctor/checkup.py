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

import json
import time

from daemon.doctor.broker import check_broker
from daemon.doctor.devices import check_display, check_gpio, check_printer, check_scanners
from daemon.doctor.findings import (
    Check,
    Context,
    DoctorReport,
    Status,
    collect,
    run_bounded,
    start_bounded,
)
from daemon.doctor.system import (
    check_clock,
    check_disk,
    check_ledger,
    check_permissions,
    check_service,
)


def run_doctor(context: Context) -> DoctorReport:
    """Every check for this terminal, in the order a person reads them."""
    options = context.options
    found = run_bounded(context, [("service", 2.0, check_service)])
    # The ledger first, so that the clock can be compared with its newest event.
    found |= run_bounded(context, [("ledger", options.ledger_timeout_s, check_ledger)])
    devices: list[tuple[str, float, Check]] = [
        ("printer", options.device_timeout_s, check_printer),
        ("display", options.device_timeout_s, check_display),
        ("gpio", options.device_timeout_s + 4 * options.light_step_s, check_gpio),
        ("broker", options.broker_timeout_s + 2.0, check_broker),
        ("disk", 10.0, check_disk),
        ("clock", 10.0, check_clock),
        ("permissions", 5.0, check_permissions),
    ]
    # The scanner opens first and waits for the test ticket, so that a scan of the
    # ticket the moment it is out of the printer counts (a serial port drops what
    # arrived before it was opened).
    phase_s = max(timeout_s for _, timeout_s, _ in devices)
    wait_s = 2 * options.device_timeout_s + phase_s + options.scan_timeout_s
    context.ticket_settled.clear()
    scanning = start_bounded(context, [("scanner", wait_s, check_scanners)])
    deadline = time.monotonic() + options.device_timeout_s
    while not context.scanner_listening.is_set() and not scanning[0].done.is_set():
        if time.monotonic() > deadline:
            break
        context.scanner_listening.wait(0.02)
    try:
        found |= run_bounded(context, devices)
    finally:
        context.ticket_settled.set()
    found |= collect(scanning)
    order = ("service", "printer", "display", "gpio", "scanner", "broker", "ledger", "disk",
             "clock", "permissions")  # fmt: skip
    terminal = context.config.terminal
    findings = tuple(f for name in order for f in found.get(name, []))
    return DoctorReport(terminal.id, terminal.branch, findings, context.wall())


# --------------------------------------------------------------------------- report


def render(report: DoctorReport, config_path: str = "") -> str:
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


def render_json(report: DoctorReport) -> str:
    return json.dumps(report.as_dict(), indent=2)
