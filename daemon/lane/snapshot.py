"""The lane as the kiosk sees it (plain JSON-ready data), and how each input is named
in the lane's journal.

Serials appear twice on a basket line: `serial` as printed on the unit (for staff) and
`serial_shown`, masked when the product's policy masks it on receipts (for a screen a
customer reads). `notice` is what the lane said at start about the sale it found open
(saved, or lost: scan again), kept until someone uses the lane.
"""

from __future__ import annotations

from typing import Any

from daemon.drivers.printer import mask_serial
from daemon.lane.outputs import Outputs
from daemon.rules.lane.text import money
from daemon.rules.lane.types import (
    AttendantRelease,
    Command,
    DeviceChanged,
    Input,
    LaneSettings,
    LaneState,
    LedgerDone,
    ManagerApproval,
    Mode,
    Printed,
    ReceiptOwed,
    Recovered,
    ServiceFault,
    ServiceRestored,
    Tick,
)


def snapshot(state: LaneState, settings: LaneSettings, outputs: Outputs) -> dict[str, Any]:
    basket = state.basket
    display = outputs.display
    return {
        "terminal": settings.terminal,
        "self_checkout": settings.self_checkout,
        "mode": state.mode.value,
        "display": list(state.display),
        "light": state.light.value,
        "prompt": state.prompt,
        "basket": None
        if basket is None
        else {
            "invoice": basket.invoice,
            "customer": basket.customer,
            "lines": [
                {
                    "line": number,
                    "product": line.product.code,
                    "name": line.product.name,
                    "serial": line.serial,
                    # What a customer may see: masked as the product's receipts are.
                    "serial_shown": _shown(line.serial, line.product.mask_serial),
                    "mask_serial": line.product.mask_serial,
                    "quantity": line.quantity,
                    "price": money(line.price_cents),
                }
                for number, line in enumerate(basket.lines, start=1)
            ],
            "total": money(basket.total_cents),
        },
        "awaiting_serial_of": state.pending_product.name
        if state.mode is Mode.AWAITING_SERIAL and state.pending_product
        else None,
        "serial_for": state.serial_for.value
        if state.mode is Mode.AWAITING_SERIAL and state.serial_for
        else None,
        "document": state.document,
        "received": len(state.received),
        "attendant_needed": None
        if state.lock is None
        else {"code": state.lock.code, "message": state.lock.message},
        "manager_needed": None
        if state.approval is None
        else {
            "action": state.approval.action,
            "code": state.approval.code,
            "message": state.approval.message,
        },
        "count": None
        if state.mode is not Mode.COUNTING
        else {
            "number": state.document,
            "product": state.count_product,
            "scanned": state.counted,
        },
        "last_count": state.last_count,
        "last_sale": state.last_sale.invoice if state.last_sale else None,
        "out_of_service": state.failure or None,
        "devices": dict(state.devices),
        "display_missing": display.missing if display is not None else None,
        "receipt_waiting": state.receipt_waiting,
        "last_receipt": state.last_receipt.invoice if state.last_receipt else None,
        "notice": None
        if state.notice is None
        else {
            "code": state.notice.code,
            "message": state.notice.message,
            "invoice": state.notice.invoice,
            "total": money(state.notice.total_cents),
        },
    }


def _shown(serial: str | None, masked: bool) -> str | None:
    if serial is None:
        return None
    return mask_serial(serial) if masked else serial


def describe_input(item: Input) -> tuple[str, str, str]:
    """(kind, source, text) of an input that is not a scan, for the journal."""
    if isinstance(item, Command):
        text = item.name.value + (f":{item.argument}" if item.argument else "")
        return "command", item.source, text
    if isinstance(item, AttendantRelease):
        return "release", item.method, f"{item.attendant} by {item.method}"
    if isinstance(item, ManagerApproval):
        who = item.manager or "someone who is not a manager"
        return "manager", item.method, f"{who} by {item.method}"
    if isinstance(item, LedgerDone):
        return "ledger", "ledger", f"op {item.op_id}"
    if isinstance(item, Printed):
        return "print", "printer", f"{item.invoice} {'printed' if item.ok else 'failed'}"
    if isinstance(item, DeviceChanged):
        state = "working" if item.working else "fault"
        return "device", item.device, f"{item.device} {state}"
    if isinstance(item, Recovered):
        return "start", "restart", f"{item.invoice} {'saved' if item.saved else 'not saved'}"
    if isinstance(item, ServiceFault):
        return "fault", "lane", item.message
    if isinstance(item, ReceiptOwed):
        return "print", "restart", f"{item.receipt.invoice} owed"
    if isinstance(item, ServiceRestored):
        return "fault", "lane", "ledger writable again"
    if isinstance(item, Tick):
        return "tick", "clock", "deadline"
    return "input", "lane", type(item).__name__
