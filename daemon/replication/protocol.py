"""The wire: MQTT topics and the versioned JSON payloads that travel on them.

Every payload carries `"v": 1` and is validated on arrival; a message that does
not fit (unknown version, missing field, an event whose hash does not match) is
refused with a message that names the topic. PROTOCOL.md describes the same in
prose, with the broker ACL that confines each terminal to its own topics.
"""

from __future__ import annotations

from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from daemon.errors import HqError
from daemon.rules.values import Identifier

ROOT = "posd/v1"
VERSION = 1
HASH = r"^[0-9a-f]{64}$"


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


ALL_EVENTS = f"{ROOT}/t/+/events"
ALL_STATUS = f"{ROOT}/t/+/status"
ALL_PULLS = f"{ROOT}/t/+/pull"


def shared(group: str, topic_filter: str) -> str:
    """A shared subscription: the broker hands each message to one group member."""
    return f"$share/{group}/{topic_filter}"


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


class WireEvent(BaseModel):
    """One ledger event: `body` is the exact canonical text that was hashed."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    hash: str = Field(pattern=HASH)
    body: str


class EventBatch(Payload):
    """Terminal → HQ: consecutive events `first`..`last` of one terminal and epoch."""

    terminal: Identifier
    epoch: Identifier
    branch: Identifier
    first: int = Field(ge=1)
    last: int = Field(ge=1)
    events: list[WireEvent] = Field(min_length=1)

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

    terminal: Identifier
    branch: Identifier
    epoch: Identifier
    session: int = Field(ge=1)
    state: Literal["online", "offline"]
    at: str


class Pull(Payload):
    """Terminal → HQ: send me the branch feed after position `after`."""

    terminal: Identifier
    branch: Identifier
    after: int = Field(ge=0)


class Ack(Payload):
    """HQ → terminal, retained: every event up to `seq` of this epoch is stored."""

    terminal: Identifier
    epoch: Identifier
    seq: int = Field(ge=0)


class Resend(Payload):
    """HQ → terminal: publish again from `from_seq` (HQ found a gap)."""

    terminal: Identifier
    epoch: Identifier
    from_seq: int = Field(ge=1)
    reason: str = ""


class FeedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    pos: int = Field(ge=1)
    terminal: Identifier
    epoch: Identifier
    hash: str = Field(pattern=HASH)
    body: str


class Feed(Payload):
    """HQ → terminals of a branch: feed positions `first`..`last` (`head` is the newest)."""

    branch: Identifier
    first: int = Field(ge=1)
    last: int = Field(ge=1)
    head: int = Field(ge=0)
    events: list[FeedEvent]

    @model_validator(mode="after")
    def _contiguous(self) -> Self:
        if [e.pos for e in self.events] != list(range(self.first, self.last + 1)):
            raise ValueError(f"feed positions are not exactly {self.first}..{self.last}")
        return self


class NodeStatus(Payload):
    """Retained status of one HQ process."""

    node: Identifier
    state: Literal["online", "offline"]
    at: str


P = TypeVar("P", bound=Payload)


def decode(model: type[P], payload: bytes, topic: str) -> P:
    """Parse and validate a payload, or raise ProtocolError naming the topic."""
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
