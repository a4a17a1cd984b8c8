"""Bulk import of serials from CSV: every bad row reported, nothing written unless every
row is good; written in short transactions beside a lane that keeps selling.

Columns: serial, product, po, supplier, branch, cost (and optionally received_on,
lot, expiry). The whole file is checked in one pass (serial format, product rule,
duplicates within the file, duplicates of active units: one indexed query per 500
serials) before anything is written. Then every row becomes a `receive` event in the
hash chain, in transactions of about `CHUNK_S` each with a pause of `YIELD_S` between
them, so a lane on the same ledger never waits longer than one of them to write its
scans and sales.

Resumable, not all-or-nothing: an import that is interrupted while it writes (killed,
a power cut, a full disk) keeps the rows it wrote, and running the same file again
finishes it: a row whose unit is already in stock exactly as the row says (product,
serial, branch, PO, supplier, cost, lot, expiry) counts as already imported, and only
the rest are written. All-or-nothing would need one transaction holding the ledger's
write lock for the whole file, which stops the lane for as long; and events once
written (and perhaps replicated to HQ) are never taken back.
"""

from __future__ import annotations

import csv
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import IO, Any

from daemon.ledger.errors import LedgerError, Problem, Refusal
from daemon.ledger.events import BodyTemplate, ChainHead, Change, Stamp
from daemon.ledger.kinds import Kind
from daemon.ledger.ledger import Ledger
from daemon.ledger.store import Product, Unit
from daemon.rules.serials import (
    SerialError,
    SerialRule,
    check_serial,
    check_serial_rule,
    compile_serial_rule,
)
from daemon.rules.units import Op, Refused, Request, decide
from daemon.rules.values import IDENTIFIER, NAME, BadValueError, parse_money

REQUIRED_COLUMNS = ("serial", "product", "po", "supplier", "branch", "cost")
OPTIONAL_COLUMNS = ("received_on", "lot", "expiry")
Progress = Callable[[int], None]


@dataclass(slots=True)
class ImportRow:
    line: int
    serial: str
    key: str
    product: Product
    po: str
    supplier: str
    branch: str
    cost_cents: int
    received_on: str
    lot: str | None
    expiry: str | None
    existing: Unit | None = None
    already: bool = False  # in stock exactly as this row says: imported before


@dataclass
class ImportReport:
    rows: int
    units: int  # units written by this run
    documents: list[str] = field(default_factory=list)
    skipped: int = 0  # rows of units already received on the row's PO (skip_existing)
    already: int = 0  # rows found imported already (an interrupted import run again)


class ImportInterrupted(LedgerError):
    """The ledger could not be written part way through an import. The rows written
    before stay; running the same file again imports the rest."""


def import_csv(
    ledger: Ledger,
    stream: IO[str],
    *,
    actor: str,
    progress: Progress | None = None,
    skip_existing: bool = False,
) -> ImportReport:
    """Import every row of a CSV, or none: raises Refusal listing each bad row.

    `skip_existing`: a row whose unit the ledger already received on that row's PO is
    skipped (counted in `skipped`), so a file can be imported again after a failure
    or with rows added."""
    reader = csv.reader(stream)
    try:
        header = [name.strip() for name in next(reader, [])]
        return _import(ledger, reader, header, actor, progress, skip_existing)
    except (csv.Error, UnicodeDecodeError) as error:
        where = f"line {reader.line_num}: " if reader.line_num else ""
        raise Refusal(
            [
                Problem(
                    "malformed_file",
                    f"{where}the file cannot be read as CSV UTF-8 text ({error}); nothing was "
                    "imported",
                    line=reader.line_num or None,
                )
            ]
        ) from None


def _import(
    ledger: Ledger,
    reader: Any,
    header: list[str],
    actor: str,
    progress: Progress | None,
    skip_existing: bool,
) -> ImportReport:
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or unknown:
        columns = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
        problems = [Problem("bad_header", f"missing column {name!r}", line=1) for name in missing]
        problems += [
            Problem("bad_header", f"unknown column {name[:40]!r}; columns are {columns}", line=1)
            for name in unknown
        ]
        raise Refusal(problems)
    rows, problems = _check_rows(ledger, reader, header)
    rows, skipped = _check_against_ledger(ledger, rows, problems, skip_existing)
    if problems:
        raise Refusal(sorted(problems, key=lambda p: p.line or 0))
    if not rows:
        return ImportReport(rows=skipped, units=0, skipped=skipped)
    report = _write(ledger, rows, actor, progress)
    report.rows += skipped
    report.skipped = skipped
    return report


