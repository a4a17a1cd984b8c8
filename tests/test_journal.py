"""What reaches the journal: native-protocol entries on a real datagram socket standing in
for journald, and the plain stderr lines used when there is no journal."""

from __future__ import annotations

import array
import errno
import fcntl
import io
import logging
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.journal import JournalHandler, encode_entry, setup_logging

Entry = list[tuple[str, bytes]]


def parse_entry(data: bytes) -> Entry:
    """Decode a native-protocol entry the way journald does (written from the spec)."""
    fields: Entry = []
    pos = 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        line = data[pos:end]
        if b"=" in line:
            name, _, value = line.partition(b"=")
            pos = end + 1
        else:
            name = line
            (size,) = struct.unpack_from("<Q", data, end + 1)
            start = end + 1 + 8
            value = data[start : start + size]
            assert data[start + size : start + size + 1] == b"\n"
            pos = start + size + 1
        fields.append((name.decode(), value))
    return fields


class FakeJournald:
    """A datagram socket bound where journald's would be, receiving entries."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(5.0)

    def receive_raw(self) -> tuple[bytes, list[int]]:
        fds = array.array("i")
        data, ancdata, _, _ = self.sock.recvmsg(1 << 20, socket.CMSG_SPACE(4 * fds.itemsize))
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
        return data, list(fds)

    def receive(self) -> dict[str, str]:
        data, fds = self.receive_raw()
        assert fds == []
        return {name: value.decode() for name, value in parse_entry(data)}

    def nothing_waiting(self) -> bool:
        self.sock.setblocking(False)
        try:
            self.sock.recv(1)
        except BlockingIOError:
            return True
        finally:
            self.sock.settimeout(5.0)
        return False


@pytest.fixture
def journald(tmp_path: Path) -> Iterator[FakeJournald]:
    fake = FakeJournald(tmp_path / "socket")
    yield fake
    fake.sock.close()


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in root.handlers:
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def not_a_terminal() -> io.StringIO:
    return io.StringIO()


# ------------------------------------------------------------------ the entries


def test_an_entry_carries_the_terminal_the_event_and_the_serial(journald: FakeJournald) -> None:
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    log = logging.getLogger("daemon.lane.loop")
    line = sys._getframe().f_lineno + 1
    log.info("unit sold", extra={"POSD_EVENT": "sell", "POSD_SERIAL": "SN-1"})
    entry = journald.receive()
    assert entry["MESSAGE"] == "unit sold"
    assert entry["PRIORITY"] == "6"
    assert entry["POSD_TERMINAL"] == "T-0042"
    assert entry["POSD_EVENT"] == "sell"
    assert entry["POSD_SERIAL"] == "SN-1"
    assert entry["SYSLOG_IDENTIFIER"] == "posd"
    assert entry["LOGGER"] == "daemon.lane.loop"
    assert entry["CODE_FILE"] == __file__
    assert entry["CODE_LINE"] == str(line)
    assert entry["CODE_FUNC"] == "test_an_entry_carries_the_terminal_the_event_and_the_serial"


def test_single_line_values_are_sent_readable_as_name_equals_value(
    journald: FakeJournald,
) -> None:
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    logging.getLogger("daemon.lane.loop").warning("printer out of paper", extra={"POSD_EVENT": "x"})
    data, _ = journald.receive_raw()
    assert b"MESSAGE=printer out of paper\n" in data
    assert b"POSD_TERMINAL=T-0042\n" in data
    assert b"PRIORITY=4\n" in data


def test_a_traceback_travels_in_one_entry_with_a_length_prefixed_message(
    journald: FakeJournald,
) -> None:
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    try:
        raise OSError(errno.ENOSPC, "No space left on device", "/var/lib/posd/ledger.db")
    except OSError:
        logging.getLogger("daemon.ledger").exception("sale not committed")
    data, _ = journald.receive_raw()
    entry = dict(parse_entry(data))
    message = entry["MESSAGE"].decode()
    assert message.startswith("sale not committed\nTraceback (most recent call last):\n")
    assert message.endswith("No space left on device: '/var/lib/posd/ledger.db'")
    encoded = message.encode()
    assert b"MESSAGE\n" + struct.pack("<Q", len(encoded)) + encoded + b"\n" in data
    assert entry["PRIORITY"] == b"3"
    assert entry["ERRNO"] == str(errno.ENOSPC).encode()
    assert journald.nothing_waiting()


def test_a_multi_line_field_and_a_repeated_field_arrive_whole(journald: FakeJournald) -> None:
    setup_logging("T-0042", "debug", journal_socket=journald.path, stream=not_a_terminal())
    logging.getLogger("daemon.importer").debug(
        "import refused",
        extra={
            "POSD_ROWS": "row 3: duplicate SN-1\nrow 9: bad check digit",
            "POSD_SERIAL": ["SN-1", "SN-2"],
            "POSD_EMPTY": None,
            "lowercase": "not a journal field",
        },
    )
    data, _ = journald.receive_raw()
    fields = parse_entry(data)
    assert ("POSD_ROWS", b"row 3: duplicate SN-1\nrow 9: bad check digit") in fields
    assert [v for n, v in fields if n == "POSD_SERIAL"] == [b"SN-1", b"SN-2"]
    assert [n for n, _ in fields if n in ("POSD_EMPTY", "lowercase", "LOWERCASE")] == []
    assert dict(fields)["PRIORITY"] == b"7"


@pytest.mark.parametrize(
    ("level", "priority"),
    [(logging.CRITICAL, "2"), (logging.ERROR, "3"), (logging.WARNING, "4"), (logging.INFO, "6")],
)
def test_levels_map_to_syslog_priorities(journald: FakeJournald, level: int, priority: str) -> None:
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    logging.getLogger("daemon").log(level, "x")
    assert journald.receive()["PRIORITY"] == priority


def test_records_below_the_level_are_not_sent(journald: FakeJournald) -> None:
    setup_logging("T-0042", "warning", journal_socket=journald.path, stream=not_a_terminal())
    logging.getLogger("daemon").info("chatty")
    logging.getLogger("daemon").warning("kept")
    assert journald.receive()["MESSAGE"] == "kept"
    assert journald.nothing_waiting()


def test_an_entry_too_big_for_a_datagram_goes_in_a_sealed_memfd(journald: FakeJournald) -> None:
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    # Larger than any send buffer the handler can get (it asks for 8 MiB; the kernel
    # doubles it), so the datagram form must fail with EMSGSIZE.
    big = "x" * (17 * 1024 * 1024)
    logging.getLogger("daemon").info(big, extra={"POSD_EVENT": "dump"})
    payload, fds = journald.receive_raw()
    assert payload == b""
    assert len(fds) == 1
    try:
        seals = fcntl.fcntl(fds[0], fcntl.F_GET_SEALS)
        required = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
        assert seals & required == required
        with os.fdopen(os.dup(fds[0]), "rb") as f:
            f.seek(0)
            entry = dict(parse_entry(f.read()))
    finally:
        os.close(fds[0])
    assert len(entry["MESSAGE"]) == len(big)
    assert entry["POSD_EVENT"] == b"dump"
    assert entry["POSD_TERMINAL"] == b"T-0042"


def test_calling_setup_again_does_not_log_everything_twice(journald: FakeJournald) -> None:
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=not_a_terminal())
    logging.getLogger("daemon").info("once")
    assert journald.receive()["MESSAGE"] == "once"
    assert journald.nothing_waiting()


# ------------------------------------------------------------------ without a journal


def test_without_a_journal_socket_lines_go_to_stderr_with_their_fields(tmp_path: Path) -> None:
    stream = io.StringIO()
    handler = setup_logging("T-0042", "info", journal_socket=tmp_path / "none", stream=stream)
    assert not isinstance(handler, JournalHandler)
    logging.getLogger("daemon.lane.loop").warning(
        "unit already sold", extra={"POSD_EVENT": "sell", "POSD_SERIAL": "SN 1"}
    )
    line = stream.getvalue()
    assert line.endswith(
        " WARNING daemon.lane.loop: unit already sold "
        "[POSD_EVENT=sell POSD_SERIAL='SN 1' POSD_TERMINAL=T-0042]\n"
    )


def test_a_traceback_on_stderr_keeps_the_fields_on_its_first_line(tmp_path: Path) -> None:
    stream = io.StringIO()
    setup_logging("T-0042", "info", journal_socket=tmp_path / "none", stream=stream)
    try:
        raise ValueError("bad row")
    except ValueError:
        logging.getLogger("daemon").exception("import failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("import failed [POSD_TERMINAL=T-0042]")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "ValueError: bad row"


def test_a_person_watching_a_terminal_sees_plain_lines_even_with_a_journal(
    journald: FakeJournald,
) -> None:
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty, os.fdopen(leader, "rb", buffering=0) as screen:
        setup_logging("T-0042", "info", journal_socket=journald.path, stream=tty)
        logging.getLogger("daemon").info("lane open")
        shown = screen.read(4096)
    assert b"INFO daemon: lane open [POSD_TERMINAL=T-0042]" in shown
    assert journald.nothing_waiting()


def test_a_record_journald_cannot_take_is_written_to_stderr(tmp_path: Path) -> None:
    journald = FakeJournald(tmp_path / "socket")
    stream = io.StringIO()
    setup_logging("T-0042", "info", journal_socket=journald.path, stream=stream)
    logging.getLogger("daemon").info("first")
    assert journald.receive()["MESSAGE"] == "first"
    journald.sock.close()  # journald stops; its socket file stays behind
    logging.getLogger("daemon").error("printer gone", extra={"POSD_EVENT": "print"})
    assert "ERROR daemon: printer gone [POSD_EVENT=print POSD_TERMINAL=T-0042]" in (
        stream.getvalue()
    )


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("level", ["loud", "", 3.5])
def test_an_unknown_level_is_named(tmp_path: Path, level: object) -> None:
    with pytest.raises(ValueError, match=repr(level).replace(".", r"\.")):
        setup_logging("T-0042", level, journal_socket=tmp_path / "none")  # type: ignore[arg-type]


def test_an_empty_terminal_id_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="terminal id ' '"):
        setup_logging(" ", "info", journal_socket=tmp_path / "none")


def test_an_invalid_field_name_is_refused_with_the_name() -> None:
    with pytest.raises(ValueError, match="'posd-terminal'"):
        encode_entry([("posd-terminal", "T-1")])
    with pytest.raises(ValueError, match="'_PID'"):
        JournalHandler(fields={"_PID": "1"})
