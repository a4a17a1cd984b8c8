"""Tell systemd how the daemon is doing: the sd_notify protocol, without libsystemd.

The daemon builds one `Notifier` from its environment and reports as it starts:

    notifier = Notifier.from_environ(os.environ)
    notifier.status("opening the ledger")
    ...                                   # open the ledger, enumerate the devices
    notifier.ready(status="ledger open; scanner, printer and display found")
    watchdog = asyncio.create_task(pet_watchdog(notifier))
    ...
    notifier.stopping()

`ready` is the moment `systemctl start posd` returns and units ordered after posd start,
so the daemon calls it only once the ledger is open and the devices are enumerated,
never earlier. Outside systemd (no `NOTIFY_SOCKET`) every call does nothing, so the
same code runs from a shell and in tests.

The watchdog is fed from the event loop itself, not from a thread: if the loop gets
stuck, the feeding stops and systemd restarts the service (`WatchdogSec=` in the unit).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

from daemon.errors import ConfigError, PosdError

# systemd reads notifications into a buffer of this size and ignores any larger one.
NOTIFY_MESSAGE_MAX = 4096

# Test only: the boot tests set this to 1 in a drop-in to make SIGUSR2 stall the event
# loop (see `arm_stall_trigger`). The shipped unit never sets it.
STALL_TRIGGER_ENV = "POSD_TEST_WATCHDOG_STALL"

# Longest AF_UNIX socket path the kernel accepts (sun_path is 108 bytes with its NUL).
_SUN_PATH_MAX = 107


class NotifyEnvironmentError(ConfigError):
    """`NOTIFY_SOCKET`, `WATCHDOG_USEC` or `WATCHDOG_PID` holds a value systemd never sets."""


class NotifySendError(PosdError, OSError):
    """A notification could not be delivered to systemd's socket."""


