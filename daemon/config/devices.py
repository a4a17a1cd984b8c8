"""Configuration sections for the lane's devices: scanners, display, printer, GPIO.

Devices are named by stable paths (`/dev/serial/by-id/…`, `/dev/input/by-id/…`, udev
links): the kernel's `ttyUSBn` and `eventN` numbers move after a replug and are
refused here, at start-up, rather than on the first scan.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

_UNSTABLE = re.compile(r"/dev/(tty(USB|ACM)[0-9]+|input/event[0-9]+)")
EndKey = Literal["enter", "keypad_enter", "tab"]
DEFAULT_END_KEYS: tuple[EndKey, ...] = ("enter", "keypad_enter")
SerialBaud = Literal[1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200]


class Section(BaseModel):
    """Every configuration table: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def stable_device(path: str) -> str:
    if _UNSTABLE.fullmatch(path):
        raise ValueError(
            f"{path!r} is numbered by the kernel and moves after a replug; name the device "
            "by its /dev/serial/by-id/… or /dev/input/by-id/… link"
        )
    return path


StableDevice = Annotated[str, AfterValidator(stable_device)]


class ScannerTimingConfig(Section):
    char_timeout_s: float = Field(default=0.1, gt=0, le=2)
    on_timeout: Literal["discard", "end"] = "discard"
    max_length: int = Field(default=1024, ge=16, le=65536)


class EvdevScannerConfig(ScannerTimingConfig):
    """A keyboard-wedge scanner, read as kernel key events and grabbed for the lane."""

    kind: Literal["evdev"]
    device: StableDevice  # a /dev/input/by-id/… link, a udev link, or vendor:product
    name: str | None = None
    layout: str = "us"
    end_keys: list[EndKey] = Field(default_factory=lambda: list(DEFAULT_END_KEYS), min_length=1)


class SerialScannerConfig(ScannerTimingConfig):
    """A scanner on a serial port (RS-232, or USB in serial/CDC mode)."""

    kind: Literal["serial"]
    port: StableDevice
    name: str | None = None
    baud: SerialBaud = 9600
    framing: str = Field(default="8N1", pattern=r"^[5-8][NEOMS](1|1\.5|2)$")
    terminator: Literal["CR", "LF", "CRLF"] = "CR"
    encoding: str = "utf-8"


ScannerConfig = Annotated[EvdevScannerConfig | SerialScannerConfig, Field(discriminator="kind")]


class DisplayConfig(Section):
    """The customer pole display (2x20) on a serial port."""

    port: StableDevice
    model: Literal["epson", "cd5220"] = "epson"
    baud: Literal[2400, 4800, 9600, 19200] = 9600
    code_table: str | None = None
    write_timeout_s: float = Field(default=0.5, gt=0, le=10)
    reconnect_s: float = Field(default=1.0, gt=0, le=60)


class PrinterConfigBase(Section):
    profile: str | None = None  # python-escpos printer profile, e.g. TM-T88V
    timeout_s: float = Field(default=10.0, gt=0, le=120)
    status_timeout_s: float = Field(default=2.0, gt=0, le=30)
    drawer_kick: bool = False  # open the cash drawer through the printer's kick connector
    drawer_pin: Literal[2, 5] = 2


class SerialPrinterConfig(PrinterConfigBase):
    transport: Literal["serial"]
    port: StableDevice
    baud: SerialBaud = 9600


class FilePrinterConfig(PrinterConfigBase):
    transport: Literal["file"]
    path: str  # a USB printer's /dev/usb/lp* (better: its udev link)


class NetworkPrinterConfig(PrinterConfigBase):
    transport: Literal["network"]
    host: str
    port: int = Field(default=9100, ge=1, le=65535)


PrinterConfig = Annotated[
    SerialPrinterConfig | FilePrinterConfig | NetworkPrinterConfig, Field(discriminator="transport")
]

Pin = Annotated[int, Field(ge=0, le=53)]


class GpioPinsConfig(Section):
    """BCM pin numbers; a part whose pin is not given is not fitted."""

    green: Pin | None = None
    amber: Pin | None = None
    red: Pin | None = None
    buzzer: Pin | None = None
    drawer: Pin | None = None
    button: Pin | None = None


class GpioConfig(Section):
    pin_factory: Literal["native", "lgpio", "rpigpio", "pigpio", "mock"] = "native"
    pins: GpioPinsConfig = GpioPinsConfig()
    active_high: bool = True
    drawer_pulse_s: float = Field(default=0.1, ge=0.01, le=1.0)
