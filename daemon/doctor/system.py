"""The doctor's checks of the terminal itself: the ledger, disk, clock, file modes,
whether posd is running, and the addresses it can be reached at."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import socket
import sqlite3
import stat
import struct
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from sqlite_utils import Database

from daemon.doctor.broker import replication_file
from daemon.doctor.findings import Context, Finding, fail, ok, skip, warn
from daemon.ledger.audit import integrity_problems, last_own_event_at, verify_chain
from daemon.ledger.damage import ADVICE, file_problem, schema_problem
from daemon.ledger.store import LedgerStore, connect_read_only

_SIOCGIFADDR = 0x8915
_SANE_YEARS = range(2024, 2100)


def local_addresses() -> list[str]:
    """This terminal's IPv4 and global IPv6 addresses, each with its interface."""
    found = []
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                packed = fcntl.ioctl(
                    probe.fileno(), _SIOCGIFADDR, struct.pack("256s", name[:15].encode())
                )
            except OSError:
                continue  # no IPv4 address on this interface
        found.append(f"{socket.inet_ntoa(packed[20:24])} ({name})")
    with contextlib.suppress(OSError), open("/proc/net/if_inet6") as table:
        for line in table:
            fields = line.split()
            if len(fields) == 6 and fields[3] == "00" and fields[5] != "lo":
                words = [fields[0][i : i + 4] for i in range(0, 32, 4)]
                address = socket.inet_ntop(socket.AF_INET6, bytes.fromhex("".join(words)))
                found.append(f"{address} ({fields[5]})")
    return found


def check_service(context: Context) -> Sequence[Finding]:
    api = context.config.api
    if api.port == 0:
        return []  # a port chosen at start: nothing to look for
    try:
        socket.create_connection((api.host, api.port), timeout=0.5).close()
    except OSError:
        return [ok("service", "posd is not running here, so the devices are free to test")]
    return [
        warn(
            "service",
            f"posd seems to be running (its kiosk API answers on {api.host}:{api.port}); "
            "it holds the scanner, display and printer",
            "stop it for the test: systemctl stop posd (start it again afterwards)",
        )
    ]


# --------------------------------------------------------------------------- ledger


def check_ledger(context: Context) -> Sequence[Finding]:
    config = context.config
    path = config.ledger.path
    if not path.exists():
        return [
            fail(
                "ledger",
                f"no ledger at {path}",
                f"create it: posd provision (or posd --db {path} init --terminal "
                f"{config.terminal.id} --branch {config.terminal.branch})",
            )
        ]
    damage = file_problem(path)
    if damage is not None:
        return [fail("ledger", damage, ADVICE)]
    try:
        conn = connect_read_only(path)
    except sqlite3.Error as error:
        return [fail("ledger", f"{path} cannot be opened ({error})", "check its owner and mode")]
    try:
        damage = schema_problem(conn, path)
        if damage is not None:
            return [fail("ledger", damage, ADVICE)]
        return _examine(context, conn, path)
    except sqlite3.DatabaseError as error:
        return [
            fail(
                "ledger",
                f"{path} cannot be read as a ledger ({error})",
                "stop the lane, keep the file for investigation and call support",
            )
        ]
    finally:
        conn.close()


def _examine(context: Context, conn: sqlite3.Connection, path: Path) -> list[Finding]:
    config = context.config
    problems = integrity_problems(conn)
    if problems:
        return [
            fail(
                "ledger",
                f"{path}: SQLite integrity check failed: {'; '.join(problems)}",
                "stop the lane, keep the file for investigation and call support; HQ holds "
                "every event it has received",
            )
        ]
    store = LedgerStore(Database(conn))
    found = []
    if (store.terminal, store.branch) != (config.terminal.id, config.terminal.branch):
        found.append(
            fail(
                "ledger",
                f"{path} belongs to terminal {store.terminal} at branch {store.branch}, not "
                f"{config.terminal.id} at {config.terminal.branch}; posd will not start",
                "fix terminal.id and terminal.branch, or ledger.path",
            )
        )
    else:
        found.append(ok("ledger", f"{path}: SQLite integrity check ok (epoch {store.epoch})"))
    report = verify_chain(store)
    if report.finding is not None:
        where = report.finding
        at = f" at terminal {where.terminal} seq {where.seq}" if where.seq is not None else ""
        found.append(
            fail(
                "hash chain",
                f"broken{at}: {where.message}",
                "the ledger was edited or damaged: stop the lane, keep the file for "
                "investigation and call support",
            )
        )
    else:
        found.append(
            ok("hash chain", f"intact over {report.events} events in {report.streams} stream(s)")
        )
    last_event_at = last_own_event_at(store)
    if last_event_at is not None:
        context.last_event_at = last_event_at
    return found


