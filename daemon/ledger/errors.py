"""What can go wrong with a ledger operation, in words a person can act on."""

from __future__ import annotations

from dataclasses import dataclass

from daemon.errors import LedgerError

__all__ = [
    "LedgerDamaged",
    "LedgerError",
    "LedgerNotFound",
    "LedgerTampered",
    "Problem",
    "Refusal",
    "StorageFull",
]


class LedgerNotFound(LedgerError, FileNotFoundError):
    """There is no ledger at the given path."""

    exit_status = 66  # sysexits EX_NOINPUT


class LedgerDamaged(LedgerError):
    """The file is not a ledger posd can use: empty, not a database, another program's
    database, truncated, or missing events its head record says it had. Every command
    stops with this message; restarting cannot help (65: sysexits' EX_DATAERR)."""

    exit_status = 65


class StorageFull(LedgerError, OSError):
    """The ledger's storage is full: nothing can be written until space is freed."""


class LedgerTampered(LedgerError):
    """The ledger file was changed behind the daemon's back."""


@dataclass(frozen=True)
class Problem:
    """One reason an operation was refused, tied to the unit or row it is about."""

    code: str
    message: str
    serial: str | None = None
    line: int | None = None
    overridable: bool = False

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return where + self.message


class Refusal(LedgerError, ValueError):
    """The operation was refused; nothing was changed except a recorded attempt.

    `problems` lists every reason (all are reported at once, not the first only);
    `recorded` is the id of the event that records the refused attempt, if any.
    """

    def __init__(self, problems: list[Problem], recorded: str | None = None) -> None:
        self.problems = problems
        self.recorded = recorded
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def code(self) -> str:
        return self.problems[0].code

    @property
    def overridable(self) -> bool:
        """A manager could override every problem."""
        return all(p.overridable for p in self.problems)
