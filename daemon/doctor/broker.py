"""The doctor's broker check: log in to HQ's broker exactly as replication does.

The findings keep apart what needs different people: a broker that cannot be reached
(the network; the lane sells offline meanwhile), a certificate that does not verify
(the CA file or the broker's name), and a login the broker refuses (the terminal's
credentials). The connection resumes the terminal's own session without taking
anything from it: the same client id and session expiry as replication, no will,
and nothing acknowledged, so what the broker holds for the lane stays there.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import ValidationError

from daemon.config.model import describe
from daemon.config.replication import BrokerSettingError, ReplicationConfig
from daemon.doctor.findings import Context, Finding, fail, ok, skip, warn

LOGIN_REFUSED = {0x86, 0x87, 0x8C}  # bad user name or password, not authorized, bad auth
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def check_broker(context: Context) -> Sequence[Finding]:
    settings: Any = context.config.replication
    if settings is None:
        return [skip("broker", "no replication configured (this lane does not report to HQ)")]
    try:
        config = ReplicationConfig.model_validate(settings)
    except ValidationError as error:
        problems = [describe({**e, "loc": ("replication", *e["loc"])}) for e in error.errors()]
        return [fail("broker", "; ".join(problems), "fix the [replication] section")]
    return [probe(config, context.config.terminal.id, context.options.broker_timeout_s)]


def replication_file(settings: Any, key: str) -> str | None:
    """A file named in the replication settings (a table, or the checked settings)."""
    value = settings.get(key) if isinstance(settings, dict) else getattr(settings, key, None)
    return None if value is None else str(value)


def probe(config: ReplicationConfig, terminal: str, timeout_s: float) -> Finding:
    """Connect, wait for the broker's answer to the login, disconnect."""
    try:
        password = config.password()
    except BrokerSettingError as problem:
        return fail("broker", str(problem), "fix replication.password_file")
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=config.client_id or f"posd-{terminal}",
        protocol=MQTTProtocolVersion.MQTTv5,
        manual_ack=True,  # nothing queued for the lane is taken from it
    )
    if config.username is not None:
        client.username_pw_set(config.username, password)
    where = config.url
    if config.tls:
        try:
            client.tls_set(
                ca_certs=str(config.ca_file) if config.ca_file else None,
                certfile=str(config.cert_file) if config.cert_file else None,
                keyfile=str(config.key_file) if config.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError) as error:
            return fail(
                "broker",
                f"the TLS files cannot be loaded ({error})",
                "check replication.ca_file, cert_file and key_file",
            )
    client.connect_timeout = timeout_s
    answer: dict[str, Any] = {}
    logged: list[str] = []
    client.on_connect = lambda c, u, flags, reason, props: answer.setdefault("connack", reason)
    client.on_log = lambda c, u, level, text: logged.append(text)
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = config.session_expiry_s  # keep the lane's session
    try:
        client.connect(
            config.host, config.port, keepalive=config.keepalive_s,
            clean_start=False, properties=properties,
        )  # fmt: skip
    except ssl.SSLCertVerificationError as error:
        return _unverified(config, str(error.verify_message or error))
    except ssl.SSLError as error:
        return _handshake(config, str(error.reason or error))
    except (OSError, TimeoutError) as error:
        return _unreachable(config, str(error))
    try:
        deadline = time.monotonic() + timeout_s
        while "connack" not in answer and time.monotonic() < deadline:
            if client.loop(0.1) != mqtt.MQTT_ERR_SUCCESS:
                break
    except ssl.SSLError as error:
        return _handshake(config, str(error.reason or error))
    finally:
        with contextlib.suppress(Exception):  # a clean goodbye; the socket closes either way
            client.disconnect()
            client.loop(0.1)
    reason: ReasonCode | None = answer.get("connack")
    if reason is None:
        closed = next((t for t in reversed(logged) if "failed" in t or "EOF" in t), "")
        return fail(
            "broker",
            f"{where}: the broker closed the connection before answering the login"
            + (f" ({closed})" if closed else ""),
            "it may require a client certificate (set replication.cert_file and key_file) "
            "or refuse this TLS version; the broker's log says which"
            if config.tls
            else "is this port a TLS listener? then the url must start with mqtts://",
        )
    if reason.is_failure:
        if reason.value in LOGIN_REFUSED:
            who = config.username or "the client certificate"
            return fail(
                "broker",
                f"{where}: login refused: not authorized ({reason}) as {who}",
                "check replication.username and password_file against the broker's password "
                "file (mosquitto_passwd), or the terminal's certificate",
            )
        return fail("broker", f"{where}: the broker refused the connection ({reason})",
                    "see the broker's log")  # fmt: skip
    how = _how(config)
    if not config.tls and config.host not in _LOOPBACK:
        return warn(
            "broker",
            f"{where}: connected {how}, without TLS",
            "use mqtts:// with the broker's TLS port: the password and events cross the "
            "network in clear",
        )
    return ok("broker", f"{where}: connected {how}")


def _how(config: ReplicationConfig) -> str:
    who = f"as {config.username}" if config.username else "with the client certificate"
    if not config.tls:
        return who
    trust = f"verified by {config.ca_file}" if config.ca_file else "verified by the system CAs"
    return f"{who} (TLS, broker certificate {trust})"


def _unverified(config: ReplicationConfig, why: str) -> Finding:
    return fail(
        "broker",
        f"{config.url}: certificate verification failed: {why}",
        f"replication.ca_file must be the CA that signed the broker's certificate, and "
        f"{config.host!r} must be a name in that certificate",
    )


def _handshake(config: ReplicationConfig, why: str) -> Finding:
    hint = "is the port a TLS listener? mqtts:// needs the broker's TLS port"
    if "CERTIFICATE" in why.upper():
        hint = "the broker wants a valid client certificate: set replication.cert_file and key_file"
    return fail("broker", f"{config.url}: TLS handshake failed: {why}", hint)


def _unreachable(config: ReplicationConfig, why: str) -> Finding:
    return warn(
        "broker",
        f"{config.url}: broker unreachable ({why})",
        "the lane sells offline and its events wait in the ledger; check the network, "
        "firewall and replication.url",
    )
