"""Log to the systemd journal with structured fields, or to stderr when there is none.

The daemon calls `setup_logging` once at start:

    setup_logging(terminal_id="T-0042", level="info")

and logs as usual. Keyword fields travel with a record through `extra=`; any key that is
a valid journal field name (upper-case letters, digits and `_`, starting with a letter)
becomes a field of the journal entry:

    log.warning("unit already sold", extra={"POSD_EVENT": "sell", "POSD_SERIAL": serial})

so an engineer can ask `journalctl -u posd POSD_SERIAL=SN-1` or `-o verbose`. Every
entry also carries `POSD_TERMINAL`, `PRIORITY`, `CODE_FILE`, `CODE_LINE`, `CODE_FUNC`,
`LOGGER`, `THREAD_NAME` and `SYSLOG_IDENTIFIER=posd`.

The journal is reached through its native protocol (one datagram per entry on
`/run/systemd/journal/socket`; an entry too big for a datagram goes in a sealed memfd
passed along with it). When that socket is absent, or a person is watching stderr,
records go to stderr as plain lines with the same fields in brackets.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shlex
import socket
import struct
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

DEFAULT_JOURNAL_SOCKET = Path("/run/systemd/journal/socket")

IDENTIFIER = "posd"

# Journal field names: upper-case ASCII letters, digits and underscores, not starting
# with an underscore (those are journald's own trusted fields) or a digit, at most 64.
_FIELD_NAME = re.compile(r"[A-Z][A-Z0-9_]{0,63}")

# The protocol suggests a large send buffer so a burst of entries does not block; the
# kernel caps it at net.core.wmem_max.
_SEND_BUFFER_BYTES = 8 * 1024 * 1024

# memfd_create flag (Linux 6.3+): the memfd can never be made executable. Kernels set up
# with vm.memfd_noexec=2 refuse memfds created without it; older kernels refuse the flag.
_MFD_NOEXEC_SEAL = 0x0008

_ALL_SEALS = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}


def syslog_priority(levelno: int) -> int:
    """The syslog priority (journal `PRIORITY`) for a Python logging level."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def encode_entry(fields: Iterable[tuple[str, str | bytes]]) -> bytes:
    """One journal entry in the native protocol's format.

    A value without a newline is sent as `NAME=value\\n`; one with a newline as the
    name, a newline, its length as a little-endian 64-bit number, the bytes and `\\n`.
    """
    out = bytearray()
    for name, value in fields:
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(
                f"journal field name {name!r} is not valid; use upper-case letters, digits "
                "and '_', starting with a letter, at most 64 characters"
            )
        data = value.encode("utf-8", errors="surrogateescape") if isinstance(value, str) else value
        if b"\n" in data:
            out += name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
        else:
            out += name.encode() + b"=" + data + b"\n"
    return bytes(out)


def record_fields(record: logging.LogRecord) -> list[tuple[str, str | bytes]]:
    """The fields a caller attached to `record` through `extra=`, in a stable order.

    A list or tuple value becomes the same field repeated (the journal allows that);
    None leaves the field out; other values are sent as `str(value)`.
    """
    fields: list[tuple[str, str | bytes]] = []
    for name in sorted(vars(record)):
        if _FIELD_NAME.fullmatch(name):
            fields.extend(_values(name, vars(record)[name]))
    return fields


