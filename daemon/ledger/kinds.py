"""Every kind of event the ledger records, named once.

An event's `kind` (in its body and in the `events.kind` column) is one of `Kind`'s
values. Code compares with the members (`event.kind == Kind.SELL`); SQL takes them as
parameters (`WHERE kind = ?`, `[Kind.SELL]`), or, where a literal is needed, through
`not_receipt`. The operations of the unit state machine (`daemon.rules.units.Op`)
are kinds of their own name: `Kind.of(Op.WRITE_OFF)` is `Kind.WRITE_OFF`.
"""

from __future__ import annotations

from enum import StrEnum

from daemon.rules.units import Op


class Kind(StrEnum):
    # A product is defined or changed.
    PRODUCT = "product"
    # The unit operations, one event per unit (the values of `Op`).
    RECEIVE = "receive"
    SELL = "sell"
    RETURN = "return"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    REPAIR_OPEN = "repair_open"
    REPAIR_STEP = "repair_step"
    REPAIR_CLOSE = "repair_close"
    WARRANTY_CLAIM = "warranty_claim"
    REPLACE_OLD = "replace_old"
    REPLACE_NEW = "replace_new"
    QUARANTINE = "quarantine"
    RELEASE = "release"
    RETURN_TO_SUPPLIER = "return_to_supplier"
    WRITE_OFF = "write_off"
    MARK_LOST = "mark_lost"
    MARK_FOUND = "mark_found"
    RELOCATE = "relocate"
    FLAG = "flag"
    UNFLAG = "unflag"
    # Around the operations.
    SELL_ITEM = "sell_item"  # a plain (not serialized) item on an invoice
    RETURN_REFUSED = "return_refused"  # an attempt to return the wrong unit
    OVERRIDE = "override"  # a manager let a unit through; recorded before the operation
    CORRECTION = "correction"  # undoes one unit event, naming it
    COUNT_OPEN = "count_open"
    COUNT_SCAN = "count_scan"
    COUNT_CLOSE = "count_close"
    # The lane's attendant and manager decisions.
    LANE_RELEASE = "lane_release"
    MANAGER_REFUSED = "manager_refused"
    # HQ's word on a unit in conflict.
    RESOLVE = "resolve"

    @classmethod
    def of(cls, op: Op) -> Kind:
        """The kind of event unit operation `op` records."""
        return cls(op.value)


# Events that change nothing but flags: they commute (flags are merged) and are never
# one side of a fork.
FLAG_KINDS = frozenset({Kind.FLAG, Kind.UNFLAG})
# Events that sell a unit to a customer.
SALE_KINDS = frozenset({Kind.SELL, Kind.REPLACE_NEW})


def not_receipt(column: str = "kind") -> str:
    """SQL that lets a query use the partial `events_kind` index (every event but
    receipts, which are most of the log). The planner matches the index's condition
    only when the query states it, so it is written out, from `Kind.RECEIVE`."""
    return f"{column} != '{Kind.RECEIVE.value}'"
