"""Keyboard-wedge scanners, read as raw kernel key events through evdev.

The daemon opens the scanner's input device itself, grabs it (so scans never also land
on a console or another program), and decodes key presses with the keyboard layout the
scanner was set up for (`KeyboardLayout`). The device is named in configuration by a
stable name — a `/dev/input/by-id/…` or `/dev/input/by-path/…` link, a udev name, or
`vendor:product` — and `resolve_input_device` finds its event node when it is opened;
`/dev/input/eventN` numbers move after a replug and are refused.

`SYN_DROPPED` from the kernel means key events were lost: the partial scan is dropped
and reported, and everything up to the next end-of-scan key is skipped, because those
keys are the tail of a scan whose start is gone.

Pauses inside a scan are measured between the kernel's timestamps on the key events,
not on arrival, so a moment when the event loop was busy cannot split a fast scan.
A scan that goes quiet is noticed on the injected `clock`.

`EVDEV_SCANNER` registers the kind: its `[[scanners]]` section (`kind = "evdev"`), how
the lane builds it, how `posd doctor` checks it and which attached input devices
`posd provision` takes for one.
"""

from __future__ import annotations

import os
import re
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Protocol

import evdev
from evdev import ecodes
from pydantic import AfterValidator, Field

from daemon.config.devices import InputDevice
from daemon.drivers.base import ScannerNotFound
from daemon.drivers.checks import CheckContext, Finding, Where
from daemon.drivers.keymap import KeyboardLayout, KeyDecoder, check_layout
from daemon.drivers.registry import Attached, DeviceKind, Recognition
from daemon.drivers.scanner import (
    DEFAULT_CHAR_TIMEOUT_S,
    DEFAULT_MAX_SCAN_LENGTH,
    DEFAULT_RECONNECT_INTERVAL_S,
    SCANNER,
    Clock,
    OnTimeout,
    ReadingScanner,
    Reason,
    ScanAssembler,
    ScanEvent,
    ScannerConfigBase,
    check_scanner,
    names_a_scanner,
    scanner_maker,
)
from daemon.errors import ConfigError

# struct input_event as the kernel writes it: struct timeval (two longs), type, code,
# value. Native sizes, so it matches the running kernel: 24 bytes on 64-bit.
INPUT_EVENT = struct.Struct("llHHi")

END_KEYS = {
    "enter": ecodes.KEY_ENTER,
    "keypad_enter": ecodes.KEY_KPENTER,
    "tab": ecodes.KEY_TAB,
}

_EV_KEY = ecodes.EV_KEY
_EV_SYN = ecodes.EV_SYN
_SYN_REPORT = ecodes.SYN_REPORT
_SYN_DROPPED = ecodes.SYN_DROPPED
_READ_SIZE = INPUT_EVENT.size * 256


class UnstableDeviceName(ConfigError):
    """A scanner named by a kernel event number, which changes after a replug."""


class SupportsFileno(Protocol):
    def fileno(self) -> int: ...

    def close(self) -> None: ...


EventSource = int | SupportsFileno


@dataclass(frozen=True)
class InputDeviceInfo:
    """What the kernel says about one input device, for matching `vendor:product`."""

    path: str
    vendor: int
    product: int
    name: str
    types_text: bool


def end_key_codes(names: Iterable[str]) -> frozenset[int]:
    """Evdev codes for end-of-scan key names (`enter`, `keypad_enter`, `tab`)."""
    codes = set()
    for name in names:
        code = END_KEYS.get(name.lower())
        if code is None:
            raise ValueError(
                f"end key {name!r} is not known; use one or more of {', '.join(sorted(END_KEYS))}"
            )
        codes.add(code)
    if not codes:
        raise ValueError(f"no end key given; use one or more of {', '.join(sorted(END_KEYS))}")
    return frozenset(codes)