class JournalHandler(logging.Handler):
    """A logging handler that writes each record to journald as one structured entry.

    `fields` are added to every entry (e.g. `{"POSD_TERMINAL": "T-0042"}`). If an entry
    cannot be delivered (journald stopped, its queue full for `send_timeout_s`) the
    record is written to `fallback` (stderr by default) instead of being lost or
    stalling the daemon.
    """

    def __init__(
        self,
        *,
        fields: Mapping[str, str] | None = None,
        socket_path: Path = DEFAULT_JOURNAL_SOCKET,
        fallback: TextIO | None = None,
        send_timeout_s: float = 0.5,
        level: int = logging.NOTSET,
    ) -> None:
        super().__init__(level)
        self._fields = dict(fields or {})
        encode_entry(self._fields.items())  # refuse a bad field name now, not per record
        self._address = str(socket_path)
        self._fallback_stream = fallback
        self._fallback_format = PlainFormatter(fields=self._fields)
        self._send_timeout_s = send_timeout_s
        self._socket: socket.socket | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            entry = encode_entry(self._entry_fields(record))
        except Exception:
            self.handleError(record)
            return
        try:
            self._send(entry)
        except OSError:
            self._write_fallback(record)

    def close(self) -> None:
        self.acquire()
        try:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
        finally:
            self.release()
        super().close()

    def _entry_fields(self, record: logging.LogRecord) -> list[tuple[str, str | bytes]]:
        fields = [
            (name, value)
            for name, value in record_fields(record)
            if name not in _HANDLER_FIELDS and name not in self._fields
        ]
        fields += list(self._fields.items())
        fields += [
            ("MESSAGE", self.format(record)),
            ("PRIORITY", str(syslog_priority(record.levelno))),
            ("SYSLOG_IDENTIFIER", IDENTIFIER),
            ("LOGGER", record.name),
            ("THREAD_NAME", record.threadName or ""),
            ("CODE_FILE", record.pathname),
            ("CODE_LINE", str(record.lineno)),
            ("CODE_FUNC", record.funcName or ""),
        ]
        if record.exc_info and isinstance(record.exc_info[1], OSError):
            code = record.exc_info[1].errno
            if code:
                fields.append(("ERRNO", str(code)))
        return fields

    def _send(self, entry: bytes) -> None:
        sock = self._journal_socket()
        try:
            sock.sendto(entry, self._address)
        except OSError as exc:
            if exc.errno not in (errno.EMSGSIZE, errno.ENOBUFS):
                raise
            self._send_as_file(sock, entry)

    def _send_as_file(self, sock: socket.socket, entry: bytes) -> None:
        # Too big for one datagram: the protocol's second form is an empty datagram
        # carrying one file descriptor that holds the entry.
        with _sealed_file(entry) as fd:
            sock.sendmsg(
                [],
                [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("i", fd))],
                0,
                self._address,
            )

    def _journal_socket(self) -> socket.socket:
        # Unconnected on purpose: each entry is addressed to the socket path, so a
        # restarted journald (a new socket at the same path) is found again.
        if self._socket is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER_BYTES)
            sock.settimeout(self._send_timeout_s)
            self._socket = sock
        return self._socket

    def _write_fallback(self, record: logging.LogRecord) -> None:
        stream = self._fallback_stream or sys.stderr
        try:
            stream.write(self._fallback_format.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


class PlainFormatter(logging.Formatter):
    """One readable line per record, ending with its journal fields in brackets:

    `2026-03-01 12:00:00,000 WARNING daemon.lane.loop: unit already sold [POSD_EVENT=sell …]`
    """

    def __init__(self, *, fields: Mapping[str, str] | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._fields = dict(fields or {})

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        pairs = [(n, v) for n, v in record_fields(record) if n not in self._fields]
        pairs += list(self._fields.items())
        if not pairs:
            return line
        shown = " ".join(f"{name}={shlex.quote(_text(value))}" for name, value in pairs)
        # Fields go after the first line so a traceback below keeps its shape.
        first, newline, rest = line.partition("\n")
        return f"{first} [{shown}]{newline}{rest}"


def setup_logging(
    terminal_id: str,
    level: int | str = logging.INFO,
    *,
    journal_socket: Path = DEFAULT_JOURNAL_SOCKET,
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send the process's log records to the journal, tagged with `terminal_id`.

    Uses the journal when `journal_socket` exists and `stream` (stderr by default) is
    not a terminal someone is watching; otherwise plain lines on `stream`. `level` is a
    logging level or its name (`"debug"` … `"critical"`). Calling it again replaces the
    handler it installed before. Returns the handler.
    """
    if not isinstance(terminal_id, str) or not terminal_id.strip():
        raise ValueError(
            f"terminal id {terminal_id!r} is empty; give the terminal's id from its config"
        )
    levelno = _level(level)
    out = stream if stream is not None else sys.stderr
    fields = {"POSD_TERMINAL": terminal_id}
    handler: logging.Handler
    if _is_socket(journal_socket) and not _is_terminal(out):
        handler = JournalHandler(fields=fields, socket_path=journal_socket, fallback=out)
    else:
        handler = logging.StreamHandler(out)
        handler.setFormatter(PlainFormatter(fields=fields))
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(levelno)
    return handler


_HANDLER_NAME = "posd-journal"

_HANDLER_FIELDS = frozenset(
    {
        "MESSAGE",
        "PRIORITY",
        "SYSLOG_IDENTIFIER",
        "LOGGER",
        "THREAD_NAME",
        "CODE_FILE",
        "CODE_LINE",
        "CODE_FUNC",
    }
)


class _sealed_file:
    """A memfd holding `data`, sealed so journald can map it without copying; an
    unlinked file in /dev/shm where the kernel has no memfd (as libsystemd does)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._fd = -1

    def __enter__(self) -> int:
        self._fd = _memfd()
        try:
            view = memoryview(self._data)
            while view:
                view = view[os.write(self._fd, view) :]
            if _supports_seals(self._fd):
                fcntl.fcntl(self._fd, fcntl.F_ADD_SEALS, _ALL_SEALS)
        except BaseException:
            os.close(self._fd)
            raise
        return self._fd

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def _memfd() -> int:
    flags = os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING
    try:
        return os.memfd_create("posd-journal-entry", flags | _MFD_NOEXEC_SEAL)
    except OSError as exc:
        if exc.errno == errno.EINVAL:
            return os.memfd_create("posd-journal-entry", flags)
        if exc.errno != errno.ENOSYS:
            raise
    return os.open("/dev/shm", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)


def _supports_seals(fd: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_GET_SEALS)
    except OSError:
        return False
    return True


def _values(name: str, value: object) -> list[tuple[str, str | bytes]]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [pair for item in value for pair in _values(name, item)]
    if isinstance(value, bytes):
        return [(name, value)]
    return [(name, str(value))]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def _level(level: int | str) -> int:
    if isinstance(level, bool):
        raise ValueError(f"log level {level!r} is not a level; use one of {', '.join(_LEVELS)}")
    if isinstance(level, int):
        return level
    found = _LEVELS.get(level.strip().lower()) if isinstance(level, str) else None
    if found is None:
        raise ValueError(f"log level {level!r} is not one of {', '.join(_LEVELS)}")
    return found


def _is_socket(path: Path) -> bool:
    try:
        return path.is_socket()
    except OSError:
        return False


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
