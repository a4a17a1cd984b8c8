"""Events: the canonical body that is hashed, and the chain that links them.

An event's body is compact JSON with sorted keys and includes the hash of the
event before it (`prev`); its own hash is SHA-256 of the body. Changing any stored
byte of any event, or removing one, breaks the chain from that event on. Each
terminal's chain starts afresh in each epoch (database incarnation) from a genesis
hash derived from the terminal id and epoch.

Event ids are UUIDv7 (RFC 9562) with a monotonic counter: unique across terminals,
and appended in order to the id index, which keeps bulk writes fast.

A stored body is read through `EventBody`, a typed read-only view of the parsed JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from json.encoder import encode_basestring
from typing import Any, NamedTuple

from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.kinds import Kind

SCHEMA_VERSION = 1
# The most an event's text may take (UTF-8 bytes). Replication carries events in
# messages of at most 1 MiB, which brokers must allow, and HQ refuses a larger event:
# so a larger one is never written, here or by HQ (see replication/PROTOCOL.md).
MAX_EVENT_BYTES = 64 * 1024

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    return _ENCODER.encode(value)


def genesis_hash(terminal: str, epoch: str) -> str:
    return hashlib.sha256(f"posd-genesis:{terminal}:{epoch}".encode()).hexdigest()


def body_hash(body: str) -> str:
    return hashlib.sha256(body.encode()).hexdigest()


class EventIds:
    """UUIDv7 generator: millisecond time, then a 42-bit counter, then 32 random bits.

    Within one generator ids strictly increase, even within one millisecond.
    """

    def __init__(self) -> None:
        self._last_ms = -1
        self._counter = 0
        # Seeded from the OS; uniqueness rests on time, counter and this together.
        self._random = random.Random(os.urandom(16))

    def next(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms > self._last_ms:
            self._last_ms = ms
            # Random start, top bit clear, so the counter cannot overflow in a ms.
            self._counter = int.from_bytes(os.urandom(6)) >> 7
        else:
            self._counter += 1
        counter = self._counter
        value = (
            (self._last_ms << 80)
            | (0x7 << 76)
            | ((counter >> 30) << 64)
            | (0b10 << 62)
            | ((counter & 0x3FFFFFFF) << 32)
            | self._random.getrandbits(32)
        )
        h = f"{value:032x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass
class Change:
    """One event an operation wants to record, before it is numbered and hashed.

    `set` holds the unit's fields after the event and `was` the same fields before
    it, so the projection applies `set` and a correction can restore `was`.
    """

    kind: Kind
    data: dict[str, Any] = field(default_factory=dict)
    product: str | None = None
    serial: str | None = None
    doc: tuple[str, str] | None = None
    set: dict[str, Any] = field(default_factory=dict)
    was: dict[str, Any] = field(default_factory=dict)
    unit_prev: str | None = None


@dataclass(frozen=True)
class Stamp:
    """Who, where and when: shared by every event of one operation."""

    at: str
    actor: str
    branch: str


@dataclass
class ChainHead:
    """The end of this terminal's chain: the last sequence number and hash."""

    terminal: str
    epoch: str
    seq: int
    hash: str
    ids: EventIds = field(default_factory=EventIds)


def build_body(change: Change, stamp: Stamp, head: ChainHead, event_uuid: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "v": SCHEMA_VERSION,
        "uuid": event_uuid,
        "terminal": head.terminal,
        "epoch": head.epoch,
        "seq": head.seq + 1,
        "prev": head.hash,
        "at": stamp.at,
        "actor": stamp.actor,
        "branch": stamp.branch,
        "kind": change.kind,
        "data": change.data,
    }
    if change.product is not None:
        body["product"] = change.product
        body["serial"] = change.serial
        body["unit_prev"] = change.unit_prev
        body["set"] = change.set
        body["was"] = change.was
    if change.doc is not None:
        body["doc"] = {"type": change.doc[0], "no": change.doc[1]}
    return body


@dataclass(frozen=True)
class Sealed:
    """An event ready to store: its body, the exact text that was hashed, its hash."""

    uuid: str
    seq: int
    kind: Kind
    body: EventBody
    text: str
    hash: str