class EvdevScanner(ReadingScanner):
    """A keyboard-wedge scanner: kernel key events in, `Scan`/`ScanProblem` out.

    `open_device` opens the transport each time the scanner is (re)connected: for a
    real scanner `lambda: open_input_device(resolve_input_device(name))`, for a test
    the simulator's `open`. A real `evdev.InputDevice` is grabbed for exclusive use.
    """

    def __init__(
        self,
        open_device: Callable[[], EventSource],
        layout: KeyboardLayout,
        *,
        source: str,
        end_keys: Iterable[str] = ("enter", "keypad_enter"),
        char_timeout_s: float = DEFAULT_CHAR_TIMEOUT_S,
        on_timeout: OnTimeout = OnTimeout.DISCARD,
        max_length: int = DEFAULT_MAX_SCAN_LENGTH,
        clock: Clock = time.monotonic,
        reconnect_interval_s: float = DEFAULT_RECONNECT_INTERVAL_S,
    ) -> None:
        assembler = ScanAssembler(
            source, char_timeout_s=char_timeout_s, on_timeout=on_timeout, max_length=max_length
        )
        super().__init__(assembler, clock=clock, reconnect_interval_s=reconnect_interval_s)
        self._open_device = open_device
        self._layout = layout
        self._end_keys = end_key_codes(end_keys)
        self._device: EventSource | None = None
        self._fd = -1
        self._decoder: KeyDecoder = layout.decoder()
        self._pending = b""
        self._dropping = False
        self._swallowed_at: float | None = None

    def _connect(self) -> int:
        device = self._open_device()
        fd = device if isinstance(device, int) else device.fileno()
        if isinstance(device, evdev.InputDevice):
            try:
                device.grab()
            except OSError as exc:
                device.close()
                raise OSError(
                    f"{device.path!s} is held by another program ({exc}); stop it or remove "
                    "the scanner from its configuration"
                ) from None
        os.set_blocking(fd, False)
        self._device, self._fd = device, fd
        self._decoder = self._layout.decoder()
        self._pending = b""
        self._dropping = False
        return fd

    def _disconnect(self) -> None:
        device, self._device, self._fd = self._device, None, -1
        if device is None:
            return
        try:
            if isinstance(device, int):
                os.close(device)
            else:
                if isinstance(device, evdev.InputDevice):
                    device.ungrab()
                device.close()
        except OSError:
            pass  # already gone with the device

    def _read(self) -> bytes | None:
        try:
            return os.read(self._fd, _READ_SIZE)
        except BlockingIOError:
            return None

    def feed(self, data: bytes, now: float) -> Sequence[ScanEvent]:
        """Decode whole input_event records; keep a trailing partial record for later."""
        if self._pending:
            data = self._pending + data
        whole = len(data) - len(data) % INPUT_EVENT.size
        self._pending = data[whole:]
        events: list[ScanEvent] = []
        assembler, decoder, end_keys = self._assembler, self._decoder, self._end_keys
        dropping = self._dropping
        records = data if whole == len(data) else memoryview(data)[:whole]
        for sec, usec, kind, code, value in INPUT_EVENT.iter_unpack(records):
            if kind != _EV_KEY:
                if kind == _EV_SYN:
                    if dropping:
                        if code == _SYN_REPORT:
                            self._resync(now)
                            dropping = False
                    elif code == _SYN_DROPPED:
                        events.append(self._events_lost())
                        dropping = True
                continue
            if dropping:
                self._swallowed_at = sec + usec * 1e-6
            elif value == 0:
                if not decoder.release(code) and assembler.collecting:
                    events.append(
                        assembler.drop(
                            Reason.LOST_EVENTS,
                            f"key {_key_name(code)} was released without being pressed, "
                            "so key events were lost; scan the item again",
                        )
                    )
            elif code in end_keys:
                decoder.key(code, value)
                if value == 1:
                    events.extend(assembler.ended(sec + usec * 1e-6, now))
            else:
                text = decoder.key(code, value)
                if text:
                    produced = assembler.typed(text, sec + usec * 1e-6, now)
                    if produced:
                        events.extend(produced)
        return events

    def _events_lost(self) -> ScanEvent:
        # The kernel's rule after SYN_DROPPED: ignore everything up to and including
        # the next SYN_REPORT, then resynchronise the key state.
        self._dropping = True
        self._swallowed_at = None
        return self._assembler.drop(
            Reason.SYN_DROPPED,
            "the kernel dropped key events (SYN_DROPPED), so this scan cannot be trusted; "
            "scan the item again",
        )

    def _resync(self, now: float) -> None:
        """Rebuild the key state after lost events from what is really held down."""
        self._dropping = False
        self._decoder.release_all()
        if isinstance(self._device, evdev.InputDevice):
            try:
                held = self._device.active_keys()
            except OSError:
                held = []
            for code in held:
                self._decoder.key(code, 1)
        if self._swallowed_at is not None:
            # Keys went by unseen: what follows is the tail of a scan, even after a pause.
            self._assembler.skip_to_end(self._swallowed_at, now)


def _key_name(code: int) -> str:
    name = ecodes.KEY.get(code, f"code {code}")
    return name[0] if isinstance(name, list) else str(name)


def open_input_device(path: str) -> evdev.InputDevice[str]:
    """Open an input device node (the scanner grabs it when it connects)."""
    return evdev.InputDevice(path)


_EVENT_NODE = re.compile(r"(/dev/input/)?event[0-9]+")
_VENDOR_PRODUCT = re.compile(r"(?:usb:)?([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")


