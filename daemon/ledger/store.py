"""Opening a ledger, and the one way anything is written to it.

Every write goes through `LedgerStore.writing()`: an immediate transaction that
numbers and hashes each event, appends it, applies it to the projection, updates
the counts and commits. With WAL and `synchronous=FULL`, a committed event is on
disk before the call returns.

After the commit the new chain head goes to the head record beside the file
(`daemon.ledger.head`), so deleting the newest events shows. Nothing after the commit
(that record, a checkpoint) can turn a committed write into a failure: a problem there
is logged, and the work stays reported as done.

`open` refuses (`LedgerDamaged`) a file that is not a posd ledger (empty, garbage,
truncated, another program's database) before it writes anything, and a ledger shorter
than its head record says.

`read_identity` says whose ledger a file is without opening it for writing;
`connect_read_only` is the connection for such looks (the doctor's, provisioning's).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, Self
from urllib.parse import quote

from sqlite_utils import Database

from daemon.ledger.damage import ADVICE, file_problem, schema_problem, unreadable
from daemon.ledger.errors import LedgerDamaged, LedgerError, LedgerNotFound, StorageFull
from daemon.ledger.events import (
    ChainHead,
    Change,
    EventBody,
    EventIds,
    Sealed,
    Stamp,
    genesis_hash,
    seal,
)
from daemon.ledger.head import HeadFile, HeadRecord, HeadRecordDamaged, head_path, read_head
from daemon.ledger.projection import Projection
from daemon.ledger.schema import MIGRATIONS
from daemon.rules.serials import serial_key
from daemon.rules.units import Flag, State, UnitView

Clock = Callable[[], datetime]
log = logging.getLogger(__name__)
DEFAULT_PREFIX_LENGTH = 4
WAL_LIMIT_BYTES = 64 * 1024 * 1024
# How long a statement waits for another connection's lock before "database is locked".
BUSY_TIMEOUT_MS = 5000
_KEYS_PER_QUERY = 5000
# Free space below which a storage counts as full (SQLite's shared-memory file alone
# takes 32 KB, a WAL frame a page).
FULL_BELOW_BYTES = 4 * 1024 * 1024
# The meta key saying this ledger keeps a head record (its value: the file's name).
HEAD_KEPT = "head_record"
# A unit row with its product's columns, prefixed p_; read by `unit_from_row`.
UNIT_SELECT = (
    "SELECT u.*, p.id AS p_id, p.code AS p_code, p.name AS p_name, p.gtin AS p_gtin,"
    " p.serial_tracked AS p_serial_tracked, p.serial_rule AS p_serial_rule,"
    " p.warranty_months AS p_warranty_months, p.mask_serial AS p_mask_serial,"
    " p.price_cents AS p_price_cents FROM units u JOIN products p ON p.id = u.product_id"
)


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Product:
    id: int
    code: str
    name: str
    gtin: str | None
    serial_tracked: bool
    serial_rule: str | None
    warranty_months: int
    mask_serial: bool
    price_cents: int


@dataclass(frozen=True)
class Unit:
    """A unit's current state, as the projection holds it."""

    id: int
    product: Product
    serial: str
    serial_key: str
    state: State
    branch: str
    flags: frozenset[Flag]
    dest_branch: str | None
    invoice: str | None
    customer: str | None
    sold_on: str | None
    warranty_until: str | None
    pre_repair_state: State | None
    repair_ticket: str | None
    last_event: str
    row: dict[str, Any]

    @property
    def label(self) -> str:
        return f'{self.product.name} serial "{self.serial}"'

    def view(self) -> UnitView:
        return UnitView(
            label=self.label,
            state=self.state,
            branch=self.branch,
            flags=self.flags,
            invoice=self.invoice,
            dest_branch=self.dest_branch,
            pre_repair_state=self.pre_repair_state,
        )


def _product(row: dict[str, Any]) -> Product:
    return Product(
        id=row["id"],
        code=row["code"],
        name=row["name"],
        gtin=row["gtin"],
        serial_tracked=bool(row["serial_tracked"]),
        serial_rule=row["serial_rule"],
        warranty_months=row["warranty_months"],
        mask_serial=bool(row["mask_serial"]),
        price_cents=row["price_cents"],
    )