def check_size(text: str, kind: str) -> None:
    """Refuse an event too large to replicate, before anything is written."""
    if len(text) <= MAX_EVENT_BYTES // 4:
        return  # a character is at most 4 bytes
    size = len(text.encode())
    if size > MAX_EVENT_BYTES:
        raise Refusal(
            [
                Problem(
                    "event_too_large",
                    f"this {kind} event would be {size:,} bytes; an event is at most"
                    f" {MAX_EVENT_BYTES:,} bytes (HQ and the broker refuse larger ones):"
                    " shorten its texts or split the document",
                )
            ]
        )


def seal(change: Change, stamp: Stamp, head: ChainHead) -> Sealed:
    """Number, serialise and hash one event, advancing `head`."""
    event_uuid = head.ids.next()
    body = build_body(change, stamp, head, event_uuid)
    text = canonical_json(body)
    check_size(text, change.kind)
    digest = body_hash(text)
    head.seq += 1
    head.hash = digest
    return Sealed(event_uuid, head.seq, change.kind, EventBody(body), text, digest)


class BodyTemplate:
    """Canonical JSON for many events of one shape, without encoding each from scratch.

    The example change's fields named in `variables` (e.g. "serial", "set.po",
    "data.party", "branch") are filled in per event from a sequence of values in
    the same order (variables the example does not have are ignored); the output is
    byte-for-byte what `canonical_json` gives.
    """

    _MARK = "\u0000posd-var-{}\u0000"
    _PER_EVENT = ("uuid", "seq", "prev")

    def __init__(
        self, example: Change, stamp: Stamp, head: ChainHead, variables: Sequence[str]
    ) -> None:
        self.variables = tuple(variables)
        self._kind = example.kind
        examples: dict[str, Any] = {}
        marked = Change(
            example.kind,
            {k: self._mark(f"data.{k}", v, examples) for k, v in example.data.items()},
            self._mark("product", example.product, examples),
            self._mark("serial", example.serial, examples),
            (example.doc[0], self._mark("doc.no", example.doc[1], examples))
            if example.doc
            else None,
            {k: self._mark(f"set.{k}", v, examples) for k, v in example.set.items()},
            dict(example.was),
            example.unit_prev,
        )
        marked_stamp = Stamp(stamp.at, stamp.actor, self._mark("branch", stamp.branch, examples))
        body = build_body(marked, marked_stamp, ChainHead(head.terminal, head.epoch, 0, ""), "")
        body["uuid"], body["seq"], body["prev"] = (self._MARK.format(n) for n in self._PER_EVENT)
        text = canonical_json(body)
        pieces = text.split('"\\u0000posd-var-')
        order: list[str] = []
        fmt = [pieces[0].replace("%", "%%")]
        for piece in pieces[1:]:
            name, _, rest = piece.partition('\\u0000"')
            order.append(name)
            fmt.append("%s" + rest.replace("%", "%%"))
        self._format = "".join(fmt)
        # Where each slot of the text takes its value from, and how it is encoded.
        self._slots: list[tuple[int, Any]] = []
        for name in order:
            if name in self._PER_EVENT:
                self._slots.append((-1 - self._PER_EVENT.index(name), None))
            else:
                index = self.variables.index(name)
                encode = encode_basestring if isinstance(examples[name], str) else str
                self._slots.append((index, encode))

    def _mark(self, name: str, value: Any, examples: dict[str, Any]) -> Any:
        if name not in self.variables:
            return value
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ValueError(f"template variable {name} must be a string or an integer")
        examples[name] = value
        return self._MARK.format(name)

    def seal(self, head: ChainHead, values: Sequence[Any]) -> tuple[str, int, str, str]:
        """(uuid, seq, text, hash) of the next event; advances `head`.

        `values` are in the order of `variables` and of the example's types.
        """
        event_uuid = head.ids.next()
        seq = head.seq + 1
        per_event = (f'"{head.hash}"', str(seq), f'"{event_uuid}"')  # indexed -3, -2, -1
        text = self._format % tuple(
            per_event[index] if encode is None else encode(values[index])
            for index, encode in self._slots
        )
        check_size(text, self._kind)
        digest = body_hash(text)
        head.seq = seq
        head.hash = digest
        return event_uuid, seq, text, digest


class DocRef(NamedTuple):
    """The document an event names: its type (invoice, po, repair, …) and number."""

    type: str
    number: str

    @property
    def label(self) -> str:
        return f"{self.type} {self.number}"


