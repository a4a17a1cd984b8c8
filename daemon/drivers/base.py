"""What every posd device driver shares: its errors, the worker thread that gives each
device call a deadline, how a serial port is opened, and how text a device cannot show
is spelled out.

    worker = DeviceWorker("display-epson")
    worker.call(0.5, port.write, data)          # DeviceTimeout after half a second

Each device runs its blocking calls on its own `DeviceWorker`, so one hung device never
stalls another or the event loop. Every error here descends from `DeviceError` (in
`daemon.errors`) and also from the builtin it resembles, so `except TimeoutError` or
`except ConnectionError` catches them too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import threading
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import serial

from daemon.errors import DeviceError

T = TypeVar("T")


# -------------------------------------------------------------------------- errors


class DeviceTimeout(DeviceError, TimeoutError):
    """A device call did not finish within its deadline."""


class DisplayMissing(DeviceError, ConnectionError):
    """The customer display did not take a write; it is unplugged, off or wedged."""


class PrinterError(DeviceError):
    """The printer could not do what was asked (e.g. kick the cash drawer)."""


class PinSetupError(DeviceError, ValueError):
    """A pin number is invalid or already taken by another part."""


class ScannerNotFound(DeviceError, LookupError):
    """The configured scanner is not attached, or its name cannot be found."""


# --------------------------------------------------------------------- worker thread


_Job = tuple[Callable[..., Any], tuple[Any, ...], "concurrent.futures.Future[Any]"]


class DeviceWorker:
    """Runs one device's blocking calls in order on one daemon thread, each with a deadline.

    When a call overruns its deadline the caller gets ``DeviceTimeout`` at once. A call
    still waiting behind it is cancelled, never run late; the stuck thread is abandoned
    (a daemon thread, so it never holds up shutdown) and the next call gets a fresh one.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def call(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the device thread and wait at most ``timeout_s`` for it."""
        future, jobs = self._submit(fn, args)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise self._overran(future, jobs, timeout_s) from None

    async def call_async(self, timeout_s: float, fn: Callable[..., T], *args: Any) -> T:
        """Like ``call`` but awaitable: the event loop keeps running while the device works."""
        future, jobs = self._submit(fn, args)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            raise self._overran(future, jobs, timeout_s) from None

    def close(self) -> None:
        """Let the device thread finish its queued calls and end."""
        with self._lock:
            jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.put(None)

    def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> tuple[concurrent.futures.Future[T], queue.SimpleQueue[_Job | None]]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        with self._lock:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                thread = threading.Thread(
                    target=_run_jobs, args=(self._jobs,), name=self._name, daemon=True
                )
                thread.start()
            jobs = self._jobs
            jobs.put((fn, args, future))
        return future, jobs

    def _overran(
        self,
        future: concurrent.futures.Future[Any],
        jobs: queue.SimpleQueue[_Job | None],
        timeout_s: float,
    ) -> DeviceTimeout:
        future.cancel()  # succeeds only if it had not started
        with self._lock:
            if self._jobs is jobs:  # its thread is stuck: later calls get a fresh one
                self._jobs = None
                jobs.put(None)
        return DeviceTimeout(
            f"{self._name}: no answer within {timeout_s:g} s; check the cable and power"
        )


def _run_jobs(jobs: queue.SimpleQueue[_Job | None]) -> None:
    while (job := jobs.get()) is not None:
        fn, args, future = job
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn(*args))
        except BaseException as error:  # handed to whoever waits on the future
            future.set_exception(error)


# -------------------------------------------------------------------- serial ports


def open_serial(path: str, baudrate: int = 9600, write_timeout_s: float = 0.5) -> serial.Serial:
    """Open a device's serial port for writing, each write bounded by ``write_timeout_s``
    (use a ``/dev/serial/by-id`` path, never ttyUSBn)."""
    return serial.Serial(path, baudrate=baudrate, write_timeout=write_timeout_s)


# ------------------------------------------------------------------------- text

# Characters NFKD cannot take apart, spelled the way a shop would.
_FALLBACKS: Mapping[str, str] = {
    "\u20ac": "EUR",
    "\u00a3": "GBP",
    "\u00df": "ss",
    "\u00e6": "ae",
    "\u00c6": "AE",
    "\u00f8": "o",
    "\u00d8": "O",
    "\u0153": "oe",
    "\u0152": "OE",
    "\u2022": "*",
    "\u2013": "-",
    "\u2014": "-",
    "\u2018": "'",
    "\u2019": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u2026": "...",
    "\u00a0": " ",
}


def spell_out(char: str) -> str:
    """A readable stand-in for ``char`` on a device that cannot show it
    (``é`` -> ``e``, ``€`` -> ``EUR``, ``ﬁ`` -> ``fi``); ``?`` when there is none."""
    if char in _FALLBACKS:
        return _FALLBACKS[char]
    base = "".join(c for c in unicodedata.normalize("NFKD", char) if not unicodedata.combining(c))
    return base if base and base != char else "?"