def _check_rows(
    ledger: Ledger, reader: Any, header: list[str]
) -> tuple[list[ImportRow], list[Problem]]:
    """Check each row on its own and against the rows before it."""
    today = ledger.clock().date().isoformat()
    at = {name: header.index(name) for name in header}
    i_serial, i_product, i_po, i_supplier, i_branch, i_cost = (at[n] for n in REQUIRED_COLUMNS)
    optional = [(name, at[name]) for name in OPTIONAL_COLUMNS if name in at]
    products: dict[str, Product | None] = {}
    rules: dict[str, SerialRule | SerialError] = {}
    first_line: dict[tuple[str, str], int] = {}
    rows: list[ImportRow] = []
    problems: list[Problem] = []
    for fields in reader:
        line = reader.line_num
        if not fields:
            continue  # a blank line
        if len(fields) != len(header):
            problems.append(
                Problem(
                    "malformed_row",
                    f"has {len(fields)} fields; the header has {len(header)}",
                    line=line,
                )
            )
            continue
        serial = fields[i_serial].strip()
        code = fields[i_product].strip()
        po = fields[i_po].strip()
        supplier = fields[i_supplier].strip()
        branch = fields[i_branch].strip()
        cost_text = fields[i_cost].strip()
        extra = {name: fields[index].strip() for name, index in optional} if optional else {}
        problem = _values_problem(code, po, supplier, branch, extra.get("lot"))
        if code not in products and problem is None:
            product = products[code] = ledger.product(code)
            if product and product.serial_rule:
                try:
                    rules[code] = compile_serial_rule(product.serial_rule)
                except SerialError as exc:
                    rules[code] = SerialError(f"{code}: {exc}; define the product again")
        product = products.get(code)
        if problem is None:
            problem = _row_problem(product, code, serial, po, supplier, branch)
        if problem is None:
            assert product is not None
            rule = rules.get(code)
            try:
                if isinstance(rule, SerialError):
                    raise rule
                key = check_serial(serial)
                check_serial_rule(key, rule, code)
            except SerialError as exc:
                problem = ("bad_serial", str(exc))
        if problem is None and (code, key) in first_line:
            problem = (
                "duplicate_in_file",
                f'serial "{serial}" of {code} is already on line {first_line[(code, key)]}',
            )
        cost = _cents(cost_text)
        if problem is None and isinstance(cost, str):
            problem = ("bad_cost", cost)
        dates = {}
        for name in ("received_on", "expiry") if extra else ():
            if extra.get(name) and problem is None:
                try:
                    dates[name] = date.fromisoformat(extra[name]).isoformat()
                except ValueError:
                    problem = ("bad_date", f"{name} {extra[name]!r} is not a date like 2026-11-23")
        if problem is not None:
            problems.append(Problem(problem[0], problem[1], serial, line))
            continue
        assert product is not None and isinstance(cost, int)
        first_line[(code, key)] = line
        rows.append(
            ImportRow(
                line=line,
                serial=serial,
                key=key,
                product=product,
                po=po,
                supplier=supplier,
                branch=branch,
                cost_cents=cost,
                received_on=dates.get("received_on", today),
                lot=extra.get("lot") or None,
                expiry=dates.get("expiry"),
            )
        )
    return rows, problems


def _row_problem(
    product: Product | None, code: str, serial: str, po: str, supplier: str, branch: str
) -> tuple[str, str] | None:
    if product is None:
        return ("unknown_product", f"unknown product {code[:40]!r}")
    if not product.serial_tracked:
        return ("not_serialized", f"{code} is not tracked by serial")
    if not (serial and po and supplier and branch):
        return ("missing_value", "serial, po, supplier and branch must not be empty")
    return None


def _values_problem(
    code: str, po: str, supplier: str, branch: str, lot: str | None
) -> tuple[str, str] | None:
    """The first of a row's values that is not of its kind (`daemon.rules.values`)."""
    for kind, value, what in (
        (IDENTIFIER, code, "product"),
        (IDENTIFIER, po, "po"),
        (NAME, supplier, "supplier"),
        (IDENTIFIER, branch, "branch"),
        (NAME, lot or None, "lot"),
    ):
        if value is None or not value:
            continue  # an empty value is reported as missing
        problem = kind.problem(value, what)
        if problem is not None:
            return ("bad_value", problem)
    return None


