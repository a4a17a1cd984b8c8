"""`posd hq`: run HQ, and what an HQ operator does (status, conflicts, resolve, flag).

posd hq --db /var/lib/posd/hq.db run --broker mqtts://broker:8883 --username hq-1 ...
posd hq --pg "host=db dbname=posd" run --client-id posd-hq-2 ...   # a second process
posd hq --db /var/lib/posd/hq.db conflicts
posd hq --db /var/lib/posd/hq.db resolve LAP-X1 SN-1 --keep <event> --note "sold at T1 first"
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from daemon.cli.common import actor_option, emit, json_option, to_jsonable
from daemon.cli.exits import error_body

if TYPE_CHECKING:
    from daemon.hq.central import Central

DEFAULT_HQ_DB = "/var/lib/posd/hq.db"
F = TypeVar("F", bound=Callable[..., Any])


class HqSettings:
    def __init__(self, db: str | None, pg: str | None) -> None:
        self.db = db
        self.pg = pg


def register(group: click.Group) -> None:
    group.add_command(hq)


@click.group(help="HQ: the central ledger that every terminal replicates to over MQTT.")
@click.option(
    "--db",
    envvar="POSD_HQ_DB",
    type=click.Path(dir_okay=False),
    help=f"HQ's SQLite file, for one HQ process (default {DEFAULT_HQ_DB}; or POSD_HQ_DB).",
)
@click.option(
    "--pg",
    envvar="POSD_HQ_PG",
    help="PostgreSQL DSN instead, for several HQ processes sharing the load (or POSD_HQ_PG).",
)
@click.pass_context
def hq(ctx: click.Context, db: str | None, pg: str | None) -> None:
    if db and pg:
        raise click.UsageError("give --db (SQLite) or --pg (PostgreSQL), not both")
    ctx.meta["posd.hq"] = HqSettings(db if db or pg else DEFAULT_HQ_DB, pg)


@contextmanager
def opened_central() -> Iterator[Central]:
    from daemon.hq.central import Central
    from daemon.hq.connect import open_backend

    settings: HqSettings = click.get_current_context().meta["posd.hq"]
    try:
        central = Central(open_backend(settings.db, settings.pg))
    except (ConnectionError, ValueError, OSError, sqlite3.Error) as exc:
        where = "PostgreSQL" if settings.pg else settings.db
        raise click.ClickException(f"cannot open HQ's database ({where}): {exc}") from None
    try:
        yield central
    finally:
        central.close()


def refusals(func: F) -> F:
    """An HQ refusal becomes its message (or JSON) and exit status 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from daemon.hq.central import HqRefusal

        try:
            return func(*args, **kwargs)
        except HqRefusal as exc:
            if kwargs.get("as_json"):
                payload = error_body("HqRefusal", str(exc)) | {"message": str(exc)}
                click.echo(json.dumps(payload, indent=2))
            else:
                click.echo(f"refused: {exc}", err=True)
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


