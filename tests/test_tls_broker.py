"""MQTT over TLS with per-terminal credentials, against a mosquitto of the test's own.

Certificates are made for each test session with the `openssl` command (the project's
test command installs it): a CA that signs the broker's certificate and a terminal's
client certificate, and a second CA that signed nothing of this broker's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.bench.mosquitto import MOSQUITTO_PASSWD, Broker
from daemon.doctor.broker import probe
from daemon.doctor.findings import Status
from daemon.ledger import Ledger
from daemon.replication import BrokerConfig, ReplicationConfig, Replicator
from tests.mqtt_broker import fast_config, hq_watermark, needs_mosquitto

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Pki:
    """Files of a small public-key infrastructure made by `make_pki`."""

    ca: Path  # signed broker.crt and t1.crt
    other_ca: Path  # signed nothing here
    broker_cert: Path
    broker_key: Path
    client_cert: Path  # CN = T1
    client_key: Path
    hq_cert: Path  # CN = hq
    hq_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run([OPENSSL, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr}")


def _new_ca(folder: Path, name: str) -> None:
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", "3", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=folder,
    )  # fmt: skip


def _signed(folder: Path, name: str, cn: str, ca: str, extensions: str) -> None:
    _openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}",
        cwd=folder,
    )  # fmt: skip
    (folder / f"{name}.ext").write_text(extensions)
    _openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
        "-CAcreateserial", "-out", f"{name}.crt", "-days", "3", "-extfile", f"{name}.ext",
        cwd=folder,
    )  # fmt: skip


def make_pki(folder: Path) -> Pki:
    """A CA, a broker certificate for localhost/127.0.0.1, client certificates for
    terminal T1 and for HQ, and an unrelated CA."""
    if not Path(OPENSSL).exists():
        pytest.skip(f"{OPENSSL} is missing; the project's test command installs openssl")
    folder.mkdir(parents=True, exist_ok=True)
    _new_ca(folder, "ca")
    _new_ca(folder, "other-ca")
    leaf = "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    _signed(
        folder,
        "broker",
        "localhost",
        "ca",
        leaf + "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    _signed(folder, "t1", "T1", "ca", leaf + "extendedKeyUsage=clientAuth\n")
    _signed(folder, "hq", "hq", "ca", leaf + "extendedKeyUsage=clientAuth\n")
    return Pki(
        ca=folder / "ca.crt",
        other_ca=folder / "other-ca.crt",
        broker_cert=folder / "broker.crt",
        broker_key=folder / "broker.key",
        client_cert=folder / "t1.crt",
        client_key=folder / "t1.key",
        hq_cert=folder / "hq.crt",
        hq_key=folder / "hq.key",
    )


# ------------------------------------------------------------------ the broker

EXAMPLE = ROOT / "systemd" / "mosquitto"
TERMINAL, BRANCH = "T1", "B1"  # a terminal the example ACL lists
PASSWORDS = {"T1": "t1-password", "hq": "hq-password"}


def example_config(broker: Broker, pki: Pki, *, certificates: bool) -> str:
    """systemd/mosquitto/posd.conf with its paths and port pointed at the test's own;
    with `certificates`, the two lines its comment gives for certificate login."""
    workdir = broker.workdir
    paths = {
        "listener": f"{broker.port} 127.0.0.1",
        "certfile": str(pki.broker_cert),
        "keyfile": str(pki.broker_key),
        "cafile": str(pki.ca),
        "password_file": str(workdir / "passwords"),
        "acl_file": str(workdir / "acl"),
        "persistence_location": f"{workdir}/",
    }
    lines, seen = [], set()
    for line in (EXAMPLE / "posd.conf").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, _, value = line.partition(" ")
        seen.add(key)
        lines.append(f"{key} {paths.get(key, value)}")
        if key == "tls_version" and certificates:
            lines += ["require_certificate true", "use_identity_as_username true"]
    assert set(paths) <= seen, f"the example no longer sets {sorted(set(paths) - seen)}"
    lines += [
        f"user {pwd.getpwuid(os.getuid()).pw_name}",  # as root, it would drop to mosquitto
        f"log_dest file {workdir / 'mosquitto.log'}",
        "log_type all",
    ]
    return "\n".join(lines) + "\n"


def tls_broker(folder: Path, pki: Pki, *, certificates: bool = False) -> Broker:
    needs_mosquitto()
    broker = Broker(folder)
    (folder / "passwords").write_text("")
    for user, password in PASSWORDS.items():
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", str(folder / "passwords"), user, password],
            check=True,
            capture_output=True,
        )
    shutil.copy(EXAMPLE / "acl", folder / "acl")
    broker.config.write_text(example_config(broker, pki, certificates=certificates))
    return broker


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    started = tls_broker(tmp_path / "broker", pki)
    started.start()
    yield started
    started.stop()


@pytest.fixture
def cert_broker(tmp_path: Path, pki: Pki) -> Iterator[Broker]:
    started = tls_broker(tmp_path / "cert-broker", pki, certificates=True)
    started.start()
    yield started
    started.stop()


def url(broker: Broker) -> str:
    return f"mqtts://127.0.0.1:{broker.port}"


def secret(folder: Path, user: str, password: str | None = None) -> Path:
    path = folder / f"{user}.password"
    path.write_text((password or PASSWORDS[user]) + "\n")
    path.chmod(0o600)
    return path


class Hq:
    """An HQ process on a thread, logging in to the broker over TLS."""

    def __init__(self, broker: BrokerConfig, db: Path) -> None:
        from daemon.hq import HqConfig, HqNode, open_backend

        config = HqConfig(broker=broker, resend_after_s=1.0, ack_refresh_s=1.0)
        self._stop = threading.Event()

        def serve() -> None:
            HqNode(config, open_backend(db, None)).run(self._stop)

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def stocked_ledger(path: Path) -> Ledger:
    ledger = Ledger.create(path, terminal=TERMINAL, branch=BRANCH)
    ledger.define_product("LAP", "Laptop", actor="setup")
    ledger.receive("PO-1", "Acme", "LAP", ["SN-1", "SN-2"], actor="ann")
    return ledger


def replicate(ledger_path: Path, config: ReplicationConfig, hq_db: Path) -> None:
    """Run the terminal's replication until HQ has stored every event of the ledger."""
    with Ledger.open(ledger_path) as ledger:
        head = int(ledger.db.execute("SELECT max(seq) FROM events").fetchone()[0])
    replicator = Replicator(config, ledger_path)
    replicator.start()
    try:
        done = replicator.wait_for(lambda s: s.acked_seq >= head, 30)
        assert done, f"HQ did not confirm the events: {replicator.status}"
    finally:
        replicator.stop()
    assert hq_watermark(hq_db, TERMINAL) == head


