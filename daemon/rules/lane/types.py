"""What the lane's state machine works with: its state, what comes in, what goes out.

Plain frozen data, no behaviour: `daemon.rules.lane.machine` decides, the wiring in
`daemon.lane.loop` looks things up before a decision and carries out the effects after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from daemon.rules.barcode import ParseResult
from daemon.rules.units import State, UnitView


class Mode(StrEnum):
    """Where the lane is. `OUT_OF_SERVICE` has one way in (a service fault) and one way
    out (`ServiceRestored`: the wiring found the ledger writable again), or a restart."""

    IDLE = "idle"
    IN_SALE = "in_sale"
    AWAITING_SERIAL = "awaiting_serial"  # a serialized product was scanned; its serial next
    RETURN = "return"  # scan the invoice (the receipt's barcode), then the unit
    RECEIVING = "receiving"  # scan the purchase order, then the units
    ATTENDANT_NEEDED = "attendant_needed"
    MANAGER_NEEDED = "manager_needed"  # an override, a void of a sold line, a write-off
    WRITE_OFF = "write_off"  # scan the unit to write off; a manager approves
    COUNTING = "counting"  # stock count: scan every unit on the shelves, then DONE
    OUT_OF_SERVICE = "out_of_service"


class Light(StrEnum):
    GREEN = "green"  # ready, accepted
    AMBER = "amber"  # waiting for something (a serial, the receipt, a PO)
    RED = "red"  # refused
    RED_BLINKING = "red_blinking"  # attendant called, or out of service


class Beep(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    ATTENDANT = "attendant"  # repeats until the next beep or STOP
    STOP = "stop"


class CommandName(StrEnum):
    """Commands from command barcodes (`#CMD:VOID`) and from the kiosk API."""

    START = "START"  # open a sale; argument: the customer's name
    VOID = "VOID"  # argument: line number (1 = first); none: the last line
    CANCEL = "CANCEL"  # drop the basket / leave return or receiving mode
    TENDER = "TENDER"  # complete the sale; argument: METHOD[:AMOUNT], e.g. CASH:50.00
    RETURN = "RETURN"  # return mode
    RECEIVE = "RECEIVE"  # receiving mode; argument: the supplier
    DONE = "DONE"  # finish receiving (writes the units) or returns
    REPRINT = "REPRINT"  # print the last receipt again (or retry one that failed)
    HELP = "HELP"  # call an attendant
    COUNT = "COUNT"  # stock count; argument: a product code, or an open count to go on with
    WRITEOFF = "WRITEOFF"  # write off the unit scanned next; argument: the reason
    STATUS = "STATUS"  # which devices are missing


@dataclass(frozen=True)
class LaneSettings:
    """The lane's fixed settings (from configuration)."""

    terminal: str
    branch: str
    self_checkout: bool = False
    currency: str = ""
    serial_timeout_s: float = 30.0
    mode_timeout_s: float = 120.0
    abandoned_sale_s: float = 300.0
    return_condition: str = "as brought back to the lane"
    return_disposition: State = State.QUARANTINED
    supplier: str = "delivery at the lane"
    walk_in_customer: str = "walk-in customer"
    badges: Mapping[str, str] = field(default_factory=dict)  # badge id -> attendant name
    managers: Mapping[str, str] = field(default_factory=dict)  # badge id -> manager name


@dataclass(frozen=True)
class Now:
    """The time of one step, passed in: `monotonic` for deadlines, `wall` for documents."""

    monotonic: float
    wall: datetime


# -------------------------------------------------------------- facts from the ledger


@dataclass(frozen=True)
class ProductFacts:
    code: str
    name: str
    price_cents: int
    serial_tracked: bool = True
    gtin: str | None = None
    mask_serial: bool = True
    warranty_months: int = 0


@dataclass(frozen=True)
class UnitFacts:
    product: ProductFacts
    serial: str  # as the supplier printed it
    key: str  # the normalised key the ledger judges uniqueness on
    view: UnitView


@dataclass(frozen=True)
class InvoiceLine:
    product: ProductFacts
    serial: str | None
    key: str | None
    price_cents: int
    quantity: int = 1


@dataclass(frozen=True)
class InvoiceFacts:
    number: str
    exists: bool
    lines: tuple[InvoiceLine, ...] = ()


@dataclass(frozen=True)
class LookupPlan:
    """What the wiring must look up in the ledger before a scan can be decided."""

    gtin: str | None = None
    product_code: str | None = None
    serial: str | None = None
    invoice: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.gtin or self.product_code or self.serial or self.invoice)


@dataclass(frozen=True)
class Facts:
    """What the ledger answered for a `LookupPlan`."""

    product: ProductFacts | None = None
    units: tuple[UnitFacts, ...] = ()
    invoice: InvoiceFacts | None = None


# ------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Scanned:
    parsed: ParseResult
    facts: Facts = Facts()
    source: str = "scanner"


@dataclass(frozen=True)
class ScannerTrouble:
    """A scan that was not read whole, or a scanner that went away or came back."""

    reason: str
    message: str
    source: str
    connected: bool = True