def _cents(text: str) -> int | str:
    """The cost in cents (an empty cost is 0), or why it is not one."""
    try:
        return parse_money(text or "0", "cost")
    except BadValueError as problem:
        return str(problem)


def _check_against_ledger(
    ledger: Ledger, rows: list[ImportRow], problems: list[Problem], skip_existing: bool
) -> tuple[list[ImportRow], int]:
    """Refuse rows of units the ledger cannot receive; with `skip_existing`, drop rows of
    units already received on the row's PO. The rows to write, and how many were skipped."""
    existing = ledger.units_by_key(row.key for row in rows)
    skipped: set[int] = set()  # lines
    for row in rows:
        unit = existing.get((row.product.code, row.key))
        if unit is None:
            continue
        if _as_imported(unit, row):
            row.already = True
            continue
        if skip_existing and unit.row.get("po") == row.po:
            skipped.add(row.line)
            continue
        verdict = decide(unit.view(), Request(Op.RECEIVE, row.branch))
        if isinstance(verdict, Refused):
            problems.append(Problem(verdict.code, verdict.message, row.serial, row.line))
        row.existing = unit
    return [row for row in rows if row.line not in skipped], len(skipped)


def _as_imported(unit: Unit, row: ImportRow) -> bool:
    """The unit is in stock exactly as `row` would put it: an earlier run of this import
    wrote it."""
    have = unit.row
    return (
        unit.state.value == "in_stock"
        and (unit.branch, have["po"], have["supplier"]) == (row.branch, row.po, row.supplier)
        and (have["cost_cents"], have["lot"], have["expiry"])
        == (row.cost_cents, row.lot, row.expiry)
    )


# A transaction of the import holds the ledger's write lock for about this long; then
# the import pauses for `YIELD_S`, so a lane waiting to write (it asks every few
# milliseconds) gets the lock in between.
CHUNK_S = 0.1
YIELD_S = 0.004
_BATCH = 2_000  # rows inserted per executemany (and checked against CHUNK_S)
_UNITS_SQL = (
    "INSERT INTO units (id, product_id, serial, serial_key, state, branch, po, supplier,"
    " cost_cents, lot, expiry, last_event, updated_at)"
    " VALUES (?, ?, ?, ?, 'in_stock', ?, ?, ?, ?, ?, ?, ?, ?)"
)
_EVENTS_SQL = (
    "INSERT INTO events (uuid, terminal, epoch, seq, kind, unit_id, doc_id, body, hash)"
    f" VALUES (?, ?, ?, ?, '{Kind.RECEIVE.value}', ?, ?, ?, ?)"
)


def _insert(
    conn: sqlite3.Connection, unit_rows: list[tuple[Any, ...]], event_rows: list[tuple[Any, ...]]
) -> None:
    conn.executemany(_UNITS_SQL, unit_rows)
    conn.executemany(_EVENTS_SQL, event_rows)


def _write(
    ledger: Ledger, rows: list[ImportRow], actor: str, progress: Progress | None
) -> ImportReport:
    """Write the rows in short transactions (see the module's docstring)."""
    stamp = ledger.stamp(actor)
    todo = [row for row in rows if not row.already]
    already = len(rows) - len(todo)
    if progress and already:
        progress(already)
    documents: dict[str, int] = {}
    templates: dict[tuple[bool, bool], BodyTemplate] = {}
    written = 0
    try:
        while written < len(todo):
            written = _write_chunk(ledger, todo, written, stamp, documents, templates, progress)
            if written < len(todo):
                time.sleep(YIELD_S)
    except (sqlite3.Error, OSError) as error:
        raise ImportInterrupted(
            f"the ledger could not be written after {written + already} of {len(rows)} rows"
            f" ({error}); the rows written stay, and importing the same file again imports"
            " the rest"
        ) from error
    pos = list(dict.fromkeys(row.po for row in rows))
    return ImportReport(rows=len(rows), units=len(todo), documents=pos, already=already)


