"""Floors: the necessary work of each figure, done without posd, in the same run.

Each floor is the least a program has to do for the same result on the same file
(same schema, indexes, pragmas and payload sizes), so a figure divided by its floor
says how much posd adds. The benchmark runs posd and its floor interleaved (posd,
floor, posd, floor…) and compares medians: on a shared machine the p99s are mostly
the scheduler's.

- `SaleFloor`: one row of a sale event's size inserted and committed at
  `synchronous=FULL` on the ledger's own connection, after the same import.
- `bare_select`: the indexed look-up of one serial key, one column.
- `passport_rows`: the SQL a passport needs (the unit with its product, then its
  events), rows left as tuples.
- `ImportFloor`: the rows an import stores (units, their receive events, the POs),
  with the same schema, indexes and page cache, but bodies pasted from a sample
  instead of encoded and no hash chain.
- `ScanFloor`: an asyncio reader on a pipe takes a serial, looks it up, commits a
  journal row at `synchronous=NORMAL` and writes a two-line text to a pty.
- `imports_rss_mb`: the resident memory of a Python that imports only the packages
  the design card names.
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------- sale commit


class SaleFloor:
    """One-row insert + commit, `synchronous=FULL`, in the ledger file being measured."""

    def __init__(self, conn: sqlite3.Connection, payload_bytes: int) -> None:
        self._conn = conn
        self._payload = "x" * payload_bytes
        conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id INTEGER PRIMARY KEY, body TEXT)")

    def commit_one(self) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO bench_floor (body) VALUES (?)", (self._payload,))
        conn.execute("COMMIT")


# ------------------------------------------------------------------------ look-ups

_BARE = "SELECT id FROM units WHERE serial_key = ? LIMIT 1"
_UNIT_ROWS = (
    "SELECT u.*, p.* FROM units u JOIN products p ON p.id = u.product_id WHERE u.serial_key = ?"
)
_EVENT_ROWS = "SELECT body FROM events WHERE unit_id = ? ORDER BY id"


def bare_select(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute(_BARE, (key,)).fetchone()
    return int(row[0]) if row else 0


def passport_rows(conn: sqlite3.Connection, key: str) -> list[tuple[Any, ...]]:
    rows = conn.execute(_UNIT_ROWS, (key,)).fetchall()
    for row in rows:
        rows.extend(conn.execute(_EVENT_ROWS, (row[0],)).fetchall())
    return rows


# -------------------------------------------------------------------------- import

_UNIT_INSERT = (
    "INSERT INTO units (id, product_id, serial, serial_key, state, branch, po, supplier,"
    " cost_cents, last_event, updated_at) VALUES (?, ?, ?, ?, 'in_stock', ?, ?, ?, ?, ?, ?)"
)
_EVENT_INSERT = (
    "INSERT INTO events (uuid, terminal, epoch, seq, kind, unit_id, doc_id, body, hash)"
    " VALUES (?, 'FLOOR', 'floor', ?, 'receive', ?, ?, ?, ?)"
)
_DOC_INSERT = (
    "INSERT INTO documents (type, number, branch, party, opened_at, updated_at)"
    " VALUES ('po', ?, ?, ?, ?, ?)"
)


class ImportFloor:
    """Stores import rows into a second ledger file, created as posd creates one.

    `sample` is one of posd's receive bodies and `sample_serial` the serial in it:
    each floor body is that text with the row's serial pasted in, so every body has
    the size posd's has."""

    def __init__(self, conn: sqlite3.Connection, sample: str, sample_serial: str) -> None:
        self._conn = conn
        self._head, _, self._tail = sample.partition(sample_serial)
        self._next = 1
        self._docs: dict[str, int] = {}

    def store(self, text: str, products: dict[str, int]) -> None:
        """Every row of a CSV in posd's import format, in one transaction; `products`
        maps product codes to ids."""
        conn = self._conn
        at = "2026-01-01T00:00:00.000Z"
        head, tail = self._head, self._tail
        reader = csv.reader(io.StringIO(text))
        header = next(reader)
        i_serial, i_product, i_po, i_supplier, i_branch, i_cost = (
            header.index(name) for name in ("serial", "product", "po", "supplier", "branch", "cost")
        )
        conn.execute("BEGIN IMMEDIATE")
        units: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for fields in reader:
            serial, po = fields[i_serial].strip(), fields[i_po].strip()
            supplier, branch = fields[i_supplier].strip(), fields[i_branch].strip()
            n = self._next
            self._next += 1
            doc = self._docs.get(po)
            if doc is None:
                cursor = conn.execute(_DOC_INSERT, (po, branch, supplier, at, at))
                doc = self._docs[po] = int(cursor.lastrowid or 0)
            event_id = f"019c0000-0000-7000-8000-{n:012x}"
            units.append(
                (
                    n,
                    products[fields[i_product].strip()],
                    serial,
                    serial.upper(),
                    branch,
                    po,
                    supplier,
                    round(float(fields[i_cost]) * 100),
                    event_id,
                    at,
                )
            )
            events.append((event_id, n, n, doc, head + serial + tail, f"{n:064x}"))
        conn.executemany(_UNIT_INSERT, units)
        conn.executemany(_EVENT_INSERT, events)
        conn.execute("COMMIT")