@hq.command(help="Run HQ: store every terminal's events, answer them, until stopped.")
@click.option(
    "--broker",
    "url",
    envvar="POSD_HQ_BROKER",
    default="mqtts://localhost:8883",
    show_default=True,
    help="Broker URL, mqtts://host:port (or mqtt:// on loopback).",
)
@click.option(
    "--client-id",
    default="posd-hq",
    show_default=True,
    help="Fixed MQTT client id; each HQ process needs its own.",
)
@click.option("--username", help="Broker user of this HQ process.")
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the broker password.",
)
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CA certificate that signed the broker's.",
)
@click.option(
    "--cert-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Client certificate, for certificate login.",
)
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key of the client certificate.",
)
@click.option(
    "--share-group",
    default="posd-hq",
    show_default=True,
    help="Shared-subscription group: HQ processes in one group share the load.",
)
@click.option(
    "--session-expiry",
    type=click.IntRange(0),
    default=120,
    show_default=True,
    help="Seconds the broker queues events for this process while it is away.",
)
@click.option(
    "--resend-after",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds events may wait behind a gap before the terminal is asked to resend.",
)
@json_option
def run(
    url: str,
    client_id: str,
    username: str | None,
    password_file: Path | None,
    ca_file: Path | None,
    cert_file: Path | None,
    key_file: Path | None,
    share_group: str,
    session_expiry: int,
    resend_after: float,
    as_json: bool,
) -> None:
    from pydantic import ValidationError

    from daemon.config.hq import HqConfig
    from daemon.config.replication import BrokerConfig
    from daemon.hq.node import HqNode

    try:
        config = HqConfig(
            broker=BrokerConfig(
                url=url,
                client_id=client_id,
                username=username,
                password_file=password_file,
                ca_file=ca_file,
                cert_file=cert_file,
                key_file=key_file,
            ),
            share_group=share_group,
            session_expiry_s=session_expiry,
            resend_after_s=resend_after,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise click.ClickException(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with opened_central() as central:
        node = HqNode(config, central.backend)
        click.echo(f"HQ {client_id}: {central.backend.kind}, broker {url}", err=True)
        node.run(stop)
    totals = node.totals
    emit(
        as_json,
        {
            "stored": totals.stored,
            "duplicates": totals.duplicates,
            "parked": totals.parked,
            "conflicts": totals.conflicts,
            "problems": totals.problems,
        },
        f"HQ stopped: {totals.stored} events stored, {totals.duplicates} duplicates dropped,"
        f" {len(totals.conflicts)} conflicts found",
    )


@hq.command(
    help="Show terminals (ok, or what HQ refused of them), their watermarks and presence,"
    " feeds, open conflicts and problems. Exit status 1 when something needs attention."
)
@json_option
def status(as_json: bool) -> None:
    with opened_central() as central:
        found = central.status()
    lines = [
        f"HQ on {found['backend']}: {found['events']} events"
        + ("" if found["ok"] else " -- NEEDS ATTENTION (see problems)")
    ]
    for t in found["terminals"]:
        state = "ok" if t["ok"] else "NOT OK"
        line = (
            f"  terminal {t['terminal']} (branch {t['branch']}): {state},"
            f" {'online' if t['online'] else 'offline'}, session {t['session']}"
        )
        if t["waiting_for_hq_since"]:
            line += (
                f", waiting for HQ since {t['waiting_for_hq_since']}"
                f" with {t['backlog']} events unconfirmed"
            )
        if t["problems"]:
            line += f", {t['problems']} open problem(s)"
        for held in t["held"]:
            line += f", events held at seq {held['seq']} (epoch {held['epoch']})"
        lines.append(line)
    for s in found["streams"]:
        waiting = f", {s['parked']} waiting behind a gap" if s["parked"] else ""
        if s["held_at"] is not None:
            waiting += f", HELD at seq {s['held_at']}: HQ refused it (see problems)"
        lines.append(
            f"  {s['terminal']} epoch {s['epoch']}: stored up to seq {s['acked']}{waiting}"
        )
    for b in found["branches"]:
        lines.append(f"  branch {b['branch']} feed: {b['head']} entries, {b['published']} sent")
    lines.append(f"  open conflicts: {len(found['conflicts'])}")
    lines += [_problem_line(p) for p in found["problems"]]
    if not found["ok"]:
        found |= error_body("needs_attention", lines[0])
    emit(as_json, found, "\n".join(lines))
    if not found["ok"]:
        raise SystemExit(1)


def _problem_line(problem: dict[str, Any]) -> str:
    where = f"terminal {problem['terminal']}" if problem["terminal"] else "unknown sender"
    if problem["seq"] is not None:
        where += f" seq {problem['seq']}"
    seen = ""
    if problem["seen"] > 1:
        seen = f" (seen {problem['seen']} times, last {problem['last_at']})"
    return f"  problem #{problem['id']} from {where}: {problem['message']}{seen}"


@hq.command(help="List what HQ refused (open problems; --all with dismissed ones too).")
@click.option("--all", "everything", is_flag=True, help="Include dismissed problems.")
@click.option(
    "--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="How many."
)
@json_option
def problems(everything: bool, limit: int, as_json: bool) -> None:
    with opened_central() as central:
        found = central.problems(limit, open_only=not everything)
    lines = [_problem_line(p).strip() for p in found]
    emit(as_json, {"problems": found}, "\n".join(lines) or "no open problems")


@hq.command(
    help="Mark problems as dealt with (by their ids, or all of one terminal), so the"
    " terminal shows ok again. A terminal whose events are held stays not ok until"
    " they are stored."
)
@click.argument("ids", nargs=-1, type=click.IntRange(1))
@click.option("--terminal", help="Every open problem of this terminal.")
@actor_option
@json_option
@refusals
def dismiss(ids: tuple[int, ...], terminal: str | None, actor: str, as_json: bool) -> None:
    if ids and terminal:
        raise click.UsageError("give problem ids or --terminal, not both")
    with opened_central() as central:
        count = central.dismiss(ids, terminal=terminal, actor=actor)
    emit(as_json, {"dismissed": count}, f"{count} problem(s) dismissed")


@hq.command(help="List units that two places changed without knowing of each other.")
@click.option("--all", "everything", is_flag=True, help="Include resolved conflicts.")
@json_option
def conflicts(everything: bool, as_json: bool) -> None:
    with opened_central() as central:
        found = central.conflicts(open_only=not everything)
    lines = [
        f"#{c['id']} {c['product']} {c['serial']}: events {', '.join(c['events'])}"
        + (f" (resolved by {c['resolution']})" if c["resolved_at"] else "")
        for c in found
    ]
    emit(as_json, {"conflicts": found}, "\n".join(lines) or "no conflicts")


@hq.command(help="Resolve a unit's conflict; the resolution reaches every terminal concerned.")
@click.argument("product")
@click.argument("serial")
@click.option("--keep", help="The conflicting event whose outcome stands (its id).")
@click.option("--note", required=True, help="Why, in a sentence.")
@actor_option
@json_option
@refusals
def resolve(
    product: str, serial: str, keep: str | None, note: str, actor: str, as_json: bool
) -> None:
    with opened_central() as central:
        done = central.resolve(product, serial, keep=keep, note=note, actor=actor)
    emit(as_json, done, f"{done['message']} (event {done['event']})")


@hq.command(help="Flag a unit stolen, recalled or on hold (or clear it) at every branch.")
@click.argument("product")
@click.argument("serial")
@click.option(
    "--flag",
    "flag_name",
    type=click.Choice(["stolen", "recalled", "on_hold"]),
    required=True,
    help="Which flag.",
)
@click.option("--off", is_flag=True, help="Clear the flag instead.")
@click.option("--reason", required=True, help="Why, e.g. the police report number.")
@actor_option
@json_option
@refusals
def flag(
    product: str, serial: str, flag_name: str, off: bool, reason: str, actor: str, as_json: bool
) -> None:
    from daemon.rules.units import Flag

    with opened_central() as central:
        done = central.flag(
            product, serial, Flag(flag_name), reason=reason, on=not off, actor=actor
        )
    emit(as_json, done, done["message"])


@hq.command("move-terminal", help="Register a terminal at another branch; its feed follows.")
@click.argument("terminal")
@click.argument("branch")
@json_option
@refusals
def move_terminal(terminal: str, branch: str, as_json: bool) -> None:
    with opened_central() as central:
        done = central.move_terminal(terminal, branch)
    emit(as_json, done, done["message"])


@hq.command(help="Check every terminal's chain at HQ and that the projection matches a replay.")
@json_option
def verify(as_json: bool) -> None:
    with opened_central() as central:
        found = central.verify()
    text = (
        f"HQ ledger intact: {found.events} events, projection matches a replay"
        if found.ok
        else f"HQ ledger: {found.finding}"
    )
    if as_json:
        click.echo(
            json.dumps(
                to_jsonable(
                    {"ok": found.ok, "events": found.events, "finding": found.finding}
                    | ({} if found.ok else error_body("HqTampered", text))
                ),
                indent=2,
            )
        )
    else:
        click.echo(text)
    if not found.ok:
        raise SystemExit(1)
