"""Fourteen digits: a GTIN-14, or a phone's IMEI printed without its check digit.

`barcode.parse` cannot tell the two apart (a third of IMEI-14s pass the GTIN check
digit by chance, the rest fail it), so it reads such a scan as a GTIN and keeps the
digits as `imei`. The lane asks the ledger for both (`machine.plan_lookup`), and
`read_imei` settles the reading before the scan is decided:

- while the lane waits for the serial of a product: the digits are that serial when
  the ledger has such a unit of that product, or has no product with that GTIN (a
  phone received with its IMEI-14);
- otherwise: the digits are a unit's serial when the ledger has such a unit and no
  product with that GTIN; when it has both, the scan is refused as ambiguous, never
  guessed.

In every other case the scan stays what the parse said: a product, or a refused GTIN.
"""

from __future__ import annotations

from dataclasses import replace

from daemon.rules.barcode import PlainLabel, ProductCode, Rejected
from daemon.rules.lane.types import LaneState, Mode, Scanned


def imei_digits(parsed: object) -> str | None:
    """The digits of a scan that may be an IMEI-14, or None."""
    if isinstance(parsed, ProductCode | Rejected):
        return parsed.imei
    return None


def read_imei(event: Scanned, state: LaneState) -> Scanned:
    """`event` with its 14 digits read as a serial, refused as ambiguous, or unchanged."""
    parsed, facts = event.parsed, event.facts
    digits = imei_digits(parsed)
    if digits is None:
        return event
    product = facts.product if isinstance(parsed, ProductCode) else None
    symbology = parsed.symbology if isinstance(parsed, ProductCode) else None
    as_serial = replace(event, parsed=PlainLabel(digits, symbology))
    pending = state.pending_product if state.mode is Mode.AWAITING_SERIAL else None
    if pending is not None:
        if product is None or any(u.product.code == pending.code for u in facts.units):
            return as_serial
        return event
    if not facts.units:
        return event
    if product is None:
        return as_serial
    names = " and ".join(sorted({f"{u.product.name} serial {u.serial}" for u in facts.units}))
    return replace(
        event,
        parsed=Rejected(
            "ambiguous_barcode",
            f"{digits} is the GTIN of {product.name} and also the IMEI of {names}; scan the "
            "product's barcode, then its serial",
        ),
    )
