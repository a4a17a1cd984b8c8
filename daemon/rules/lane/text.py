"""What the customer reads on the 2x20 pole display, and the words for each refusal.

The customer display shows short words; the cashier's prompt (the kiosk) carries the
full sentence from the ledger or the lane. Every line here fits 20 characters.
"""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 20

WELCOME = ("WELCOME", "PLEASE SCAN AN ITEM")
LOCKED = ("PLEASE WAIT", "ATTENDANT CALLED")
CLOSED = ("LANE CLOSED", "OUT OF SERVICE")
RETURNS = ("RETURNS", "SCAN THE RECEIPT")
RECEIVING = ("RECEIVING", "SCAN THE PO")
WRITE_OFF = ("WRITE OFF", "SCAN THE UNIT")


@dataclass(frozen=True)
class Refusal:
    """How one refusal reads on the pole display, and whether it locks a self-checkout."""

    words: str  # second display line
    locks: bool = True  # self-checkout: lock the lane and call an attendant


# Unit refusals come from `daemon.rules.units.decide` (codes for a sale of a unit in a
# state other than in stock are the state's name); the rest are the lane's own.
REFUSALS: dict[str, Refusal] = {
    "already_sold": Refusal("ALREADY SOLD"),
    "quarantined": Refusal("QUARANTINED"),
    "in_repair": Refusal("IN REPAIR"),
    "written_off": Refusal("WRITTEN OFF"),
    "lost": Refusal("REPORTED LOST"),
    "returned_to_supplier": Refusal("NOT IN STOCK"),
    "flag_stolen": Refusal("BLOCKED: SEE STAFF"),
    "flag_recalled": Refusal("RECALLED"),
    "flag_conflict": Refusal("UNDER REVIEW"),
    "flag_on_hold": Refusal("ON HOLD"),
    "wrong_branch": Refusal("OTHER BRANCH"),
    "in_transit": Refusal("IN TRANSIT"),
    "unknown_unit": Refusal("UNKNOWN SERIAL"),
    "unknown_product": Refusal("UNKNOWN ITEM"),
    "ambiguous_serial": Refusal("SCAN PRODUCT FIRST"),
    "duplicate_in_basket": Refusal("SCANNED TWICE"),
    "wrong_unit": Refusal("WRONG UNIT"),
    "wrong_invoice": Refusal("WRONG UNIT"),
    "not_sold": Refusal("WRONG UNIT"),
    "unknown_invoice": Refusal("UNKNOWN RECEIPT"),
    "already_active": Refusal("ALREADY IN STOCK"),
    "wrong_state": Refusal("NOT POSSIBLE NOW"),
    "duplicate_in_document": Refusal("SCANNED TWICE"),
    "not_serialized": Refusal("NO SERIAL NEEDED"),
    "bad_serial": Refusal("BAD SERIAL"),
    "serial_timeout": Refusal("SERIAL NOT SCANNED"),
    "abandoned_basket": Refusal("ARE YOU STILL HERE?"),
    "receipt_failed": Refusal("RECEIPT TO FOLLOW"),
    "help_requested": Refusal("ATTENDANT CALLED"),
    "attendant_only": Refusal("ATTENDANT CALLED"),
    # Nobody needs to come for these: the person at the lane can put them right.
    "bad_scan": Refusal("PLEASE SCAN AGAIN", locks=False),
    "serial_expected": Refusal("SCAN SERIAL NUMBER", locks=False),
    "product_expected": Refusal("SCAN PRODUCT FIRST", locks=False),
    "invoice_expected": Refusal("SCAN RECEIPT FIRST", locks=False),
    "po_expected": Refusal("SCAN THE PO FIRST", locks=False),
    "not_now": Refusal("NOT NOW", locks=False),
    "unknown_command": Refusal("UNKNOWN COMMAND", locks=False),
    "empty_basket": Refusal("NOTHING TO PAY", locks=False),
    "bad_tender": Refusal("CHECK THE PAYMENT", locks=False),
    "short_tender": Refusal("NOT ENOUGH PAID", locks=False),
    "nothing_to_void": Refusal("NOTHING TO VOID", locks=False),
    "nothing_to_reprint": Refusal("NO RECEIPT YET", locks=False),
    "sale_open": Refusal("FINISH THE SALE", locks=False),
    "not_on_invoice": Refusal("NOT ON THAT INVOICE", locks=False),
    "plain_item_void": Refusal("SEE SERVICE DESK", locks=False),
    "count_closed": Refusal("COUNT IS CLOSED", locks=False),
    "not_in_count": Refusal("NOT IN THIS COUNT", locks=False),
    "unknown_count": Refusal("UNKNOWN COUNT", locks=False),
    "duplicate_document": Refusal("ALREADY EXISTS", locks=False),
}


def refusal(code: str) -> Refusal:
    """The display words for `code`; an unknown code (a new ledger refusal) still locks."""
    return REFUSALS.get(code, Refusal("NOT ACCEPTED"))


def money(cents: int) -> str:
    """`129900` -> `1299.00`; negative amounts keep their sign."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def cents(text: str) -> int | None:
    """`50`, `50.5`, `50.50` -> 5050; None when it is not an amount of money."""
    whole, _, part = text.strip().partition(".")
    if not whole.isdigit() or (part and not (part.isdigit() and len(part) <= 2)):
        return None
    return int(whole) * 100 + int(part.ljust(2, "0") or 0)


def row(left: str, right: str = "") -> str:
    """`left` and `right` on one display line, `right` flush with the right edge."""
    if not right:
        return left[:WIDTH]
    room = max(WIDTH - len(right) - 1, 0)
    return left[:room].ljust(room) + " " + right


def line(text: str) -> str:
    return text[:WIDTH]
