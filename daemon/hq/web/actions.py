"""What a manager changes from the dashboard: each change an HQ event naming them.

Resolving a conflict is HQ's own `Central.resolve`. A recall flags every unit its
selection covers `recalled`, in one HQ transaction, each flag an HQ event with the
recall notice as its document: like `Central.flag` (which flags one unit on a
document of its own), through the same `Session`, so the flags reach every branch
that has had the unit, and the outreach list finds them by the notice.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from daemon.hq.central import Central, HqRefusal
from daemon.hq.session import Session, transact
from daemon.ledger.errors import Refusal
from daemon.ledger.reader import ReadStore
from daemon.ledger.recalls import RecallSelector, select_units
from daemon.ledger.remote import flag_change, unit_head
from daemon.rules.serials import serial_key
from daemon.rules.units import Flag

MAX_RECALL_UNITS = 200_000


def matching_units(store: ReadStore, selector: RecallSelector) -> list[tuple[str, str]]:
    """(product, serial) of every unit a recall selection covers."""
    try:
        refs = select_units(store, selector)
    except Refusal as exc:
        raise HqRefusal("; ".join(p.message for p in exc.problems)) from None
    return [(ref.product, ref.serial) for ref in refs]


def recall(
    central: Central,
    store: ReadStore,
    notice: str,
    selector: RecallSelector,
    *,
    reason: str,
    actor: str,
) -> dict[str, Any]:
    """Flag every unit `selector` covers as recalled, on recall notice `notice`."""
    if not notice.strip():
        raise HqRefusal("a recall needs its notice number (the manufacturer's or yours)")
    if not reason.strip():
        raise HqRefusal("a recall needs a reason, e.g. the manufacturer's notice title")
    units = matching_units(store, selector)
    if not units:
        raise HqRefusal(f"recall {notice}: no unit at HQ matches {selector.describe()}")
    if len(units) > MAX_RECALL_UNITS:
        raise HqRefusal(
            f"recall {notice}: {len(units)} units match, more than {MAX_RECALL_UNITS} at once;"
            " narrow it (a lot, a range) and recall the rest under the same notice"
        )

    def work(session: Session) -> int:
        flagged = 0
        for product, serial in units:
            head = unit_head(session.tx, product, serial_key(serial), session.backend.lock_unit)
            if head is None or Flag.RECALLED.value in head.flags:
                continue  # already recalled: flags are idempotent
            change = flag_change(
                product,
                head.serial,
                head.last_event,
                head.flags,
                sorted({*head.flags, Flag.RECALLED.value}),
                {"flag": Flag.RECALLED.value, "reason": reason, "recall": notice},
            )
            session.record(dataclasses.replace(change, doc=("recall", notice)))
            flagged += 1
        return flagged

    flagged, _ = transact(central.backend, central.caches, work, actor=actor)
    return {
        "message": f"recall {notice}: {len(units)} unit(s) match, {flagged} flagged recalled"
        + (f" ({len(units) - flagged} already were)" if flagged < len(units) else ""),
        "matched": len(units),
        "flagged": flagged,
    }


def resolve(
    central: Central, product: str, serial: str, *, keep: str | None, note: str, actor: str
) -> dict[str, Any]:
    """Settle a unit's conflict through HQ's own resolution (keep one side, or none)."""
    if not note.strip():
        raise HqRefusal("say why in the note: it stays in the unit's history")
    return central.resolve(product, serial, keep=keep or None, note=note.strip(), actor=actor)