class Writer:
    """Appends events inside one transaction; made by `LedgerStore.writing()`."""

    def __init__(self, db: Database, head: ChainHead, projection: Projection, stamp: Stamp):
        self.db = db
        self.head = head
        self.projection = projection
        self.stamp = stamp
        self.sealed: list[Sealed] = []
        # The event each unit had last within this transaction: an operation that writes
        # two events for one unit (a manager's override, then the sale) chains the second
        # to the first, so no one takes the pair for two terminals' competing changes.
        self._unit_last: dict[tuple[str, str], str] = {}

    def record(self, change: Change) -> Sealed:
        unit = (
            (change.product, serial_key(change.serial))
            if change.product and change.serial
            else None
        )
        if unit is not None and unit in self._unit_last and change.unit_prev is not None:
            change = replace(change, unit_prev=self._unit_last[unit])
        sealed = seal(change, self.stamp, self.head)
        if unit is not None:
            self._unit_last[unit] = sealed.uuid
        unit_id, doc_id = self.projection.apply(sealed.body)
        self.db.execute(
            "INSERT INTO events (uuid, terminal, epoch, seq, kind, unit_id, doc_id, body, hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                sealed.uuid,
                self.head.terminal,
                self.head.epoch,
                sealed.seq,
                sealed.kind,
                unit_id,
                doc_id,
                sealed.text,
                sealed.hash,
            ],
        )
        self.sealed.append(sealed)
        return sealed


