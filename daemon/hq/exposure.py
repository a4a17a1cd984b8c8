"""Whether HQ talks in the clear where others can listen: the dashboard served over
plain HTTP, or HQ's MQTT broker reached over plain MQTT, on an address other than the
machine's own loopback. Passwords, session cookies and customers' names would cross
the network readable; HQ says so in its log and on every dashboard page.

    plain_on_network(listen="0.0.0.0", https=False, broker=None)
    # ['The dashboard is served without TLS on 0.0.0.0: ...']
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; every other name or address (0.0.0.0,
    '' and :: mean every interface) can be reached from elsewhere."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plain_on_network(*, listen: str | None, https: bool, broker: str | None) -> list[str]:
    """A warning for each of the dashboard (served on host `listen`) and the broker (at
    URL `broker`) that runs without TLS on a non-loopback address."""
    found = []
    if listen is not None and not https and not is_loopback(listen):
        found.append(
            f"The dashboard is served without TLS on {listen or 'every address'}:"
            " passwords and session cookies cross the network readable. Serve it with"
            " --tls-cert and --tls-key, or on 127.0.0.1 behind an HTTPS proxy."
        )
    if broker:
        parts = urlsplit(broker)
        host = parts.hostname or ""
        if parts.scheme == "mqtt" and not is_loopback(host):
            found.append(
                f"HQ's MQTT broker is reached without TLS at {host}: every terminal's"
                " events, customers' names included, cross the network readable."
                " Use mqtts:// (port 8883)."
            )
    return found