_EMPTY: Mapping[str, Any] = {}


class EventBody:
    """A read-only view of one event's body, with a property for each field.

        event = EventBody.parse(text)
        if event.kind == Kind.SELL:
            price = event.data.get("price_cents", 0)

    Cheap to make (it wraps the parsed dict, copying and checking nothing) and to
    read: the projection makes one for every event it applies, a replay a million of
    them. The types hold for every stored event: this ledger's own are made by
    `Change`, and one from elsewhere is checked on arrival (`remote.parse_foreign`).
    `raw` is the parsed JSON itself.
    """

    __slots__ = ("raw",)

    def __init__(self, raw: Mapping[str, Any]) -> None:
        self.raw = raw

    @classmethod
    def parse(cls, text: str | bytes) -> EventBody:
        """The view of a stored body's text (raises ValueError when it is not JSON)."""
        return cls(json.loads(text))

    def __repr__(self) -> str:
        return f"EventBody({self.kind} {self.terminal}/{self.seq} {self.uuid})"

    # -- every event ---------------------------------------------------------------

    @property
    def kind(self) -> str:
        """What happened: a `Kind` (compare with its members), or, in an event from
        a newer terminal, the name of a kind this version does not know."""
        kind: str = self.raw["kind"]
        return kind

    @property
    def uuid(self) -> str:
        uuid: str = self.raw["uuid"]
        return uuid

    @property
    def terminal(self) -> str:
        terminal: str = self.raw["terminal"]
        return terminal

    @property
    def epoch(self) -> str:
        epoch: str = self.raw["epoch"]
        return epoch

    @property
    def seq(self) -> int:
        seq: int = self.raw["seq"]
        return seq

    @property
    def prev(self) -> str | None:
        """The hash of the event before it in its terminal's chain."""
        prev: str | None = self.raw.get("prev")
        return prev

    @property
    def at(self) -> str:
        """When, as written: ISO 8601 UTC with milliseconds and a Z."""
        at: str = self.raw["at"]
        return at

    @property
    def at_datetime(self) -> datetime:
        """`at` as an aware datetime (ValueError when it is not a time)."""
        return datetime.fromisoformat(self.at.replace("Z", "+00:00"))

    @property
    def day(self) -> str:
        """The UTC day of `at` (YYYY-MM-DD)."""
        return self.at[:10]

    @property
    def actor(self) -> str:
        actor: str = self.raw["actor"]
        return actor

    @property
    def branch(self) -> str:
        """The branch the event happened at."""
        branch: str = self.raw["branch"]
        return branch

    @property
    def data(self) -> Mapping[str, Any]:
        """What the kind of event records besides the unit's fields."""
        data: Mapping[str, Any] = self.raw["data"]
        return data

    # -- an event about a document ----------------------------------------------------

    @property
    def doc(self) -> DocRef | None:
        doc = self.raw.get("doc")
        return None if doc is None else DocRef(doc["type"], doc["no"])

    # -- an event about a unit --------------------------------------------------------

    @property
    def about_unit(self) -> bool:
        return "product" in self.raw

    @property
    def product(self) -> str | None:
        """The unit's product code (None: the event is about no unit)."""
        product: str | None = self.raw.get("product")
        return product

    @property
    def serial(self) -> str | None:
        """The unit's serial as printed (None: the event is about no unit)."""
        serial: str | None = self.raw.get("serial")
        return serial

    @property
    def unit(self) -> tuple[str, str] | None:
        """(product, serial) of the unit, or None."""
        raw = self.raw
        if "product" not in raw:
            return None
        return raw["product"], raw["serial"]

    @property
    def unit_prev(self) -> str | None:
        """The last event of the unit its author had seen (None: the unit was new)."""
        prev: str | None = self.raw.get("unit_prev")
        return prev

    @property
    def after(self) -> Mapping[str, Any]:
        """The unit's fields the event set, as they are after it (`set`)."""
        after: Mapping[str, Any] = self.raw.get("set", _EMPTY)
        return after

    @property
    def before(self) -> Mapping[str, Any]:
        """The same fields as they were before it (`was`), for a correction."""
        before: Mapping[str, Any] = self.raw.get("was", _EMPTY)
        return before