class LedgerStore:
    """An open ledger database: identity, reading units, and writing events."""

    def __init__(self, db: Database, *, clock: Clock = utc_now) -> None:
        self.db = db
        self.clock = clock
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        self.terminal: str = meta["terminal"]
        self.epoch: str = meta["epoch"]
        self.branch: str = meta["branch"]
        self.prefix_length = int(meta.get("prefix_length", DEFAULT_PREFIX_LENGTH))
        self._ids = EventIds()
        main_file = db.conn.execute("PRAGMA database_list").fetchone()[2]
        self._wal = Path(f"{main_file}-wal") if main_file else None
        # Where this ledger's head record is kept (None: in memory), and the record
        # open for writing once `open` or `create` has kept it.
        self.path = Path(main_file) if main_file else None  # None: in memory
        self.head_path = head_path(main_file) if main_file else None
        self._head_file: HeadFile | None = None
        # Why this ledger is open for reading only (a full disk), or None.
        self.cannot_write: str | None = None
        self._full = True  # synchronous=FULL, as `_connect` leaves it
        # The WAL file's size when a checkpoint last copied every frame in it.
        self._wal_copied_at = 0
        if self._wal is not None:
            db.conn.execute(f"PRAGMA journal_size_limit = {WAL_LIMIT_BYTES}")

    # -- opening -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path | None,
        *,
        terminal: str,
        branch: str,
        prefix_length: int = DEFAULT_PREFIX_LENGTH,
        clock: Clock = utc_now,
    ) -> Self:
        """Create a new ledger (a new epoch) at `path`, or in memory when None."""
        if path is not None:
            _create_private(Path(path))
        db = _connect(path)
        MIGRATIONS.apply(db)
        with db.atomic():
            db.table("meta").insert_all(
                [
                    {"key": "terminal", "value": terminal},
                    {"key": "branch", "value": branch},
                    {"key": "epoch", "value": uuid.uuid4().hex[:16]},
                    {"key": "prefix_length", "value": str(prefix_length)},
                ]
            )
        store = cls(db, clock=clock)
        store._keep_head(fresh=True)
        return store

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        clock: Clock = utc_now,
        threads: bool = False,
        check_head: bool = True,
    ) -> Self:
        """Open an existing ledger (bringing its schema up to date); `LedgerDamaged`
        when the file is not a posd ledger, or (`check_head`) is shorter than its head
        record. `posd audit verify` opens with `check_head=False` to say all it finds.

        `threads`: the connection may be used from more than one thread, never at
        once (the caller holds a lock around every use), as the lane does."""
        path = Path(path)
        if not path.exists():
            raise LedgerNotFound(
                f"no ledger at {path}; create one with"
                f" `posd --db {shlex.quote(str(path))} init --terminal TERMINAL --branch BRANCH`"
                " (this terminal's id and its branch's)"
            )
        store = cls._open_checked(path, clock=clock, threads=threads)
        if check_head:
            problem = store.head_problem()
            if problem is not None:
                store.close()
                raise LedgerDamaged(
                    f"{path}: {problem}; posd will not use it: keep the file and its"
                    f" {path.name}.head for investigation, see `posd --db {path} audit"
                    " verify`, and call support (HQ holds every event it acknowledged)"
                )
        return store

    @classmethod
    def _open_checked(cls, path: Path, *, clock: Clock, threads: bool) -> Self:
        """Open the ledger at `path`, refusing (`LedgerDamaged`) a file that is not a
        posd ledger before anything is written to it."""
        problem = file_problem(path)
        if problem is not None:
            raise LedgerDamaged(f"{problem}; {ADVICE}")
        db = None
        try:
            db = Database(sqlite3.connect(str(path), check_same_thread=not threads))
            problem = schema_problem(db.conn, path)
            if problem is None:
                _set_pragmas(db, path)
                MIGRATIONS.apply(db)
                store = cls(db, clock=clock)
                store._keep_head()
                return store
        except (sqlite3.DatabaseError, UnicodeDecodeError) as error:
            if db is not None:
                db.close()
                db = None
            if isinstance(error, sqlite3.OperationalError) and short_of_space(path):
                return cls._open_on_full_disk(path, error, clock=clock, threads=threads)
            problem = f"{path} cannot be read as a ledger ({unreadable(error)})"
        if db is not None:
            db.close()
        raise LedgerDamaged(f"{problem}; {ADVICE}")

    @classmethod
    def _open_on_full_disk(
        cls, path: Path, error: sqlite3.Error, *, clock: Clock, threads: bool
    ) -> Self:
        """The ledger for reading only, when its storage is too full for SQLite to make
        the shared-memory file a WAL ledger is read with: looks go on, and any write
        says the storage is full. Only when the WAL holds nothing the file lacks."""
        reason = f"the storage of {path} is full ({error}); free space on it"
        wal = Path(f"{path}-wal")
        if wal.exists() and wal.stat().st_size > 0:
            raise StorageFull(f"the ledger cannot be opened: {reason}")
        conn = sqlite3.connect(
            f"file:{quote(str(path))}?immutable=1", uri=True, check_same_thread=not threads
        )
        try:
            problem = schema_problem(conn, path)
        except (sqlite3.DatabaseError, UnicodeDecodeError) as damage:
            problem = f"{path} cannot be read as a ledger ({unreadable(damage)})"
        if problem is not None:
            conn.close()
            raise LedgerDamaged(f"{problem}; {ADVICE}")
        store = cls(Database(conn), clock=clock)
        store.cannot_write = reason
        log.warning("the ledger is open for reading only: %s", reason)
        return store

    def _keep_head(self, *, fresh: bool = False) -> None:
        """Open the head record for writing; make one (from the chain as it is) for a
        new ledger or one that never had one. One that had a record and lost it gets
        no new one: `head_problem` reports it. Where the record cannot be opened or
        made (a read-only copy, a full disk), reads go on and writes keep no record."""
        if self.head_path is None:
            return
        try:
            self._open_head(fresh)
        except (OSError, sqlite3.Error) as error:
            log.warning("the head record %s cannot be kept: %s", self.head_path, error)

    def _open_head(self, fresh: bool) -> None:
        assert self.head_path is not None
        if not fresh:
            self._head_file = HeadFile.open(self.head_path)
            if self._head_file is not None or self._meta(HEAD_KEPT):
                return
        head = self.chain_head()
        record = HeadRecord(self.terminal, self.epoch, head.seq, head.hash)
        self._head_file = HeadFile.create(self.head_path, record, like=self.path)
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            [HEAD_KEPT, self.head_path.name],
        )

    def _meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()
        return None if row is None else str(row[0])

    def head_problem(self) -> str | None:
        """Why this ledger's own chain disagrees with its head record (its newest
        events deleted or lost, the record removed), or None. A ledger longer than
        its record is fine: the record is made durable between customers."""
        if self.head_path is None:
            return None
        try:
            record = read_head(self.head_path)  # before the chain: the chain only grows
        except HeadRecordDamaged as error:
            return str(error)
        if record is None:
            if self._meta(HEAD_KEPT):
                return (
                    f"its head record {self.head_path.name} is missing, so whether its newest"
                    " events were deleted cannot be checked here"
                )
            return None
        if (record.terminal, record.epoch) != (self.terminal, self.epoch):
            return (
                f"its head record is of terminal {record.terminal} epoch {record.epoch}, not"
                f" {self.terminal} epoch {self.epoch}: the ledger file was replaced"
            )
        last = self.chain_head().seq
        for seq, digest, whose in (
            (record.seq, record.hash, "its head record"),
            (record.acked_seq, record.acked_hash, "HQ (as its head record keeps it)"),
        ):
            if seq > last:
                return (
                    f"the ledger ends at seq {last} but {whose} says {seq}:"
                    f" {seq - last} newest event(s) deleted or lost"
                )
            if seq and self._own_hash(seq) != digest:
                return (
                    f"event seq {seq} is not the one {whose} names: the chain from there"
                    " was rewritten"
                )
        return None

    def _own_hash(self, seq: int) -> str | None:
        row = self.db.execute(
            "SELECT hash FROM events WHERE terminal = ? AND epoch = ? AND seq = ?",
            [self.terminal, self.epoch, seq],
        ).fetchone()
        return None if row is None else str(row[0])

    def anchor_ack(self, seq: int) -> None:
        """Keep HQ's acknowledgement (every own event up to `seq` stored) in the head
        record, with that event's hash, so the file can be checked against it."""
        digest = self._own_hash(seq)
        if self._head_file is None or digest is None:
            return
        head = self.chain_head()
        record = HeadRecord(self.terminal, self.epoch, head.seq, head.hash, seq, digest)
        self._after_commit(
            "keep HQ's acknowledgement in the head record", self._head_file.advance, record
        )

    def set_busy_timeout(self, milliseconds: int) -> None:
        """How long a statement waits for another process's write lock before it fails
        with "database is locked" (0: it fails at once). `BUSY_TIMEOUT_MS` at opening."""
        self.db.conn.execute(f"PRAGMA busy_timeout = {int(milliseconds)}")

    def synchronous(self, *, full: bool) -> None:
        """Commit at `synchronous=FULL` (an fsync per commit) or NORMAL (none; the lane's
        journal, see `daemon.ledger.lane_log`). Switches only when it changes: every
        durable transaction (`writing`) asks for FULL before it begins."""
        if full != self._full:
            self.db.conn.execute(f"PRAGMA synchronous = {'FULL' if full else 'NORMAL'}")
            self._full = full

    def close(self) -> None:
        """Checkpoint and close. A checkpoint that fails (a full disk) loses nothing:
        the WAL holds every commit and the next opening recovers it."""
        self._after_commit("checkpoint the ledger", self.checkpoint)
        if self._head_file is not None:
            self._after_commit("write the head record", self._head_file.close)
            self._head_file = None
        self.db.close()

    def checkpoint(self) -> None:
        """Copy committed pages from the WAL into the ledger file, and when all of them
        are copied and no reader is in the way, empty the WAL file.

        Automatic checkpoints are off: one landing inside a sale's commit made that
        sale wait several milliseconds. The daemon calls this between customers;
        `close` calls it; and a commit that finds the WAL grown past `WAL_LIMIT_BYTES`
        calls it, so a process that never does still keeps the WAL bounded. It never
        waits for a reader.
        """
        if self._wal is None:
            self._sync_head()
            return
        conn = self.db.conn
        if self._copy_wal() and self._wal_size() > 0:
            # Everything is in the ledger file: empty the WAL, unless a reader still
            # uses it (then SQLite says busy at once rather than wait for it).
            busy_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
            conn.execute("PRAGMA busy_timeout = 0")
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
            self._wal_copied_at = self._wal_size()
        self._sync_head()

    def _sync_head(self) -> None:
        if self._head_file is not None:
            self._head_file.sync()

    def _copy_wal(self) -> bool:
        """A passive checkpoint; True when every frame in the WAL is in the ledger file."""
        busy, frames, copied = self.db.conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        done = busy == 0 and frames == copied
        if done:
            self._wal_copied_at = self._wal_size()
        return bool(done)

    def _wal_size(self) -> int:
        try:
            return self._wal.stat().st_size if self._wal is not None else 0
        except FileNotFoundError:
            return 0

    def _bound_wal(self) -> None:
        # A checkpoint never shrinks the WAL file: after one that copied everything,
        # only what the file grew by since is new. (When SQLite starts the WAL over,
        # `journal_size_limit` cuts the file to WAL_LIMIT_BYTES and it counts anew.)
        size = self._wal_size()
        if size < self._wal_copied_at:
            self._wal_copied_at = 0
        if size - self._wal_copied_at > WAL_LIMIT_BYTES:
            self._copy_wal()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing -------------------------------------------------------------

    def stamp(self, actor: str, branch: str | None = None) -> Stamp:
        return Stamp(at=iso(self.clock()), actor=actor, branch=branch or self.branch)

    def chain_head(self) -> ChainHead:
        row = self.db.execute(
            "SELECT seq, hash FROM events WHERE terminal = ? AND epoch = ?"
            " ORDER BY seq DESC LIMIT 1",
            [self.terminal, self.epoch],
        ).fetchone()
        if row is None:
            seq, digest = 0, genesis_hash(self.terminal, self.epoch)
        else:
            seq, digest = int(row[0]), row[1]
        return ChainHead(self.terminal, self.epoch, seq, digest, self._ids)

    @contextmanager
    def writing(self, stamp: Stamp) -> Iterator[Writer]:
        """One durable transaction: everything recorded inside it, or nothing."""
        if self.cannot_write is not None:
            raise StorageFull(f"nothing was written: {self.cannot_write}")
        conn = self.db.conn
        self.synchronous(full=True)
        conn.execute("BEGIN IMMEDIATE")
        try:
            projection = Projection(self.db, self.prefix_length)
            writer = Writer(self.db, self.chain_head(), projection, stamp)
            yield writer
            projection.flush_counts()
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        # Committed: from here on nothing may turn the write into a failure.
        head = writer.head
        if self._head_file is not None and writer.sealed:
            record = HeadRecord(self.terminal, self.epoch, head.seq, head.hash)
            self._after_commit("write the head record", self._head_file.advance, record)
        self._after_commit("checkpoint the ledger", self._bound_wal)

    @staticmethod
    def _after_commit(what: str, step: Callable[..., object], *args: object) -> None:
        """Run a step that follows a commit; log its failure instead of raising it."""
        try:
            step(*args)
        except (sqlite3.Error, OSError) as error:
            log.warning("could not %s after a commit (the commit stands): %s", what, error)

    def record(self, stamp: Stamp, changes: Iterable[Change]) -> list[Sealed]:
        with self.writing(stamp) as writer:
            for change in changes:
                writer.record(change)
        return writer.sealed

    # -- reading -------------------------------------------------------------

    def product(self, code: str) -> Product | None:
        row = next(self.db.query("SELECT * FROM products WHERE code = ?", [code]), None)
        return _product(row) if row else None

    def product_by_gtin(self, gtin: str) -> Product | None:
        row = next(self.db.query("SELECT * FROM products WHERE gtin = ?", [gtin]), None)
        return _product(row) if row else None

    def products(self) -> list[Product]:
        return [_product(row) for row in self.db.query("SELECT * FROM products ORDER BY code")]

    def units_by_key(self, keys: Iterable[str]) -> dict[tuple[str, str], Unit]:
        """Units whose serial key is in `keys`, by (product code, serial key).

        Set-based: one indexed query per few thousand keys, never one per serial.
        """
        found: dict[tuple[str, str], Unit] = {}
        key_list = list(dict.fromkeys(keys))
        conn = self.db.conn
        for start in range(0, len(key_list), _KEYS_PER_QUERY):
            chunk = key_list[start : start + _KEYS_PER_QUERY]
            if len(chunk) == 1:  # a look-up: the plain indexed equality
                cursor = conn.execute(f"{UNIT_SELECT} WHERE u.serial_key = ?", chunk)
            else:
                cursor = conn.execute(
                    f"{UNIT_SELECT} WHERE u.serial_key IN (SELECT value FROM json_each(?))",
                    [json.dumps(chunk)],
                )
            names = [d[0] for d in cursor.description]
            for values in cursor:
                unit = unit_from_row(dict(zip(names, values, strict=True)))
                found[(unit.product.code, unit.serial_key)] = unit
        return found

    def unit(self, product: str, serial: str) -> Unit | None:
        return self.units_by_key([serial_key(serial)]).get((product, serial_key(serial)))

    def event(self, event_uuid: str) -> EventBody | None:
        """The event with this id, or None."""
        row = self.db.execute("SELECT body FROM events WHERE uuid = ?", [event_uuid]).fetchone()
        return EventBody.parse(row[0]) if row else None

    def expand_event_id(self, text: str) -> str:
        """The full id of the event `text` names: its whole UUID, or the end of it
        (at least 8 hex digits, as a passport shows it). LookupError when no event or
        more than one ends so."""
        text = text.strip().lower()
        if self.event(text) is not None:
            return text
        if not 8 <= len(text) <= 12 or any(c not in "0123456789abcdef" for c in text):
            raise LookupError(
                f"{text!r} is not an event id: give its UUID or the 8 hex digits a passport shows"
            )
        found = [
            row[0]
            for row in self.db.execute(
                "SELECT uuid FROM events WHERE uuid LIKE ? LIMIT 2", ["%" + text]
            )
        ]
        if not found:
            raise LookupError(f"there is no event whose id ends in {text}")
        if len(found) > 1:
            raise LookupError(f"more than one event id ends in {text}: give more of it")
        return str(found[0])

    def find(self, serial: str) -> list[Unit]:
        """Every unit with this serial, whatever its product."""
        cursor = self.db.conn.execute(f"{UNIT_SELECT} WHERE u.serial_key = ?", [serial_key(serial)])
        names = [d[0] for d in cursor.description]
        units = [unit_from_row(dict(zip(names, values, strict=True))) for values in cursor]
        return sorted(units, key=lambda u: u.product.code)


