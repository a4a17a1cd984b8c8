"""Provisioning's part for the HQ broker: the URL, the login and the files it needs.

A password login names a 0600 file holding the password (never the TOML); a
certificate login names the client certificate and its 0600 key. Each file is read and
checked before anything is written: a CA certificate must load as one, a certificate
and a key must be PEM, a password one line.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from daemon.config.model import describe
from daemon.config.replication import ReplicationConfig
from daemon.provision.answers import NONE, Answers, Login
from daemon.provision.files import FileToInstall, Who, under

CA_PATH = "/etc/posd/hq-ca.pem"
CERT_PATH = "/etc/posd/terminal.crt"
KEY_PATH = "/etc/posd/terminal.key"
PASSWORD_PATH = "/etc/posd/mqtt-password"
_BROKER_ORDER = ("url", "username", "password_file", "ca_file", "cert_file", "key_file")


def replication_settings(
    settings: dict[str, Any],
    answers: Answers,
    root: Path,
    problems: list[str],
    files: list[FileToInstall],
) -> None:
    """Fill in `settings["replication"]` from the answers; queue the files it names."""
    if answers.hq_url == NONE:
        settings.pop("replication", None)
        return
    if answers.hq_url is None and "replication" not in settings:
        return
    table: dict[str, Any] = dict(settings.get("replication", {}))
    if answers.hq_url is not None:
        table["url"] = answers.hq_url

    def install(source: Path | None, key: str, default: str, mode: int, who: Who) -> None:
        # A new file goes to its standard place; without one, the file named now must be there.
        table[key] = default if source is not None else table.get(key, default)
        _install(source, str(table[key]), key, root, mode, who, problems, files)

    login = _login(answers, table)
    if login == "certificate":
        table.pop("username", None)
        table.pop("password_file", None)
        install(answers.cert_file, "cert_file", CERT_PATH, 0o640, "root")
        install(answers.key_file, "key_file", KEY_PATH, 0o600, "posd")
    elif login == "password":
        table.pop("cert_file", None)
        table.pop("key_file", None)
        table["username"] = answers.username or table.get("username") or answers.terminal
        if answers.password is not None:
            table["password_file"] = PASSWORD_PATH
            if not answers.password.strip():
                problems.append("replication.password_file: the password typed is empty")
            secret = answers.password.strip().encode() + b"\n"
            files.append(FileToInstall(PASSWORD_PATH, secret, 0o600, "posd"))
        else:
            install(answers.password_file, "password_file", PASSWORD_PATH, 0o600, "posd")
    if answers.ca_file is not None or "ca_file" in table:
        install(answers.ca_file, "ca_file", CA_PATH, 0o644, "root")
    ordered = {k: table[k] for k in _BROKER_ORDER if k in table}
    ordered.update({k: v for k, v in table.items() if k not in ordered})
    settings["replication"] = ordered


def _login(answers: Answers, table: dict[str, Any]) -> Login | None:
    """How the terminal logs in to the broker: as answered, or as it did before."""
    if answers.login is not None:
        return answers.login
    if answers.cert_file is not None or answers.key_file is not None:
        return "certificate"
    if answers.username or answers.password_file is not None or answers.password is not None:
        return "password"
    if "cert_file" in table:
        return "certificate"
    if "username" in table or "password_file" in table:
        return "password"
    return None


def _install(
    source: Path | None,
    target: str,
    key: str,
    root: Path,
    mode: int,
    owner: Who,
    problems: list[str],
    files: list[FileToInstall],
) -> None:
    """Queue `source` to be installed at `target` (or check the file already there)."""
    flag = "--" + key.replace("_", "-")
    path = source if source is not None else under(root, target)
    try:
        content = path.read_bytes()
    except OSError as error:
        if source is None:
            problems.append(
                f"replication.{key}: {target} is not on this terminal; give it with {flag} FILE"
            )
        else:
            problems.append(f"replication.{key}: {source} cannot be read ({error.strerror})")
        return
    problem = _check_secret_file(key, path, content)
    if problem:
        problems.append(f"replication.{key}: {problem} ({flag} {path})")
        return
    files.append(FileToInstall(target, content, mode, owner))


def _check_secret_file(key: str, path: Path, content: bytes) -> str | None:
    if key in ("ca_file", "cert_file"):
        if b"-----BEGIN CERTIFICATE-----" not in content:
            return f"{path} is not a PEM certificate"
        if key == "ca_file":
            try:
                ssl.create_default_context().load_verify_locations(cadata=content.decode())
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as error:
                return f"{path} holds no usable CA certificate ({error})"
    if key == "key_file" and b"PRIVATE KEY-----" not in content:
        return f"{path} is not a PEM private key"
    if key == "password_file":
        text = content.decode(errors="replace").strip()
        if not text or "\n" in text:
            return f"{path} must hold the password on one line"
    return None


def check_replication(table: dict[str, Any] | None) -> list[str]:
    if table is None:
        return []
    try:
        ReplicationConfig.model_validate(table)
    except ValidationError as error:
        return [describe({**e, "loc": ("replication", *e["loc"])}) for e in error.errors()]
    return []
