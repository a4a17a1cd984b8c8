"""`posd hq web` and `posd hq user`: the HQ dashboard and the people who use it.

posd hq --db /var/lib/posd/hq.db user add olga --role manager
posd hq --db /var/lib/posd/hq.db web --listen 127.0.0.1:8080 --timezone Europe/Berlin
posd hq web --pg "host=db dbname=posd" --listen 0.0.0.0:8443 --tls-cert hq.pem --tls-key hq.key
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from daemon.cli.common import emit, json_option

if TYPE_CHECKING:
    from daemon.hq.backend import Backend
    from daemon.hq.web.db import HqSource

F = TypeVar("F", bound=Callable[..., Any])


def register(group: click.Group) -> None:
    """Add `web` and `user` to the `posd hq` group (register the HQ commands first)."""
    hq = group.commands.get("hq")
    if not isinstance(hq, click.Group):
        raise RuntimeError("register `posd hq` before its dashboard commands")
    hq.add_command(web)
    hq.add_command(user)


def source_options(func: F) -> F:
    func = click.option("--pg", help="HQ's PostgreSQL DSN (default: what `posd hq --pg` names).")(
        func
    )
    return click.option(
        "--db",
        type=click.Path(dir_okay=False, path_type=Path),
        help="HQ's SQLite file (default: what `posd hq --db` names).",
    )(func)


def hq_source(db: Path | None, pg: str | None) -> HqSource:
    """The database named here, or else on `posd hq`; a SQLite file must exist."""
    from daemon.hq.web.db import HqSource

    if db is not None and pg is not None:
        raise click.UsageError("give --db (SQLite) or --pg (PostgreSQL), not both")
    if db is None and pg is None:
        settings = click.get_current_context().meta["posd.hq"]
        db = Path(settings.db) if settings.db else None
        pg = settings.pg
    source = HqSource(db=db if pg is None else None, pg=pg)
    if source.db is not None and not source.db.exists():
        raise click.ClickException(
            f"no HQ database at {source.db}; give the file `posd hq run` keeps (--db),"
            " or a PostgreSQL DSN (--pg)"
        )
    return source


@contextmanager
def opened_backend(source: HqSource) -> Iterator[Backend]:
    from daemon.hq.connect import open_backend
    from daemon.hq.users import ensure_tables

    try:
        backend = open_backend(source.db, source.pg)
    except (ConnectionError, ValueError, OSError, sqlite3.Error) as exc:
        raise click.ClickException(
            f"cannot open HQ's database ({source.describe()}): {exc}"
        ) from None
    try:
        ensure_tables(backend)
        yield backend
    finally:
        backend.close()


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(
            f"{text!r} is not HOST:PORT; e.g. 127.0.0.1:8080 or [::1]:8080", param_hint="--listen"
        )
    return host, int(port)


@click.command(
    help="Serve the HQ dashboard: live unit counts, passports, the conflict queue,"
    " terminals, recalls and analytics, for users added with `posd hq user add`."
)
@source_options
@click.option(
    "--listen",
    default="127.0.0.1:8080",
    show_default=True,
    help="Address and port to serve on (HOST:PORT).",
)
@click.option(
    "--tls-cert",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Serve HTTPS with this certificate chain (PEM); needs --tls-key.",
)
@click.option(
    "--tls-key",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The certificate's private key (PEM).",
)
@click.option(
    "--poll",
    type=click.FloatRange(0.05, 60),
    default=1.0,
    show_default=True,
    help="Seconds between looks at HQ's database for new events (live counts).",
)
@click.option(
    "--timezone",
    envvar="POSD_HQ_TIMEZONE",
    help="The store's time zone for every time shown, e.g. Europe/Berlin"
    " (or POSD_HQ_TIMEZONE; default: the system's).",
)
@click.option(
    "--broker",
    envvar="POSD_HQ_BROKER",
    help="The broker URL `posd hq run` uses (or POSD_HQ_BROKER), so the dashboard can"
    " warn when it is plain mqtt:// on the network.",
)
def web(
    db: Path | None,
    pg: str | None,
    listen: str,
    tls_cert: Path | None,
    tls_key: Path | None,
    poll: float,
    timezone: str | None,
    broker: str | None,
) -> None:
    import ssl

    from aiohttp import web as aioweb
    from pydantic import ValidationError

    from daemon.config.hq import DashboardConfig
    from daemon.hq.web import WebSettings, create_app

    host, port = parse_listen(listen)
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("HTTPS needs both --tls-cert and --tls-key")
    try:
        config = DashboardConfig(
            timezone=timezone, listen_host=host, https=tls_cert is not None, broker=broker
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.BadParameter(
            str(first["msg"]).removeprefix("Value error, "), param_hint="--timezone"
        ) from None
    context = None
    if tls_cert is not None and tls_key is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
    source = hq_source(db, pg)
    scheme = "https" if context else "http"
    click.echo(f"HQ dashboard on {scheme}://{listen}/ ({source.describe()})", err=True)
    try:
        aioweb.run_app(
            create_app(
                source,
                WebSettings(
                    poll_s=poll,
                    zone=config.zone(),
                    listen=config.listen_host,
                    https=config.https,
                    broker=config.broker,
                ),
            ),
            host=host,
            port=port,
            ssl_context=context,
            print=None,
            shutdown_timeout=5.0,
        )
    except (ConnectionError, OSError, sqlite3.Error) as exc:
        raise click.ClickException(f"cannot serve the dashboard: {exc}") from None


@click.group(
    help="HQ dashboard users: viewers see everything; managers also resolve conflicts"
    " and create recalls."
)
def user() -> None:
    pass


@user.command("add", help="Add a dashboard user; the password is asked for (or read from a file).")
@click.argument("name")
@click.option(
    "--role",
    type=click.Choice(["manager", "viewer"]),
    required=True,
    help="viewer: reads; manager: also resolves conflicts and creates recalls.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the password from this file's first line instead of asking.",
)
@source_options
@json_option
def user_add(
    name: str,
    role: str,
    password_file: Path | None,
    db: Path | None,
    pg: str | None,
    as_json: bool,
) -> None:
    from daemon.hq.users import Role, UserError, add_user, check_name, check_password
    from daemon.ledger.store import iso, utc_now

    source = hq_source(db, pg)
    try:
        check_name(name)
        if password_file is not None:
            lines = password_file.read_text(encoding="utf-8").splitlines()
            password = lines[0] if lines else ""
        else:
            password = click.prompt(
                f"Password for {name}", hide_input=True, confirmation_prompt=True
            )
        check_password(password)
        with opened_backend(source) as backend:
            added = add_user(backend, name, Role(role), password, at=iso(utc_now()))
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    emit(
        as_json,
        {"user": {"name": added.name, "role": added.role.value, "created_at": added.created_at}},
        f"user {added.name} added as {added.role}",
    )


@user.command("list", help="List the dashboard users and their roles.")
@source_options
@json_option
def user_list(db: Path | None, pg: str | None, as_json: bool) -> None:
    from daemon.hq.users import list_users

    with opened_backend(hq_source(db, pg)) as backend:
        found = backend.run(list_users)
    rows = [{"name": u.name, "role": u.role.value, "created_at": u.created_at} for u in found]
    text = "\n".join(f"{u.name}  {u.role}  (since {u.created_at})" for u in found)
    emit(as_json, {"users": rows}, text or "no users yet: add one with `posd hq user add`")


@user.command("remove", help="Remove a dashboard user and sign them out everywhere.")
@click.argument("name")
@source_options
@json_option
def user_remove(name: str, db: Path | None, pg: str | None, as_json: bool) -> None:
    from daemon.hq.users import UserError, remove_user

    try:
        with opened_backend(hq_source(db, pg)) as backend:
            remove_user(backend, name)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    emit(as_json, {"removed": name}, f"user {name} removed and signed out")