@dataclass(frozen=True)
class Command:
    name: CommandName
    argument: str = ""
    source: str = "api"
    facts: Facts = Facts()  # what the ledger said, for a command that names a document


@dataclass(frozen=True)
class ManagerApproval:
    """Someone answered the lane's call for a manager with a PIN at the kiosk.
    `manager` is None when the PIN is nobody's or not a manager's."""

    manager: str | None
    method: str  # "pin" (a badge comes in as a scan)


@dataclass(frozen=True)
class AttendantRelease:
    """An attendant identified themselves (badge scan or PIN) to release a locked lane."""

    attendant: str
    method: str  # "badge" or "pin"


@dataclass(frozen=True)
class Tick:
    """Time passed; deadlines (serial, idle mode, abandoned basket) are checked."""


@dataclass(frozen=True)
class LedgerDone:
    """The ledger carried out (or refused) the operation `op_id`."""

    op_id: int
    refused: tuple[tuple[str, str], ...] = ()  # (code, message) per problem
    details: Mapping[str, Any] = field(default_factory=dict)  # what the operation found


@dataclass(frozen=True)
class Printed:
    invoice: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class DeviceChanged:
    device: str  # "display", "printer", "light", "buzzer"
    working: bool
    message: str = ""


@dataclass(frozen=True)
class ServiceFault:
    """The lane cannot go on (the ledger cannot be written: full disk, I/O error)."""

    message: str


@dataclass(frozen=True)
class ReceiptOwed:
    """At start: a receipt the printer could not print before the restart; it prints
    now, or by itself once the printer can (each receipt once)."""

    receipt: ReceiptSpec


@dataclass(frozen=True)
class ServiceRestored:
    """Out of service, the ledger could be written again: the lane goes back to what it
    was doing (a basket open stays open)."""


@dataclass(frozen=True)
class Busy:
    """Another program held the ledger's write lock too long: nothing was done for the
    input in hand, which may be given again. The lane stays in service."""

    message: str


@dataclass(frozen=True)
class Recovered:
    """At start: the basket that was open when the daemon last stopped, and whether the
    ledger has its sale."""

    invoice: str
    saved: bool
    total_cents: int = 0
    receipt: ReceiptSpec | None = None


Input = (
    Scanned
    | ScannerTrouble
    | Command
    | AttendantRelease
    | ManagerApproval
    | Tick
    | LedgerDone
    | Printed
    | DeviceChanged
    | ServiceFault
    | ServiceRestored
    | Busy
    | Recovered
    | ReceiptOwed
)


# ------------------------------------------------------------------ the lane's data


@dataclass(frozen=True)
class BasketLine:
    product: ProductFacts
    price_cents: int
    serial: str | None = None
    key: str | None = None
    quantity: int = 1
    approved_by: str | None = None  # the manager who overrode a refusal for this unit


@dataclass(frozen=True)
class Basket:
    invoice: str
    customer: str
    lines: tuple[BasketLine, ...] = ()

    @property
    def total_cents(self) -> int:
        return sum(line.price_cents * line.quantity for line in self.lines)

    def holds(self, product: str, key: str) -> bool:
        return any(line.product.code == product and line.key == key for line in self.lines)


@dataclass(frozen=True)
class ReceivedUnit:
    product: ProductFacts
    serial: str
    key: str
    # From the unit's GS1 code, when it carries them (else the supplier's notice may).
    lot: str | None = None
    expiry: date | None = None


@dataclass(frozen=True)
class Lock:
    """Why the lane waits for an attendant, and where it goes back to."""

    code: str
    message: str
    resume: Mode
    pending: Command | None = None  # an attendant-only command to run once released


@dataclass(frozen=True)
class Approval:
    """What the lane waits for a manager to approve, and where it goes back to."""

    action: str  # "override", "void_sold", "write_off"
    code: str  # why a manager is needed (for an override: the refusal overridden)
    message: str
    resume: Mode
    unit: UnitFacts | None = None  # override, write-off: the unit
    line: BasketLine | None = None  # void_sold: the line sold
    invoice: str | None = None  # void_sold: the invoice it was sold on
    reason: str = ""  # write-off: why


@dataclass(frozen=True)
class Tender:
    method: str
    amount_cents: int | None = None  # None: exactly the total


@dataclass(frozen=True)
class ReceiptLineSpec:
    description: str
    price_cents: int
    serial: str | None = None
    mask_serial: bool = True
    warranty_ends: date | None = None


@dataclass(frozen=True)
class ReceiptSpec:
    """A receipt to print once its sale (or return) is durable."""

    invoice: str
    issued_at: datetime
    lines: tuple[ReceiptLineSpec, ...]
    tenders: tuple[tuple[str, int], ...] = ()
    footer: tuple[str, ...] = ()

    @property
    def total_cents(self) -> int:
        return sum(line.price_cents for line in self.lines)


# ------------------------------------------------------------------ ledger operations


@dataclass(frozen=True)
class SellBasket:
    op_id: int
    basket: Basket
    tender: Tender