_NO_FLAGS: frozenset[Flag] = frozenset()


@lru_cache(maxsize=256)
def _product_of(
    id: int,
    code: str,
    name: str,
    gtin: str | None,
    serial_tracked: int,
    serial_rule: str | None,
    warranty_months: int,
    mask_serial: int,
    price_cents: int,
) -> Product:
    """The product of a unit row: a few products serve millions of units, and a
    `Product` is immutable, so one object per distinct row does."""
    return Product(
        id,
        code,
        name,
        gtin,
        bool(serial_tracked),
        serial_rule,
        warranty_months,
        bool(mask_serial),
        price_cents,
    )


def unit_from_row(row: dict[str, Any]) -> Unit:
    product = _product_of(
        row["p_id"],
        row["p_code"],
        row["p_name"],
        row["p_gtin"],
        row["p_serial_tracked"],
        row["p_serial_rule"],
        row["p_warranty_months"],
        row["p_mask_serial"],
        row["p_price_cents"],
    )
    return Unit(
        id=row["id"],
        product=product,
        serial=row["serial"],
        serial_key=row["serial_key"],
        state=State(row["state"]),
        branch=row["branch"],
        flags=frozenset(Flag(f) for f in flags.split(","))
        if (flags := row["flags"])
        else _NO_FLAGS,
        dest_branch=row["dest_branch"],
        invoice=row["invoice"],
        customer=row["customer"],
        sold_on=row["sold_on"],
        warranty_until=row["warranty_until"],
        pre_repair_state=State(row["pre_repair_state"]) if row["pre_repair_state"] else None,
        repair_ticket=row["repair_ticket"],
        last_event=row["last_event"],
        row=row,
    )


