"""One ledger event → one EPCIS 2.0 ObjectEvent (or None: no unit moved).

Business step and disposition come from GS1's Core Business Vocabulary 2.0
(`KIND_STEPS`; docs/epcis.md has the table). A unit's first receipt is an `ADD`
(the unit enters the record) and carries its lot and expiry as ILMD; every other
event `OBSERVE`s the unit. posd's own facts (the ledger event's id and kind, the
replacement link, the event a correction undoes) are extension fields in posd's
namespace (`posd:`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from daemon.epcis.identifiers import POSD_NAMESPACE, Places, document_uri, event_uri, unit_uri
from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind

EPCIS_CONTEXT = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
# Compact-name prefixes the documents declare (the hash expands them).
PREFIXES = {"posd": POSD_NAMESPACE, "cbvmda": "urn:epcglobal:cbv:mda:"}
CONTEXT: list[Any] = [EPCIS_CONTEXT, dict(PREFIXES)]

# The product's GTIN (None: it has none) by product code.
GtinOf = Callable[[str], str | None]

# Kind → (bizStep, disposition); a disposition of None follows the unit's state after.
KIND_STEPS: dict[str, tuple[str | None, str | None]] = {
    Kind.RECEIVE: ("receiving", "in_progress"),
    Kind.SELL: ("retail_selling", "retail_sold"),
    Kind.RETURN: ("receiving", "returned"),
    Kind.TRANSFER_OUT: ("shipping", "in_transit"),
    Kind.TRANSFER_IN: ("receiving", "in_progress"),
    Kind.REPAIR_OPEN: ("repairing", "non_sellable_other"),
    Kind.REPAIR_STEP: ("repairing", "non_sellable_other"),
    Kind.REPAIR_CLOSE: ("repairing", None),
    Kind.WARRANTY_CLAIM: ("inspecting", None),
    Kind.REPLACE_OLD: ("replacing", None),
    Kind.REPLACE_NEW: ("replacing", "retail_sold"),
    Kind.QUARANTINE: ("holding", "non_sellable_other"),
    Kind.RELEASE: ("stocking", "sellable_accessible"),
    Kind.RETURN_TO_SUPPLIER: ("shipping", "returned"),
    Kind.WRITE_OFF: ("destroying", "destroyed"),
    Kind.MARK_LOST: ("stock_taking", "unknown"),
    Kind.MARK_FOUND: ("stock_taking", "sellable_accessible"),
    Kind.RELOCATE: ("stock_taking", None),
    Kind.FLAG: (None, None),
    Kind.UNFLAG: (None, None),
    Kind.CORRECTION: (None, None),
}
# A unit's state → the disposition it is in.
STATE_DISPOSITION = {
    "in_stock": "sellable_accessible",
    "sold": "retail_sold",
    "in_transit": "in_transit",
    "in_repair": "non_sellable_other",
    "quarantined": "non_sellable_other",
    "returned_to_supplier": "returned",
    "written_off": "destroyed",
    "lost": "unknown",
}
# Flags with a CBV disposition: set and cleared as persistent dispositions.
FLAG_DISPOSITION = {"stolen": "stolen", "recalled": "recalled"}
# Document type → CBV business transaction type; others are typed in posd's namespace
# (`urn:posd:voc:transfer`), since readers (GS1's hash reference among them) expect one.
DOCUMENT_TYPES = {"po": "po", "invoice": "inv", "return": "rma"}
# Where the unit is no longer at the branch after the event: no bizLocation.
_LEAVES = frozenset({Kind.SELL, Kind.REPLACE_NEW, Kind.TRANSFER_OUT, Kind.RETURN_TO_SUPPLIER})


def object_event(event: EventBody, gtin_of: GtinOf, places: Places) -> dict[str, Any] | None:
    """The ObjectEvent for a ledger event, without its eventID (see `eventhash`);
    None for events that move no unit (products, plain items, counts, lane records)."""
    kind = event.kind
    if kind not in KIND_STEPS or event.unit is None:
        return None
    product, serial = event.unit
    step, disposition = KIND_STEPS[kind]
    state = event.after.get("state")
    first_receipt = kind == Kind.RECEIVE and not event.before.get("state")
    out: dict[str, Any] = {
        "type": "ObjectEvent",
        "eventTime": event.at,
        "eventTimeZoneOffset": "+00:00",
        "epcList": [unit_uri(product, serial, gtin_of(product))],
        "action": "ADD" if first_receipt else "OBSERVE",
    }
    if step:
        out["bizStep"] = step
    flags = _flag_change(event)
    if flags is not None:
        out["persistentDisposition"] = flags
        disposition = FLAG_DISPOSITION.get(event.data.get("flag", ""))
        if kind == Kind.UNFLAG:
            disposition = None
    if disposition is None and isinstance(state, str):
        disposition = STATE_DISPOSITION.get(state)
    if disposition:
        out["disposition"] = disposition
    out["readPoint"] = {"id": places.terminal(event.branch, event.terminal)}
    if kind not in _LEAVES:
        out["bizLocation"] = {"id": places.branch(event.branch)}
    transactions = _transactions(event)
    if transactions:
        out["bizTransactionList"] = transactions
    if kind == Kind.TRANSFER_OUT and isinstance(event.data.get("to_branch"), str):
        destination = places.branch(event.data["to_branch"])
        out["destinationList"] = [{"type": "location", "destination": destination}]
    if first_receipt:
        ilmd = {}
        if event.after.get("lot"):
            ilmd["cbvmda:lotNumber"] = str(event.after["lot"])
        if event.after.get("expiry"):
            ilmd["cbvmda:itemExpirationDate"] = str(event.after["expiry"])
        if ilmd:
            out["ilmd"] = ilmd
    out.update(_extensions(event, gtin_of))
    return out


def _flag_change(event: EventBody) -> dict[str, list[str]] | None:
    flag = event.data.get("flag")
    if event.kind not in (Kind.FLAG, Kind.UNFLAG) or flag not in FLAG_DISPOSITION:
        return None
    side = "set" if event.kind == Kind.FLAG else "unset"
    return {side: [FLAG_DISPOSITION[flag]]}


def _transactions(event: EventBody) -> list[dict[str, str]]:
    found: list[tuple[str, str]] = []
    if event.doc is not None:
        found.append((event.doc.type, event.doc.number))
    invoice = event.data.get("invoice")
    if isinstance(invoice, str) and invoice and ("invoice", invoice) not in found:
        found.append(("invoice", invoice))
    transactions = []
    for doc_type, number in found:
        kind = DOCUMENT_TYPES.get(doc_type) or POSD_NAMESPACE + quote(doc_type, safe="")
        transactions.append({"type": kind, "bizTransaction": document_uri(doc_type, number)})
    return transactions


def _extensions(event: EventBody, gtin_of: GtinOf) -> dict[str, Any]:
    out: dict[str, Any] = {"posd:event": event_uri(event.uuid), "posd:kind": str(event.kind)}
    data: Mapping[str, Any] = event.data
    for name, field in (("replacedBy", "replaced_by"), ("replaces", "replaces")):
        other = data.get(field)
        if isinstance(other, list) and len(other) == 2 and all(isinstance(x, str) for x in other):
            out[f"posd:{name}"] = unit_uri(other[0], other[1], gtin_of(other[0]))
    if event.kind == Kind.RECEIVE and isinstance(data.get("party"), str):
        out["posd:supplier"] = data["party"]
    if event.kind == Kind.CORRECTION and isinstance(data.get("corrects"), str):
        out["posd:corrects"] = event_uri(data["corrects"])
        if isinstance(data.get("corrected_kind"), str):
            out["posd:correctedKind"] = data["corrected_kind"]
    # Stolen and recalled are CBV dispositions (persistentDisposition); the other flags
    # (conflict, on hold) have none, so posd names them.
    flag = data.get("flag")
    flagging = event.kind in (Kind.FLAG, Kind.UNFLAG)
    if flagging and isinstance(flag, str) and flag not in FLAG_DISPOSITION:
        out["posd:flag"] = flag
    return out
