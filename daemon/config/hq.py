"""HQ's settings: which broker, which shared-subscription group, and how it paces itself.

    config = HqConfig(broker=BrokerConfig(url="mqtts://mqtt.example.com:8883"))
    dashboard = DashboardConfig(timezone="Europe/Berlin")

Several HQ processes with one `share_group` split the terminals' events between them
(an MQTT shared subscription, `$share/<group>/…`), so the group is an id: one topic level.
"""

from __future__ import annotations

from datetime import tzinfo
from difflib import get_close_matches
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, Field

from daemon.config.base import Section
from daemon.config.replication import BrokerConfig
from daemon.rules.values import Identifier


class HqConfig(Section):
    """The HQ process."""

    broker: BrokerConfig
    share_group: Identifier = Field(
        default="posd-hq", description="Shared-subscription group of HQ processes"
    )
    session_expiry_s: int = Field(
        default=120,
        ge=0,
        description=(
            "How long the broker queues terminals' events for this process while it is"
            " away. Short: a member of a shared subscription that is gone keeps being"
            " handed its share until its session expires (terminals send again anyway)."
        ),
    )
    resend_after_s: float = Field(
        default=5.0, gt=0, description="Ask for a resend after a gap this old"
    )
    batch_messages: int = Field(
        default=64, ge=1, description="Event messages stored per transaction"
    )
    feed_limit: int = Field(
        default=5000, ge=1, description="Feed entries claimed per branch at once"
    )
    feed_chunk: int = Field(default=200, ge=1, description="Events per feed message")
    housekeeping_s: float = Field(default=0.25, gt=0)
    ack_refresh_s: float = Field(default=5.0, gt=0, description="Publish recent watermarks again")
    retry_s: float = Field(default=1.0, gt=0, description="Pause after a database error")

    @property
    def node(self) -> str:
        return self.broker.client_id or "posd-hq"


def _known_zone(name: str | None) -> str | None:
    if name is None:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        near = get_close_matches(name, sorted(available_timezones()), n=1, cutoff=0.6)
        hint = f"; did you mean {near[0]!r}?" if near else "; e.g. Europe/Berlin"
        raise ValueError(f"{name!r} is not a time zone this machine knows{hint}") from None
    return name


class DashboardConfig(Section):
    """The HQ dashboard: where it is served, and the store's clock."""

    timezone: Annotated[str | None, AfterValidator(_known_zone)] = Field(
        default=None,
        description=(
            "The store's time zone (an IANA name, e.g. Europe/Berlin): every time on the"
            " dashboard is shown in it. Default: the system's."
        ),
    )
    listen_host: str = Field(default="127.0.0.1", description="Address the dashboard serves on")
    https: bool = Field(default=False, description="Served with TLS (a certificate and key)")
    broker: str | None = Field(
        default=None, description="HQ's broker URL, so the dashboard can warn when it is plain"
    )

    def zone(self) -> tzinfo | None:
        """The store's zone; None is the system's."""
        return ZoneInfo(self.timezone) if self.timezone else None