# ----------------------------------------------------------------------------- disk


def check_disk(context: Context) -> Sequence[Finding]:
    options = context.options
    folder = context.config.ledger.path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    usage = shutil.disk_usage(folder)
    free, fraction = usage.free, usage.free / usage.total if usage.total else 0.0
    detail = f"{_size(free)} free of {_size(usage.total)} ({fraction:.0%}) where the ledger is"
    if free < options.disk_fail_bytes or fraction < options.disk_fail_fraction:
        return [
            fail(
                "disk",
                detail,
                "free space now: a full disk takes the lane out of service (old logs: "
                "journalctl --vacuum-size=50M)",
            )
        ]
    if free < options.disk_warn_bytes or fraction < options.disk_warn_fraction:
        return [warn("disk", detail, "free some space before it runs out")]
    return [ok("disk", detail)]


def _size(count: int) -> str:
    amount = float(count)
    for unit in ("B", "KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"


# ---------------------------------------------------------------------------- clock


def ntp_synchronised() -> bool | None:
    """What `timedatectl` says about NTP synchronisation; None when it cannot say."""
    if shutil.which("timedatectl") is None:
        return None
    try:
        done = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    answer = done.stdout.strip()
    return {"yes": True, "no": False}.get(answer) if done.returncode == 0 else None


def installed_at() -> datetime:
    """When this posd was installed: the clock cannot honestly be earlier."""
    import daemon

    return datetime.fromtimestamp(Path(daemon.__file__).stat().st_mtime, UTC)


def check_clock(context: Context) -> Sequence[Finding]:
    now = context.wall()
    floors = [("posd was installed", installed_at())]
    if context.last_event_at is not None:
        floors.append(("the ledger's newest event", context.last_event_at))
    shown = now.isoformat(timespec="seconds")
    action = (
        "set the time (timedatectl set-ntp true, and check that NTP, udp/123, is reachable); "
        "receipts and ledger events carry this clock"
    )
    if now.year not in _SANE_YEARS:
        return [fail("clock", f"the clock says {shown}, which cannot be right", action)]
    for what, floor in floors:
        if now < floor:
            return [
                fail(
                    "clock",
                    f"the clock says {shown}, before {what} "
                    f"({floor.isoformat(timespec='seconds')})",
                    action,
                )
            ]
    synced = (context.ntp_synchronised or ntp_synchronised)()
    if synced is None:
        return [ok("clock", f"{shown}; NTP synchronisation unknown (no timedatectl answer)")]
    if not synced:
        return [
            warn(
                "clock",
                f"{shown}; not synchronised by NTP",
                "check timedatectl timesync-status and that NTP (udp/123) is reachable",
            )
        ]
    return [ok("clock", f"{shown}; synchronised by NTP")]


# ------------------------------------------------------------------------ file modes


def check_permissions(context: Context) -> Sequence[Finding]:
    config = context.config
    loose: list[str] = []
    if context.config_path is not None:
        _no_world(context.config_path, loose, "chmod 0640 (owner root, group posd)")
    ledger = config.ledger.path
    for path in (ledger, Path(f"{ledger}-wal"), Path(f"{ledger}-shm")):
        _private(path, loose, "chmod 0600 (owner posd)")
    for key in ("password_file", "key_file"):
        secret = replication_file(config.replication, key)
        if secret:
            _private(Path(secret), loose, "chmod 0600 (owner posd)")
    if not loose:
        if context.config_path is None and not ledger.exists():
            return [skip("permissions", "no files to look at")]
        return [
            ok("permissions", "the configuration, ledger and secrets are not readable by others")
        ]
    return [warn("permissions", "; ".join(loose), "others could read the ledger or secrets")]


def _no_world(path: Path, loose: list[str], fix: str) -> None:
    with contextlib.suppress(OSError):
        if stat.S_IMODE(path.stat().st_mode) & 0o007:
            loose.append(f"{path} is readable by every user: {fix}")


def _private(path: Path, loose: list[str], fix: str) -> None:
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            loose.append(f"{path} has mode {mode:04o}: {fix}")
