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

from daemon.cli.exits import ExitStatus, error_body, part_missing
from daemon.errors import PosdError
from daemon.ledger import Ledger, LedgerNotFound, Outcome, Refusal
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

    json_requested = False

    def main(self, args: Any = None, *pos: Any, **kwargs: Any) -> Any:
        """With `--json` anywhere before a `--`, every failure is JSON on standard
        output too, even a usage error click reports before the command runs."""
        argv = list(sys.argv[1:] if args is None else args)
        if "--json" not in argv[: argv.index("--") if "--" in argv else len(argv)]:
            return super().main(argv, *pos, **kwargs)
        kwargs["standalone_mode"] = False
        self.json_requested = True
        try:
            outcome = super().main(argv, *pos, **kwargs)
        except click.ClickException as error:
            print_failure(_click_code(error), error.format_message(), as_json=True)
            sys.exit(error.exit_code)
        except click.Abort:
            print_failure("Aborted", "stopped before it was done", as_json=True)
            sys.exit(ExitStatus.REFUSED)
        except Exception as error:  # a fault in posd: still one JSON object, never a traceback
            message = (
                f"posd failed unexpectedly ({type(error).__name__}: {error}); please report it"
            )
            print_failure("internal", message, as_json=True)
            sys.exit(ExitStatus.INTERNAL)
        finally:
            self.json_requested = False
        sys.exit(outcome if isinstance(outcome, int) else ExitStatus.OK)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Refusal as refusal:
            report_refusal(refusal, self._as_json(ctx))
            sys.exit(ExitStatus.REFUSED)
        except PosdError as error:
            report_error(error, self._as_json(ctx))
            sys.exit(error.exit_status)
        except sqlite3.Error as error:
            # Met while reading a ledger that opened (damage deeper in the file, a
            # full disk, another program's lock): said once, here, never a traceback.
            path = ctx.find_object(Settings)
            failure = ledger_failure(error, path.db if path else Path("(ledger)"))
            report_error(failure, self._as_json(ctx))
            sys.exit(failure.exit_status)
        except ModuleNotFoundError as missing:
            part = part_missing(missing)
            if part is None:
                raise
            report_error(part, self._as_json(ctx))
            sys.exit(part.exit_status)

    def _as_json(self, ctx: click.Context) -> bool:
        return self.json_requested or bool(ctx.meta.get(JSON_META))


def _click_code(error: click.ClickException) -> str:
    return "usage" if isinstance(error, click.UsageError) else type(error).__name__


def print_failure(code: str, message: str, *, as_json: bool, **details: Any) -> None:
    """Say why a command failed: `Error: …` on standard error, or with `--json` one
    object on standard output (`{"ok": false, "error": {"code", "message"}, …}`)."""
    if as_json:
        payload = to_jsonable(error_body(code, message) | details)
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
    else:
        click.echo(f"Error: {message}", err=True)


def report_error(error: PosdError, as_json: bool) -> None:
    message = str(error)
    if isinstance(error, LedgerNotFound) and _db_is_the_default():
        message += (
            " (the default path, as neither --db nor POSD_DB was given; after"
            " `export POSD_DB=FILE` every posd command uses FILE)"
        )
    print_failure(type(error).__name__, message, as_json=as_json)


def _db_is_the_default() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return root is not None and root.get_parameter_source("db") in (
        click.core.ParameterSource.DEFAULT,
        None,
    )


def main_group() -> click.Group:
    @click.group(cls=PosdGroup, help="posd: the serial-tracking POS terminal daemon and its tools.")
    @click.option(
        "--db",
        envvar="POSD_DB",
        default=DEFAULT_DB,
        show_default=True,
        help="The ledger file, for this command; `export POSD_DB=FILE` names it for every"
        " later one.",
    )
    @click.version_option(package_name="posd")
    @click.pass_context
    def posd(ctx: click.Context, db: str) -> None:
        ctx.obj = Settings(db)

    return posd


JSON_META = "posd.json"
# A refusal with more problems than this (an import of a bad file) prints these and a count.
SHOWN_PROBLEMS = 20


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
            sys.exit(ExitStatus.REFUSED)

    return wrapper  # type: ignore[return-value]


def report_refusal(exc: Refusal, as_json: bool) -> None:
    if as_json:
        payload = {
            **error_body(exc.code, str(exc)),
            "code": exc.code,
            "recorded": exc.recorded,
            "problems": [to_jsonable(p) | {"text": str(p)} for p in exc.problems],
        }
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    count = len(exc.problems)
    click.echo("refused:" if count == 1 else f"refused: {count:,} problems", err=True)
    for problem in exc.problems[:SHOWN_PROBLEMS]:
        click.echo(f"  - {problem}", err=True)
    if count > SHOWN_PROBLEMS:
        click.echo(
            f"  … and {count - SHOWN_PROBLEMS:,} more (--json lists every one)",
            err=True,
        )
    if exc.recorded:
        click.echo(f"  (the attempt is recorded as event {exc.recorded})", err=True)


def is_terminal() -> bool:
    return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
