"""The appliance files in systemd/: the unit systemd will load, the sandbox it promises,
the users and directories it needs, and udev rules that parse and agree with the unit."""

from __future__ import annotations

import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD_DIR / "posd.service"
SYSUSERS = SYSTEMD_DIR / "posd.sysusers"
TMPFILES = SYSTEMD_DIR / "posd.tmpfiles"
RULES = SYSTEMD_DIR / "99-posd.rules"
EXAMPLE_CONFIG = SYSTEMD_DIR / "posd.toml.example"

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (Debian package: systemd)"
)


def unit_settings(path: Path = UNIT) -> dict[str, list[tuple[str, str]]]:
    """Section name -> (key, value) in order; keys may repeat, as in systemd."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"{raw!r} is outside any section"
        key, sep, value = line.partition("=")
        assert sep, f"{raw!r} is not key=value"
        current.append((key.strip(), value.strip()))
    return sections


def values(section: str, key: str) -> list[str]:
    return [v for k, v in unit_settings()[section] if k == key]


def only(section: str, key: str) -> str:
    found = values(section, key)
    assert len(found) == 1, f"[{section}] {key}= appears {len(found)} times"
    return found[0]


def runnable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart= pointing at a program that exists on this machine.

    `systemd-analyze verify` refuses a unit whose ExecStart binary is missing, and the
    real path (/opt/posd/.venv/bin/posd) exists only on an installed terminal. The copy
    runs this checkout's `posd` console script when it is installed, else this Python;
    every other line is the unit as shipped.
    """
    scripts = Path(sys.executable).parent
    program = shutil.which("posd", path=str(scripts)) or sys.executable
    text = UNIT.read_text(encoding="utf-8")
    real = "ExecStart=/opt/posd/.venv/bin/posd "
    assert text.count(real) == 1
    copy = tmp_path / "posd.service"
    copy.write_text(text.replace(real, f"ExecStart={program} "), encoding="utf-8")
    return copy


# ------------------------------------------------------------------ systemd accepts it


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # verify exits 0 even for an unknown key or a bad value; it only prints a warning.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_analyze_verify_would_catch_a_mistake(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    copy = runnable_copy(tmp_path)
    copy.write_text(
        copy.read_text().replace("UMask=0077", "UMask=0077\nWatchdogSecs=20s"), encoding="utf-8"
    )
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "WatchdogSecs" in result.stderr


@needs_systemd_analyze
def test_systemd_rates_the_sandbox_ok(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE is not None
    offline = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--help"], capture_output=True, text=True, timeout=60
    )
    if "--offline" not in offline.stdout:
        pytest.skip("this systemd-analyze cannot rate a unit file offline (needs systemd 250+)")
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", "--no-pager", str(runnable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for posd\.service: ([0-9.]+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    # 0 is a locked-down service, 10 an unprotected one; systemd calls below 2 "OK".
    assert float(match.group(1)) < 2.0, result.stdout


# ------------------------------------------------------------------ what the unit promises


def test_the_unit_reports_readiness_and_is_watched() -> None:
    assert only("Service", "Type") == "notify"
    assert only("Service", "NotifyAccess") == "main"
    assert only("Service", "WatchdogSec") == "20s"
    assert only("Service", "Restart") == "on-failure"
    assert only("Service", "RestartSec")
    assert only("Service", "TimeoutStartSec")
    assert only("Unit", "StartLimitIntervalSec")
    assert only("Unit", "StartLimitBurst")
    assert only("Service", "ExecStart") == (
        "/opt/posd/.venv/bin/posd run --config /etc/posd/posd.toml"
    )


def test_an_unprovisioned_terminal_skips_the_service_instead_of_failing_it() -> None:
    config = only("Service", "ExecStart").split("--config ", 1)[1]
    assert only("Unit", "ConditionPathExists") == config == "/etc/posd/posd.toml"


def test_the_unit_never_arms_a_test_only_switch() -> None:
    # POSD_TEST_* variables (the watchdog stall trigger) are set by the boot tests'
    # drop-ins only; a terminal's unit must never carry one.
    text = UNIT.read_text(encoding="utf-8")
    assert "POSD_TEST" not in text
    assert not values("Service", "Environment") and not values("Service", "EnvironmentFile")


