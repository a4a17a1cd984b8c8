"""Facts and helpers for lane tests: products, units, and a lane driven input by input."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from daemon.rules.barcode import (
    CommandCode,
    ParseResult,
    PlainLabel,
    ProductCode,
    Rejected,
    UnitCode,
)
from daemon.rules.lane.machine import initial_state, step
from daemon.rules.lane.types import (
    CloseCount,
    CountScan,
    Effects,
    Facts,
    Input,
    InvoiceFacts,
    InvoiceLine,
    LaneSettings,
    LaneState,
    LedgerDone,
    Now,
    OpenCount,
    ProductFacts,
    Scanned,
    UnitFacts,
)
from daemon.rules.units import Flag, State, UnitView

CASHIER = LaneSettings(terminal="T-001", branch="NORTH", managers={"BADGE-9001": "Max"})
SELF = replace(CASHIER, self_checkout=True, badges={"BADGE-0042": "Mia"})

LAPTOP = ProductFacts("LAP-X1", "Laptop X1", 129900, True, "04006381333931", False, 24)
PHONE = ProductFacts("PHN-S9", "Phone S9", 79900, True, "05012345678900", True, 12)
CABLE = ProductFacts("CABLE", "USB cable", 1500, False, "04012345678901")
TABLET = ProductFacts("TAB-T2", "Tablet T2", 49900, True, None)


def unit(
    serial: str,
    state: State = State.IN_STOCK,
    *,
    product: ProductFacts = LAPTOP,
    branch: str = "NORTH",
    flags: tuple[Flag, ...] = (),
    invoice: str | None = None,
    dest: str | None = None,
) -> UnitFacts:
    view = UnitView(
        label=f'{product.name} serial "{serial}"',
        state=state,
        branch=branch,
        flags=frozenset(flags),
        invoice=invoice,
        dest_branch=dest,
    )
    return UnitFacts(product, serial, serial.upper(), view)


def label(text: str, *units: UnitFacts, product: ProductFacts | None = None) -> tuple:
    return (PlainLabel(text), Facts(product=product, units=units))


def gtin(product: ProductFacts | None, code: str = "4006381333931") -> tuple:
    return (ProductCode(code, "0" + code), Facts(product=product))


def gs1(product: ProductFacts | None, serial: str, *units: UnitFacts) -> tuple:
    return (UnitCode("04006381333931", serial), Facts(product=product, units=units))


def command(name: str, argument: str = "") -> tuple:
    return (CommandCode(name, argument), Facts())


def rejected(code: str = "bad_check_digit") -> tuple:
    return (Rejected(code, "product barcode fails its check digit; scan it again"), Facts())


def invoice(number: str, *units: UnitFacts, exists: bool = True) -> tuple:
    lines = tuple(InvoiceLine(u.product, u.serial, u.key, u.product.price_cents) for u in units)
    return (PlainLabel(number), Facts(invoice=InvoiceFacts(number, exists, lines)))


NOW = Now(1000.0, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))


@dataclass
class Driven:
    """A lane fed inputs one by one, answering its ledger operations as told."""

    cfg: LaneSettings
    state: LaneState = field(default_factory=initial_state)
    clock: float = 1000.0
    effects: list[Effects] = field(default_factory=list)
    ops: list[object] = field(default_factory=list)

    verdicts: list[str] = field(default_factory=list)  # count scans: the ledger's verdicts

    def feed(self, event: Input, *, refuse: tuple[tuple[str, str], ...] = ()) -> Effects:
        now = Now(self.clock, NOW.wall)
        self.state, effects = step(self.state, event, now, self.cfg)
        self.effects.append(effects)
        if effects.ledger is not None:
            self.ops.append(effects.ledger)
            details = {} if refuse else self._answer(effects.ledger)
            return self.feed(LedgerDone(effects.ledger.op_id, refuse, details))
        return effects

    def _answer(self, op: object) -> dict[str, object]:
        """What the ledger says back for a stock count's steps."""
        if isinstance(op, OpenCount):
            product = op.argument or None
            return {"count": "C-T-001-0001", "product": product, "scanned": 0}
        if isinstance(op, CountScan):
            return {"verdict": self.verdicts.pop(0) if self.verdicts else "expected"}
        if isinstance(op, CloseCount):
            names = ("expected", "found", "missing", "unexpected", "duplicates", "unknown")
            return dict.fromkeys(names, 0)
        return {}

    def scan(self, scanned: tuple, **kw: object) -> Effects:
        parsed: ParseResult = scanned[0]
        return self.feed(Scanned(parsed, scanned[1]), **kw)  # type: ignore[arg-type]

    @property
    def last_code(self) -> str | None:
        for effects in reversed(self.effects):
            if effects.verdict is not None:
                return effects.verdict.code
        return None
