"""What the lane writes to the journal about each ledger operation it carried out.

One entry per operation (a sale, a return, a write-off, a count scan…), after the
ledger committed or refused it, with fields an engineer can search on the terminal:

    journalctl -u posd POSD_SERIAL=LX-1 -o verbose     # everything about one unit
    journalctl -u posd POSD_EVENT=sell --since today   # today's sales
    journalctl -u posd POSD_OUTCOME=refused            # what the ledger refused

`POSD_EVENT` names the operation, `POSD_DOC` its document (invoice, purchase order,
count), `POSD_PRODUCT` and `POSD_SERIAL` the units (repeated for several), and
`POSD_OUTCOME` is `done` or `refused` (then `POSD_REASON` holds the reason codes).
Scans that start no ledger operation are in the ledger's lane log, not here: the
journal is for people, and one entry per scan would only bury these.
"""

from __future__ import annotations

import logging

from daemon.rules.lane.types import (
    CloseCount,
    CountScan,
    LedgerDone,
    LedgerOp,
    OpenCount,
    ReceiveUnits,
    RecordRefusedManager,
    RecordRelease,
    ReturnUnit,
    SellBasket,
    VoidSold,
    WriteOff,
)

log = logging.getLogger("daemon.lane")


def _what(op: LedgerOp) -> tuple[str, str, list[tuple[str, str]]]:
    """(event, document, [(product, serial)]) of `op`."""
    match op:
        case SellBasket(basket=basket):
            units = [(line.product.code, line.serial) for line in basket.lines if line.serial]
            return "sell", basket.invoice, units
        case ReturnUnit() | VoidSold():
            event = "return" if isinstance(op, ReturnUnit) else "void"
            return event, op.invoice, [(op.product, op.serial)]
        case ReceiveUnits():
            return "receive", op.po, [(u.product.code, u.serial) for u in op.units]
        case WriteOff():
            return "write_off", "", [(op.product, op.serial)]
        case CountScan():
            return "count_scan", op.count, [(op.product, op.serial)]
        case OpenCount():
            return "count_open", op.argument, []
        case CloseCount():
            return "count_close", op.count, []
        case RecordRelease():
            return "attendant_release", "", []
        case RecordRefusedManager():
            return "manager_refused", "", []
    raise TypeError(f"no journal description for ledger operation {type(op).__name__}")


def record(op: LedgerOp, done: LedgerDone) -> None:
    """Write one journal entry for `op`, which the ledger carried out or refused."""
    event, document, units = _what(op)
    outcome = "refused" if done.refused else "done"
    fields: dict[str, object] = {
        "POSD_EVENT": event,
        "POSD_OUTCOME": outcome,
        "POSD_DOC": document or None,
        "POSD_PRODUCT": sorted({product for product, _ in units}) or None,
        "POSD_SERIAL": [serial for _, serial in units] or None,
        "POSD_REASON": [code for code, _ in done.refused] or None,
    }
    shown = ", ".join(f"{product}/{serial}" for product, serial in units)
    about = " ".join(part for part in (document, shown) if part)
    if done.refused:
        why = "; ".join(message for _, message in done.refused)
        log.warning("%s refused%s: %s", event, f" ({about})" if about else "", why, extra=fields)
    else:
        log.info("%s%s", event, f": {about}" if about else "", extra=fields)
