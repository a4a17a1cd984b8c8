"""One MQTT v5 connection, driven by the thread that owns it.

`Link` wraps a paho-mqtt 2.x client: a fixed client id, a persistent session
(clean_start=False with an explicit session expiry), TLS and a login from the
config, and reconnection with backoff. It has no thread of its own: the owner
calls `step()` in its loop, and every callback runs inside that call, on the
owner's thread. paho is therefore only ever touched by one thread.
"""

from __future__ import annotations

import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from daemon.config.replication import BrokerConfig

log = logging.getLogger(__name__)
Clock = Callable[[], float]
# The reason a PUBACK gives when nobody subscribes to the topic (0x10).
NO_SUBSCRIBERS = "No matching subscribers"


@dataclass(frozen=True)
class Will:
    topic: str
    payload: bytes


class LinkHandler:
    """What a link's owner hears; every method runs on the owner's thread."""

    def connected(self, session_present: bool) -> None: ...

    def disconnected(self, reason: str) -> None: ...

    def published(self, mid: int, ok: bool, reason: str) -> None: ...

    def message(self, message: mqtt.MQTTMessage) -> None: ...


class Link:
    """A persistent-session MQTT v5 client, reconnecting with backoff."""

    def __init__(
        self,
        config: BrokerConfig,
        client_id: str,
        handler: LinkHandler,
        *,
        will: Callable[[], Will] | None = None,
        manual_ack: bool = False,
        clock: Clock = time.monotonic,
    ) -> None:
        self.config = config
        self.client_id = client_id
        self.handler = handler
        self.will = will
        self.clock = clock
        self.connected = False
        self.generation = 0  # counts successful connections; stale acks are dropped
        self.last_error: str | None = None
        # The largest packet the broker takes (MQTT 5 CONNACK); None: it set no limit.
        self.max_packet_size: int | None = None
        self._started = False
        self._socket_open = False
        self._waiting_for: int | None = None
        self._flushed = False
        self._refused: str | None = None
        self._next_attempt_monotonic = 0.0
        self._delay = config.reconnect_min_s
        self.client = self._make_client(manual_ack)

    def _make_client(self, manual_ack: bool) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
            manual_ack=manual_ack,
        )
        if self.config.username is not None:
            client.username_pw_set(self.config.username, self.config.password())
        if self.config.tls:
            client.tls_set(
                ca_certs=str(self.config.ca_file) if self.config.ca_file else None,
                certfile=str(self.config.cert_file) if self.config.cert_file else None,
                keyfile=str(self.config.key_file) if self.config.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- driving ------------------------------------------------------------------

    def step(self, timeout: float) -> None:
        """Connect when due, then process network traffic for up to `timeout` seconds."""
        if not self._socket_open:
            if self.clock() >= self._next_attempt_monotonic:
                self._attempt()
            if not self._socket_open:
                time.sleep(timeout)
                return
        rc = self.client.loop(timeout)
        # on_disconnect may have handled this loss already, with the broker's reason.
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS and self._socket_open:
            self._lost(f"connection lost ({mqtt.error_string(rc)})")

    def _attempt(self) -> None:
        if self.will is not None:
            will = self.will()
            self.client.will_set(will.topic, will.payload, qos=1, retain=True)
        try:
            if not self._started:
                # connect() keeps these settings for every later reconnect().
                self._started = True
                properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = self.config.session_expiry_s
                self.client.connect(
                    self.config.host,
                    self.config.port,
                    keepalive=self.config.keepalive_s,
                    clean_start=False,
                    properties=properties,
                )
            else:
                self.client.reconnect()
        except (TimeoutError, OSError, ssl.SSLError) as exc:
            self._schedule(f"cannot reach broker {self.config.url}: {exc}")
            return
        self._socket_open = True

    def _schedule(self, reason: str) -> None:
        self.last_error = reason
        # Between half and all of the delay: after a broker restart the clients it had
        # come back spread out, not all at once, and within reconnect_max_s.
        wait = random.uniform(self._delay / 2, self._delay)
        self._next_attempt_monotonic = self.clock() + wait
        self._delay = min(self._delay * 2, self.config.reconnect_max_s)

    def _lost(self, reason: str) -> None:
        self._socket_open = False
        if self.connected:
            self.connected = False
            self.handler.disconnected(reason)
        # A refused CONNACK says more than the closed socket that follows it.
        self._schedule(self._refused or reason)
        self._refused = None

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int | None:
        """Publish at QoS 1; returns the message id, or None when not connected."""
        if not self.connected:
            return None
        try:
            info = self.client.publish(topic, payload, qos=1, retain=retain)
        except ValueError as exc:  # a topic paho will not send (never from checked ids)
            log.error("cannot publish on %r: %s", topic, exc)
            return None
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return None
        return int(info.mid)

    def subscribe(self, *topic_filters: str) -> None:
        self.client.subscribe([(f, 1) for f in topic_filters])

    def ack(self, mid: int, generation: int) -> None:
        """Acknowledge a message received with manual acks, if its connection is current."""
        if generation == self.generation and self.connected:
            self.client.ack(mid, 1)

    def close(self, *, forget_session: bool = False) -> None:
        """Disconnect cleanly (the broker drops the will) and close the socket.

        `forget_session` ends the broker's session too (session expiry 0), so nothing
        more is queued for this client.
        """
        if self._socket_open:
            properties = None
            if forget_session:
                properties = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
                properties.SessionExpiryInterval = 0
            self.client.disconnect(properties=properties)
            with contextlib.suppress(Exception):  # closing anyway
                self.client.loop(0.2)
        self._socket_open = False
        self.connected = False

    def flush(self, mid: int, timeout: float) -> bool:
        """Run the loop until `mid` is acknowledged or `timeout` passes."""
        deadline = self.clock() + timeout
        self._waiting_for = mid
        self._flushed = False
        while not self._flushed and self.clock() < deadline and self._socket_open:
            self.step(0.05)
        return self._flushed

    # -- paho callbacks (run inside client.loop, on the owner's thread) ------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refused = f"broker {self.config.url} refused the connection: {reason}"
            log.warning(self._refused)
            return  # the broker closes the socket; step() schedules the next attempt
        self.connected = True
        self.generation += 1
        self.last_error = None
        limit = getattr(properties, "MaximumPacketSize", None) if properties else None
        self.max_packet_size = int(limit) if limit else None
        self._delay = self.config.reconnect_min_s
        self.handler.connected(bool(flags.session_present))

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._lost(f"disconnected from {self.config.url}: {reason}")

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._waiting_for == mid:
            self._flushed = True
        # PUBACK 0x10 "No matching subscribers" is a success code, but nobody got
        # the message: for posd that is as good as refused.
        ok = not reason.is_failure and reason.value != 0x10
        self.handler.published(mid, ok, NO_SUBSCRIBERS if reason.value == 0x10 else str(reason))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self.handler.message(message)
