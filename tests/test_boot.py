"""The appliance as shipped: posd's Debian package installed on a Debian root and booted
under a real systemd (systemd-nspawn), checked from inside.

One machine serves the whole module, in this order: the package is installed with apt,
the terminal provisioned with flags, posd started by systemd; then a lane on simulated
devices sells units that reach an HQ outside the machine; the sandbox, the journal,
the watchdog, the exit status for a bad configuration and the restart limit are
checked against that running service; last, the package is removed and purged.

The scanner and the pole display are ptys bound into the machine as
/dev/posd-scanner and /dev/posd-display; the receipt printer listens on loopback and
so do the MQTT broker and `posd hq` (the machine shares the host's network).

Needs root, debootstrap and systemd-nspawn; skipped, saying which is missing, without
them (a failure instead when `POSD_REQUIRE_BOOT=1`, as in CI). The Debian root is built
once (tests/boot_machine.py) and reused by later runs.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from daemon.bench.mosquitto import Broker, free_port
from simulators.display import SimulatedDisplay
from simulators.printer import SimulatedPrinter
from simulators.scanner import SimulatedSerialScanner
from tests.boot_machine import Machine, cached_root, missing_tools

pytestmark = [pytest.mark.boot, pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parent.parent
TERMINAL = "T-BOOT"
BRANCH = "B-1"
DEVICE_GROUPS = {"input", "dialout", "gpio", "lp"}
DROP_INS = Path("/run/systemd/system/posd.service.d")


def _skip_or_fail_without_tools() -> None:
    why = missing_tools()
    if why is None:
        return
    if os.environ.get("POSD_REQUIRE_BOOT") == "1":
        pytest.fail(f"POSD_REQUIRE_BOOT=1 but the boot tests cannot run: {why}")
    pytest.skip(f"boot tests NOT run: {why}")


def wait_for(condition: Callable[[], object], what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.2)


@dataclass
class Terminal:
    """The booted machine with posd installed, and the world around it."""

    machine: Machine
    deb: Path
    scanner: SimulatedSerialScanner
    display: SimulatedDisplay
    printer: SimulatedPrinter
    printer_port: int
    api_port: int
    hq_db: Path
    after_install: dict[str, str] = field(default_factory=dict)
    after_start: dict[str, str] = field(default_factory=dict)
    health_at_start: dict[str, object] = field(default_factory=dict)

    def posd(self, *props: str) -> dict[str, str]:
        return self.machine.show("posd", *props)

    def state(self) -> str:
        return self.posd("ActiveState")["ActiveState"]

    def start_afresh(self) -> None:
        """Start posd by hand, as an engineer would after a fix: the failed state and
        the start counter cleared first."""
        self.machine.run("systemctl", "reset-failed", "posd", check=False)
        self.machine.run("systemctl", "restart", "posd")
        assert self.state() == "active"

    def drop_in(self, name: str, text: str | None) -> None:
        """Add (or with None remove) a runtime drop-in for posd.service; reloads systemd."""
        path = self.machine.path(str(DROP_INS / name))
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text))
        self.machine.run("systemctl", "daemon-reload")

    def sell(self, serial: str) -> None:
        """Scan a unit and pay by card, as a cashier does, on the real scanner line."""
        receipts = len(self.printer.receipts)
        self.scanner.scan(serial)
        time.sleep(0.5)  # a cashier's pause between the unit and the payment sheet
        self.scanner.scan("#CMD:TENDER:CARD")
        assert self.printer.wait_for_receipts(receipts + 1, timeout=30), "no receipt printed"

    def passport(self, serial: str) -> dict[str, object]:
        out = self.machine.run(
            "runuser", "-u", "posd", "--",
            "posd", "--db", "/var/lib/posd/ledger.db", "unit", serial, "--json",
        )  # fmt: skip
        return dict(json.loads(out.stdout)["passport"])


def hq_sold_serials(hq_db: Path) -> set[str]:
    """Serials HQ has stored sales of from this terminal."""
    if not hq_db.exists():
        return set()
    with sqlite3.connect(hq_db) as db:
        try:
            rows = db.execute("SELECT body FROM events WHERE kind = 'sell'").fetchall()
        except sqlite3.OperationalError:  # HQ has not made its tables yet
            return set()
    events = (json.loads(body) for (body,) in rows)
    return {str(e["serial"]) for e in events if e.get("terminal") == TERMINAL}


@pytest.fixture(scope="module")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """posd's Debian package, built from this checkout."""
    _skip_or_fail_without_tools()
    out = tmp_path_factory.mktemp("deb")
    built = subprocess.run(
        ["/usr/bin/python3", str(CHECKOUT / "systemd/build_deb.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    return Path(built.stdout.strip().splitlines()[-1])


def _depends(deb: Path) -> list[str]:
    """The package names the .deb depends on (first of each alternative)."""
    field_text = subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Depends"], capture_output=True, text=True, check=True
    ).stdout
    return sorted({item.split("|")[0].split("(")[0].strip() for item in field_text.split(",")})


@pytest.fixture(scope="module")
def terminal(deb: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminal]:
    root = cached_root(_depends(deb))
    tmp = tmp_path_factory.mktemp("boot")
    dialout = next(
        int(line.split(":")[2])
        for line in (root / "etc/group").read_text().splitlines()
        if line.startswith("dialout:")
    )
    scanner = SimulatedSerialScanner(tmp / "scanner")
    display = SimulatedDisplay("epson", link=tmp / "display")
    display.start()
    ptys = {os.path.realpath(tmp / "scanner"): "/dev/posd-scanner"}
    ptys[os.path.realpath(tmp / "display")] = "/dev/posd-display"
    for pty in ptys:  # as udev's rules leave a serial device: root:dialout 0660
        os.chown(pty, 0, dialout)
        os.chmod(pty, 0o660)
    broker = Broker(tmp / "broker")
    broker.start()
    hq_db = tmp / "hq.db"
    posd = str(Path(sys.executable).parent / "posd")
    hq_log = (tmp / "hq.log").open("wb")
    hq = subprocess.Popen(
        [posd, "hq", "--db", str(hq_db), "run", "--broker", broker.url, "--resend-after", "1"],
        stdout=hq_log,
        stderr=subprocess.STDOUT,
    )
    printer_port = free_port()  # the printer is switched on later: at first it is missing
    printer = SimulatedPrinter(tcp_port=printer_port)
    machine = Machine(
        root,
        f"posd-boot-{os.getpid()}",
        binds=ptys,
        read_only_binds={str(deb.parent): "/mnt/posd"},
        console_log=tmp / "console.log",
    )
    try:
        machine.boot()
        term = Terminal(machine, deb, scanner, display, printer, printer_port, free_port(), hq_db)
        _install_and_provision(term, broker.url)
        yield term
    finally:
        machine.stop()
        hq.terminate()
        hq.wait(10)
        hq_log.close()
        broker.stop()
        printer.close()
        display.close()
        scanner.close()


def _install_and_provision(term: Terminal, broker_url: str) -> None:
    machine = term.machine
    machine.run("apt-get", "install", "-y", "-q", f"/mnt/posd/{term.deb.name}", timeout=300)
    term.after_install = {
        **term.posd("UnitFileState", "ActiveState", "ConditionResult"),
        "posd_user": machine.run("getent", "passwd", "posd").stdout.strip(),
        "ledger_dir": machine.run("stat", "-c", "%a %U:%G", "/var/lib/posd").stdout.strip(),
        "on_path": machine.run("sh", "-c", "command -v posd").stdout.strip(),
    }
    machine.run(
        "posd", "provision", "--yes",
        "--terminal", TERMINAL, "--branch", BRANCH, "--mode", "cashier",
        "--store-name", "Boot Test Store",
        "--hq-url", broker_url,
        "--scanner", "/dev/posd-scanner", "--scanner-kind", "serial",
        "--display", "/dev/posd-display", "--display-model", "epson",
        "--printer", f"tcp://127.0.0.1:{term.printer_port}",
        "--gpio", "none",
    )  # fmt: skip
    # The kiosk API on a free port of the shared loopback (8765 may be taken here).
    config = machine.path("/etc/posd/posd.toml")
    config.write_text(config.read_text() + f"\n[api]\nport = {term.api_port}\n")
    machine.run("posd", "config", "check", "/etc/posd/posd.toml")
    for command in (
        ["product", "add", "LAP-X1", "Laptop X1", "--price", "1299.00"],
        ["receive", "--po", "PO-1", "--supplier", "Acme", "--product", "LAP-X1",
         "--quantity", "3", "LX-1", "LX-2", "LX-3"],
    ):  # fmt: skip
        machine.run("runuser", "-u", "posd", "--", "posd", "--db", "/var/lib/posd/ledger.db",
                    *command)  # fmt: skip
    machine.run("systemctl", "start", "posd")
    # The very first request, with no retry: systemctl returned, so posd said READY=1,
    # which it does only once its ledger is open and the kiosk API listens.
    try:
        url = f"http://127.0.0.1:{term.api_port}/api/health"
        with urllib.request.urlopen(url, timeout=5) as answer:
            term.health_at_start = {"status": answer.status}
    except OSError as error:
        term.health_at_start = {"error": str(error)}
    term.after_start = term.posd(
        "ActiveState", "SubState", "StatusText", "Type", "MainPID",
        "ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic",
    )  # fmt: skip


# ----------------------------------------------------------------- install and readiness


def test_installing_enables_posd_and_starts_it_only_once_provisioned(
    terminal: Terminal,
) -> None:
    installed = terminal.after_install
    assert installed["UnitFileState"] == "enabled"
    assert installed["ActiveState"] == "inactive"
    assert installed["on_path"] == "/usr/bin/posd"
    assert installed["posd_user"].startswith("posd:")
    assert installed["posd_user"].endswith(":/var/lib/posd:/usr/sbin/nologin")
    assert installed["ledger_dir"] == "700 posd:posd"
    # Enabled but unprovisioned: a boot skips it without failing it.
    assert installed["ConditionResult"] in ("no", "")


def test_posd_is_active_only_after_ready_and_its_status_names_missing_devices(
    terminal: Terminal,
) -> None:
    started = terminal.after_start
    assert started["Type"] == "notify"
    assert started["ActiveState"] == "active", started
    # systemctl start returned only once posd's kiosk API already answered.
    assert terminal.health_at_start == {"status": 200}
    assert int(started["ActiveEnterTimestampMonotonic"]) > int(
        started["ExecMainStartTimestampMonotonic"]
    )
    ready = f"lane {TERMINAL} ready; kiosk API on 127.0.0.1:{terminal.api_port}"
    assert started["StatusText"].startswith(ready), started

    # The printer is switched off: once posd has asked it, the status line names it.
    wait_for(
        lambda: "missing: printer" in terminal.posd("StatusText")["StatusText"],
        "the status line to name the missing printer",
    )
    status = terminal.posd("StatusText")["StatusText"]
    assert status.startswith(ready + "; missing: printer ("), status
    assert "scanner" not in status and "display" not in status, status

    terminal.printer.start()  # the printer is switched on: the status line says so
    wait_for(
        lambda: "missing" not in terminal.posd("StatusText")["StatusText"],
        "the printer to leave the status line",
    )


# ----------------------------------------------------------------- the lane and HQ


def test_a_simulated_lane_sells_a_unit_and_hq_outside_the_machine_gets_the_sale(
    terminal: Terminal,
) -> None:
    terminal.sell("LX-1")
    assert "Laptop X1" in terminal.printer.receipts[-1].text
    assert terminal.passport("LX-1")["state"] == "sold"
    wait_for(lambda: "LX-1" in hq_sold_serials(terminal.hq_db), "HQ to store the sale of LX-1")


def test_the_journal_holds_posds_structured_fields(terminal: Terminal) -> None:
    terminal.sell("LX-2")
    machine = terminal.machine
    wait_for(
        lambda: machine.journal("-u", "posd", "POSD_SERIAL=LX-2"), "the sale of LX-2 in the journal"
    )
    (entry,) = machine.journal("-u", "posd", "POSD_SERIAL=LX-2")
    assert entry["POSD_EVENT"] == "sell"
    assert entry["POSD_OUTCOME"] == "done"
    assert entry["POSD_PRODUCT"] == "LAP-X1"
    assert entry["POSD_TERMINAL"] == TERMINAL
    assert entry["SYSLOG_IDENTIFIER"] == "posd"
    assert entry["PRIORITY"] == "6"
    assert entry["_SYSTEMD_UNIT"] == "posd.service"
    assert str(entry["CODE_FILE"]).startswith("/opt/posd/.venv/")
    assert "LX-2" in str(entry["MESSAGE"])
    sales = machine.journal("-u", "posd", "POSD_EVENT=sell")
    assert {e.get("POSD_SERIAL") for e in sales} >= {"LX-1", "LX-2"}


# ----------------------------------------------------------------- the sandbox

PROBE = r"""
import errno, json, os, socket

def attempt(action):
    try:
        action()
        return "ok"
    except OSError as error:
        return errno.errorcode.get(error.errno, str(error.errno))

def write(path):
    def act():
        with open(path, "w") as file:
            file.write("probe")
        os.unlink(path)
    return attempt(act)

def read(path):
    return attempt(lambda: open(path).read())

def opens(path, flags):
    return attempt(lambda: os.close(os.open(path, flags | os.O_NOCTTY | os.O_NONBLOCK)))

pids = [p for p in os.listdir("/proc") if p.isdigit()]
result = {
    "uid": os.getuid(),
    "groups": sorted(os.getgroups()),
    "write": {p: write(p) for p in (
        "/var/lib/posd/probe", "/srv/everyone/probe", "/etc/probe",
        "/opt/posd/.venv/probe", "/usr/local/probe", "/var/log/probe",
    )},
    "read": {p: read(p) for p in (
        "/home/alice/notes.txt", "/root/secret", "/tmp/alice-note",
    )},
    "foreign_pids": [p for p in pids if os.stat("/proc/" + p).st_uid != os.getuid()],
    "pid1_visible": "1" in pids,
    "ttyS_rw": opens("/dev/posd-forbidden", os.O_RDWR),
    "input_rw": opens("/dev/input/probe-event", os.O_RDWR),
    "input_ro": opens("/dev/input/probe-event", os.O_RDONLY),
    "packet_socket": attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()),
    "inet_socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()),
}
print("POSD-PROBE " + json.dumps(result), flush=True)
"""


def _status_fields(machine: Machine, pid: str) -> dict[str, str]:
    text = machine.run("cat", f"/proc/{pid}/status").stdout
    return {k: v.strip() for k, _, v in (line.partition(":") for line in text.splitlines())}


def test_the_sandbox_is_in_force(terminal: Terminal) -> None:
    machine = terminal.machine
    posd_uid = int(machine.run("id", "-u", "posd").stdout)
    group_ids = {
        int(machine.run("getent", "group", name).stdout.split(":")[2]): name
        for name in (*DEVICE_GROUPS, "posd")
    }

    # The running daemon: its own user, only its device groups, no capabilities.
    pid = terminal.posd("MainPID")["MainPID"]
    status = _status_fields(machine, pid)
    assert set(status["Uid"].split()) == {str(posd_uid)}
    groups = {group_ids.get(int(g), g) for g in status["Groups"].split()}
    assert DEVICE_GROUPS <= groups <= DEVICE_GROUPS | {"posd"}, groups
    assert int(status["CapEff"], 16) == 0
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"

    # What the unit lets a process do: the probe runs in posd.service itself, every
    # sandbox line as shipped, only its program swapped in by a drop-in.
    machine.run("sh", "-c", textwrap.dedent("""
        set -e
        id alice >/dev/null 2>&1 || useradd --create-home alice
        echo "alice's notes" > /home/alice/notes.txt; chmod 0644 /home/alice/notes.txt
        echo "root's secret" > /root/secret; chmod 0600 /root/secret
        echo "alice's note" > /tmp/alice-note; chmod 0644 /tmp/alice-note
        mkdir -p -m 1777 /srv/everyone
        rm -f /dev/posd-forbidden /dev/input/probe-event; mkdir -p /dev/input
        mknod -m 0660 /dev/posd-forbidden c 4 64; chgrp dialout /dev/posd-forbidden
        mknod -m 0660 /dev/input/probe-event c 13 64; chgrp input /dev/input/probe-event
        mkdir -p /usr/local/lib
    """))  # fmt: skip
    machine.path("/usr/local/lib/posd-probe.py").write_text(PROBE)
    machine.run("systemctl", "stop", "posd")
    terminal.drop_in(
        "probe.conf",
        """
        [Service]
        Type=exec
        ExecStart=
        ExecStart=/opt/posd/.venv/bin/python /usr/local/lib/posd-probe.py
        Restart=no
        WatchdogSec=0
        """,
    )
    try:
        machine.run("systemctl", "reset-failed", "posd", check=False)
        machine.run("systemctl", "start", "posd")
        wait_for(lambda: terminal.state() in ("inactive", "failed"), "the probe to finish")
        lines = [
            str(e["MESSAGE"])
            for e in machine.journal("-u", "posd")
            if str(e.get("MESSAGE", "")).startswith("POSD-PROBE ")
        ]
    finally:
        terminal.drop_in("probe.conf", None)
        terminal.start_afresh()
    assert lines, "the probe printed nothing"
    probe = json.loads(lines[-1].removeprefix("POSD-PROBE "))

    assert probe["uid"] == posd_uid
    assert {group_ids.get(g, g) for g in probe["groups"]} <= DEVICE_GROUPS | {"posd"}
    assert probe["write"]["/var/lib/posd/probe"] == "ok"
    for path in ("/srv/everyone/probe", "/etc/probe", "/opt/posd/.venv/probe",
                 "/usr/local/probe", "/var/log/probe"):  # fmt: skip
        assert probe["write"][path] == "EROFS", (path, probe["write"][path])
    # Other users' files: home directories hidden, /tmp its own.
    assert probe["read"]["/home/alice/notes.txt"] in ("EACCES", "ENOENT")
    assert probe["read"]["/root/secret"] in ("EACCES", "ENOENT")
    assert probe["read"]["/tmp/alice-note"] == "ENOENT"
    assert probe["foreign_pids"] == [] and not probe["pid1_visible"]
    # Devices: a serial class the unit does not allow is refused even to its group;
    # input devices only for reading.
    assert probe["ttyS_rw"] == "EPERM"
    assert probe["input_rw"] == "EPERM"
    assert probe["input_ro"] != "EPERM"
    assert probe["packet_socket"] == "EAFNOSUPPORT"
    assert probe["inet_socket"] == "ok"


# ----------------------------------------------------------------- watchdog and restarts


def test_a_stalled_event_loop_is_killed_by_the_watchdog_and_restarted(
    terminal: Terminal,
) -> None:
    machine = terminal.machine
    # Test only: this variable arms SIGUSR2 to stall the loop; the unit never sets it.
    terminal.drop_in("stall.conf", "[Service]\nEnvironment=POSD_TEST_WATCHDOG_STALL=1\n")
    try:
        terminal.start_afresh()
        stalled_pid = terminal.posd("MainPID")["MainPID"]
        since = machine.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
        machine.run("systemctl", "kill", "--kill-who=main", "--signal=SIGUSR2", "posd")
        wait_for(
            lambda: terminal.posd("NRestarts")["NRestarts"] == "1" and terminal.state() == "active",
            "systemd to kill the stalled posd and start it again",
            timeout_s=90,
        )
        assert terminal.posd("MainPID")["MainPID"] != stalled_pid
        messages = [
            str(e.get("MESSAGE", "")) for e in machine.journal("-u", "posd", "--since", since)
        ]
        assert any("Watchdog timeout" in m for m in messages), messages
        assert any("the event loop stops here" in m for m in messages), messages
    finally:
        terminal.drop_in("stall.conf", None)
        terminal.start_afresh()
    # The lane sells again after the restart.
    terminal.sell("LX-3")
    wait_for(lambda: "LX-3" in hq_sold_serials(terminal.hq_db), "HQ to store the sale of LX-3")


def test_a_configuration_error_exits_78_and_is_not_restarted(terminal: Terminal) -> None:
    machine = terminal.machine
    config = machine.path("/etc/posd/posd.toml")
    good = config.read_text()
    config.write_text(good + "\n[lane]\nserial_timeout_seconds = 5\n")
    try:
        started = machine.run("systemctl", "restart", "posd", check=False)
        assert started.returncode != 0
        time.sleep(6)  # three times RestartSec=: a restart would have happened by now
        after = terminal.posd("ActiveState", "Result", "ExecMainStatus", "NRestarts")
        assert after == {
            "ActiveState": "failed",
            "Result": "exit-code",
            "ExecMainStatus": "78",
            "NRestarts": "0",
        }
        messages = " ".join(str(e.get("MESSAGE", "")) for e in machine.journal("-u", "posd"))
        assert "serial_timeout_seconds" in messages
    finally:
        config.write_text(good)
        terminal.start_afresh()


def test_the_restart_limit_holds(terminal: Terminal) -> None:
    machine = terminal.machine
    since = machine.run("date", "+%Y-%m-%d %H:%M:%S").stdout.strip()
    terminal.start_afresh()  # start 1 of the 5 allowed in ten minutes
    kills = 0
    while terminal.state() != "failed" and kills < 8:
        pid = terminal.posd("MainPID")["MainPID"]
        machine.run("systemctl", "kill", "--kill-who=main", "--signal=SIGKILL", "posd")
        kills += 1

        def moved_on(killed: str = pid) -> bool:
            now = terminal.posd("ActiveState", "SubState", "MainPID")
            if now["ActiveState"] == "failed":
                return True
            running = (now["ActiveState"], now["SubState"]) == ("active", "running")
            return running and now["MainPID"] not in (killed, "0")

        wait_for(moved_on, "posd to be restarted or given up on")
    # Five starts (the first by hand) within StartLimitIntervalSec=10min, then no more.
    assert kills == 5
    messages = [str(e.get("MESSAGE", "")) for e in machine.journal("-u", "posd", "--since", since)]
    assert any("Start request repeated too quickly" in m for m in messages), messages
    time.sleep(5)  # more than RestartSec=2s: still given up on
    assert terminal.state() == "failed"
    terminal.start_afresh()  # `systemctl reset-failed posd` re-arms it, as documented


# ----------------------------------------------------------------- remove and purge


def test_remove_keeps_the_ledger_and_only_a_confirmed_purge_deletes_it(
    terminal: Terminal,
) -> None:
    machine = terminal.machine

    def exists(path: str) -> bool:
        return machine.run("test", "-e", path, check=False).returncode == 0

    def apt(*arguments: str) -> subprocess.CompletedProcess[str]:
        return machine.run("apt-get", "-y", "-q", *arguments, timeout=300)

    apt("remove", "posd")
    assert terminal.state() == "inactive"
    assert not exists("/opt/posd/.venv/bin/posd") and not exists("/usr/bin/posd")
    assert exists("/var/lib/posd/ledger.db") and exists("/etc/posd/posd.toml")

    purged = apt("purge", "posd")  # nobody confirmed deleting the data
    assert "kept the ledger" in purged.stdout + purged.stderr
    assert exists("/var/lib/posd/ledger.db") and exists("/etc/posd/posd.toml")

    apt("install", f"/mnt/posd/{terminal.deb.name}")  # carries on with the same ledger
    wait_for(lambda: terminal.state() == "active", "posd to start again on its old ledger")
    assert terminal.passport("LX-1")["state"] == "sold"

    machine.run("debconf-set-selections", input="posd posd/purge-data boolean true\n")
    purged = apt("purge", "posd")
    assert "deleted the ledger" in purged.stdout + purged.stderr
    assert not exists("/var/lib/posd") and not exists("/etc/posd")
