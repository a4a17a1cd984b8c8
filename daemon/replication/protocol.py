"""The wire: MQTT topics and the versioned JSON payloads that travel on them.

Every payload carries `"v": 1` and is validated on arrival, every value against
its declared type and range; a message that does not fit (unknown version, missing
field, a number out of range, an id that cannot be a topic level, a message over
`MAX_MESSAGE_BYTES`) is refused with a message that names the topic. The events a
batch carries are checked by `daemon.replication.bodies`. PROTOCOL.md describes the
same in prose, with the broker ACL that confines each terminal to its own topics.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    model_validator,
)

from daemon.errors import HqError
from daemon.ledger.events import MAX_EVENT_BYTES
from daemon.rules.values import Identifier

ROOT = "posd/v1"
VERSION = 1
HASH = r"^[0-9a-f]{64}$"
# Every message (an event batch, a feed message) is at most this big; brokers must
# allow it (`max_packet_size` in systemd/mosquitto/posd.conf is 4 MiB). An event is
# at most MAX_EVENT_BYTES, so any one event fits in a message however it is escaped.
MAX_MESSAGE_BYTES = 1024 * 1024
# Sequence numbers, sessions and feed positions: exact in every JSON reader and in
# SQLite's and PostgreSQL's 64-bit integers.
MAX_SEQ = 2**53 - 1
MAX_BATCH_EVENTS = 5000
PACKET_OVERHEAD = 64  # an MQTT PUBLISH besides its topic and payload, generously
# Terminal, branch and product ids: one MQTT topic level each and safe in a file name,
# checked as everywhere else in posd (daemon.rules.values).
Id = Identifier
Epoch = Annotated[str, Strict(), StringConstraints(pattern=r"^[0-9a-f]{8,32}$")]
Hash = Annotated[str, Strict(), StringConstraints(pattern=HASH)]
Seq = Annotated[int, Strict(), Field(ge=1, le=MAX_SEQ)]
Position = Annotated[int, Strict(), Field(ge=0, le=MAX_SEQ)]
Time = Annotated[
    str, Strict(), StringConstraints(pattern=r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$")
]


def _storable(text: str) -> str:
    if "\x00" in text:
        raise ValueError("a NUL character, which no database text may hold")
    return text


class ProtocolError(HqError, ValueError):
    """A payload that does not follow the protocol."""


# -- topics -------------------------------------------------------------------


def events_topic(terminal: str) -> str:
    return f"{ROOT}/t/{terminal}/events"


def status_topic(terminal: str) -> str:
    return f"{ROOT}/t/{terminal}/status"


def pull_topic(terminal: str) -> str:
    return f"{ROOT}/t/{terminal}/pull"


def ack_topic(terminal: str, epoch: str) -> str:
    return f"{ROOT}/hq/{terminal}/ack/{epoch}"


def resend_topic(terminal: str) -> str:
    return f"{ROOT}/hq/{terminal}/resend"


def answer_topic(terminal: str) -> str:
    """Where HQ answers a terminal's pull."""
    return f"{ROOT}/hq/{terminal}/feed"


def to_terminal_filter(terminal: str) -> str:
    return f"{ROOT}/hq/{terminal}/#"


def branch_feed_topic(branch: str) -> str:
    return f"{ROOT}/b/{branch}/feed"


def node_status_topic(node: str) -> str:
    return f"{ROOT}/hq-node/{node}/status"


def node_of(topic: str) -> str:
    """The HQ process id in a posd/v1/hq-node/<node>/status topic."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != ROOT or parts[2] != "hq-node":
        raise ProtocolError(f"topic {topic!r} is not an HQ process status topic")
    return parts[3]


ALL_NODE_STATUS = f"{ROOT}/hq-node/+/status"
ALL_EVENTS = f"{ROOT}/t/+/events"
ALL_STATUS = f"{ROOT}/t/+/status"
ALL_PULLS = f"{ROOT}/t/+/pull"


def shared(group: str, topic_filter: str) -> str:
    """A shared subscription: the broker hands each message to one group member."""
    return f"$share/{group}/{topic_filter}"


def sender_of(topic: str) -> str | None:
    """The terminal a message on posd/v1/t/<terminal>/... came from: the broker's ACL
    lets only that terminal publish there. None for any other topic."""
    parts = topic.split("/")
    if len(parts) >= 4 and parts[:3] == [*ROOT.split("/"), "t"]:
        return parts[3]
    return None


def terminal_of(topic: str) -> str:
    """The terminal id in a posd/v1/t/<terminal>/... topic."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != ROOT or parts[2] != "t":
        raise ProtocolError(f"topic {topic!r} is not a terminal topic ({ROOT}/t/<terminal>/...)")
    return parts[3]


# -- payloads -----------------------------------------------------------------


class Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    v: Literal[1] = 1


# An event's text, as a string of at most MAX_EVENT_BYTES characters; its size in
# bytes is checked with the event (daemon.replication.bodies).
Body = Annotated[
    str, Strict(), StringConstraints(max_length=MAX_EVENT_BYTES), AfterValidator(_storable)
]


class WireEvent(BaseModel):
    """One ledger event: `body` is the exact canonical text that was hashed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hash: Hash
    body: Body


class EventBatch(Payload):
    """Terminal → HQ: consecutive events `first`..`last` of one terminal and epoch."""

    terminal: Id
    epoch: Epoch
    branch: Id
    first: Seq
    last: Seq
    events: list[WireEvent] = Field(min_length=1, max_length=MAX_BATCH_EVENTS)

    @model_validator(mode="after")
    def _contiguous(self) -> Self:
        if self.last - self.first + 1 != len(self.events):
            raise ValueError(
                f"seq {self.first}..{self.last} does not match {len(self.events)} events"
            )
        return self


class Presence(Payload):
    """Retained status of a terminal: birth (`online`) or death/will (`offline`).

    `session` counts the terminal's connections; a status from an older session
    of the same epoch is stale (a late will) and is ignored.
    """

    terminal: Id
    branch: Id
    epoch: Epoch
    session: Seq
    state: Literal["online", "offline"]
    at: Time
    # Own events HQ had not confirmed, and since when the terminal has been waiting
    # for HQ to take them (None: it is not waiting).
    backlog: Position = 0
    waiting_since: Time | None = None


class Pull(Payload):
    """Terminal → HQ: send me the branch feed after position `after`."""

    terminal: Id
    branch: Id
    after: Position


class Ack(Payload):
    """HQ → terminal, retained: every event up to `seq` of this epoch is stored."""

    terminal: Id
    epoch: Epoch
    seq: Position


class Resend(Payload):
    """HQ → terminal: publish again from `from_seq` (HQ found a gap)."""

    terminal: Id
    epoch: Epoch
    from_seq: Seq
    reason: Annotated[str, Strict(), StringConstraints(max_length=1000)] = ""


class FeedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pos: Seq
    terminal: Id
    epoch: Epoch
    hash: Hash
    body: Body


class Feed(Payload):
    """HQ → terminals of a branch: feed positions `first`..`last` (`head` is the newest)."""

    branch: Id
    first: Seq
    last: Seq
    head: Position
    events: list[FeedEvent] = Field(max_length=MAX_BATCH_EVENTS)

    @model_validator(mode="after")
    def _contiguous(self) -> Self:
        if [e.pos for e in self.events] != list(range(self.first, self.last + 1)):
            raise ValueError(f"feed positions are not exactly {self.first}..{self.last}")
        return self


class NodeStatus(Payload):
    """Retained status of one HQ process."""

    node: Id
    state: Literal["online", "offline"]
    at: Time


P = TypeVar("P", bound=Payload)


def decode(model: type[P], payload: bytes, topic: str) -> P:
    """Parse and validate a payload, or raise ProtocolError naming the topic."""
    if len(payload) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message on {topic!r} is {len(payload):,} bytes; a {model.__name__} is at most"
            f" {MAX_MESSAGE_BYTES:,} bytes"
        )
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "payload"
        raise ProtocolError(
            f"message on {topic!r} is not a valid {model.__name__} v{VERSION}: {where}:"
            f" {first['msg']}"
        ) from None


def encode(payload: Payload) -> bytes:
    return payload.model_dump_json().encode()


def encode_feed(feed: Feed, max_bytes: int) -> list[bytes]:
    """A feed message as one or more messages of at most `max_bytes`, each a feed of
    consecutive positions; ProtocolError when one event alone does not fit."""
    payload = encode(feed)
    if len(payload) <= max_bytes:
        return [payload]
    if len(feed.events) == 1:
        raise ProtocolError(
            f"feed entry {feed.first} of branch {feed.branch} is {len(payload):,} bytes as a"
            f" message; the broker takes {max_bytes:,}: raise its max_packet_size"
        )
    half = len(feed.events) // 2
    parts = []
    for events in (feed.events[:half], feed.events[half:]):
        update = {"first": events[0].pos, "last": events[-1].pos, "events": events}
        part = feed.model_copy(update=update)
        parts += encode_feed(part, max_bytes)
    return parts


def room(max_packet_size: int | None, topic: str) -> int:
    """The most a message on `topic` may take: MAX_MESSAGE_BYTES, or less when the broker
    said (in its CONNACK) it takes smaller packets."""
    if max_packet_size is None:
        return MAX_MESSAGE_BYTES
    return min(MAX_MESSAGE_BYTES, max_packet_size - len(topic.encode()) - PACKET_OVERHEAD)
