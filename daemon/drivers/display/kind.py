"""The customer display as a device kind: its `[display]` section, how the lane reaches
it, and how `posd doctor` checks it.

    port = POLE_DISPLAY.build(section)      # DisplayPort: how to open it, whether it is there
    transport = port.open()

The display is a pole display on a serial port; its model (`epson`, `cd5220`) picks
the command set from `glass.COMMAND_SETS`, capability data rather than a kind of its
own. Nothing is written to a port the configuration does not name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import serial
from pydantic import Field

from daemon.config.base import Section
from daemon.config.devices import StableDevice
from daemon.drivers.base import open_serial
from daemon.drivers.checks import CheckContext, Finding, Where, fail, ok
from daemon.drivers.display.device import CustomerDisplay, Transport
from daemon.drivers.registry import DeviceKind, DeviceRole
from daemon.errors import DeviceError

TEST_PATTERN = "ABCDEFGHIJ0123456789"  # every cell a different glyph: a dead cell shows


class DisplayConfig(Section):
    """The customer pole display (2x20) on a serial port."""

    port: StableDevice
    model: Literal["epson", "cd5220"] = "epson"
    baud: Literal[2400, 4800, 9600, 19200] = 9600
    code_table: str | None = None
    write_timeout_s: float = Field(default=0.5, gt=0, le=10)
    reconnect_s: float = Field(default=1.0, gt=0, le=60)


@dataclass(frozen=True)
class DisplayPort:
    """How to reach a configured display: `open` its transport (again after it went
    away), and whether it is `present` now, looked at without writing to it."""

    open: Callable[[], Transport]
    present: Callable[[], bool]


DISPLAY: DeviceRole[DisplayConfig, DisplayPort] = DeviceRole(
    "display", "customer display", "display", DisplayConfig
)


def display_port(section: DisplayConfig) -> DisplayPort:
    """The serial port a `[display]` section names, opened with its baud and deadline;
    present while its stable name is there (a by-id link goes when the cable is pulled)."""
    return DisplayPort(
        open=lambda: open_serial(section.port, section.baud, section.write_timeout_s),
        present=lambda: os.path.exists(section.port),
    )


def check_display(section: DisplayConfig, context: CheckContext, where: Where) -> list[Finding]:
    """Put a test pattern and the terminal's id on the glass for a person to read."""
    port = section.port
    if not os.path.exists(port):
        return [
            fail(
                where.name,
                f"{port} does not exist",
                "plug the display in; `posd devices` lists serial ports by stable name; "
                f"fix {where.key}.port",
            )
        ]
    try:
        transport = open_serial(port, section.baud, section.write_timeout_s)
    except (serial.SerialException, OSError) as error:
        return [
            fail(
                where.name,
                f"{port} cannot be opened ({error})",
                "if posd is running it holds the display: systemctl stop posd",
            )
        ]
    display = CustomerDisplay(
        transport, section.model, code_table=section.code_table,
        write_timeout_s=section.write_timeout_s,
    )  # fmt: skip
    second = f"TEST {context.terminal_id}"[:20]
    try:
        display.show(TEST_PATTERN, second)
        transport.flush()
    except (DeviceError, serial.SerialException, OSError) as error:
        return [fail(where.name, f"{port}: {error}", "check the display's cable and power")]
    finally:
        display.close()
        with contextlib.suppress(Exception):  # closing a port that went away
            transport.close()
    return [
        ok(
            where.name,
            f"{port}: test pattern sent ({section.model}, {section.baud} baud)",
            f"check it reads {TEST_PATTERN!r} / {second!r} with every cell lit; garbage "
            f"means {where.key}.model or baud does not match the display",
        )
    ]


POLE_DISPLAY: DeviceKind[DisplayConfig, DisplayPort] = DeviceKind(
    name="display",
    role=DISPLAY,
    section=DisplayConfig,
    build=display_port,
    check=check_display,
    path_key="port",
    label="pole display",
)
