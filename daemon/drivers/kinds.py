"""Every device kind posd drives, registered once: `KINDS`.

    KINDS.names(SCANNER)        # ("evdev", "serial")

Each record lives in its driver's module, next to the driver it describes. A new kind is
one more `DeviceKind` there and one more entry here; the configuration, the lane, the
doctor and provisioning find it through the registry.
"""

from __future__ import annotations

from daemon.drivers.display.kind import POLE_DISPLAY
from daemon.drivers.gpio import GPIO_PINS
from daemon.drivers.printer_transport import FILE_PRINTER, NETWORK_PRINTER, SERIAL_PRINTER
from daemon.drivers.registry import DeviceKinds
from daemon.drivers.scanner_evdev import EVDEV_SCANNER
from daemon.drivers.scanner_serial import SERIAL_SCANNER

KINDS = DeviceKinds(
    (
        EVDEV_SCANNER,
        SERIAL_SCANNER,
        POLE_DISPLAY,
        SERIAL_PRINTER,
        FILE_PRINTER,
        NETWORK_PRINTER,
        GPIO_PINS,
    )
)
