"""What every `posd` command shares: the ledger path, `--json`, the actor, errors."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from daemon.errors import PosdError
from daemon.ledger import Ledger, Outcome, Refusal
from daemon.ledger.damage import ledger_failure

DEFAULT_DB = "/var/lib/posd/ledger.db"
F = TypeVar("F", bound=Callable[..., Any])


class Settings:
    def __init__(self, db: str) -> None:
        self.db = Path(db)


class PosdGroup(click.Group):
    """The `posd` group: every `PosdError` that reaches it becomes a message and an exit
    status here, in one place (JSON when the command was given `--json`). Commands
    installed packages add (`daemon.cli.added`) are found by name when asked for."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is None:
            from daemon.cli.added import added_command

            found = added_command(cmd_name)
        return found

    def list_commands(self, ctx: click.Context) -> list[str]:
        from daemon.cli.added import added_names

        return sorted({*super().list_commands(ctx), *added_names()})

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Refusal as refusal:
            report_refusal(refusal, bool(ctx.meta.get(JSON_META)))
            sys.exit(1)
        except PosdError as error:
            report_error(error, bool(ctx.meta.get(JSON_META)))
            sys.exit(error.exit_status)
        except sqlite3.Error as error:
            # Met while reading a ledger that opened (damage deeper in the file, a
            # full disk, another program's lock): said once, here, never a traceback.
            path = ctx.find_object(Settings)
            failure = ledger_failure(error, path.db if path else Path("(ledger)"))
            report_error(failure, bool(ctx.meta.get(JSON_META)))
            sys.exit(failure.exit_status)


def report_error(error: PosdError, as_json: bool) -> None:
    if as_json:
        body = {"code": type(error).__name__, "message": str(error)}
        click.echo(json.dumps({"ok": False, "error": body}, indent=2, sort_keys=True))
    else:
        click.echo(f"Error: {error}", err=True)


def main_group() -> click.Group:
    @click.group(cls=PosdGroup, help="posd: the serial-tracking POS terminal daemon and its tools.")
    @click.option(
        "--db",
        envvar="POSD_DB",
        default=DEFAULT_DB,
        show_default=True,
        help="The ledger file (or set POSD_DB).",
    )
    @click.version_option(package_name="posd")
    @click.pass_context
    def posd(ctx: click.Context, db: str) -> None:
        ctx.obj = Settings(db)

    return posd


JSON_META = "posd.json"


def _remember_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.meta[JSON_META] = True
    return value


def json_option(func: F) -> F:
    """Add `--json`: print one JSON object instead of text (errors too)."""
    return click.option(
        "--json", "as_json", is_flag=True, callback=_remember_json, help="Print JSON."
    )(func)


def actor_option(func: F) -> F:
    return click.option(
        "--actor",
        envvar="POSD_ACTOR",
        default=lambda: getpass.getuser(),
        help="Employee doing this (default: POSD_ACTOR or the login name).",
    )(func)


def settings() -> Settings:
    obj = click.get_current_context().find_object(Settings)
    assert obj is not None
    return obj


@contextmanager
def opened_ledger(*, check_head: bool = True) -> Iterator[Ledger]:
    """The ledger named by `--db` (see `Ledger.open`), closed afterwards."""
    ledger = Ledger.open(settings().db, check_head=check_head)
    try:
        yield ledger
    finally:
        ledger.close()


def to_jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, int | str | float):
        return value.value
    return value


def emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    if as_json:
        click.echo(json.dumps(to_jsonable({"ok": True, **payload}), indent=2, sort_keys=True))
    else:
        click.echo(text)


def emit_outcome(as_json: bool, outcome: Outcome) -> None:
    emit(
        as_json,
        {"message": outcome.message, "events": outcome.events, **outcome.details},
        outcome.message,
    )


def handles_refusals(func: F) -> F:
    """Print a refusal's problems (each on its line, or as JSON) and exit 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Refusal as exc:
            report_refusal(exc, kwargs.get("as_json", False))
            sys.exit(1)

    return wrapper  # type: ignore[return-value]


def report_refusal(exc: Refusal, as_json: bool) -> None:
    if as_json:
        payload = {
            "ok": False,
            "code": exc.code,
            "recorded": exc.recorded,
            "problems": [to_jsonable(p) | {"text": str(p)} for p in exc.problems],
        }
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    click.echo("refused:", err=True)
    for problem in exc.problems:
        click.echo(f"  - {problem}", err=True)
    if exc.recorded:
        click.echo(f"  (the attempt is recorded as event {exc.recorded})", err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