# ----------------------------------------------------------------- scan to verdict

_JOURNAL_INSERT = (
    "INSERT INTO bench_journal (at, terminal, kind, source, input, mode, outcome, code,"
    " message, invoice, basket_open) VALUES (?, 'FLOOR', 'scan', 'floor', ?, 'basket', ?,"
    " ?, NULL, 'FLOOR-1', 'FLOOR-1')"
)


class ScanFloor:
    """A serial and CR written into the pipe `write_fd` → its look-up → a journal row
    → display text on a pty.

    Runs on the caller's asyncio loop beside the lane, on a connection of its own to
    the same ledger file. `stamps` gets `time.perf_counter_ns()` after each display
    write, and `wake` is set."""

    def __init__(
        self,
        path: Path,
        display_fd: int,
        stamps: list[int],
        wake: Callable[[], None],
    ) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None)
        conn = self._conn
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("CREATE TABLE IF NOT EXISTS bench_journal AS SELECT * FROM lane_log WHERE 0")
        self._display = display_fd
        self._stamps = stamps
        self._wake = wake
        self._total = 0
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        self._buffer = b""

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_reader(self.read_fd, self._readable)

    def stop(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.remove_reader(self.read_fd)
        os.close(self.read_fd)
        os.close(self.write_fd)
        self._conn.close()

    def _readable(self) -> None:
        self._buffer += os.read(self.read_fd, 4096)
        while b"\r" in self._buffer:
            line, _, self._buffer = self._buffer.partition(b"\r")
            self._verdict(line.decode())

    def _verdict(self, serial: str) -> None:
        conn = self._conn
        row = conn.execute(
            "SELECT u.state, p.name, p.price_cents FROM units u JOIN products p"
            " ON p.id = u.product_id WHERE u.serial_key = ?",
            (serial,),
        ).fetchone()
        accepted = row is not None and row[0] == "in_stock"
        if accepted:
            self._total += row[2]
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            _JOURNAL_INSERT,
            (
                time.time(),
                serial,
                "accepted" if accepted else "refused",
                "added" if accepted else "unknown_serial",
            ),
        )
        conn.execute("COMMIT")
        top = f"{serial} {'OK' if accepted else 'REJECTED'}"[:20].ljust(20)
        bottom = f"TOTAL {self._total / 100:.2f}"[:20].ljust(20)
        os.write(self._display, b"\x0c" + top.encode("ascii") + bottom.encode("ascii"))
        self._stamps.append(time.perf_counter_ns())
        self._wake()


# -------------------------------------------------------------------------- memory

DESIGN_CARD_IMPORTS = (
    "evdev",
    "serial",
    "escpos.printer",
    "gpiozero",
    "sqlite_utils",
    "paho.mqtt.client",
    "pydantic",
)


def imports_rss_mb() -> float:
    """Resident memory of a Python that only imports the design card's packages."""
    script = (
        f"import {', '.join(DESIGN_CARD_IMPORTS)}\n"
        "for line in open('/proc/self/status'):\n"
        "    if line.startswith('VmRSS:'):\n"
        "        print(int(line.split()[1]) / 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return round(float(out.stdout.strip()), 1)