def refusal(config: ReplicationConfig, tmp_path: Path) -> str:
    """The error replication reports when the broker will not have it."""
    ledger = tmp_path / "refused.db"
    stocked_ledger(ledger).close()
    replicator = Replicator(config, ledger)
    replicator.start()
    try:
        assert replicator.wait_for(lambda s: s.last_error is not None, 20)
        status = replicator.status
    finally:
        replicator.stop()
    assert not status.connected and status.acked_seq == 0
    return status.last_error or ""


# ------------------------------------------------------------------ the matrix


def test_right_ca_and_password_connect_and_replicate_an_event_to_hq(
    broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    hq_db = tmp_path / "hq.db"
    hq = Hq(
        BrokerConfig(url=url(broker), client_id="posd-hq", ca_file=pki.ca, username="hq",
                     password_file=secret(tmp_path, "hq"), reconnect_min_s=0.1,
                     reconnect_max_s=0.5, keepalive_s=5),
        hq_db,
    )  # fmt: skip
    config = fast_config(
        url(broker), username=TERMINAL, password_file=secret(tmp_path, TERMINAL), ca_file=pki.ca
    )
    try:
        stocked_ledger(tmp_path / "t1.db").close()
        replicate(tmp_path / "t1.db", config, hq_db)  # type: ignore[arg-type]
    finally:
        hq.stop()
    found = probe(config, TERMINAL, 10)  # type: ignore[arg-type]
    assert found.status is Status.OK
    assert f"connected as T1 (TLS, broker certificate verified by {pki.ca})" in found.detail


def test_a_wrong_ca_is_refused_saying_certificate_verification_failed(
    broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = fast_config(
        url(broker), username=TERMINAL, password_file=secret(tmp_path, TERMINAL),
        ca_file=pki.other_ca,
    )  # fmt: skip
    found = probe(config, TERMINAL, 10)  # type: ignore[arg-type]
    assert found.status is Status.FAIL
    assert "certificate verification failed" in found.detail
    assert "replication.ca_file must be the CA that signed the broker's certificate" in (
        found.action
    )
    assert "certificate verify failed" in refusal(config, tmp_path)  # type: ignore[arg-type]


def test_a_wrong_password_is_refused_as_not_authorized(
    broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = fast_config(
        url(broker), username=TERMINAL, ca_file=pki.ca,
        password_file=secret(tmp_path, TERMINAL, "not-the-password"),
    )  # fmt: skip
    found = probe(config, TERMINAL, 10)  # type: ignore[arg-type]
    assert found.status is Status.FAIL
    assert "login refused: not authorized" in found.detail and "as T1" in found.detail
    assert "Not authorized" in refusal(config, tmp_path)  # type: ignore[arg-type]


def test_a_client_certificate_logs_in_where_the_broker_requires_one(
    cert_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    hq_db = tmp_path / "hq.db"
    hq = Hq(
        BrokerConfig(url=url(cert_broker), client_id="posd-hq", ca_file=pki.ca,
                     cert_file=pki.hq_cert, key_file=pki.hq_key, reconnect_min_s=0.1,
                     reconnect_max_s=0.5, keepalive_s=5),
        hq_db,
    )  # fmt: skip
    config = fast_config(
        url(cert_broker), ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key
    )
    try:
        stocked_ledger(tmp_path / "t1.db").close()
        replicate(tmp_path / "t1.db", config, hq_db)  # type: ignore[arg-type]
    finally:
        hq.stop()
    found = probe(config, TERMINAL, 10)  # type: ignore[arg-type]
    assert found.status is Status.OK
    assert "connected with the client certificate" in found.detail


def test_without_a_certificate_the_broker_that_requires_one_turns_the_terminal_away(
    cert_broker: Broker, pki: Pki, tmp_path: Path
) -> None:
    config = fast_config(
        url(cert_broker), username=TERMINAL, ca_file=pki.ca,
        password_file=secret(tmp_path, TERMINAL),
    )  # fmt: skip
    found = probe(config, TERMINAL, 10)  # type: ignore[arg-type]
    assert found.status is Status.FAIL
    assert "client certificate" in found.action
