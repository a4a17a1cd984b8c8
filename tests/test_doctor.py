"""`posd doctor` against simulated devices: a pole display and a printer on ptys or a
loopback socket, pins on gpiozero's MockFactory, a serial scanner on a pty.

What the doctor claims is checked on the simulators: the test pattern the display
decoded, the ticket the printer printed, the lamps and the buzzer the pins drove, the
barcode the scanner read back off that ticket.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daemon.cli import build
from daemon.config.model import PosdConfig, parse_config
from daemon.doctor.checkup import run_doctor
from daemon.doctor.findings import (
    Context,
    DoctorOptions,
    DoctorReport,
    Status,
    ok,
    run_bounded,
)
from daemon.ledger import Ledger
from simulators.display import SimulatedDisplay
from simulators.gpio import LanePins, SimulatedGpio
from simulators.lane import to_toml
from simulators.printer import SimulatedPrinter
from simulators.scanner import SimulatedSerialScanner

TERMINAL, BRANCH = "T-001", "NORTH"
QUICK = DoctorOptions(
    scan_timeout_s=20,
    light_step_s=0.01,
    device_timeout_s=10,
    # The test machine's disk is not the terminal's: thresholds the disk always meets.
    disk_warn_bytes=0,
    disk_warn_fraction=0,
    disk_fail_bytes=0,
    disk_fail_fraction=0,
)


@dataclass
class Bench:
    """A terminal's devices, simulated, and a ledger for it."""

    folder: Path
    scanner: SimulatedSerialScanner
    display: SimulatedDisplay
    printer: SimulatedPrinter
    gpio: SimulatedGpio
    ledger: Path

    def settings(self, *, printer: str = "network") -> dict[str, Any]:
        pins = self.gpio.pins
        return {
            "terminal": {"id": TERMINAL, "branch": BRANCH, "store_name": "Sim Store"},
            "ledger": {"path": str(self.ledger)},
            "scanners": [{"kind": "serial", "port": self.scanner.port, "name": "hand scanner"}],
            "display": {"port": self.display.path, "model": "epson"},
            "printer": (
                {"transport": "network", "host": "127.0.0.1", "port": self.printer.address[1]}
                if printer == "network"
                else {"transport": "serial", "port": self.printer.path}
            )
            | {"status_timeout_s": 1.0, "timeout_s": 5.0},
            "gpio": {
                "pin_factory": "mock",
                "pins": {
                    "green": pins.green,
                    "amber": pins.amber,
                    "red": pins.red,
                    "buzzer": pins.buzzer,
                    "button": pins.button,
                },
            },
            "api": {"port": 0},
        }

    def config(self, **changes: Any) -> PosdConfig:
        return parse_config(self.settings() | changes)

    def write(self, settings: dict[str, Any]) -> Path:
        path = self.folder / "posd.toml"
        path.write_text(to_toml(settings))
        return path

    def scanning(self, text: Callable[[], str | None]) -> ScanningHand:
        return ScanningHand(self.scanner, text)


class ScanningHand:
    """Someone who keeps scanning while the doctor waits (each scan a whole barcode)."""

    def __init__(self, scanner: SimulatedSerialScanner, text: Callable[[], str | None]) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(scanner, text), daemon=True)

    def _run(self, scanner: SimulatedSerialScanner, text: Callable[[], str | None]) -> None:
        while not self._stop.wait(0.1):
            barcode = text()
            if barcode:
                scanner.scan(barcode)

    def __enter__(self) -> ScanningHand:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[Bench]:
    ledger = tmp_path / "ledger.db"
    with Ledger.create(ledger, terminal=TERMINAL, branch=BRANCH) as made:
        made.define_product("LAP", "Laptop", actor="setup")
        made.receive("PO-1", "Acme", "LAP", ["SN-1", "SN-2"], actor="ann")
    scanner = SimulatedSerialScanner(tmp_path / "scanner")
    display = SimulatedDisplay("epson", link=tmp_path / "display")
    printer = SimulatedPrinter(link=tmp_path / "printer")
    display.start()
    printer.start()
    gpio = SimulatedGpio(LanePins())
    try:
        yield Bench(tmp_path, scanner, display, printer, gpio, ledger)
    finally:
        for device in (scanner, display, printer):
            device.close()
        gpio.factory.close()


