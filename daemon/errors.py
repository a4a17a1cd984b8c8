"""Every error posd raises descends from `PosdError`, in four branches.

    try:
        ...
    except PosdError as error:       # the CLI does this once, at its edge
        print(error); sys.exit(error.exit_status)

Each branch also inherits the builtin it resembles (as gpiozero's errors do), so code
that only knows Python's exceptions still catches them: a configuration error is a
`ValueError`, a device error an `OSError`. `exit_status` is what `posd` exits with when
the error reaches the command line (78 is sysexits' EX_CONFIG, which systemd is told
not to restart on).
"""

from __future__ import annotations


class PosdError(Exception):
    """Root of every error posd raises on purpose; its message says what to do."""

    exit_status = 1


class ConfigError(PosdError, ValueError):
    """A setting (a configuration file, a command-line value, a PIN hash) cannot be used."""

    exit_status = 78


class DeviceError(PosdError, OSError):
    """A device (scanner, display, printer, GPIO) failed or did not answer in time."""


class LedgerError(PosdError):
    """The ledger refused an operation or cannot be used."""


class HqError(PosdError):
    """HQ refused a request or cannot reach its database or broker."""
