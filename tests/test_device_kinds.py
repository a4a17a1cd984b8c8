"""Device kinds: each registered once, and everyone else going through the registry.

A kind of scanner that posd does not ship — one that writes each scan as a line into a
named pipe — is registered here, in the test, and nowhere else. Its configuration
section is read, the lane builds it and sells what it scans, the doctor checks it and
provisioning recognises it, all without a line changed in the configuration, the lane,
the doctor or provisioning: they only see `KINDS.adding(FIFO_SCANNER)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tomllib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.config.base import Section
from daemon.config.devices import StableDevice
from daemon.config.model import ConfigFileError, PosdConfig, parse_config
from daemon.doctor.devices import check_scanners
from daemon.doctor.findings import Context, DoctorOptions, Status
from daemon.drivers.checks import CheckContext, Finding, Where
from daemon.drivers.display.kind import DISPLAY, DisplayConfig, DisplayPort
from daemon.drivers.kinds import KINDS
from daemon.drivers.printer_transport import PRINTER
from daemon.drivers.registry import (
    Attached,
    DeviceKind,
    DeviceKindError,
    DeviceKinds,
    Recognition,
)
from daemon.drivers.scanner import (
    SCANNER,
    ReadingScanner,
    ScanAssembler,
    ScanEvent,
    ScannerConfigBase,
    check_scanner,
)
from daemon.ledger import Ledger
from daemon.provision.answers import Answers, Current
from daemon.provision.inventory import inventory
from daemon.provision.plan import ProvisionError, plan, printer_section
from daemon.provision.prompts import current_answers
from simulators.lane import wait_until
from tests.test_architecture import ROOT, imports_of, modules

TERMINAL, BRANCH = "T-001", "NORTH"

# ------------------------------------------------------- a kind posd does not ship


class FifoScannerConfig(ScannerConfigBase):
    """A scanner that writes each scan as one line into a named pipe."""

    kind: Literal["fifo"]
    path: StableDevice


class FifoScanner(ReadingScanner):
    """Reads the lines a fifo scanner writes into its pipe, one scan per line."""

    def __init__(self, path: str, source: str) -> None:
        super().__init__(ScanAssembler(source), clock=time.monotonic)
        self._path = path
        self._fd = -1

    def _connect(self) -> int:
        # Read and write: the pipe never reads as ended while nobody writes to it.
        self._fd = os.open(self._path, os.O_RDWR | os.O_NONBLOCK)
        return self._fd

    def _disconnect(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)

    def _read(self) -> bytes | None:
        try:
            return os.read(self._fd, 4096)
        except BlockingIOError:
            return None

    def feed(self, data: bytes, now: float) -> Sequence[ScanEvent]:
        events: list[ScanEvent] = []
        *lines, rest = data.decode().split("\n")
        for line in lines:
            events += self._assembler.typed(line, now, now)
            events += self._assembler.ended(now, now)
        events += self._assembler.typed(rest, now, now)
        return events


def _build(section: FifoScannerConfig) -> ReadingScanner:
    return FifoScanner(section.path, section.name or section.path)


def _check(section: FifoScannerConfig, context: CheckContext, where: Where) -> list[Finding]:
    path = section.path
    return check_scanner(
        context,
        where,
        lambda: _build(section),
        device=path,
        key="path",
        missing=lambda: None if os.path.exists(path) else f"{path} does not exist",
    )


FIFO_WORKS = 0xF1F0  # the USB vendor id of the (made-up) maker of fifo scanners


def _recognise(attached: Attached) -> Recognition | None:
    if attached.node is None and attached.name.startswith("/dev/fifo/"):
        return Recognition("likely", "named as a fifo scanner's pipe")
    if attached.node == "serial" and attached.vendor == FIFO_WORKS:
        return Recognition("likely", "made by Fifo Works, whose scanners write into a pipe")
    return None


FIFO_SCANNER: DeviceKind[FifoScannerConfig, ReadingScanner] = DeviceKind(
    name="fifo",
    role=SCANNER,
    section=FifoScannerConfig,
    build=_build,
    check=_check,
    recognise=_recognise,
    path_key="path",
    label="fifo",
)
WITH_FIFO = KINDS.adding(FIFO_SCANNER)


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fifo-scanner"
    os.mkfifo(path)
    yield path


def _settings(tmp_path: Path, scanner: dict[str, Any]) -> dict[str, Any]:
    return {
        "terminal": {"id": TERMINAL, "branch": BRANCH},
        "ledger": {"path": str(tmp_path / "ledger.db")},
        "scanners": [scanner],
        "api": {"port": 0},
    }


def _scan(path: Path, text: str) -> int:
    """The scanner writes `text` into its pipe; the returned descriptor keeps it there."""
    fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)
    os.write(fd, text.encode() + b"\n")
    return fd


# ------------------------------------------------------------------- the seam


def test_a_kind_registered_in_a_test_is_read_from_the_configuration(fifo: Path) -> None:
    scanner = {"kind": "fifo", "path": str(fifo), "name": "pipe"}
    config = parse_config(_settings(fifo.parent, scanner), kinds=WITH_FIFO)
    (section,) = config.scanners
    assert isinstance(section, FifoScannerConfig) and section.path == str(fifo)
    assert isinstance(config, PosdConfig)
    # Its keys are checked like any section's, and its name joins the kinds offered.
    with pytest.raises(ConfigFileError) as refused:
        parse_config(_settings(fifo.parent, {"kind": "fifo", "pth": "/x"}), kinds=WITH_FIFO)
    assert refused.value.problems[0] == "scanners[0].path: is required"
    assert refused.value.problems[1].startswith("scanners[0].pth: unknown key")
    with pytest.raises(ConfigFileError) as refused:
        parse_config(_settings(fifo.parent, {"kind": "usb"}), kinds=WITH_FIFO)
    assert refused.value.problems == [
        "scanners[0].kind: must be one of evdev, serial, fifo (got 'usb')"
    ]
    # Without it, posd's own registry refuses the section, naming the kinds it has.
    with pytest.raises(ConfigFileError) as refused:
        parse_config(_settings(fifo.parent, scanner))
    assert refused.value.problems == ["scanners[0].kind: must be one of evdev, serial (got 'fifo')"]


def test_the_lane_builds_a_kind_registered_in_a_test_and_sells_what_it_scans(
    tmp_path: Path, fifo: Path
) -> None:
    from daemon.lane.run import start

    with Ledger.create(tmp_path / "ledger.db", terminal=TERMINAL, branch=BRANCH) as made:
        made.define_product("LAP", "Laptop", actor="setup")
        made.receive("PO-1", "Acme", "LAP", ["SN-1"], actor="ann")
    config = parse_config(_settings(tmp_path, {"kind": "fifo", "path": str(fifo)}), kinds=WITH_FIFO)

    async def play() -> dict[str, Any]:
        daemon = await start(config, kinds=WITH_FIFO)
        try:
            events = daemon.lane.subscribe()
            held = _scan(fifo, "SN-1")
            try:
                await wait_until(lambda: daemon.lane.taken > 0, "the lane to take the scan")
                await wait_until(lambda: daemon.lane.idle, "the lane to decide")
            finally:
                os.close(held)
            seen = []
            while not events.empty():
                event = events.get_nowait()
                if event is not None and event["input"]["kind"] == "scan":
                    seen.append(event)
            basket = daemon.lane.state.basket
            assert basket is not None and [line.serial for line in basket.lines] == ["SN-1"]
            return seen[-1]
        finally:
            await daemon.stop()

    event = asyncio.run(play())
    assert event["verdict"]["code"] == "unit_added"
    assert event["input"]["text"] == "SN-1"


def test_the_doctor_checks_a_kind_registered_in_a_test(tmp_path: Path, fifo: Path) -> None:
    config = parse_config(_settings(tmp_path, {"kind": "fifo", "path": str(fifo)}), kinds=WITH_FIFO)
    context = Context(config, DoctorOptions(scan_timeout_s=10), kinds=WITH_FIFO)
    held = _scan(fifo, "SN-DOCTOR")
    try:
        (found,) = check_scanners(context)
    finally:
        os.close(held)
    assert found.status is Status.OK and found.detail == f"{fifo}: read 'SN-DOCTOR'"
    # Its own check says what is missing, naming its own key.
    fifo.unlink()
    (found,) = check_scanners(context)
    assert found.status is Status.FAIL and found.detail == f"{fifo} does not exist"
    assert found.action.endswith("fix scanners[0].path")


def _tty(root: Path, node: str, vendor: str, label: str) -> None:
    (root / "dev").mkdir(parents=True, exist_ok=True)
    (root / "dev" / node).touch()
    usb = root / "sys/devices/usb1/1-4"
    (usb / "1-4:1.0").mkdir(parents=True)
    (usb / "idVendor").write_text(vendor + "\n")
    (usb / "idProduct").write_text("0001\n")
    (usb / "product").write_text(label + "\n")
    link = root / "sys/class/tty" / node / "device"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../../devices/usb1/1-4/1-4:1.0")
    by_id = root / "dev/serial/by-id/usb-Fifo_Works_Pipe-if00"
    by_id.parent.mkdir(parents=True)
    by_id.symlink_to(f"../../{node}")


def test_provisioning_recognises_a_kind_registered_in_a_test(tmp_path: Path) -> None:
    root = tmp_path / "root"
    _tty(root, "ttyACM3", "f1f0", "Pipe")
    # `posd devices`: the attached device is judged by every scanner kind, the new one too.
    (device,) = inventory(root, WITH_FIFO).devices
    assert (device.scanner, device.why) == (
        "likely",
        "made by Fifo Works, whose scanners write into a pipe",
    )
    assert inventory(root).devices[0].scanner == "possible"  # posd's own kinds: some port
    # `posd provision --scanner /dev/fifo/till-1`: its kind and its keys come from the kind.
    answers = Answers(terminal=TERMINAL, branch=BRANCH, scanner="/dev/fifo/till-1")
    planned = plan(answers, Current(root, {}, None), WITH_FIFO)
    assert planned.settings["scanners"] == [{"kind": "fifo", "path": "/dev/fifo/till-1"}]
    assert isinstance(planned.config.scanners[0], FifoScannerConfig)
    assert tomllib.loads(planned.text)["scanners"] == [{"kind": "fifo", "path": "/dev/fifo/till-1"}]
    assert planned.warnings == (
        "scanners[0].path: /dev/fifo/till-1 is not attached now; posd waits for it, and "
        "`posd doctor` checks it",
    )
    # A re-run offers what is configured as the answer.
    again = Current(root, planned.settings, None)
    assert current_answers(again, inventory(root, WITH_FIFO), WITH_FIFO)["scanner"] == (
        "/dev/fifo/till-1"
    )
    # Asked for by name, as --scanner-kind does.
    named = Answers(terminal=TERMINAL, branch=BRANCH, scanner="/dev/pipe-1", scanner_kind="fifo")
    assert plan(named, Current(root, {}, None), WITH_FIFO).settings["scanners"][0]["kind"] == "fifo"
    with pytest.raises(ProvisionError, match=r"must be one of evdev, serial \(got 'fifo'\)"):
        plan(named, Current(root, {}, None))


def test_posd_provision_offers_the_registered_scanner_kinds() -> None:
    from click.testing import CliRunner

    from daemon.cli import build

    shown = CliRunner().invoke(build(), ["provision", "--help"])
    assert shown.exit_code == 0 and "--scanner-kind [evdev|serial]" in shown.output
    refused = CliRunner().invoke(build(), ["provision", "--scanner-kind", "fifo", "--yes"])
    assert refused.exit_code == 2
    assert "'fifo' is not one of 'evdev', 'serial'" in refused.output


# ------------------------------------------------------ what the registry refuses


def _display_kind(name: str, section: type[Section] = DisplayConfig) -> DeviceKind[Any, Any]:
    def build(_: Any) -> DisplayPort:
        raise AssertionError("never built")

    def check(_: Any, __: CheckContext, ___: Where) -> list[Finding]:
        return []

    return DeviceKind(name=name, role=DISPLAY, section=section, build=build, check=check)


class _NoTag(ScannerConfigBase):
    path: str


class _NotAScanner(Section):
    kind: Literal["odd"]


class _OtherTag(ScannerConfigBase):
    kind: Literal["pipe"]


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        (_display_kind("second"), "a display section does not say which kind it is"),
        (
            DeviceKind(name="x", role=SCANNER, section=_NoTag, build=_build, check=_check),
            "its section needs a 'kind' key",
        ),
        (
            DeviceKind(name="odd", role=SCANNER, section=_NotAScanner, build=_build, check=_check),
            "must derive from ScannerConfigBase",
        ),
        (
            DeviceKind(name="fifo2", role=SCANNER, section=_OtherTag, build=_build, check=_check),
            "needs a 'kind' key that says 'fifo2'",
        ),
        (FIFO_SCANNER, None),
    ],
    ids=["second untagged kind", "no tag key", "wrong base", "tag says another", "twice"],
)
def test_kinds_that_a_configuration_could_not_tell_apart_are_refused(
    kind: DeviceKind[Any, Any], said: str | None
) -> None:
    with pytest.raises(DeviceKindError, match=said or "registered twice"):
        WITH_FIFO.adding(kind)


def test_lane_doctor_provisioning_and_config_name_no_kind_of_their_own() -> None:
    """Outside its driver, a kind is only ever reached through the registry: no module of
    the configuration, the lane, the doctor, provisioning or the CLI imports a kind's
    record or a section that belongs to one kind of a role with several."""
    own = {
        kind.section.__name__
        for kind in KINDS.kinds
        if kind.role.tag is not None and kind.section is not kind.role.base
    }
    records = {
        name
        for module in modules(ROOT)
        if module.name.startswith("daemon.drivers")
        for name in _kind_records(module.path)
    }
    assert own and records, "the check must know what to look for"
    wrong = []
    for module in modules(ROOT):
        if not module.name.startswith(
            ("daemon.config", "daemon.lane", "daemon.doctor", "daemon.provision", "daemon.cli")
        ):
            continue
        for name in imports_of(module):
            if name.rpartition(".")[2] in own | records:
                wrong.append(f"{module.name} imports {name}")
    assert not wrong, "\n".join(wrong)


def _kind_records(path: Path) -> set[str]:
    import ast

    found = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and "DeviceKind[" in ast.unparse(node.annotation)
        ):
            found.add(node.target.id)
    return found


# ------------------------------------------------------------ hostile answers

_PARTS = st.text(max_size=30)
_ANSWERS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["/dev/ttyUSB0", "serial:/dev/ttyACM1", "lp0", "tcp://:9100", "h:", ":1"]),
    st.builds(lambda tail: "/dev/" + tail, _PARTS),
    st.builds(lambda tail: "serial:" + tail, _PARTS),
    st.builds(lambda tail: "serial:/dev/" + tail, _PARTS),
    st.builds(lambda host, port: f"tcp://{host}:{port}", st.text(max_size=15), st.text(max_size=6)),
    st.builds(lambda host, port: f"{host}:{port}", st.text(max_size=15), st.integers(-5, 70000)),
)


@settings(max_examples=300, deadline=None)
@given(answer=_ANSWERS)
def test_any_printer_answer_is_a_section_posd_reads_or_a_refusal_that_quotes_it(
    tmp_path_factory: pytest.TempPathFactory, answer: str
) -> None:
    root = tmp_path_factory.getbasetemp() / "no-such-root"
    try:
        table = printer_section(answer, root)
    except ValueError as refused:
        assert repr(answer) in str(refused)
        return
    settings = {**_settings(root, {"kind": "evdev", "device": "1234:5678"}), "printer": table}
    try:
        config = parse_config(settings)
    except ConfigFileError as refused:
        assert all(p.startswith("printer") for p in refused.problems), refused.problems
        return
    assert config.printer is not None
    # What a re-run offers as the answer gives the same section back.
    kind = KINDS.kind_of(config.printer)
    again = kind.answer_for(table)
    assert again is not None and printer_section(again, root) == table


@pytest.mark.parametrize(
    ("answer", "table"),
    [
        ("serial:/dev/posd-printer", {"transport": "serial", "port": "/dev/posd-printer"}),
        (
            "/dev/serial/by-id/usb-Epson-if00",
            {"transport": "serial", "port": "/dev/serial/by-id/usb-Epson-if00"},
        ),
        ("tcp://192.0.2.10:9100", {"transport": "network", "host": "192.0.2.10", "port": 9100}),
        ("printer.local:9100", {"transport": "network", "host": "printer.local", "port": 9100}),
        ("/dev/usb/lp0", {"transport": "file", "path": "/dev/usb/lp0"}),
    ],
)
def test_each_printer_answer_names_its_transport(
    tmp_path: Path, answer: str, table: dict[str, Any]
) -> None:
    assert printer_section(answer, tmp_path) == table


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


def _section(kind: DeviceKind[Any, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = st.sampled_from([*kind.section.model_fields, "extra", "prot"])
    drawn = st.dictionaries(keys, _VALUES, max_size=6)
    tag = kind.role.tag
    return drawn.map(lambda table: {tag: kind.name, **table} if tag else table)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(WITH_FIFO.kinds), data=st.data())
def test_any_device_section_is_read_or_refused_naming_its_keys(
    kind: DeviceKind[Any, Any], data: st.DataObject
) -> None:
    table = data.draw(_section(kind))
    role = kind.role
    settings = {
        "terminal": {"id": TERMINAL, "branch": BRANCH},
        "ledger": {"path": "l.db"},
        role.key: [table] if role.many else table,
    }
    try:
        config = parse_config(settings, kinds=WITH_FIFO)
    except ConfigFileError as refused:
        assert refused.problems
        for problem in refused.problems:
            assert problem.startswith(role.key), problem
        return
    (placed,) = config.sections(role)
    assert WITH_FIFO.kind_of(placed[1]) is kind


def test_a_registry_reads_nothing_of_a_role_it_has_no_kind_for() -> None:
    only_scanners = DeviceKinds(tuple(k for k in KINDS.kinds if k.role == SCANNER))
    with pytest.raises(DeviceKindError, match="no printer kind is registered"):
        only_scanners.schema(PRINTER)