def ticket_barcode(printer: SimulatedPrinter) -> str | None:
    """What a person would scan: the barcode on the last ticket out of the printer."""
    receipts = printer.receipts
    return receipts[-1].barcodes[0].data if receipts and receipts[-1].barcodes else None


def by_check(report: DoctorReport) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for finding in report.findings:
        found.setdefault(finding.check, []).append(finding)
    return found


def one(report: DoctorReport, check: str) -> Any:
    (finding,) = by_check(report)[check]
    return finding


def doctor(
    bench: Bench, config: PosdConfig, options: DoctorOptions = QUICK, **kw: Any
) -> DoctorReport:
    context = Context(
        config, options, factory=bench.gpio.factory, ntp_synchronised=lambda: True, **kw
    )
    return run_doctor(context)


# ------------------------------------------------------------------------ healthy


def test_every_device_healthy_is_exercised_and_reported_ok(bench: Bench) -> None:
    with bench.scanning(lambda: ticket_barcode(bench.printer)):
        report = doctor(bench, bench.config())
    assert report.exit_status == 0, report.findings
    statuses = {f.check: f.status for f in report.findings}
    assert statuses == {
        "printer": Status.OK,
        "display": Status.OK,
        "lane light": Status.OK,
        "buzzer": Status.OK,
        "attendant button": Status.OK,
        "scanner": Status.OK,
        "broker": Status.SKIP,
        "ledger": Status.OK,
        "hash chain": Status.OK,
        "disk": Status.OK,
        "clock": Status.OK,
        "permissions": Status.OK,
    }
    # The display shows the test pattern, as its own decoder reads the glass.
    assert bench.display.lines == ("ABCDEFGHIJ0123456789", "TEST T-001".ljust(20))
    # The ticket says which terminal this is, where, and how to reach it.
    ticket = bench.printer.receipts[-1].text
    for expected in ("Terminal T-001", "Branch NORTH", "Host ", "Time 20"):
        assert expected in ticket
    assert "IP " in ticket or "no network address" in ticket
    # The lamps lit one after another and the buzzer beeped.
    assert all(bench.gpio.light_flashes(colour) == 1 for colour in ("green", "amber", "red"))
    assert bench.gpio.light_colour() is None
    assert len(bench.gpio.wait_for_beeps(1)) == 1
    scanner = one(report, "scanner").detail
    assert "the test ticket's barcode: printer and scanner agree" in scanner
    assert "intact over" in one(report, "hash chain").detail


def test_the_command_runs_against_a_pty_printer_and_mock_pins_from_the_config(
    bench: Bench,
) -> None:
    config_file = bench.write(bench.settings(printer="serial"))
    with bench.scanning(lambda: "SN-DOCTOR-1"):
        result = CliRunner().invoke(
            build(), ["doctor", "--config", str(config_file), "--scan-timeout", "20", "--json"]
        )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    statuses = {c["check"]: c["status"] for c in report["checks"]}
    assert statuses["printer"] == statuses["display"] == statuses["lane light"] == "OK"
    assert statuses["scanner"] == "OK"
    assert (
        "read 'SN-DOCTOR-1'"
        in next(c for c in report["checks"] if c["check"] == "scanner")["detail"]
    )
    assert "Terminal T-001" in bench.printer.receipts[-1].text
    assert bench.display.lines[0] == "ABCDEFGHIJ0123456789"


def test_text_report_is_one_line_per_check_with_a_verdict(bench: Bench) -> None:
    config_file = bench.write(bench.settings())
    result = CliRunner().invoke(build(), ["doctor", "--config", str(config_file), "--no-scan"])
    lines = result.stdout.strip().splitlines()
    assert lines[0] == f"posd doctor: terminal T-001 at branch NORTH ({config_file})"
    assert any(line.startswith("SKIP  scanner") and "--no-scan" in line for line in lines)
    assert any(line.startswith("OK    display") for line in lines)
    assert lines[-1].endswith(": ready")
    assert result.exit_code == 0


# ------------------------------------------------------------------------- broken


