"""MQTT over TLS with per-terminal credentials, against a mosquitto of the test's own.

Certificates are made for each test session with the `openssl` command (the project's
test command installs it): a CA that signs the broker's certificate and a terminal's
client certificate, and a second CA that signed nothing of this broker's.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"


@dataclass(frozen=True)
class Pki:
    """Files of a small public-key infrastructure made by `make_pki`."""

    ca: Path  # signed broker.crt and t1.crt
    other_ca: Path  # signed nothing here
    broker_cert: Path
    broker_key: Path
    client_cert: Path  # CN = T1
    client_key: Path


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
    """A CA, a broker certificate for localhost/127.0.0.1, a client certificate for
    terminal T1, and an unrelated CA."""
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
    return Pki(
        ca=folder / "ca.crt",
        other_ca=folder / "other-ca.crt",
        broker_cert=folder / "broker.crt",
        broker_key=folder / "broker.key",
        client_cert=folder / "t1.crt",
        client_key=folder / "t1.key",
    )