def resolve_input_device(
    name: str,
    *,
    devices: Callable[[], Iterable[InputDeviceInfo]] | None = None,
) -> str:
    """The event node for a scanner named by a stable link or by `vendor:product`.

    `name` is a `/dev/input/by-id/…` or `/dev/input/by-path/…` link (or a udev-made
    link), or `vendor:product` in hex such as `05e0:1200`. `devices` lists attached
    input devices; by default the kernel's.
    """
    if _EVENT_NODE.fullmatch(name):
        raise UnstableDeviceName(
            f"scanner device {name!r} is a kernel event number, which changes after a replug "
            "or reboot; name it by its /dev/input/by-id/… link or as vendor:product"
        )
    match = _VENDOR_PRODUCT.fullmatch(name)
    if match is not None:
        vendor, product = int(match.group(1), 16), int(match.group(2), 16)
        listed = list((devices or _kernel_input_devices)())
        found = sorted(
            (d for d in listed if d.vendor == vendor and d.product == product and d.types_text),
            key=lambda d: d.path,
        )
        if not found:
            attached = ", ".join(f"{d.vendor:04x}:{d.product:04x} {d.name!r}" for d in listed)
            raise ScannerNotFound(
                f"no keyboard-type input device {name} is attached (attached: "
                f"{attached or 'none'}); plug the scanner in or correct its vendor:product"
            )
        return found[0].path
    path = Path(name)
    if not path.exists():
        raise ScannerNotFound(
            f"scanner device {name!r} does not exist; is it plugged in? "
            "`ls -l /dev/input/by-id/` lists the names of attached input devices"
        )
    if not path.is_symlink() and _EVENT_NODE.fullmatch(path.name):
        raise UnstableDeviceName(
            f"scanner device {name!r} is a kernel event node, which changes after a replug; "
            "name it by its /dev/input/by-id/… link or as vendor:product"
        )
    return os.path.realpath(path)


def _kernel_input_devices() -> list[InputDeviceInfo]:
    found = []
    for node in evdev.list_devices():
        try:
            device = evdev.InputDevice(node)
        except OSError:
            continue
        try:
            keys = device.capabilities().get(ecodes.EV_KEY, [])
            found.append(
                InputDeviceInfo(
                    path=node,
                    vendor=device.info.vendor,
                    product=device.info.product,
                    name=device.name,
                    types_text=ecodes.KEY_ENTER in keys and ecodes.KEY_A in keys,
                )
            )
        finally:
            device.close()
    return found


# ------------------------------------------------------------------ the device kind

EndKey = Literal["enter", "keypad_enter", "tab"]
DEFAULT_END_KEYS: tuple[EndKey, ...] = ("enter", "keypad_enter")


class EvdevScannerConfig(ScannerConfigBase):
    """A keyboard-wedge scanner, read as kernel key events and grabbed for the lane."""

    kind: Literal["evdev"]
    device: InputDevice  # a /dev/input/by-id/… link, a udev link, or vendor:product
    # Compiled when the file is read, so a layout posd cannot use stops `config check`
    # and `provision`, not the first scan.
    layout: Annotated[str, AfterValidator(check_layout)] = "us"
    end_keys: list[EndKey] = Field(default_factory=lambda: list(DEFAULT_END_KEYS), min_length=1)


def open_evdev_scanner(section: EvdevScannerConfig) -> EvdevScanner:
    """The scanner a section names; its device is found and opened when it is read."""
    device = section.device
    return EvdevScanner(
        lambda: open_input_device(resolve_input_device(device)),
        KeyboardLayout(section.layout),
        source=section.name or device,
        end_keys=section.end_keys,
        char_timeout_s=section.char_timeout_s,
        on_timeout=OnTimeout(section.on_timeout),
        max_length=section.max_length,
    )


def _check(section: EvdevScannerConfig, context: CheckContext, where: Where) -> list[Finding]:
    def missing() -> str | None:
        try:
            resolve_input_device(section.device)
        except (LookupError, ValueError) as error:
            return str(error)
        return None

    return check_scanner(
        context,
        where,
        lambda: open_evdev_scanner(section),
        device=section.device,
        key="device",
        missing=missing,
        layout=section.layout,
    )


def _recognise(attached: Attached) -> Recognition | None:
    if attached.node is None:
        name = attached.name
        if name.startswith("/dev/input/") or not name.startswith("/"):
            return Recognition("possible", "named as an input device (or vendor:product)")
        return None
    if attached.node != "input":
        return None
    if attached.keyboard_like is False:
        return Recognition(
            "no", "does not type letters, digits and Enter (a mouse, button or sensor)"
        )
    maker = scanner_maker(attached.vendor)
    if maker is not None:
        return Recognition("likely", f"types like a keyboard; USB vendor {maker} makes scanners")
    if names_a_scanner(attached.label):
        return Recognition("likely", "types like a keyboard and its name says scanner")
    return Recognition(
        "possible", "types like a keyboard: a scanner in keyboard mode, or a keyboard"
    )


EVDEV_SCANNER: DeviceKind[EvdevScannerConfig, ReadingScanner] = DeviceKind(
    name="evdev",
    role=SCANNER,
    section=EvdevScannerConfig,
    build=open_evdev_scanner,
    check=_check,
    recognise=_recognise,
    path_key="device",
    label="keyboard mode",
    example="/dev/input/by-id/…",
)