def test_a_missing_display_and_a_printer_out_of_paper_fail_and_the_rest_is_still_checked(
    bench: Bench,
) -> None:
    bench.printer.paper_out()
    settings = bench.settings()
    settings["display"]["port"] = str(bench.folder / "unplugged-display")
    config_file = bench.write(settings)
    with bench.scanning(lambda: "SN-42"):
        result = CliRunner().invoke(build(), ["doctor", "--config", str(config_file), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    checks = {c["check"]: c for c in report["checks"]}
    assert report["ok"] is False
    assert report["error"]["code"] == "doctor_fail"  # the CLI's one JSON failure shape
    assert report["error"]["message"].startswith("checks failed: ")
    assert "display (" in report["error"]["message"]
    assert checks["display"]["status"] == "FAIL"
    assert "unplugged-display does not exist" in checks["display"]["detail"]
    assert "display.port" in checks["display"]["action"]
    assert checks["printer"]["status"] == "FAIL"
    assert "the printer reports paper out" in checks["printer"]["detail"]
    assert checks["printer"]["action"] == "load a paper roll and close the cover"
    assert bench.printer.receipts == []
    for still_checked in ("lane light", "buzzer", "scanner", "ledger", "hash chain", "clock"):
        assert checks[still_checked]["status"] == "OK", checks[still_checked]


def test_a_printer_that_does_not_answer_is_not_taken_for_one_without_paper(
    bench: Bench,
) -> None:
    bench.printer.stop_answering()
    report = doctor(bench, bench.config(), replace(QUICK, scan=False))
    printer = one(report, "printer")
    assert printer.status is Status.FAIL
    assert "the printer does not answer" in printer.detail and "paper" not in printer.detail
    assert report.exit_status == 1


def test_no_scan_within_the_timeout_is_a_failure_that_says_what_to_check(bench: Bench) -> None:
    report = doctor(bench, bench.config(), replace(QUICK, scan_timeout_s=1.0))
    scanner = one(report, "scanner")
    assert scanner.status is Status.FAIL
    assert "no scan within 1 s" in scanner.detail
    assert "end-of-scan" in scanner.action


def test_an_unplugged_scanner_is_reported_without_waiting_for_a_scan(bench: Bench) -> None:
    bench.scanner.unplug()
    report = doctor(bench, bench.config(), replace(QUICK, scan_timeout_s=600))
    scanner = one(report, "scanner")
    assert scanner.status is Status.FAIL
    assert f"{bench.scanner.port} does not exist" in scanner.detail


def test_a_check_that_hangs_is_abandoned_at_its_deadline_and_the_others_reported(
    bench: Bench,
) -> None:
    never = threading.Event()

    def hangs(context: Context) -> list[Any]:
        never.wait()
        return []

    def answers(context: Context) -> list[Any]:
        return [ok("display", "answered")]

    context = Context(bench.config(), QUICK)
    try:
        found = run_bounded(context, [("printer", 0.2, hangs), ("display", 5.0, answers)])
    finally:
        never.set()
    (stuck,) = found["printer"]
    assert stuck.status is Status.FAIL and "no answer within 0.2 s" in stuck.detail
    assert found["display"][0].detail == "answered"


# ----------------------------------------------------------------- ledger, disk, clock


def test_an_edited_ledger_fails_the_hash_chain(bench: Bench) -> None:
    with sqlite3.connect(bench.ledger) as conn:
        trigger = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_no_update'"
        ).fetchone()[0]
        (seq,) = conn.execute("SELECT seq FROM events WHERE body LIKE '%SN-2%'").fetchone()
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute(f"UPDATE events SET body = replace(body, 'SN-2', 'SN-9') WHERE seq = {seq}")
        conn.execute(trigger)
    report = doctor(bench, bench.config(), replace(QUICK, scan=False))
    chain = one(report, "hash chain")
    assert chain.status is Status.FAIL
    assert f"terminal T-001 seq {seq}" in chain.detail
    assert "edited or damaged" in chain.action
    assert report.exit_status == 1


def test_a_ledger_of_another_terminal_is_reported(bench: Bench) -> None:
    config = parse_config(bench.settings() | {"terminal": {"id": "T-002", "branch": BRANCH}})
    report = doctor(bench, config, replace(QUICK, scan=False))
    ledger = one(report, "ledger")
    assert ledger.status is Status.FAIL
    assert "belongs to terminal T-001 at branch NORTH, not T-002" in ledger.detail


def test_a_missing_ledger_says_how_to_make_one(bench: Bench) -> None:
    bench.ledger.unlink()
    report = doctor(bench, bench.config(), replace(QUICK, scan=False))
    ledger = one(report, "ledger")
    assert ledger.status is Status.FAIL and "no ledger at" in ledger.detail
    assert "posd provision" in ledger.action


@pytest.mark.parametrize(
    ("limits", "status"),
    [
        ({"disk_warn_bytes": 2**62}, Status.WARN),
        ({"disk_fail_bytes": 2**62}, Status.FAIL),
        ({"disk_fail_fraction": 1.0}, Status.FAIL),
    ],
)
def test_free_disk_below_the_thresholds(
    bench: Bench, limits: dict[str, Any], status: Status
) -> None:
    report = doctor(bench, bench.config(), replace(QUICK, scan=False, **limits))
    disk = one(report, "disk")
    assert disk.status is status
    assert "free of" in disk.detail and "where the ledger is" in disk.detail


@pytest.mark.parametrize(
    ("wall", "ntp", "status", "said"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), True, Status.FAIL, "cannot be right"),
        (datetime(2025, 1, 1, tzinfo=UTC), True, Status.FAIL, "before "),
        (None, False, Status.WARN, "not synchronised by NTP"),
        (None, None, Status.OK, "NTP synchronisation unknown"),
        (None, True, Status.OK, "synchronised by NTP"),
    ],
)
def test_the_clock_is_checked_against_the_ledger_and_ntp(
    bench: Bench, wall: datetime | None, ntp: bool | None, status: Status, said: str
) -> None:
    context = Context(
        bench.config(),
        replace(QUICK, scan=False),
        factory=bench.gpio.factory,
        ntp_synchronised=lambda: ntp,
        wall=(lambda: wall) if wall else (lambda: datetime.now(UTC)),
    )
    clock = one(run_doctor(context), "clock")
    assert clock.status is status and said in clock.detail


