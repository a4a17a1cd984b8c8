"""The customer pole display: two lines of twenty characters on a serial port.

    display = CustomerDisplay(open_serial(port), "epson")    # written on its own thread
    display.show("Laptop X1    1299.00", "TOTAL        1299.00")

`glass` turns text into the fewest bytes for the display's command set (no I/O);
`device` writes them from the display's own thread with a deadline (`CustomerDisplay`);
`loop` writes them from the event loop without ever waiting on the wire (`LoopWriter`).
"""

from daemon.drivers.display.device import (
    BITS_PER_BYTE,
    CustomerDisplay,
    DisplayStatus,
    Transport,
    UpdateCost,
)
from daemon.drivers.display.glass import (
    BLANK,
    CD5220,
    COLUMNS,
    COMMAND_SETS,
    EPSON,
    ROWS,
    CommandSet,
    Cursor,
    Screen,
    command_set,
    fit_line,
    plan_update,
)
from daemon.drivers.display.loop import LoopWriter

__all__ = [
    "BITS_PER_BYTE",
    "BLANK",
    "CD5220",
    "COLUMNS",
    "COMMAND_SETS",
    "EPSON",
    "ROWS",
    "CommandSet",
    "Cursor",
    "CustomerDisplay",
    "DisplayStatus",
    "LoopWriter",
    "Screen",
    "Transport",
    "UpdateCost",
    "command_set",
    "fit_line",
    "plan_update",
]
