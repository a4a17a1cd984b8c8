"""The ledger's schema, as migrations applied in order, each in one transaction."""

from __future__ import annotations

import sqlite3

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("posd-ledger")


def run_statements(db: Database, script: str) -> None:
    """Run a script statement by statement, inside the caller's transaction.

    `executescript` would commit the migration's transaction half-way.
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            db.execute(pending)
            pending = ""
    if pending.strip():
        raise ValueError(f"incomplete SQL statement in migration: {pending.strip()[:60]!r}")


@MIGRATIONS()
def m001_ledger(db: Database) -> None:
    run_statements(
        db,
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

        CREATE TABLE products (
            id INTEGER PRIMARY KEY,
            code TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            gtin TEXT UNIQUE,
            serial_tracked INTEGER NOT NULL DEFAULT 1,
            serial_rule TEXT,
            warranty_months INTEGER NOT NULL DEFAULT 0,
            mask_serial INTEGER NOT NULL DEFAULT 0,
            price_cents INTEGER NOT NULL DEFAULT 0
        );
        CREATE TRIGGER products_tracking_stays_on BEFORE UPDATE OF serial_tracked ON products
        WHEN OLD.serial_tracked = 1 AND NEW.serial_tracked = 0
        BEGIN
            SELECT RAISE(ABORT, 'serial tracking cannot be switched off once on');
        END;

        -- The append-only event log. `body` is the canonical JSON that was hashed
        -- (it includes the previous event's hash); the other columns index into it.
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            uuid TEXT NOT NULL UNIQUE,
            terminal TEXT NOT NULL,
            epoch TEXT NOT NULL,
            seq INTEGER NOT NULL,
            kind TEXT NOT NULL,
            unit_id INTEGER,
            doc_id INTEGER,
            body TEXT NOT NULL,
            hash TEXT NOT NULL,
            UNIQUE (terminal, epoch, seq)
        );
        CREATE INDEX events_unit ON events (unit_id) WHERE unit_id IS NOT NULL;
        CREATE INDEX events_doc ON events (doc_id) WHERE doc_id IS NOT NULL;
        CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN
            SELECT RAISE(ABORT, 'the event log is append-only: write a correcting event');
        END;
        CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN
            SELECT RAISE(ABORT, 'the event log is append-only: write a correcting event');
        END;

        -- Current state of every unit: a projection of the event log.
        CREATE TABLE units (
            id INTEGER PRIMARY KEY,
            product_id INTEGER NOT NULL REFERENCES products (id),
            serial TEXT NOT NULL,
            serial_key TEXT NOT NULL,
            state TEXT NOT NULL,
            branch TEXT NOT NULL,
            flags TEXT NOT NULL DEFAULT '',
            dest_branch TEXT,
            invoice TEXT,
            customer TEXT,
            sold_on TEXT,
            warranty_until TEXT,
            pre_repair_state TEXT,
            repair_ticket TEXT,
            po TEXT,
            supplier TEXT,
            cost_cents INTEGER,
            lot TEXT,
            expiry TEXT,
            last_event TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        -- One index serves look-up by serial alone, by (serial, product), by prefix
        -- and by range.
        CREATE UNIQUE INDEX units_key ON units (serial_key, product_id);

        -- Counts per product, branch, state and serial prefix, kept in the same
        -- transaction as the units they count.
        CREATE TABLE unit_counts (
            product_id INTEGER NOT NULL,
            branch TEXT NOT NULL,
            state TEXT NOT NULL,
            prefix TEXT NOT NULL,
            n INTEGER NOT NULL,
            PRIMARY KEY (prefix, product_id, branch, state)
        ) WITHOUT ROWID;

        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            number TEXT NOT NULL,
            branch TEXT NOT NULL,
            party TEXT,
            status TEXT,
            opened_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (type, number)
        );
        """,
    )


@MIGRATIONS()
def m004_activity(db: Database) -> None:
    """Per product, supplier, branch and day: what happened to units, kept by the
    projection in the same transaction, so analytics read a small table."""
    run_statements(
        db,
        """
        CREATE TABLE activity (
            product_id INTEGER NOT NULL,
            supplier TEXT NOT NULL,
            branch TEXT NOT NULL,
            day TEXT NOT NULL,
            received INTEGER NOT NULL DEFAULT 0,
            sold INTEGER NOT NULL DEFAULT 0,
            returned INTEGER NOT NULL DEFAULT 0,
            repaired INTEGER NOT NULL DEFAULT 0,
            replaced INTEGER NOT NULL DEFAULT 0,
            revenue_cents INTEGER NOT NULL DEFAULT 0,
            cost_of_sold_cents INTEGER NOT NULL DEFAULT 0,
            warranty_covered_cents INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (product_id, supplier, branch, day)
        ) WITHOUT ROWID;
        -- Everything but receipts, which are most of the log: repairs, returns, claims
        -- and counts are found without reading the receipts.
        CREATE INDEX events_kind ON events (kind, unit_id) WHERE kind != 'receive';
        """,
    )


@MIGRATIONS()
def m002_replication(db: Database) -> None:
    run_statements(
        db,
        """
        -- How far HQ has confirmed storing this ledger's own events (its retained
        -- ack watermark), per epoch. Only ever moves forward.
        CREATE TABLE replication_cursor (
            terminal TEXT NOT NULL,
            epoch TEXT NOT NULL,
            acked_seq INTEGER NOT NULL DEFAULT 0,
            updated_at TEXT NOT NULL,
            PRIMARY KEY (terminal, epoch)
        );

        -- Small durable replication values: the connection counter that orders
        -- presence messages, and how far the branch feed from HQ was applied.
        CREATE TABLE replication_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        """,
    )


@MIGRATIONS()
def m003_lane(db: Database) -> None:
    """The lane's journal: every input (scan, command, attendant, device, ledger answer)
    with a sequence number and what the lane made of it, stored before it is acted on.
    Append-only like the event log."""
    run_statements(
        db,
        """
        CREATE TABLE lane_log (
            seq INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            terminal TEXT NOT NULL,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            input TEXT NOT NULL,
            mode TEXT NOT NULL,
            outcome TEXT,
            code TEXT,
            message TEXT,
            invoice TEXT,
            basket_open TEXT
        );
        CREATE TRIGGER lane_log_no_update BEFORE UPDATE ON lane_log
        BEGIN
            SELECT RAISE(ABORT, 'the lane log is append-only');
        END;
        CREATE TRIGGER lane_log_no_delete BEFORE DELETE ON lane_log
        BEGIN
            SELECT RAISE(ABORT, 'the lane log is append-only');
        END;
        """,
    )


@MIGRATIONS()
def m005_expected_units(db: Database) -> None:
    """Units a purchase order will bring, as the supplier's advance ship notice names
    them (serial, lot, expiry): receiving then takes each from one scan. Not part of
    the record: the receipt that follows is."""
    run_statements(
        db,
        """
        CREATE TABLE expected_units (
            id INTEGER PRIMARY KEY,
            po TEXT NOT NULL,
            product_id INTEGER NOT NULL,
            serial TEXT NOT NULL,
            serial_key TEXT NOT NULL,
            supplier TEXT,
            lot TEXT,
            expiry TEXT,
            source TEXT,
            registered_at TEXT NOT NULL,
            UNIQUE (po, product_id, serial_key)
        );
        CREATE INDEX expected_units_key ON expected_units (serial_key);
        """,
    )
