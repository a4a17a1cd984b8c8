"""The serial ledger's operations: what a store does to its units, each one a set of
events. `Ledger` is the one class callers use; its parts live by document:

- receiving (`daemon.ledger.receiving`),
- selling and returns (`daemon.ledger.selling`),
- repairs, warranty claims and replacements (`daemon.ledger.repairs`),
- transfers, stock states, flags and corrections (`daemon.ledger.movements`),

on the checks they share (`daemon.ledger.core`). Stock counts are in
`daemon.ledger.stocktake`, recalls in `daemon.ledger.recalls`.
"""

from __future__ import annotations

from daemon.ledger.core import Outcome, UnitRef, uuids, values_problems
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.events import Change
from daemon.ledger.kinds import Kind
from daemon.ledger.movements import Movements
from daemon.ledger.receiving import Receiving
from daemon.ledger.repairs import Repairs
from daemon.ledger.selling import SaleLine, Selling
from daemon.rules.serials import SerialError, compile_serial_rule
from daemon.rules.values import IDENTIFIER, NAME

__all__ = ["Ledger", "Outcome", "SaleLine", "UnitRef"]

MAX_WARRANTY_MONTHS = 600


class Ledger(Receiving, Selling, Repairs, Movements):
    """The serial ledger: every unit's passport. Open with `create` or `open`."""

    def define_product(
        self,
        code: str,
        name: str,
        *,
        actor: str,
        gtin: str | None = None,
        serial_tracked: bool = True,
        serial_rule: str | None = None,
        warranty_months: int = 0,
        mask_serial: bool = False,
        price_cents: int = 0,
    ) -> Outcome:
        """Add a product, or change one. Serial tracking cannot be switched off once on."""
        bad = values_problems(
            (IDENTIFIER, code, "product code"),
            (NAME, name, "product name"),
            ("money", price_cents, "price"),
        )
        if isinstance(warranty_months, bool) or not (
            isinstance(warranty_months, int) and 0 <= warranty_months <= MAX_WARRANTY_MONTHS
        ):
            bad.append(
                Problem(
                    "bad_value",
                    f"warranty of {warranty_months!r} months is outside 0 to {MAX_WARRANTY_MONTHS}",
                )
            )
        self._refuse_if(bad)
        existing = self.product(code)
        if existing and existing.serial_tracked and not serial_tracked:
            raise Refusal(
                [Problem("tracking_locked", f"{code}: serial tracking cannot be switched off")]
            )
        if serial_rule is not None:
            try:
                compile_serial_rule(serial_rule)
            except SerialError as exc:
                raise Refusal([Problem("bad_rule", str(exc))]) from None
        if gtin is not None and not (gtin.isdigit() and len(gtin) in (8, 12, 13, 14)):
            raise Refusal([Problem("bad_gtin", f"GTIN {gtin!r} must be 8, 12, 13 or 14 digits")])
        data = {
            "code": code,
            "name": name,
            "gtin": gtin,
            "serial_tracked": int(serial_tracked),
            "serial_rule": serial_rule,
            "warranty_months": warranty_months,
            "mask_serial": int(mask_serial),
            "price_cents": price_cents,
        }
        sealed = self.record(self.stamp(actor), [Change(Kind.PRODUCT, data)])
        verb = "changed" if existing else "added"
        return Outcome(f"product {code} ({name}) {verb}", [s.uuid for s in sealed])

    # -- the lane's attendants and managers ------------------------------------------

    def record_release(self, attendant: str, *, method: str, code: str, message: str) -> Outcome:
        """Record that an attendant released this terminal's locked lane (`code` and
        `message`: why it was locked; `method`: badge, PIN, …)."""
        data = {"terminal": self.terminal, "method": method, "reason": code, "message": message}
        sealed = self.record(self.stamp(attendant), [Change(Kind.LANE_RELEASE, data)])
        return Outcome(f"lane {self.terminal} released by {attendant}", uuids(sealed))

    def record_refused_manager(
        self, *, actor: str, who: str, method: str, action: str, code: str, message: str
    ) -> Outcome:
        """Record a refused attempt to act as a manager (`who` gave `method` for `action`)."""
        data = {"terminal": self.terminal, "who": who, "method": method, "for": action}
        data |= {"reason": code, "message": message}
        sealed = self.record(self.stamp(actor), [Change(Kind.MANAGER_REFUSED, data)])
        return Outcome(f"{who} refused as a manager for {action}", uuids(sealed))
