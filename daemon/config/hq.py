"""HQ's settings: which broker, which shared-subscription group, and how it paces itself.

    config = HqConfig(broker=BrokerConfig(url="mqtts://mqtt.example.com:8883"))

Several HQ processes with one `share_group` split the terminals' events between them
(an MQTT shared subscription, `$share/<group>/…`), so the group is an id: one topic level.
"""

from __future__ import annotations

from pydantic import Field

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
