"""What `posd` exits with, in one place (the README's table is checked against it).

A script can tell the cases apart without reading the message: 1 the ledger (or HQ,
or a check) said no, 2 the command line itself was wrong, 65 the ledger file is damaged,
foreign or shorter than its head record, 66 the ledger or file named
is not there, 78 a configuration cannot be used. With `--json`, every failure is also
one JSON object on standard output: `{"ok": false, "error": {"code": …, "message": …}}`.
"""

from __future__ import annotations

from enum import IntEnum

from daemon.errors import PosdError


class ExitStatus(IntEnum):
    OK = 0
    REFUSED = 1  # refused, or a check found a fault (audit verify, doctor FAIL)
    USAGE = 2  # an unknown command or option, a missing or bad value
    DATA_ERROR = 65  # sysexits EX_DATAERR: the ledger file is damaged, foreign or cut short
    NO_INPUT = 66  # sysexits EX_NOINPUT: no ledger or input file at the path given
    UNAVAILABLE = 69  # sysexits EX_UNAVAILABLE: a part of posd is not installed (posd[hq])
    INTERNAL = 70  # sysexits EX_SOFTWARE: a fault in posd itself (please report it)
    CONFIG = 78  # sysexits EX_CONFIG: a configuration cannot be used


class NotFoundError(PosdError, LookupError):
    """The thing asked for (a unit, an event) is not in the ledger."""


class InputMissingError(PosdError, FileNotFoundError):
    """A file the command was given is not there."""

    exit_status = ExitStatus.NO_INPUT


# What the `hq` extra installs (`pip install 'posd[hq]'`): a terminal has none of it.
HQ_PACKAGES = frozenset({"psycopg", "psycopg_binary", "jinja2", "markupsafe"})


class PartMissingError(PosdError, ImportError):
    """This command needs a part of posd this install does not have."""

    exit_status = ExitStatus.UNAVAILABLE


def part_missing(missing: ModuleNotFoundError) -> PartMissingError | None:
    """The error to report for a module HQ needs that is not installed, or None when
    the module is not one of HQ's (a fault to report as it is)."""
    if (missing.name or "").partition(".")[0] not in HQ_PACKAGES:
        return None
    return PartMissingError(
        f"this command needs posd's HQ part ({missing.name} is not installed):"
        " pip install -c constraints.txt 'posd[hq]'"
    )


def error_body(code: str, message: str) -> dict[str, object]:
    """The JSON every failing `posd … --json` prints (besides any details)."""
    return {"ok": False, "error": {"code": code, "message": message}}


def config_failure(path: str, problems: list[str]) -> dict[str, object]:
    """A configuration file that cannot be used, as JSON (`posd config check`, `doctor`)."""
    message = f"{path}: the configuration cannot be used: " + "; ".join(problems)
    return error_body("ConfigFileError", message) | {"file": path, "problems": problems}