def test_the_unit_runs_as_posd_with_a_private_ledger_directory() -> None:
    assert only("Service", "User") == "posd"
    assert only("Service", "Group") == "posd"
    assert only("Service", "SupplementaryGroups").split() == ["input", "dialout", "gpio", "lp"]
    assert only("Service", "StateDirectory") == "posd"
    assert only("Service", "StateDirectoryMode") == "0700"
    assert only("Service", "ConfigurationDirectory") == "posd"
    assert only("Service", "UMask") == "0077"


HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
    "DevicePolicy": "closed",
}


@pytest.mark.parametrize(("key", "expected"), HARDENING.items())
def test_the_unit_has_the_hardening_line(key: str, expected: str) -> None:
    assert only("Service", key) == expected


def test_system_calls_are_limited_to_what_a_service_needs() -> None:
    assert values("Service", "SystemCallFilter")[0] == "@system-service"
    assert "PrivateDevices" not in dict(unit_settings()["Service"])  # it would hide the devices


def test_only_the_peripheral_device_classes_are_allowed() -> None:
    allowed = dict(v.split() for v in values("Service", "DeviceAllow"))
    assert allowed == {
        "char-input": "r",
        "char-ttyUSB": "rw",
        "char-ttyACM": "rw",
        "char-usb": "rw",
        "char-usb_device": "rw",
        "char-gpiochip": "rw",
    }


# ------------------------------------------------------------------ users and directories


def test_sysusers_makes_every_group_the_unit_runs_in() -> None:
    lines = [ln.split() for ln in SYSUSERS.read_text().splitlines() if ln and ln[0] != "#"]
    made = {f[1] for f in lines if f[0] in ("g", "u")}
    assert {"posd", *only("Service", "SupplementaryGroups").split()} <= made


@pytest.mark.skipif(
    os.geteuid() != 0
    or not shutil.which("systemd-sysusers")
    or not shutil.which("systemd-tmpfiles"),
    reason="needs root and systemd-sysusers/systemd-tmpfiles to build a throwaway root",
)
def test_sysusers_and_tmpfiles_make_a_private_ledger_directory_owned_by_posd(
    tmp_path: Path,
) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    for source, folder in ((SYSUSERS, "sysusers.d"), (TMPFILES, "tmpfiles.d")):
        (root / "usr/lib" / folder).mkdir(parents=True)
        shutil.copy(source, root / "usr/lib" / folder / "posd.conf")
    for tool in (["systemd-sysusers"], ["systemd-tmpfiles", "--create"]):
        result = subprocess.run(
            [*tool, f"--root={root}"], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
    passwd = {
        f[0]: f for f in (ln.split(":") for ln in (root / "etc/passwd").read_text().splitlines())
    }
    groups = {
        f[0]: f for f in (ln.split(":") for ln in (root / "etc/group").read_text().splitlines())
    }
    assert passwd["posd"][6] == "/usr/sbin/nologin"
    for group in only("Service", "SupplementaryGroups").split():
        assert "posd" in groups[group][3].split(",")
    ledger_dir = (root / "var/lib/posd").stat()
    assert oct(ledger_dir.st_mode & 0o7777) == "0o700"
    assert str(ledger_dir.st_uid) == passwd["posd"][2]


# ------------------------------------------------------------------ udev rules


@dataclass(frozen=True)
class Term:
    key: str
    attr: str | None
    op: str
    value: str


_TERM = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[^}]+)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>[^"]*)"\s*'
)
# udev(7): keys that only match, keys that only assign, and keys that can do both.
_MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER",
               "DRIVERS", "ATTRS", "TAGS", "TEST", "PROGRAM", "RESULT", "CONST"}  # fmt: skip
_ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
_EITHER = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
_NEEDS_ATTR = {"ATTR", "ATTRS", "SYSCTL", "ENV", "IMPORT", "SECLABEL", "CONST"}


