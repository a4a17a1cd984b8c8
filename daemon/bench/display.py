"""Customer display line time: the bytes of a typical verdict update, priced at 9600 baud.

Budget (DESIGN.md section 4): a typical verdict update fits in 40 ms of line time.
The figure comes from the exact bytes the driver writes, not from a clock.
"""

from __future__ import annotations

import io

from daemon.drivers.display import COMMAND_SETS, CustomerDisplay

# One sale in progress: the previous item's verdict, then the next item's.
PREVIOUS = ("SN-12345 OK", "TOTAL 1299.00")
NEXT = ("SN-40917 OK", "TOTAL 2428.50")
REJECT = ("SN-40917 REJECTED", "ALREADY SOLD")


def _line_ms(model: str, before: tuple[str, str], after: tuple[str, str]) -> float:
    display = CustomerDisplay(io.BytesIO(), model)
    display.show(*before)
    display.show(*after)
    return display.last_update_cost(9600).line_time_ms


def run() -> dict[str, float]:
    figures = {"display_line_ms_9600": max(_line_ms(m, PREVIOUS, NEXT) for m in COMMAND_SETS)}
    for model in COMMAND_SETS:
        figures[f"display_line_ms_9600_{model}"] = _line_ms(model, PREVIOUS, NEXT)
        figures[f"display_reject_line_ms_9600_{model}"] = _line_ms(model, PREVIOUS, REJECT)
    return figures