def short_of_space(path: Path) -> bool:
    """Whether the storage holding `path` is (nearly) full."""
    try:
        found = os.statvfs(path.parent)
    except OSError:
        return False
    return found.f_bavail * found.f_frsize < FULL_BELOW_BYTES


def _create_private(path: Path) -> None:
    """Make the new ledger file, readable and writable by its owner only, whatever the
    umask. SQLite gives the -wal and -shm files it makes later the same mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise LedgerError(f"a ledger already exists at {path}; open it instead") from None
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _connect(path: str | Path | None, *, threads: bool = False) -> Database:
    if path is None:
        db = Database(memory=True)
    else:
        db = Database(sqlite3.connect(str(path), check_same_thread=not threads))
    _set_pragmas(db, path)
    return db


def _set_pragmas(db: Database, path: str | Path | None) -> None:
    conn = db.conn
    # Larger pages: fewer B-tree splits when events and units are appended in bulk.
    # (Takes effect only on a new, empty database.)
    conn.execute("PRAGMA page_size = 16384")
    if path is not None:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA wal_autocheckpoint = 0")  # see LedgerStore.checkpoint
    # FULL: a committed event survives a power cut, not only an application crash.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot change the file at `path` (sqlite3.Error if it cannot
    be opened)."""
    return sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)


class LedgerIdentity(NamedTuple):
    """Whose ledger a file is."""

    terminal: str
    branch: str


def read_identity(path: Path) -> LedgerIdentity | None:
    """The terminal and branch of the ledger at `path`, read without changing the file;
    None when there is no file. LedgerError when the file is not a posd ledger."""
    if not path.exists():
        return None
    problem = file_problem(path)
    if problem is not None:
        raise LedgerDamaged(problem)
    try:
        conn = connect_read_only(path)
        try:
            problem = schema_problem(conn, path)
            meta = (
                dict(conn.execute("SELECT key, value FROM meta").fetchall()) if not problem else {}
            )
        finally:
            conn.close()
    except (sqlite3.Error, UnicodeDecodeError) as error:
        raise LedgerDamaged(f"{path} cannot be read as a ledger ({unreadable(error)})") from None
    if problem is not None:
        raise LedgerDamaged(problem)
    return LedgerIdentity(str(meta["terminal"]), str(meta["branch"]))