def parse_rule(line: str) -> list[Term]:
    """One udev rule as its comma-separated terms, refusing what udev would refuse."""
    terms = []
    for part in re.split(r',(?=(?:[^"]*"[^"]*")*[^"]*$)', line):
        match = _TERM.fullmatch(part)
        assert match is not None, f'{part!r} is not KEY=="value" / KEY="value"'
        term = Term(match["key"], match["attr"], match["op"], match["value"])
        assert term.key in _MATCH_ONLY | _ASSIGN_ONLY | _EITHER, f"unknown key in {part!r}"
        if term.key in _MATCH_ONLY:
            assert term.op in ("==", "!="), f"{term.key} only matches: {part!r}"
        if term.key in _ASSIGN_ONLY:
            assert term.op in ("=", "+=", "-=", ":="), f"{term.key} only assigns: {part!r}"
        if term.key in _NEEDS_ATTR:
            assert term.attr, f"{term.key} needs {{name}}: {part!r}"
        if term.key == "MODE":
            assert re.fullmatch(r"0[0-7]{3}", term.value), f"MODE is not octal: {part!r}"
        terms.append(term)
    return terms


def rules() -> list[list[Term]]:
    text = RULES.read_text(encoding="utf-8").replace("\\\n", "")
    return [
        parse_rule(line) for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]


def first(rule: list[Term], key: str, attr: str | None = None) -> Term | None:
    return next((t for t in rule if t.key == key and t.attr == attr), None)


def test_every_udev_rule_line_parses() -> None:
    parsed = rules()
    assert len(parsed) >= 6
    labels = {t.value for r in parsed for t in r if t.key == "LABEL"}
    gotos = {t.value for r in parsed for t in r if t.key == "GOTO"}
    assert gotos <= labels


def test_the_rule_parser_refuses_what_udev_refuses() -> None:
    for bad in (
        'ATTRS{idVendor}="05e0"',  # assigning to a match-only key
        'GROUP=="lp"',  # matching on an assign-only key
        'SUBSYSTEM=="tty" SYMLINK+="x"',  # missing comma
        'ENV="1"',  # ENV without {name}
        'MODE="660"',  # not octal with a leading 0
        "KERNEL==ttyUSB0",  # unquoted value
    ):
        with pytest.raises(AssertionError):
            parse_rule(bad)


def test_scanner_printer_and_display_get_stable_names_by_their_ids() -> None:
    named: dict[str, list[list[Term]]] = {}
    for rule in rules():
        for term in rule:
            if term.key == "SYMLINK":
                assert term.op == "+="
                named.setdefault(term.value, []).append(rule)
    assert set(named) == {"posd-scanner", "posd-printer", "posd-display"}
    for rule in (r for group in named.values() for r in group):
        assert first(rule, "ATTRS", "idVendor") is not None
        assert first(rule, "ATTRS", "idProduct") is not None
    (display,) = named["posd-display"]
    assert first(display, "ATTRS", "serial") is not None


def test_no_rule_renames_a_node_or_hands_it_to_the_seat_user() -> None:
    for rule in rules():
        assert first(rule, "NAME") is None  # udev only renames network interfaces
        assert all(not (t.key == "TAG" and t.value == "uaccess") for t in rule)


def test_modemmanager_never_probes_a_posd_serial_port() -> None:
    for rule in rules():
        subsystem = first(rule, "SUBSYSTEM")
        if subsystem is not None and subsystem.value == "tty":
            ignore = first(rule, "ENV", "ID_MM_DEVICE_IGNORE")
            assert ignore is not None and ignore.value == "1"


# A device node's kernel name -> the /proc/devices group DeviceAllow= must name for it.
_DEVICE_GROUP = {
    "event": "char-input",
    "ttyACM": "char-ttyACM",
    "ttyUSB": "char-ttyUSB",
    "lp": "char-usb",
    "gpiochip": "char-gpiochip",
}


def test_every_device_udev_hands_to_posd_is_reachable_by_the_service() -> None:
    allowed = {v.split()[0] for v in values("Service", "DeviceAllow")}
    groups = set(only("Service", "SupplementaryGroups").split())
    for rule in rules():
        group = first(rule, "GROUP")
        if group is None:
            continue
        assert group.value in groups
        kernel = first(rule, "KERNEL")
        devtype = first(rule, "ENV", "DEVTYPE")
        if kernel is not None:
            device_group = _DEVICE_GROUP[re.sub(r"[^a-zA-Z].*", "", kernel.value)]
        else:
            assert devtype is not None and devtype.value == "usb_device"
            device_group = "char-usb_device"
        assert device_group in allowed, f"{device_group} is missing from DeviceAllow="