class Notifier:
    """The daemon's line to systemd, built from the environment systemd started it with.

    `address` is the `NOTIFY_SOCKET` value (`/path` or `@abstract-name`), or None when
    not running under systemd. `watchdog_usec` is the watchdog interval systemd expects
    a `watchdog()` within, or None when there is no watchdog for this process.
    """

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self._shown = address
        self._address = _socket_address(address) if address else None
        if watchdog_usec is not None and watchdog_usec <= 0:
            raise NotifyEnvironmentError(
                f"watchdog interval {watchdog_usec!r} µs is not positive; "
                "give a positive number of microseconds or None for no watchdog"
            )
        self._watchdog_usec = watchdog_usec if self._address is not None else None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, pid: int | None = None) -> Notifier:
        """The notifier for the process `pid` (this one by default) given `environ`.

        Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` the way libsystemd
        does: a watchdog meant for another process (`WATCHDOG_PID` differs) is not ours.
        """
        address = environ.get("NOTIFY_SOCKET") or None
        watchdog_usec = _positive_int(environ, "WATCHDOG_USEC")
        watchdog_pid = _positive_int(environ, "WATCHDOG_PID")
        own_pid = os.getpid() if pid is None else pid
        if watchdog_pid is not None and watchdog_pid != own_pid:
            watchdog_usec = None
        return cls(address, watchdog_usec=watchdog_usec)

    @property
    def enabled(self) -> bool:
        """True when running under a service manager that listens for notifications."""
        return self._address is not None

    @property
    def watchdog_usec(self) -> int | None:
        """The watchdog interval in microseconds, or None when there is no watchdog."""
        return self._watchdog_usec

    def ready(self, *, status: str) -> None:
        """Tell systemd the daemon is serving: call after the ledger is open and the
        devices are enumerated, and again after a reload has finished."""
        self._send(f"READY=1\n{_status_line(status, room=NOTIFY_MESSAGE_MAX - 8)}")

    def status(self, text: str) -> None:
        """Show `text` as the service's status line (`systemctl status posd`)."""
        self._send(_status_line(text, room=NOTIFY_MESSAGE_MAX))

    def watchdog(self) -> None:
        """Tell systemd the daemon is alive; `pet_watchdog` does this on schedule."""
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd the daemon has begun shutting down."""
        self._send("STOPPING=1")

    def reloading(self, *, monotonic_usec: int | None = None) -> None:
        """Tell systemd a configuration reload has begun; call `ready` when it is done.

        The CLOCK_MONOTONIC timestamp is sent as `Type=notify-reload` services must.
        """
        if monotonic_usec is None:
            monotonic_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(f"RELOADING=1\nMONOTONIC_USEC={monotonic_usec}")

    def extend_timeout(self, usec: int) -> None:
        """Ask systemd for `usec` more microseconds to finish starting or stopping,
        e.g. while migrating a large ledger. Repeat before it runs out."""
        if isinstance(usec, bool) or not isinstance(usec, int) or usec <= 0:
            raise ValueError(
                f"timeout extension {usec!r} is not a positive whole number of microseconds"
            )
        self._send(f"EXTEND_TIMEOUT_USEC={usec}")

    def errno(self, n: int) -> None:
        """Tell systemd why the daemon is failing, as an errno number (e.g. `errno.ENOSPC`)."""
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise ValueError(f"errno {n!r} is not a positive errno number such as errno.EIO")
        self._send(f"ERRNO={n}")

    def _send(self, message: str) -> None:
        if self._address is None:
            return
        # A fresh socket per message, as libsystemd does: nothing to close, nothing
        # shared with a forked child.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            try:
                sock.sendto(message.encode("utf-8"), self._address)
            except OSError as exc:
                first = message.partition("\n")[0]
                raise NotifySendError(
                    exc.errno,
                    f"could not tell systemd {first!r} through NOTIFY_SOCKET {self._shown!r}: "
                    f"{exc.strerror}; check the service runs under systemd with Type=notify",
                ) from exc


async def pet_watchdog(
    notifier: Notifier,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> None:
    """Feed systemd's watchdog every half interval from the running event loop, until
    cancelled. Returns at once when there is no watchdog.

    Run it as a task on the daemon's loop. Because the feeding happens on the loop, a
    loop blocked by a hung call stops it, and systemd restarts the daemon.
    """
    usec = notifier.watchdog_usec
    if usec is None:
        return
    half_interval_s = usec / 2 / 1_000_000
    while True:
        try:
            notifier.watchdog()
        except NotifySendError as exc:
            # Nothing better to do than say so: if systemd never hears from us it
            # restarts the service, which is what a watchdog is for.
            logging.getLogger(__name__).warning("%s", exc.strerror)
        await sleep(half_interval_s)


def arm_stall_trigger(loop: asyncio.AbstractEventLoop, environ: Mapping[str, str]) -> bool:
    """Test only: with `POSD_TEST_WATCHDOG_STALL=1` in `environ`, SIGUSR2 blocks the event
    loop for good, so a test can watch systemd's watchdog kill and restart the daemon.
    True when armed.

    Nothing else can stall the loop on purpose. The shipped unit never sets the variable,
    and without it SIGUSR2 keeps its default action (the process ends and systemd restarts
    it), so this adds no way in on a terminal.
    """
    if environ.get(STALL_TRIGGER_ENV) != "1":
        return False

    def stall() -> None:
        logging.getLogger(__name__).warning(
            "SIGUSR2 with %s=1: the event loop stops here until the watchdog ends the process",
            STALL_TRIGGER_ENV,
        )
        while True:
            time.sleep(3600)

    loop.add_signal_handler(signal.SIGUSR2, stall)
    return True


def _socket_address(value: str) -> str | bytes:
    if value.startswith("@") and len(value) > 1:
        name = value[1:].encode("utf-8")
        if len(name) >= _SUN_PATH_MAX:
            raise NotifyEnvironmentError(
                f"NOTIFY_SOCKET {value!r} is longer than an AF_UNIX address can be; "
                "use a shorter abstract socket name"
            )
        return b"\0" + name
    if value.startswith("/"):
        if len(value.encode("utf-8")) > _SUN_PATH_MAX:
            raise NotifyEnvironmentError(
                f"NOTIFY_SOCKET {value!r} is longer than an AF_UNIX path can be; "
                "use a shorter socket path"
            )
        return value
    raise NotifyEnvironmentError(
        f"NOTIFY_SOCKET {value!r} is neither an absolute socket path nor an abstract "
        "socket name starting with '@'; unset it, or let systemd set it (Type=notify)"
    )


def _positive_int(environ: Mapping[str, str], name: str) -> int | None:
    raw = environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw, 10)
    except ValueError:
        value = 0
    if value <= 0:
        raise NotifyEnvironmentError(
            f"{name} {raw!r} is not a positive whole number; unset it or let systemd set it"
        )
    return value


def _status_line(text: str, *, room: int) -> str:
    # Status text can carry scanned data. A newline in it would start a new assignment
    # (a barcode could say "READY=1"), so control characters become spaces, and the
    # line is cut to fit the datagram systemd accepts.
    clean = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    encoded = f"STATUS={clean}".encode()[:room]
    return encoded.decode("utf-8", errors="ignore")
