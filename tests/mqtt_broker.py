"""Test fixtures for replication: a mosquitto of the test's own, a fresh PostgreSQL
database, waiting for conditions, and a terminal that runs in a real subprocess.

Each test gets its own broker on a free loopback port, configured in its tmp_path
(never the system broker on 1883), and stopped after the test.

    python -m tests.mqtt_broker terminal LEDGER URL [--sell N]  # a terminal process
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.bench.mosquitto import MOSQUITTO, Broker

PG_ADMIN_DSN = os.environ.get("POSD_TEST_PG", "host=127.0.0.1 port=5432 user=postgres")
ROOT = Path(__file__).resolve().parent.parent


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "") -> None:
    """Poll `condition` until it is true; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what or condition}")


def needs_mosquitto() -> None:
    if not Path(MOSQUITTO).exists():
        pytest.skip(f"{MOSQUITTO} is missing; the project's test command installs mosquitto")


def running_broker(tmp_path: Path, **options: Any) -> Iterator[Broker]:
    """For a fixture: a started broker, stopped after the test."""
    needs_mosquitto()
    started = Broker(tmp_path / "broker", **options)
    started.start()
    try:
        yield started
    finally:
        started.stop()


def fresh_pg_database() -> Iterator[str]:
    """For a fixture: the DSN of a fresh PostgreSQL database, dropped after the test.

    When no server answers, the test is skipped with the reason, unless
    POSD_REQUIRE_PG=1, when it fails.
    """
    import psycopg

    name = f"posd_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(
            f"{PG_ADMIN_DSN} dbname=postgres", autocommit=True, connect_timeout=3
        )
    except psycopg.OperationalError as exc:
        reason = (
            f"NO POSTGRESQL at {PG_ADMIN_DSN!r} ({str(exc).strip()}): the PostgreSQL tests did"
            " NOT run. Start the server, or set POSD_REQUIRE_PG=1 to make this a failure."
        )
        if os.environ.get("POSD_REQUIRE_PG") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"{PG_ADMIN_DSN} dbname={name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class TerminalProcess:
    """`python -m tests.mqtt_broker terminal ...` in a real subprocess, to kill -9."""

    def __init__(self, ledger: Path, url: str, *, sell: int = 0, log: Path | None = None) -> None:
        command = [sys.executable, "-m", "tests.mqtt_broker", "terminal", str(ledger), url]
        if sell:
            command += ["--sell", str(sell)]
        self.log = log or ledger.with_suffix(".log")
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=self.log.open("w"), stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(15)


def fast_config(url: str, **overrides: object) -> object:
    """Replication settings with short timeouts, for tests."""
    from daemon.replication import ReplicationConfig

    settings: dict[str, object] = {
        "url": url,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "ack_timeout_s": 2.0,
        "ack_timeout_max_s": 4.0,
        "feed_poll_s": 5.0,
        "poll_s": 0.02,
        "keepalive_s": 5,
    }
    settings.update(overrides)
    return ReplicationConfig(**settings)  # type: ignore[arg-type]


class HqThread:
    """An HQ process's loop on a thread of the test: start, stop (like a restart)."""

    def __init__(
        self,
        url: str,
        *,
        db: Path | None = None,
        pg: str | None = None,
        client_id: str = "posd-hq",
        resend_after_s: float = 1.0,
        username: str | None = None,
        password_file: Path | None = None,
    ) -> None:
        from daemon.hq import HqConfig, HqNode, open_backend
        from daemon.replication import BrokerConfig

        broker = BrokerConfig(
            url=url,
            client_id=client_id,
            reconnect_min_s=0.1,
            reconnect_max_s=0.5,
            keepalive_s=5,
            username=username,
            password_file=password_file,
        )
        self.config = HqConfig(broker=broker, resend_after_s=resend_after_s, ack_refresh_s=1.0)
        self._stop = threading.Event()
        self.node: HqNode | None = None

        def serve() -> None:
            # The database belongs to the thread that opened it.
            self.node = HqNode(self.config, open_backend(db, pg))
            self.node.run(self._stop)

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
        assert not self._thread.is_alive(), "HQ did not stop"


class RawClient:
    """A plain paho client for a test to play a misbehaving terminal or to watch topics."""

    def __init__(
        self, url: str, client_id: str, *, username: str | None = None, password: str | None = None
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

        self.messages: dict[str, list[bytes]] = {}
        self.acks: dict[int, object] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda c, u, m: self.messages.setdefault(m.topic, []).append(
            bytes(m.payload)
        )
        self.client.on_publish = lambda c, u, mid, rc, props: self.acks.__setitem__(mid, rc)
        host, port = url.removeprefix("mqtt://").split(":")
        self.client.connect(host, int(port))
        self.client.loop_start()
        wait_until(self.client.is_connected, 10, "the test client to connect")

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> object:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        wait_until(lambda: info.mid in self.acks, 10, f"PUBACK for {topic}")
        return self.acks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def hq_watermark(hq_db: Path, terminal: str) -> int:
    """HQ's stored watermark for a terminal (its current epoch), read without locking."""
    import sqlite3

    if not hq_db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(hq_db)) as conn:
        try:
            row = conn.execute(
                "SELECT max(acked) FROM hq_streams WHERE terminal = ?", [terminal]
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0] or 0)


def _terminal_main(args: argparse.Namespace) -> int:
    """Replicate a ledger; with --sell, keep writing receipts of one unit each."""
    from daemon.ledger import Ledger
    from daemon.replication import Replicator

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    replicator = Replicator(fast_config(args.url), Path(args.ledger))  # type: ignore[arg-type]
    replicator.start()
    print("replicating", flush=True)
    if args.sell:
        ledger = Ledger.open(args.ledger)
        start = int(ledger.db.execute("SELECT count(*) FROM units").fetchone()[0])
        for n in range(start, start + args.sell):
            if stop.is_set():
                break
            ledger.receive(f"PO-{n}", "Acme", "LAP", [f"KX-{n:06d}"], actor="proc")
        ledger.close()
        print("sold", flush=True)
    stop.wait()
    replicator.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mqtt_broker")
    commands = parser.add_subparsers(dest="command", required=True)
    terminal = commands.add_parser("terminal", help="replicate a ledger until terminated")
    terminal.add_argument("ledger")
    terminal.add_argument("url")
    terminal.add_argument("--sell", type=int, default=0)
    args = parser.parse_args(argv)
    return _terminal_main(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
