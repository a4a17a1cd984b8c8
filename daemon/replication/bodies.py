"""Events from elsewhere, checked against protocol v1 before any database sees them.

    event = check_event(text, digest)   # a ForeignEvent, or EventRefused saying why

HQ runs this on every event a terminal sends, and a terminal on every event of the
feed, before storing it. An event must match its hash, be at most
`MAX_EVENT_BYTES`, and be shaped as its kind says: which fields it has, and for
each field its type and range. Money is integer cents in 0..`MAX_CENTS`, counts
are whole numbers in 0..`MAX_COUNT`, ids that end up in MQTT topics (terminals,
branches) are topic-safe, days and times are real dates, texts have a length
cap. One table, `KINDS`, gives every kind's data fields; PROTOCOL.md says the same
in prose. A field this version does not know is refused: a newer terminal's event
waits at HQ (visibly, as a problem) until HQ is upgraded.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    create_model,
)

from daemon.ledger.events import MAX_EVENT_BYTES, EventBody
from daemon.ledger.kinds import Kind
from daemon.ledger.remote import ForeignEvent, RemoteEventError
from daemon.replication.protocol import MAX_SEQ, Epoch, Hash, Id
from daemon.rules.units import Flag, State
from daemon.rules.warranty import Cause, LineKind

MAX_CENTS = 10**12  # ten thousand million in the currency: any price, cost or claim
MAX_COUNT = 10**9  # quantities and counted units
MAX_TEXT = 4096  # free text: names, notes, reasons, messages
MAX_CODE = 256  # product codes, serials, document numbers, people
MAX_LIST = 1000  # items of a list field (parts, accessories, claim lines)


class EventRefused(RemoteEventError):
    """An event from elsewhere that protocol v1 does not allow; the message says which
    field and why."""


def _day(value: str) -> str:
    date.fromisoformat(value)  # ValueError: not a day
    if len(value) != 10:
        raise ValueError("a day is written YYYY-MM-DD")
    return value


def _time(value: str) -> str:
    if not (len(value) >= 20 and value[10] == "T" and value.endswith("Z")):
        raise ValueError("a time is ISO 8601 UTC, e.g. 2026-11-23T09:00:00.000Z")
    datetime.fromisoformat(value.removesuffix("Z") + "+00:00")
    return value


def _number(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("not a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


Text = Annotated[str, Strict(), StringConstraints(max_length=MAX_TEXT)]
Code = Annotated[str, Strict(), StringConstraints(max_length=MAX_CODE)]
NonEmptyCode = Annotated[str, Strict(), StringConstraints(min_length=1, max_length=MAX_CODE)]
Day = Annotated[str, Strict(), StringConstraints(max_length=10), AfterValidator(_day)]
Time = Annotated[str, Strict(), StringConstraints(max_length=40), AfterValidator(_time)]
Cents = Annotated[int, Strict(), Field(ge=0, le=MAX_CENTS)]
Count = Annotated[int, Strict(), Field(ge=0, le=MAX_COUNT)]
Bit = Annotated[int, Strict(), Field(ge=0, le=1)]
Ratio = Annotated[float, BeforeValidator(_number), Field(ge=0, le=MAX_COUNT)]
Bool = Annotated[bool, Strict()]
EventId = Annotated[
    str,
    Strict(),
    StringConstraints(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
]
Gtin = Annotated[str, Strict(), StringConstraints(pattern=r"^(\d{8}|\d{12,14})$")]
Texts = Annotated[list[Text], Field(max_length=MAX_LIST)]
RowId = Annotated[int, Strict(), Field(ge=1, le=MAX_SEQ)]
UnitName = Annotated[list[NonEmptyCode], Field(min_length=2, max_length=2)]  # product, serial


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ClaimLineBody(_Strict):
    description: Text
    amount_cents: Cents
    kind: LineKind
    cause: Cause
    covered: Bool
    reason: Text


Flags = Annotated[list[Flag], Field(max_length=len(Flag))]
_DOC_STATUS = Code
_PARTY = Text | None
_MOVE: dict[str, Any] = {"reason": Text, "manager": Text | None}

# Every kind's data fields and their types. Each field may be absent (events written
# by earlier versions lack some); present, it must have its type (null only where
# the type says `| None`). Unknown fields are refused.
KINDS: dict[Kind, dict[str, Any]] = {
    Kind.PRODUCT: {
        "code": NonEmptyCode,
        "name": Text,
        "gtin": Gtin | None,
        "serial_tracked": Bit,
        "serial_rule": Code | None,
        "warranty_months": Annotated[int, Strict(), Field(ge=0, le=1200)],
        "mask_serial": Bit,
        "price_cents": Cents,
    },
    Kind.RECEIVE: {"party": _PARTY, "received_on": Day},
    Kind.SELL: {"party": _PARTY, "price_cents": Cents},
    Kind.SELL_ITEM: {
        "party": _PARTY,
        "item": NonEmptyCode,
        "quantity": Annotated[int, Strict(), Field(ge=1, le=MAX_COUNT)],
        "price_cents": Cents,
    },
    Kind.RETURN: {
        "invoice": Code,
        "condition": Text,
        "disposition": State,
        "reason": Text,
        "party": _PARTY,
    },
    Kind.RETURN_REFUSED: {
        "product": Code,
        "serial": Code,
        "reason": Code,
        "message": Text,
        "condition": Text,
    },
    Kind.TRANSFER_OUT: {
        "party": Id,
        "from_branch": Id,
        "to_branch": Id,
        "doc_status": _DOC_STATUS,
    },
    Kind.TRANSFER_IN: {"doc_status": _DOC_STATUS},
    Kind.REPAIR_OPEN: {
        "party": _PARTY,
        "doc_status": _DOC_STATUS,
        "technician": Text | None,
        "intake_condition": Text,
        "fault": Text,
        "accessories": Texts,
    },
    Kind.REPAIR_STEP: {
        "doc_status": _DOC_STATUS,
        "technician": Text | None,
        "diagnosis": Text | None,
        "parts": Texts,
        "note": Text | None,
    },
    Kind.REPAIR_CLOSE: {"doc_status": _DOC_STATUS, "outcome": Text, "collected_by": Text | None},
    Kind.WARRANTY_CLAIM: {
        "doc_status": _DOC_STATUS,
        "covered_cents": Cents,
        "charged_cents": Cents,
        "replacement_recommended": Bool,
        "warranty_until": Day,
        "lines": Annotated[list[ClaimLineBody], Field(max_length=MAX_LIST)],
        "party": _PARTY,
        "damage_notes": Text | None,
    },
    Kind.REPLACE_OLD: {
        "party": _PARTY,
        "replaced_by": UnitName,
        "invoice": Code | None,
        "reason": Text,
        "doc_status": _DOC_STATUS,
    },
    Kind.REPLACE_NEW: {"party": _PARTY, "replaces": UnitName, "invoice": Code | None},
    Kind.QUARANTINE: _MOVE,
    Kind.RELEASE: _MOVE,
    Kind.RETURN_TO_SUPPLIER: _MOVE,
    Kind.WRITE_OFF: _MOVE,
    Kind.MARK_LOST: _MOVE,
    Kind.MARK_FOUND: _MOVE,
    Kind.RELOCATE: _MOVE,
    Kind.FLAG: {
        "flag": Flag,
        "reason": Text,
        "merge_of": EventId,
        "fork": Annotated[list[EventId], Field(min_length=1, max_length=MAX_LIST)],
        "resolved_by": EventId,
    },
    Kind.UNFLAG: {"flag": Flag, "reason": Text, "merge_of": EventId, "resolved_by": EventId},
    Kind.OVERRIDE: {
        "manager": Text | None,
        "overrode": Annotated[list[Code], Field(max_length=MAX_LIST)],
        "for": Code,
    },
    Kind.CORRECTION: {
        "corrects": EventId,
        "corrected_kind": Kind,
        "corrected_price_cents": Cents,
        "reason": Text,
        "manager": Text,
    },
    Kind.COUNT_OPEN: {"branch": Id, "product": Code | None, "doc_status": _DOC_STATUS},
    Kind.COUNT_SCAN: {"product": Code, "serial": Code, "verdict": Text},
    Kind.COUNT_CLOSE: {
        "doc_status": _DOC_STATUS,
        "branch": Id,
        "expected": Count,
        "found": Count,
        "missing": Count,
        "unexpected": Count,
        "duplicates": Count,
        "unknown": Count,
        "accuracy": Ratio,
    },
    Kind.LANE_RELEASE: {"terminal": Id, "method": Text, "reason": Code, "message": Text},
    Kind.MANAGER_REFUSED: {
        "terminal": Id,
        "who": Text,
        "method": Text,
        "for": Text,
        "reason": Code,
        "message": Text,
    },
    Kind.RESOLVE: {
        "flag": Literal["conflict"],
        "conflicts": Annotated[
            list[Annotated[int, Strict(), Field(ge=1, le=MAX_SEQ)]], Field(max_length=MAX_LIST)
        ],
        "events": Annotated[list[EventId], Field(max_length=MAX_LIST)],
        "kept": EventId | None,
        "note": Text,
    },
}
# Which kinds are about a unit (True), never (False), or either (None: a refused
# return or a count scan of a serial the ledger does not know).
UNIT_EVENT: dict[Kind, bool | None] = {
    kind: False
    for kind in (
        Kind.PRODUCT,
        Kind.SELL_ITEM,
        Kind.COUNT_OPEN,
        Kind.COUNT_CLOSE,
        Kind.LANE_RELEASE,
        Kind.MANAGER_REFUSED,
    )
} | {Kind.RETURN_REFUSED: None, Kind.COUNT_SCAN: None}


class _UnitFields(_Strict):
    dest_branch: Id | None = None
    invoice: Code | None = None
    customer: Text | None = None
    sold_on: Day | None = None
    warranty_until: Day | None = None
    pre_repair_state: State | None = None
    repair_ticket: Code | None = None
    po: Code | None = None
    supplier: Code | None = None  # a key of the activity table
    cost_cents: Cents | None = None
    lot: Code | None = None
    expiry: Day | None = None


class UnitAfter(_UnitFields):
    """A unit's fields as an event sets them (`set`): the projection's columns."""

    # Absent is fine (the event does not change them); null is not.
    state: State = None  # type: ignore[assignment]
    branch: Id = None  # type: ignore[assignment]
    flags: Flags = None  # type: ignore[assignment]


class UnitBefore(_UnitFields):
    """The same fields as they were before (`was`): any may have been unset."""

    state: State | None = None
    branch: Id | None = None
    flags: Flags | None = None


class Doc(_Strict):
    type: NonEmptyCode
    no: NonEmptyCode


class _Body(_Strict):
    v: Annotated[int, Strict(), Field(ge=1, le=1)]
    uuid: EventId
    terminal: Id
    epoch: Epoch
    seq: Annotated[int, Strict(), Field(ge=1, le=MAX_SEQ)]
    prev: Hash
    at: Time
    actor: Text
    branch: Id
    kind: Kind
    doc: Doc | None = None


class _UnitBody(_Body):
    product: NonEmptyCode
    serial: NonEmptyCode
    unit_prev: EventId | None
    set: UnitAfter
    was: UnitBefore


def _data_model(kind: Kind, fields: Mapping[str, Any]) -> type[BaseModel]:
    spec: dict[str, Any] = {name: (kind_type, None) for name, kind_type in fields.items()}
    return create_model(f"{kind.value}_data", __base__=_Strict, **spec)


def _body_models(kind: Kind) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """(the model of a unit event, of an event about no unit) of one kind."""
    data = _data_model(kind, KINDS[kind])
    about_unit = UNIT_EVENT.get(kind, True)
    made: list[type[BaseModel] | None] = []
    for base, allowed in ((_UnitBody, about_unit is not False), (_Body, about_unit is not True)):
        made.append(
            create_model(f"{kind.value}_event", __base__=base, data=(data, ...))
            if allowed
            else None
        )
    return made[0], made[1]


_MODELS = {kind: _body_models(kind) for kind in Kind}


def _model(raw: Mapping[str, Any]) -> type[BaseModel]:
    label = f"event of terminal {str(raw.get('terminal'))[:64]} seq {str(raw.get('seq'))[:20]}"
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in _MODELS:
        raise EventRefused(
            f"{label} is of kind {str(kind)[:40]!r}, which protocol v1 does not know"
        )
    unit_model, plain_model = _MODELS[Kind(kind)]
    model = unit_model if "product" in raw else plain_model
    if model is None:
        needs = "needs" if unit_model is not None else "cannot have"
        raise EventRefused(f"{label}: a {kind} event {needs} a unit (product and serial)")
    return model


def _refusal(raw: Mapping[str, Any], exc: ValidationError) -> EventRefused:
    label = f"event of terminal {str(raw.get('terminal'))[:64]} seq {str(raw.get('seq'))[:20]}"
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "body"
    value = repr(first.get("input"))
    shown = value if len(value) <= 60 else value[:57] + "..."
    return EventRefused(
        f"{label} ({raw.get('kind')}) is refused: {field} = {shown}: {first['msg']}"
    )


def check_body(raw: Mapping[str, Any]) -> None:
    """Raise EventRefused when a parsed event body is not shaped as protocol v1 says."""
    try:
        _model(raw).model_validate(raw)
    except ValidationError as exc:
        raise _refusal(raw, exc) from None


# A NUL (no database text column takes one) or half of a surrogate pair (not
# text at all), written as an escape: a body posd wrote never holds either.
_UNSTORABLE = re.compile(r"(?<!\\)(?:\\\\)*\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def check_event(text: str, digest: str, where: str | None = None) -> ForeignEvent:
    """An event from elsewhere, checked (size, hash, JSON, shape) and parsed.

    `where` (e.g. "terminal T1 seq 7") names it in a refusal before its text is read."""
    label = where or f"event {digest[:16]}…"
    try:
        data = text.encode()
    except UnicodeEncodeError:
        raise EventRefused(f"{label} is not text (it holds a lone surrogate)") from None
    if len(data) > MAX_EVENT_BYTES:
        raise EventRefused(
            f"{label} is {len(data):,} bytes; an event is at most {MAX_EVENT_BYTES:,}"
        )
    if hashlib.sha256(data).hexdigest() != digest:
        raise EventRefused(
            f"{label} (hash {digest[:16]}…) does not match its text: it was changed on the"
            " way; ask the sender to send it again"
        )
    if "\\u" in text and _UNSTORABLE.search(text):  # escapes are rare: look only then
        raise EventRefused(f"{label} holds a NUL or half a surrogate pair, which no text may")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise EventRefused(f"{label} is not JSON ({str(exc)[:80]})") from None
    if not isinstance(raw, dict):
        raise EventRefused(f"{label} is not a JSON object")
    try:
        # From the text: pydantic reads JSON faster than it checks Python objects.
        _model(raw).model_validate_json(data)
    except ValidationError as exc:
        raise _refusal(raw, exc) from None
    return ForeignEvent(text, digest, EventBody(raw))