@dataclass(frozen=True)
class ReturnUnit:
    op_id: int
    invoice: str
    product: str
    serial: str
    condition: str
    disposition: State
    refund_cents: int = 0
    description: str = ""


@dataclass(frozen=True)
class ReceiveUnits:
    op_id: int
    po: str
    supplier: str
    units: tuple[ReceivedUnit, ...]


@dataclass(frozen=True)
class RecordRelease:
    op_id: int
    attendant: str
    method: str
    code: str
    message: str


@dataclass(frozen=True)
class RecordRefusedManager:
    """Someone who is not a manager tried to approve what needs one."""

    op_id: int
    who: str  # "Mia (attendant)" or "a PIN that is no manager's"
    method: str
    action: str
    code: str
    message: str


@dataclass(frozen=True)
class VoidSold:
    """Undo the sale of one unit on a completed invoice (a correction event)."""

    op_id: int
    invoice: str
    product: str
    serial: str
    description: str
    refund_cents: int
    manager: str


@dataclass(frozen=True)
class WriteOff:
    op_id: int
    product: str
    serial: str
    description: str
    reason: str
    manager: str


@dataclass(frozen=True)
class OpenCount:
    """Open a stock count (of one product, if given), or go on with an open one."""

    op_id: int
    argument: str  # "", a product code, or the number of a count still open


@dataclass(frozen=True)
class CountScan:
    op_id: int
    count: str
    product: str
    serial: str
    description: str
    view: UnitView | None = None  # where the ledger had the unit when it was scanned


@dataclass(frozen=True)
class CloseCount:
    op_id: int
    count: str


LedgerOp = (
    SellBasket
    | ReturnUnit
    | ReceiveUnits
    | RecordRelease
    | RecordRefusedManager
    | VoidSold
    | WriteOff
    | OpenCount
    | CountScan
    | CloseCount
)


# ------------------------------------------------------------------------ outputs


@dataclass(frozen=True)
class Verdict:
    """What became of one input, for the audit record and the kiosk."""

    outcome: str  # "accepted", "refused", "prompt", "ignored"
    code: str
    message: str


@dataclass(frozen=True)
class Notice:
    """What the lane says at start about the sale that was open when it stopped."""

    code: str  # "last_sale_saved" or "last_sale_lost"
    message: str
    invoice: str
    total_cents: int = 0


@dataclass(frozen=True)
class Effects:
    """What the wiring must do after a step. None: leave that output as it is."""

    display: tuple[str, str] | None = None
    light: Light | None = None
    beep: Beep | None = None
    prompt: str | None = None
    verdict: Verdict | None = None
    ledger: LedgerOp | None = None
    receipt: ReceiptSpec | None = None
    reprint: bool = False
    open_drawer: bool = False


@dataclass(frozen=True)
class LaneState:
    mode: Mode = Mode.IDLE
    basket: Basket | None = None
    pending_product: ProductFacts | None = None  # AWAITING_SERIAL
    serial_for: Mode | None = None  # AWAITING_SERIAL: the mode the serial is for
    document: str | None = None  # the invoice (RETURN) or purchase order (RECEIVING)
    invoice: InvoiceFacts | None = None  # RETURN: what that invoice sold
    received: tuple[ReceivedUnit, ...] = ()  # RECEIVING: scanned, not yet written
    supplier: str = ""
    lock: Lock | None = None  # ATTENDANT_NEEDED
    approval: Approval | None = None  # MANAGER_NEEDED
    last_sale: Basket | None = None  # the last basket paid for here (to void a line of)
    reason: str = ""  # WRITE_OFF: why
    count_product: str | None = None  # COUNTING: the one product counted, if any
    counted: int = 0  # COUNTING: scans recorded
    last_count: str | None = None  # the count this lane last closed (its report)
    pending: LedgerOp | None = None  # sent to the ledger, answer not yet in
    failure: str = ""  # OUT_OF_SERVICE: why
    halted_in: Mode | None = None  # OUT_OF_SERVICE: the mode to go back to once restored
    deadline: float | None = None  # monotonic time the next Tick matters
    next_op: int = 1
    next_invoice: int = 1
    display: tuple[str, str] = ("", "")
    light: Light = Light.GREEN
    prompt: str = ""
    last_receipt: ReceiptSpec | None = None
    receipt_waiting: str | None = None  # invoice whose receipt did not print
    devices: Mapping[str, str] = field(default_factory=dict)  # device -> what is wrong
    # What the lane said at start about the sale open when it stopped (saved, or lost),
    # kept for a screen that connects later, until someone uses the lane.
    notice: Notice | None = None

    def evolve(self, **changes: Any) -> LaneState:
        """A copy with `changes`: `dataclasses.replace` without running `__init__` again.
        Every input takes a few of these on the scan path, and this is several times
        faster for a state of this many fields."""
        unknown = changes.keys() - _STATE_FIELDS
        if unknown:
            raise TypeError(f"LaneState has no field {sorted(unknown)[0]!r}")
        new = object.__new__(LaneState)
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        return new


_STATE_FIELDS = frozenset(LaneState.__dataclass_fields__)
