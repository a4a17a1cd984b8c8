"""The values device sections share: stable device names and serial speeds.

Each kind of device (a keyboard-mode scanner, a serial printer, …) defines its own
section next to its driver and registers it (`daemon.drivers.kinds`); `PosdConfig`
reads `[[scanners]]`, `[display]`, `[printer]` and `[gpio]` through that registry.

Devices are named by stable paths (`/dev/serial/by-id/…`, `/dev/input/by-id/…`, udev
links): the kernel's `ttyUSBn` and `eventN` numbers move after a replug and are
refused here, at start-up, rather than on the first scan.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator

_UNSTABLE = re.compile(r"/dev/(tty(USB|ACM)[0-9]+|input/event[0-9]+)")
SerialBaud = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]


_VENDOR_PRODUCT = re.compile(r"(?:usb:)?[0-9a-fA-F]{4}:[0-9a-fA-F]{4}")


def stable_device(path: str) -> str:
    if not path.startswith("/") or any(c.isspace() or not c.isprintable() for c in path):
        raise ValueError(
            f"{path[:80]!r} is not a device: give its path, such as /dev/serial/by-id/… or"
            " /dev/input/by-id/… (`posd devices` lists them)"
        )
    if _UNSTABLE.fullmatch(path):
        raise ValueError(
            f"{path!r} is numbered by the kernel and moves after a replug; name the device "
            "by its /dev/serial/by-id/… or /dev/input/by-id/… link"
        )
    return path


StableDevice = Annotated[str, AfterValidator(stable_device)]


def input_device(name: str) -> str:
    """A keyboard-mode scanner: a stable /dev path, or `vendor:product` in hex."""
    return name if _VENDOR_PRODUCT.fullmatch(name) else stable_device(name)


InputDevice = Annotated[str, AfterValidator(input_device)]
