"""`posd simulate`: simulated devices in their own process, for `posd doctor` and `posd run`.

The simulation runs as a real process, as a field engineer starts it; the doctor and the
daemon run as processes of their own against the configuration it wrote; the controls
(`posd simulate scan …`, `paper-out`, `unplug …`) reach it through its control socket.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.cli import build
from daemon.config.model import load_config
from daemon.ledger import Ledger
from simulators.lane import PosdProcess
from simulators.simulation import running

POSD = [sys.executable, "-c", "from daemon.cli import main; main()"]


@dataclass
class Running:
    """`posd simulate` in its own process, and its folder."""

    folder: Path
    process: subprocess.Popen[str]
    log: Path

    @property
    def config(self) -> Path:
        return self.folder / "posd.toml"

    def control(self, *args: str) -> str:
        """`posd simulate ARGS` from another shell: what it printed (it must succeed)."""
        result = CliRunner().invoke(build(), ["simulate", "--folder", str(self.folder), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def status(self) -> dict[str, Any]:
        now: dict[str, Any] = json.loads(self.control("status", "--json"))
        return now


def until(condition: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting {timeout_s:g} s for {what}")


@pytest.fixture
def simulation(tmp_path: Path) -> Iterator[Running]:
    folder = tmp_path / "sim"
    log = tmp_path / "simulate.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [*POSD, "simulate", "--folder", str(folder)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    sim = Running(folder, process, log)
    try:
        until(lambda: running(folder) or process.poll() is not None, "the simulation", 60)
        assert process.poll() is None, log.read_text()
        yield sim
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text()
    assert "stopped" in log.read_text()
    assert not (folder / "control.sock").exists() and not (folder / "scanner").exists()


def scan_the_ticket_once(sim: Running) -> threading.Thread:
    """Someone who scans the test ticket the moment it is out of the printer."""

    def scan() -> None:
        def ticket() -> str | None:
            last = sim.status()["last_receipt"]
            return last["barcodes"][0] if last and last["barcodes"] else None

        sim.control("scan", until(ticket, "the test ticket", 60))

    hand = threading.Thread(target=scan, daemon=True)
    hand.start()
    return hand


def doctor(sim: Running, *flags: str) -> tuple[int, dict[str, dict[str, str]]]:
    done = subprocess.run(
        [*POSD, "doctor", "--config", str(sim.config), "--json", *flags],
        capture_output=True,
        text=True,
        timeout=180,
    )
    report = json.loads(done.stdout)
    return done.returncode, {check["check"]: check for check in report["checks"]}


# ------------------------------------------------------------------------ starting


def test_it_says_what_it_started_and_writes_a_config_that_names_it(simulation: Running) -> None:
    said = simulation.log.read_text()
    folder = simulation.folder
    for expected in (
        f"a pty at {folder}/scanner",
        f"a pty at {folder}/display",
        "ESC/POS on tcp 127.0.0.1:",
        "gpiozero mock pins inside each posd process",
        f"posd doctor --config {folder}/posd.toml",
        "posd simulate scan LX-0001",
        "posd simulate paper-out",
    ):
        assert expected in said, said
    config = load_config(simulation.config)  # what posd run reads
    assert config.scanners[0].port == f"{folder}/scanner"  # type: ignore[union-attr]
    assert config.display is not None and config.display.port == f"{folder}/display"
    now = simulation.status()
    assert now["plugged"] == {"scanner": True, "display": True, "printer": True}
    assert config.printer is not None
    assert now["printer"]["address"] == f"127.0.0.1:{config.printer.port}"  # type: ignore[attr-defined]
    # A second one in the same folder is refused, and the first goes on.
    again = subprocess.run([*POSD, "simulate", "--folder", str(folder)],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert again.returncode == 1 and "already running" in again.stderr
    assert running(folder)


def test_a_control_that_cannot_be_done_says_why(simulation: Running) -> None:
    result = CliRunner().invoke(build(), ["simulate", "--folder", str(simulation.folder),
                                          "unplug", "drawer"])  # fmt: skip
    assert result.exit_code == 2 and "'drawer' is not one of" in result.output
    simulation.control("unplug", "scanner")
    refused = CliRunner().invoke(build(), ["simulate", "--folder", str(simulation.folder),
                                           "scan", "LX-0001"])  # fmt: skip
    assert refused.exit_code == 1
    assert "the scanner is unplugged: posd simulate replug scanner" in refused.output
    nothing = CliRunner().invoke(build(), ["simulate", "--folder", "/nonexistent", "status"])
    assert nothing.exit_code == 1 and "no simulation is running in /nonexistent" in nothing.output


_LINES = st.one_of(
    st.binary(max_size=200).filter(lambda data: b"\n" not in data),
    st.fixed_dictionaries(
        {"do": st.one_of(st.sampled_from(["scan", "unplug", "replug", "fly"]), st.text()),
         "text": st.one_of(st.text(max_size=30), st.integers()),
         "device": st.one_of(st.text(max_size=10), st.none())},
    ).map(lambda request: json.dumps(request).encode()),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(lines=st.lists(_LINES, min_size=1, max_size=5))
def test_any_line_on_the_control_socket_is_answered_and_the_simulation_goes_on(
    simulation: Running, lines: list[bytes]
) -> None:
    with socket.socket(socket.AF_UNIX) as connection:
        connection.settimeout(10)
        connection.connect(str(simulation.folder / "control.sock"))
        connection.sendall(b"".join(line + b"\n" for line in lines))
        with connection.makefile("rb") as replies:
            for _ in lines:
                reply = json.loads(replies.readline())
                assert reply["ok"] in (True, False)
                assert reply["ok"] or reply["error"]
    assert simulation.status()["ok"]


# ------------------------------------------------------------------------ the doctor


def test_the_doctor_passes_against_it_and_reads_the_ticket_scanned_at_once(
    simulation: Running,
) -> None:
    hand = scan_the_ticket_once(simulation)
    code, checks = doctor(simulation, "--scan-timeout", "30")
    hand.join(10)
    assert code == 0, checks
    for name in ("printer", "display", "lane light", "scanner", "ledger", "hash chain"):
        assert checks[name]["status"] == "OK", checks[name]
    assert "printer and scanner agree" in checks["scanner"]["detail"]
    assert simulation.status()["glass"] == ["ABCDEFGHIJ0123456789", "TEST T-001"]


def test_the_doctor_sees_paper_out_and_an_unplugged_scanner(simulation: Running) -> None:
    simulation.control("paper-out")
    simulation.control("unplug", "scanner")
    code, checks = doctor(simulation, "--scan-timeout", "5")
    assert code == 1
    assert checks["printer"]["status"] == "FAIL" and "paper" in checks["printer"]["detail"]
    assert checks["scanner"]["status"] == "FAIL"
    assert "plug the scanner in" in checks["scanner"]["action"]
    assert simulation.status()["receipts"] == 0  # nothing printed without paper


# ------------------------------------------------------------------------ the lane


def _health(sim: Running) -> dict[str, Any]:
    url = sim.status()["api"] + "api/health"
    with urllib.request.urlopen(url, timeout=5) as answer_:
        health: dict[str, Any] = json.loads(answer_.read())
    return health


def test_posd_run_sells_what_simulate_scans_and_rides_out_paper_out_and_unplugging(
    simulation: Running,
) -> None:
    posd = PosdProcess(simulation.config).start(timeout_s=60)
    try:
        glass = lambda: tuple(simulation.status()["glass"])  # noqa: E731
        simulation.control("paper-out")
        simulation.control("scan", "LX-0001")
        until(lambda: glass() == ("Laptop X1    1299.00", "TOTAL        1299.00"), "the laptop")
        simulation.control("scan", "#CMD:TENDER:CARD")
        until(lambda: glass()[0] == "THANK YOU", "the sale to complete")
        # No paper: the sale is durable and its receipt waits, then prints by itself.
        time.sleep(1.0)
        assert simulation.status()["receipts"] == 0
        simulation.control("paper-in")
        receipt = until(lambda: simulation.status()["last_receipt"], "the queued receipt", 30)
        assert "S/N LX-0001" in receipt["text"] and "T-001-000001" in receipt["text"]
        # The scanner's cable is pulled: the lane says so; plugged back, it sells again.
        simulation.control("unplug", "scanner")
        until(lambda: _scanner_missing(_health(simulation)), "the lane to miss the scanner")
        simulation.control("replug", "scanner")
        until(lambda: not _scanner_missing(_health(simulation)), "the scanner back", 30)
        simulation.control("scan", "DR-7731")
        until(lambda: glass()[0].startswith("Drill 18V"), "the drill")
    finally:
        output = posd.stop()
    assert posd.returncode == 0, output
    with Ledger.open(simulation.folder / "ledger.db") as ledger:
        sold = ledger.unit("LAP-X1", "LX-0001")
        assert sold is not None and sold.state.value == "sold"


def _scanner_missing(health: dict[str, Any]) -> bool:
    """Whether the lane lists the scanner among the devices it misses."""
    return any(name.startswith("scanner") for name in health["devices"])


def test_posd_lists_simulate_with_help_for_every_control() -> None:
    """`posd simulate` comes from the simulators' entry point, never an import."""
    group = build()
    assert "simulate" in group.list_commands(click.Context(group))
    simulate = group.get_command(click.Context(group), "simulate")
    assert isinstance(simulate, click.Group)
    for name, command in simulate.commands.items():
        assert command.help and command.help.strip(), name
    assert {"scan", "paper-out", "paper-in", "unplug", "replug", "status"} <= set(simulate.commands)
