"""Replication settings: which broker, who we are to it, and how hard to push.

`BrokerConfig` is what any posd MQTT client needs (the terminal and HQ share it);
`ReplicationConfig` adds the terminal's publishing limits. Both refuse unknown
keys, so a misspelt option is an error that names it, not a silent default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from daemon.config.base import Section
from daemon.errors import ConfigError
from daemon.rules.values import IDENTIFIER, checked_identifier

# The broker's ACL puts the user name into topic patterns (`pattern write
# posd/v1/t/%u/#`): a user named `+` or `#`, or with a `/`, would be granted other
# terminals' topics; a space cannot be written in the ACL file. So a user name (and a
# client id) is an id as a terminal id is: letters, digits and - _ . : only.
BrokerUser = Annotated[str, checked_identifier("broker user name")]
ClientId = Annotated[str, checked_identifier("client id")]

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerSettingError(ConfigError):
    """A replication setting that cannot work; the message names it."""


class BrokerConfig(Section):
    """How to reach the MQTT broker and who to be there."""

    url: str = Field(
        default="mqtts://localhost:8883",
        description="mqtt://host:port (plain, loopback or a trusted LAN only) or mqtts://host:port",
    )
    client_id: ClientId | None = Field(
        default=None, description="Fixed MQTT client id; default posd-<terminal id> (HQ: posd-hq)"
    )
    username: BrokerUser | None = Field(
        default=None, description="Broker user; for a terminal, its terminal id"
    )
    password_file: Path | None = Field(default=None, description="File holding the broker password")
    ca_file: Path | None = Field(
        default=None, description="CA certificate(s) that signed the broker's"
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate, for certificate login"
    )
    key_file: Path | None = Field(default=None, description="Private key of the client certificate")
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=60,
        description="How long the broker keeps this client's subscriptions and queued messages",
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, le=60)
    reconnect_max_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description=(
            "Longest wait between attempts to reach the broker (each wait is drawn between"
            " half and all of it): after a broker restart, service resumes within this"
        ),
    )

    @model_validator(mode="after")
    def _check(self) -> Self:
        parts = urlsplit(self.url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise ValueError(
                f"url {self.url!r} must look like mqtts://host:8883 (or mqtt://host:1883)"
            )
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together: give both or neither")
        if self.password_file is not None and self.username is None:
            raise ValueError("password_file is set but username is not")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must not be below reconnect_min_s")
        return self

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urlsplit(self.url)
        return parts.port or DEFAULT_PORTS[parts.scheme]

    @property
    def tls(self) -> bool:
        return urlsplit(self.url).scheme == "mqtts"

    def password(self) -> str | None:
        """The password from `password_file` (one line; surrounding whitespace dropped)."""
        if self.password_file is None:
            return None
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise BrokerSettingError(
                f"password_file {str(self.password_file)!r} cannot be read ({exc.strerror});"
                " check the path and that posd may read it"
            ) from None


class ReplicationConfig(BrokerConfig):
    """The terminal's replication to HQ."""

    inflight_window: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Event messages sent and not yet acknowledged by the broker",
    )
    batch_events: int = Field(default=200, ge=1, le=5000, description="Most events in one message")
    unacked_limit: int = Field(
        default=20_000,
        ge=1,
        description="Most events sent ahead of what HQ has confirmed storing",
    )
    ack_timeout_s: float = Field(
        default=30.0, gt=0, description="Send again from HQ's watermark when it stalls this long"
    )
    ack_timeout_max_s: float = Field(default=600.0, gt=0)
    refused_retry_max_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description=(
            "While the broker refuses events (no HQ process subscribed, say), try again"
            " at least this often, one event at a time; HQ coming online ends the wait"
        ),
    )
    feed_poll_s: float = Field(
        default=300.0, gt=0, description="Ask HQ for missed branch events at least this often"
    )
    poll_s: float = Field(default=0.05, gt=0, le=5, description="How often to look for new events")


def check_topic_part(value: str, what: str) -> str:
    """A terminal or branch id used as one MQTT topic level: an id
    (`daemon.rules.values.IDENTIFIER`), as HQ checks it on arrival."""
    problem = IDENTIFIER.problem(value, what)
    if problem is not None:
        raise BrokerSettingError(f"{problem}; it cannot be used in MQTT topics")
    return value