def test_a_ledger_readable_by_others_is_a_warning(bench: Bench) -> None:
    bench.ledger.chmod(0o644)
    report = doctor(bench, bench.config(), replace(QUICK, scan=False))
    permissions = one(report, "permissions")
    assert permissions.status is Status.WARN
    assert f"{bench.ledger} has mode 0644: chmod 0600" in permissions.detail


# ------------------------------------------------------------ configuration, broker


def test_a_bad_configuration_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "posd.toml"
    path.write_text(
        '[terminal]\nid = "T1"\nbranch = "B1"\n[ledger]\npath = "/x"\n[display]\nbaud = 1234\n'
    )
    result = CliRunner().invoke(build(), ["doctor", "--config", str(path)])
    assert result.exit_code == 78
    assert "display.port: is required" in result.output
    assert "display.baud: must be one of" in result.output


def test_an_unreachable_broker_is_a_warning_not_a_failure(bench: Bench) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    config = bench.config(replication={"url": f"mqtts://127.0.0.1:{port}"})
    broker = one(doctor(bench, config, replace(QUICK, scan=False)), "broker")
    assert broker.status is Status.WARN
    assert "broker unreachable" in broker.detail and "sells offline" in broker.action


def test_replication_settings_that_cannot_work_are_named(bench: Bench) -> None:
    settings = bench.settings() | {"replication": {"url": "mqtts://hq:8883", "pasword_file": "/x"}}
    result = CliRunner().invoke(
        build(), ["doctor", "--config", str(bench.write(settings)), "--no-scan"]
    )
    assert result.exit_code != 0
    assert "replication.pasword_file: unknown key" in result.output


def test_the_ticket_scanned_the_moment_it_prints_counts(bench: Bench) -> None:
    """One scan, at once: the scanner is already open when the ticket comes out (a
    serial port drops what arrived before it was opened), though the lights are still
    being tested."""
    scanned: list[str] = []

    def scan_once() -> None:
        if bench.printer.wait_for_receipts(1, timeout=20):
            barcode = ticket_barcode(bench.printer)
            assert barcode is not None
            bench.scanner.scan(barcode)
            scanned.append(barcode)

    hand = threading.Thread(target=scan_once, daemon=True)
    hand.start()
    report = doctor(bench, bench.config(), replace(QUICK, light_step_s=0.4, scan_timeout_s=8))
    hand.join(5)
    assert scanned
    scanner = one(report, "scanner")
    assert scanner.status is Status.OK, scanner
    assert "the test ticket's barcode: printer and scanner agree" in scanner.detail
