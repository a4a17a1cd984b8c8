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


def stable_device(path: str) -> str:
    if _UNSTABLE.fullmatch(path):
        raise ValueError(
            f"{path!r} is numbered by the kernel and moves after a replug; name the device "
            "by its /dev/serial/by-id/… or /dev/input/by-id/… link"
        )
    return path


StableDevice = Annotated[str, AfterValidator(stable_device)]