def test_udevadm_verify_accepts_the_rules() -> None:
    udevadm = shutil.which("udevadm")
    if udevadm is None:
        pytest.skip("udevadm is not installed (Debian package: udev)")
    probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("this udevadm has no 'verify' command (needs systemd 254+)")
    result = subprocess.run(
        [udevadm, "verify", "--resolve-names=never", str(RULES)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ the example config


@pytest.mark.skipif(not EXAMPLE_CONFIG.exists(), reason="no example config in systemd/")
def test_the_example_config_uses_what_the_unit_and_udev_provide() -> None:
    config = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    state_dir = Path("/var/lib") / only("Service", "StateDirectory")
    assert Path(config["ledger"]["path"]).parent == state_dir
    udev_names = {f"/dev/{t.value}" for r in rules() for t in r if t.key == "SYMLINK"}
    devices = {
        config["scanners"][0]["device"],
        config["display"]["port"],
        config["printer"]["path"],
    }
    assert devices == udev_names
    assert "--config /etc/posd/posd.toml" in only("Service", "ExecStart")


# ------------------------------------------------------------------ MemoryDenyWriteExecute

# systemd 252's MemoryDenyWriteExecute= filter (src/shared/seccomp-util.c), installed
# with libseccomp, then the libraries the daemon runs on are loaded and exercised.
_UNDER_MDWE = textwrap.dedent(
    """
    import ctypes, errno, mmap, sys

    class Cmp(ctypes.Structure):
        _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int),
                    ("a", ctypes.c_uint64), ("b", ctypes.c_uint64)]

    lib = ctypes.CDLL(sys.argv[1], use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_rule_add_array.argtypes = [
        ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(Cmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    ALLOW, DENY, MASKED_EQ = 0x7FFF0000, 0x00050000 | errno.EPERM, 7
    EXEC, WRITE, SHM_EXEC = 4, 2, 0o100000
    ctx = lib.seccomp_init(ALLOW)
    for name, mask, value in (("mmap", EXEC | WRITE, EXEC | WRITE), ("mprotect", EXEC, EXEC),
                              ("pkey_mprotect", EXEC, EXEC), ("shmat", SHM_EXEC, SHM_EXEC)):
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        rule = Cmp(2, MASKED_EQ, mask, value)  # on the third argument: prot / shmflg
        assert lib.seccomp_rule_add_array(ctx, DENY, nr, 1, ctypes.byref(rule)) == 0
    assert lib.seccomp_load(ctx) == 0
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        pass
    else:
        sys.exit("the filter is not in force")

    import asyncio, sqlite3, threading
    import aiohttp, biip, click, escpos.printer, evdev, gpiozero, paho.mqtt.client, pydantic
    import serial, sqlite_utils, stdnum.luhn
    from xkbcommon import xkb
    import daemon.journal, daemon.sdnotify
    from daemon.rules.serials import compile_serial_rule

    assert compile_serial_rule("(A+)+$").fullmatch("AAAA")  # RE2 builds no code at run time

    xkb.Context().keymap_new_from_names(layout="us")
    assert ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int)(lambda x: x + 1)(41) == 42
    db = sqlite3.connect(":memory:")
    db.create_function("twice", 1, lambda x: 2 * x)
    assert db.execute("select twice(21)").fetchone() == (42,)
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    asyncio.run(asyncio.sleep(0))
    print("ok")
    """
)


@pytest.mark.skipif(
    ctypes.util.find_library("seccomp") is None, reason="libseccomp is not installed"
)
def test_the_daemons_libraries_work_under_memory_deny_write_execute() -> None:
    assert only("Service", "MemoryDenyWriteExecute") == "yes"
    library = ctypes.util.find_library("seccomp")
    assert library is not None
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_MDWE, library],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=SYSTEMD_DIR.parent,
    )
    assert (result.returncode, result.stdout) == (0, "ok\n"), result.stderr


def test_the_example_config_is_one_the_daemon_accepts() -> None:
    from daemon.config.model import load_config

    config = load_config(EXAMPLE_CONFIG)
    assert (config.terminal.id, config.terminal.branch) == ("T-0042", "BR-017")
