"""What the customer reads on the 2x20 pole display, and the words for each refusal.

The customer display shows short words; the cashier's prompt (the kiosk) carries the
full sentence from the ledger or the lane. Every line here fits 20 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.rules.values import BadValueError, parse_money

WIDTH = 20

WELCOME = ("WELCOME", "PLEASE SCAN AN ITEM")
LOCKED = ("PLEASE WAIT", "ATTENDANT CALLED")
CLOSED = ("LANE CLOSED", "OUT OF SERVICE")
RETURNS = ("RETURNS", "SCAN THE RECEIPT")
RECEIVING = ("RECEIVING", "SCAN THE PO")
WRITE_OFF = ("WRITE OFF", "SCAN THE UNIT")


@dataclass(frozen=True)
class RefusalWords:
    """How one refusal reads on the pole display, and whether it locks a self-checkout."""

    words: str  # second display line
    locks: bool = True  # self-checkout: lock the lane and call an attendant


# Unit refusals come from `daemon.rules.units.decide` (codes for a sale of a unit in a
# state other than in stock are the state's name); the rest are the lane's own.
REFUSALS: dict[str, RefusalWords] = {
    "already_sold": RefusalWords("ALREADY SOLD"),
    "quarantined": RefusalWords("QUARANTINED"),
    "in_repair": RefusalWords("IN REPAIR"),
    "written_off": RefusalWords("WRITTEN OFF"),
    "lost": RefusalWords("REPORTED LOST"),
    "returned_to_supplier": RefusalWords("NOT IN STOCK"),
    "flag_stolen": RefusalWords("BLOCKED: SEE STAFF"),
    "flag_recalled": RefusalWords("RECALLED"),
    "flag_conflict": RefusalWords("UNDER REVIEW"),
    "flag_on_hold": RefusalWords("ON HOLD"),
    "wrong_branch": RefusalWords("OTHER BRANCH"),
    "in_transit": RefusalWords("IN TRANSIT"),
    "unknown_unit": RefusalWords("UNKNOWN SERIAL"),
    "unknown_product": RefusalWords("UNKNOWN ITEM"),
    "ambiguous_serial": RefusalWords("SCAN PRODUCT FIRST"),
    "duplicate_in_basket": RefusalWords("SCANNED TWICE"),
    "wrong_unit": RefusalWords("WRONG UNIT"),
    "wrong_invoice": RefusalWords("WRONG UNIT"),
    "not_sold": RefusalWords("WRONG UNIT"),
    "unknown_invoice": RefusalWords("UNKNOWN RECEIPT"),
    "already_active": RefusalWords("ALREADY IN STOCK"),
    "wrong_state": RefusalWords("NOT POSSIBLE NOW"),
    "duplicate_in_document": RefusalWords("SCANNED TWICE"),
    "not_serialized": RefusalWords("NO SERIAL NEEDED"),
    "bad_serial": RefusalWords("BAD SERIAL"),
    "serial_timeout": RefusalWords("SERIAL NOT SCANNED"),
    "abandoned_basket": RefusalWords("ARE YOU STILL HERE?"),
    "receipt_failed": RefusalWords("RECEIPT TO FOLLOW"),
    "help_requested": RefusalWords("ATTENDANT CALLED"),
    "attendant_only": RefusalWords("ATTENDANT CALLED"),
    # Nobody needs to come for these: the person at the lane can put them right.
    "bad_scan": RefusalWords("PLEASE SCAN AGAIN", locks=False),
    "serial_expected": RefusalWords("SCAN SERIAL NUMBER", locks=False),
    "wrong_product": RefusalWords("SCAN SERIAL FIRST", locks=False),
    "product_expected": RefusalWords("SCAN PRODUCT FIRST", locks=False),
    "invoice_expected": RefusalWords("SCAN RECEIPT FIRST", locks=False),
    "po_expected": RefusalWords("SCAN THE PO FIRST", locks=False),
    "not_now": RefusalWords("NOT NOW", locks=False),
    "ledger_busy": RefusalWords("BUSY: SCAN AGAIN", locks=False),
    "unknown_command": RefusalWords("UNKNOWN COMMAND", locks=False),
    "empty_basket": RefusalWords("NOTHING TO PAY", locks=False),
    "bad_tender": RefusalWords("CHECK THE PAYMENT", locks=False),
    "short_tender": RefusalWords("NOT ENOUGH PAID", locks=False),
    "nothing_to_void": RefusalWords("NOTHING TO VOID", locks=False),
    "nothing_to_reprint": RefusalWords("NO RECEIPT YET", locks=False),
    "sale_open": RefusalWords("FINISH THE SALE", locks=False),
    "not_on_invoice": RefusalWords("NOT ON THAT INVOICE", locks=False),
    "plain_item_void": RefusalWords("SEE SERVICE DESK", locks=False),
    "count_closed": RefusalWords("COUNT IS CLOSED", locks=False),
    "not_in_count": RefusalWords("NOT IN THIS COUNT", locks=False),
    "unknown_count": RefusalWords("UNKNOWN COUNT", locks=False),
    "duplicate_document": RefusalWords("ALREADY EXISTS", locks=False),
}


def refusal(code: str) -> RefusalWords:
    """The display words for `code`; an unknown code (a new ledger refusal) still locks."""
    return REFUSALS.get(code, RefusalWords("NOT ACCEPTED"))


def money(cents: int) -> str:
    """`129900` -> `1299.00`; negative amounts keep their sign."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def cents(text: str) -> int | None:
    """`50`, `50.5`, `50.50` -> 5050; None when it is not an amount of money (as
    `daemon.rules.values.parse_money` reads one: within its range, at most two decimals)."""
    try:
        return parse_money(text)
    except BadValueError:
        return None


def row(left: str, right: str = "") -> str:
    """`left` and `right` on one display line, `right` flush with the right edge."""
    if not right:
        return left[:WIDTH]
    room = max(WIDTH - len(right) - 1, 0)
    return left[:room].ljust(room) + " " + right


def line(text: str) -> str:
    return text[:WIDTH]