def _write_chunk(
    ledger: Ledger,
    todo: list[ImportRow],
    start: int,
    stamp: Stamp,
    documents: dict[str, int],
    templates: dict[tuple[bool, bool], BodyTemplate],
    progress: Progress | None,
) -> int:
    """One transaction of the import, from `todo[start]` for about `CHUNK_S`; the index
    of the first row not yet written. New units go in bulk, units coming back from the
    supplier one by one through the general path (like `receive`)."""
    started = time.monotonic()
    with ledger.writing(stamp) as writer:
        db = writer.db
        head = writer.head
        next_id = (db.execute("SELECT max(id) FROM units").fetchone()[0] or 0) + 1
        counts: Counter[tuple[int, str, str, str]] = Counter()
        received: Counter[tuple[int, str, str, str]] = Counter()
        prefix_length = ledger.prefix_length
        terminal, epoch, at = head.terminal, head.epoch, stamp.at
        unit_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        index = start
        while index < len(todo):
            row = todo[index]
            index += 1
            doc_id = _po_document(db, row, stamp, documents)
            if row.existing is not None:
                writer.record(_receive_change(row))
            else:
                shape = (row.lot is not None, row.expiry is not None)
                template = templates.get(shape)
                if template is None:
                    template = templates[shape] = _template(_receive_change(row), stamp, head)
                event_uuid, seq, text, digest = template.seal(head, _template_values(row))
                unit_rows.append(
                    (
                        next_id,
                        row.product.id,
                        row.serial,
                        row.key,
                        row.branch,
                        row.po,
                        row.supplier,
                        row.cost_cents,
                        row.lot,
                        row.expiry,
                        event_uuid,
                        at,
                    )
                )
                event_rows.append((event_uuid, terminal, epoch, seq, next_id, doc_id, text, digest))
                counts[(row.product.id, row.branch, "in_stock", row.key[:prefix_length])] += 1
                received[(row.product.id, row.supplier, row.branch, at[:10])] += 1
                next_id += 1
            if (index - start) % _BATCH == 0:
                _insert(db.conn, unit_rows, event_rows)
                unit_rows, event_rows = [], []
                if time.monotonic() - started >= CHUNK_S:
                    break
        _insert(db.conn, unit_rows, event_rows)
        writer.projection.count_deltas.update(counts)
        for key, n in received.items():
            writer.projection.add_activity(key, {"received": n})
    if progress:
        progress(index - start)
    return index


_VARIABLES = (
    "product",
    "serial",
    "branch",
    "doc.no",
    "set.branch",
    "set.po",
    "set.supplier",
    "set.cost_cents",
    "data.party",
    "data.received_on",
    "set.lot",
    "set.expiry",
)


def _template(example: Change, stamp: Stamp, head: ChainHead) -> BodyTemplate:
    return BodyTemplate(example, stamp, head, _VARIABLES)


def _template_values(row: ImportRow) -> tuple[Any, ...]:
    """Values in the order of `_VARIABLES`."""
    return (
        row.product.code,
        row.serial,
        row.branch,
        row.po,
        row.branch,
        row.po,
        row.supplier,
        row.cost_cents,
        row.supplier,
        row.received_on,
        row.lot,
        row.expiry,
    )


def _receive_change(row: ImportRow) -> Change:
    new: dict[str, Any] = {
        "state": "in_stock",
        "branch": row.branch,
        "po": row.po,
        "supplier": row.supplier,
        "cost_cents": row.cost_cents,
        "lot": row.lot,
        "expiry": row.expiry,
        "dest_branch": None,
        "pre_repair_state": None,
        "repair_ticket": None,
        "invoice": None,
        "customer": None,
        "sold_on": None,
        "warranty_until": None,
    }
    unit = row.existing
    if unit is None:
        new = {name: value for name, value in new.items() if value is not None}
    was = {name: unit.row[name] for name in new} if unit else {}
    return Change(
        Kind.RECEIVE,
        {"party": row.supplier, "received_on": row.received_on},
        product=row.product.code,
        serial=row.serial,
        doc=("po", row.po),
        set=new,
        was=was,
        unit_prev=unit.last_event if unit else None,
    )


def _po_document(db: Any, row: ImportRow, stamp: Stamp, known: dict[str, int]) -> int:
    """The document id of a row's PO, created on its first row (as the projection would)."""
    if row.po in known:
        return known[row.po]
    found = db.execute(
        "SELECT id FROM documents WHERE type = 'po' AND number = ?", [row.po]
    ).fetchone()
    if found is None:
        found = (
            db.execute(
                "INSERT INTO documents (type, number, branch, party, status, opened_at, updated_at)"
                " VALUES ('po', ?, ?, ?, NULL, ?, ?)",
                [row.po, row.branch, row.supplier, stamp.at, stamp.at],
            ).lastrowid,
        )
    known[row.po] = int(found[0])
    return known[row.po]
