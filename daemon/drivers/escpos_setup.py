"""python-escpos's printer capabilities, read once per machine instead of once per start.

On import, python-escpos parses its capability database (a YAML file: about half a
second of a start on a small CPU) unless it finds a pickle of it in the folder
`ESCPOS_CAPABILITIES_PICKLE_DIR` names; and whatever that says, it makes a new empty
temporary folder each time, left behind. `load_escpos(state)` keeps the pickle in
posd's state directory and makes (and removes) that throwaway folder there.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import sys
import tempfile
from pathlib import Path

PICKLE_DIR_VARIABLE = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def state_directory(fallback: Path) -> Path:
    """Where posd keeps files of its own: systemd's `StateDirectory=` when it runs as
    the service, else `fallback` (the ledger's folder)."""
    given = os.environ.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(given) if given else fallback


def load_escpos(state: Path) -> None:
    """Import python-escpos with its capabilities pickled under `state`; a state
    folder posd cannot write to leaves python-escpos to its own ways."""
    if "escpos.capabilities" in sys.modules:
        return
    folder = state / "escpos"
    with contextlib.suppress(OSError):
        folder.mkdir(mode=0o700, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        importlib.import_module("escpos.capabilities")
        return
    os.environ.setdefault(PICKLE_DIR_VARIABLE, str(folder))
    try:
        with tempfile.TemporaryDirectory(dir=folder) as scratch:
            previous = tempfile.tempdir
            tempfile.tempdir = scratch  # where python-escpos makes its folder, removed after
            try:
                importlib.import_module("escpos.capabilities")
            finally:
                tempfile.tempdir = previous
    except (OSError, EOFError, pickle.UnpicklingError):
        # A full disk (the pickle cannot be written) or a pickle a cut-short write left
        # behind: drop what is there and let python-escpos read its YAML into the
        # system's temporary folder this once, rather than not start.
        sys.modules.pop("escpos.capabilities", None)
        for stale in folder.glob("*.capabilities.pickle"):
            with contextlib.suppress(OSError):
                stale.unlink()
        with tempfile.TemporaryDirectory() as elsewhere:
            os.environ[PICKLE_DIR_VARIABLE] = elsewhere
            try:
                importlib.import_module("escpos.capabilities")
            finally:
                os.environ[PICKLE_DIR_VARIABLE] = str(folder)
