"""Replication figures, on loopback with a mosquitto of the bench's own.

- `replication_events_per_s`: a lane writes events while replication runs;
  events per second from the first write until HQ (SQLite) has confirmed the last
  one with its ack watermark (end to end: terminal → broker → HQ → terminal).
  `receive_events_per_s` is its floor: the same events written by the terminal's
  own writer with no replication, in turn with it; `replication_ratio` (goal >= 0.9)
  the two medians divided.
- `replication_backlog_drain_s`: seconds to drain 50,000 events written while the
  terminal was offline, from the moment replication starts until HQ confirmed all.
- `hq_pg_events_per_s`: HQ ingest into PostgreSQL by two HQ processes on a shared
  subscription, from a backlog queued at the broker for them; skipped (with a
  note) when no PostgreSQL answers at POSD_BENCH_PG.
- `replication_resume_s`: after an outage, seconds from HQ being back (its status
  says online; after a broker restart, the broker listening again) until HQ's
  watermark for a terminal with a backlog moves: the worst of a clean HQ stop, HQ
  killed (its broker session expiring while it is away, so what was queued for it
  is gone) and a broker restart, each with the terminal on its default settings and
  the outage long enough that refusals and reconnect backoff have grown. Each case
  is reported too (`replication_resume_*_s`), and `replication_resume_bound_s` is
  the bound it is held to: there is no "same work without posd" to compare with.

HQ always runs as its own `posd hq run` processes, as it does in production; the
terminals run in this process.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import click

from daemon.bench.mosquitto import Broker
from daemon.ledger import Ledger
from daemon.ledger.remote import head_seq
from daemon.replication import ReplicationConfig, ReplicationStatus, Replicator

PG_ADMIN = os.environ.get("POSD_BENCH_PG", "host=127.0.0.1 port=5432 user=postgres")
CHUNK = 2000


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"benchmark gave up waiting for {what}")
        time.sleep(0.01)


def _ledger(path: Path, terminal: str) -> Ledger:
    ledger = Ledger.create(path, terminal=terminal, branch="B1")
    ledger.define_product("LAP", "Laptop", actor="bench")
    return ledger


def _fill(ledger: Ledger, count: int) -> None:
    """`count` receipt events, in documents of CHUNK units."""
    for start in range(0, count, CHUNK):
        serials = [f"{ledger.terminal}-{n:08d}" for n in range(start, min(count, start + CHUNK))]
        ledger.receive(f"PO-{start}", "Bench", "LAP", serials, actor="bench")


def _config(url: str, **extra: object) -> ReplicationConfig:
    return ReplicationConfig(
        url=url,
        reconnect_min_s=0.05,
        reconnect_max_s=0.5,
        poll_s=0.01,
        **extra,  # type: ignore[arg-type]
    )


class HqProcess:
    """`posd hq run` in a process of its own."""

    def __init__(
        self,
        url: str,
        workdir: Path,
        name: str,
        *,
        db: Path | None = None,
        pg: str | None = None,
        session_expiry: int = 3600,
    ) -> None:
        store = ["--pg", pg] if pg else ["--db", str(db)]
        self.log = (workdir / f"{name}.log").open("a")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from daemon.cli import main; main()",
                "hq",
                *store,
                "run",
                "--broker",
                url,
                "--client-id",
                name,
                "--session-expiry",
                str(session_expiry),
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop (a clean stop ends its broker session; a kill leaves it queueing)."""
        if self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(30)
        self.log.close()


def wait_online(url: str, nodes: list[str], timeout: float = 30) -> None:
    """Wait until every HQ process has subscribed (its birth follows its subscriptions)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from daemon.replication import protocol as p

    seen: dict[str, str] = {}
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}")
    client.on_message = lambda c, u, m: seen.__setitem__(
        m.topic, p.decode(p.NodeStatus, bytes(m.payload), m.topic).state
    )
    host, port = url.removeprefix("mqtt://").split(":")
    client.connect(host, int(port))
    client.subscribe([(p.node_status_topic(n), 1) for n in nodes])
    deadline = time.monotonic() + timeout
    while any(seen.get(p.node_status_topic(n)) != "online" for n in nodes):
        client.loop(0.05)
        if time.monotonic() > deadline:
            raise TimeoutError(f"HQ processes {nodes} did not come online")
    client.disconnect()


def receive_rate(workdir: Path, events: int, name: str) -> float:
    """Events/s the terminal's own writer (`Ledger.receive`) stores with no replication:
    the floor of `replication_events_per_s`, since every event has to be written."""
    ledger = _ledger(workdir / f"{name}.db", "BENCH-RECEIVE")
    try:
        started = time.perf_counter()
        _fill(ledger, events)
        return events / (time.perf_counter() - started)
    finally:
        ledger.close()


def end_to_end(url: str, workdir: Path, events: int, name: str = "lane") -> float:
    hq = HqProcess(url, workdir, f"bench-hq-{name}", db=workdir / f"hq-{name}.db")
    try:
        wait_online(url, [f"bench-hq-{name}"])
        ledger = _ledger(workdir / f"{name}.db", "BENCH-E2E")
        replicator = Replicator(_config(url), workdir / f"{name}.db")
        replicator.start()
        replicator.wait_for(lambda s: s.connected, 30)
        started = time.perf_counter()
        _fill(ledger, events)
        head = head_seq(ledger)
        if not replicator.wait_for(lambda s: s.acked_seq >= head, 300):
            raise TimeoutError(f"HQ confirmed only {replicator.status.acked_seq} of {head}")
        elapsed = time.perf_counter() - started
        replicator.stop()
        ledger.close()
        return events / elapsed
    finally:
        hq.stop()


def backlog_drain(url: str, workdir: Path, events: int) -> float:
    hq = HqProcess(url, workdir, "bench-hq-backlog", db=workdir / "hq-backlog.db")
    try:
        wait_online(url, ["bench-hq-backlog"])
        ledger = _ledger(workdir / "offline.db", "BENCH-OFFLINE")
        _fill(ledger, events)  # written while the terminal had no replication
        head = head_seq(ledger)
        replicator = Replicator(_config(url), workdir / "offline.db")
        started = time.perf_counter()
        replicator.start()
        if not replicator.wait_for(lambda s: s.acked_seq >= head, 300):
            raise TimeoutError(f"HQ confirmed only {replicator.status.acked_seq} of {head}")
        elapsed = time.perf_counter() - started
        replicator.stop()
        ledger.close()
        return elapsed
    finally:
        hq.stop()


def pg_ingest(url: str, workdir: Path, events: int, terminals: int = 4) -> float | None:
    import psycopg

    name = f"posd_bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(f"{PG_ADMIN} dbname=postgres", autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        click.echo(f"no PostgreSQL at {PG_ADMIN!r} ({exc}); hq_pg_events_per_s skipped", err=True)
        return None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            return _pg_ingest(url, workdir, f"{PG_ADMIN} dbname={name}", events, terminals)
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_ingest(url: str, workdir: Path, dsn: str, events: int, terminals: int) -> float:
    import psycopg

    nodes = ["bench-hq-pg-1", "bench-hq-pg-2"]
    # Both processes subscribe once (persistent sessions), then vanish...
    hqs = [HqProcess(url, workdir, n, pg=dsn) for n in nodes]
    wait_online(url, nodes)
    for hq in hqs:
        hq.stop(kill=True)
    # ...while the terminals send everything: the broker queues it for them.
    lanes = []
    for n in range(terminals):
        path = workdir / f"pg-lane-{n}.db"
        ledger = _ledger(path, f"BENCH-PG-{n}")
        _fill(ledger, events // terminals)
        config = _config(url, unacked_limit=10**7, ack_timeout_s=3600, ack_timeout_max_s=3600)
        replicator = Replicator(config, path)
        replicator.start()
        lanes.append((ledger, replicator, head_seq(ledger)))
    for _, replicator, head in lanes:

        def all_sent(status: ReplicationStatus, head: int = head) -> bool:
            return status.sent_seq >= head and status.inflight == 0

        if not replicator.wait_for(all_sent, 300):
            raise TimeoutError(f"terminal sent only {replicator.status.sent_seq} of {head}")
        replicator.stop()  # all queued at the broker: the terminals need not share the CPU
    total = sum(head for _, _, head in lanes)
    hqs = [HqProcess(url, workdir, n, pg=dsn) for n in nodes]
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:

            def stored() -> int:
                row = conn.execute(
                    "SELECT coalesce(sum(acked), 0) FROM hq_streams WHERE terminal LIKE 'BENCH%%'"
                ).fetchone()
                return int(row[0]) if row else 0

            _wait(lambda: stored() > 0, 120, "HQ to start storing")
            first, started = stored(), time.perf_counter()
            _wait(lambda: stored() >= total, 600, "HQ to store everything")
            elapsed = time.perf_counter() - started
    finally:
        for hq in hqs:
            hq.stop()
        for ledger, _, _ in lanes:
            ledger.close()
    return (total - first) / elapsed


ROUNDS = 2


def _end_to_end(root: Path, events: int) -> dict[str, float]:
    """End to end against the terminal's receive rate, in turn (posd, floor, posd,
    floor), medians."""
    rates: list[float] = []
    floors: list[float] = []
    for n in range(ROUNDS):
        broker = Broker(root / f"broker-e2e-{n}")
        broker.start()
        try:
            rates.append(end_to_end(broker.url, root, events, name=f"lane-{n}"))
        finally:
            broker.stop()
        floors.append(receive_rate(root, events, f"receive-{n}"))
    rate, floor = statistics.median(rates), statistics.median(floors)
    return {
        "replication_events_per_s": round(rate),
        "receive_events_per_s": round(floor),
        "replication_ratio": round(rate / floor, 2),
    }


RESUME_BOUND_S = 10.0
RESUME_CASES = ("hq_stopped", "hq_killed", "broker_restarted")


def resume(root: Path, case: str, outage_s: float = 25.0) -> float:
    """Seconds from the end of an outage until HQ's watermark moves again (see above)."""
    broker = Broker(root / f"broker-resume-{case}")
    broker.start()
    url = broker.url
    node = f"bench-hq-{case}"
    db = root / f"hq-{case}.db"
    # Killed, its broker session expires while it is away: what was queued for it goes.
    expiry = 3 if case == "hq_killed" else 3600
    hq = HqProcess(url, root, node, db=db, session_expiry=expiry)
    replicator = None
    try:
        wait_online(url, [node])
        ledger = _ledger(root / f"resume-{case}.db", f"BENCH-{case.upper().replace('_', '-')}")
        _fill(ledger, 500)
        replicator = Replicator(ReplicationConfig(url=url), root / f"resume-{case}.db")
        replicator.start()
        head = head_seq(ledger)
        if not replicator.wait_for(lambda s: s.acked_seq >= head, 120):
            raise TimeoutError(f"HQ confirmed only {replicator.status.acked_seq} of {head}")
        if case == "broker_restarted":
            broker.stop()
        else:
            hq.stop(kill=case == "hq_killed")
        # The lane goes on: a backlog builds while HQ cannot take it.
        deadline = time.monotonic() + outage_s
        sold = 0
        while time.monotonic() < deadline:
            ledger.receive(f"PO-OUT-{sold}", "Bench", "LAP", [f"OUT-{sold:06d}"], actor="bench")
            sold += 1
            time.sleep(0.2)
        before = replicator.status.acked_seq
        if case == "broker_restarted":
            broker.start()
            back = time.monotonic()
        else:
            hq = HqProcess(url, root, node, db=db, session_expiry=expiry)
            wait_online(url, [node], timeout=60)
            back = time.monotonic()
        if not replicator.wait_for(lambda s: s.acked_seq > before, 120):
            raise TimeoutError(f"{case}: replication did not resume in 120 s")
        resumed = time.monotonic() - back
        head = head_seq(ledger)
        if not replicator.wait_for(lambda s: s.acked_seq >= head, 120):
            raise TimeoutError(f"{case}: HQ confirmed only {replicator.status.acked_seq} of {head}")
        ledger.close()
        return max(0.0, resumed)
    finally:
        if replicator is not None:
            replicator.stop()
        hq.stop()
        broker.stop()


def run(
    events: int = 20_000,
    backlog: int = 50_000,
    pg_events: int = 40_000,
    workdir: Path | None = None,
) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        root = Path(tmp)
        figures.update(_end_to_end(root, events))
        measures: list[tuple[str, Callable[[str], float | None]]] = [
            ("replication_backlog_drain_s", lambda url: backlog_drain(url, root, backlog)),
            ("hq_pg_events_per_s", lambda url: pg_ingest(url, root, pg_events)),
        ]
        for name, measure in measures:
            # A broker per measurement: no session of one lingers into the next.
            broker = Broker(root / f"broker-{name}")
            broker.start()
            try:
                figure = measure(broker.url)
            finally:
                broker.stop()
            if figure is not None:
                figures[name] = round(figure) if name.endswith("_per_s") else round(figure, 2)
        for case in RESUME_CASES:
            figures[f"replication_resume_{case}_s"] = round(resume(root, case), 2)
        figures["replication_resume_s"] = max(
            figures[f"replication_resume_{case}_s"] for case in RESUME_CASES
        )
        figures["replication_resume_bound_s"] = RESUME_BOUND_S
    return figures
