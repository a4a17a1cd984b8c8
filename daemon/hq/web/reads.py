"""What the dashboard's pages show, read from HQ's tables.

Counts come from the kept `unit_counts` (through the ledger's `counts`), never
from a scan of `units`; terminals, conflicts and recalls come from HQ's own small
tables. Each function takes a `ReadStore`, so it runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from daemon.ledger.events import EventBody
from daemon.ledger.kinds import Kind, not_receipt
from daemon.ledger.queries import counts
from daemon.ledger.reader import ReadStore, placeholders
from daemon.rules.serials import serial_key
from daemon.rules.units import Flag, State

STATE_ORDER = tuple(state.value for state in State)


@dataclass(frozen=True)
class CountFilter:
    prefix: str | None = None
    product: str | None = None
    branch: str | None = None

    def query(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}


@dataclass(frozen=True)
class PivotRow:
    key: str
    cells: dict[str, int]
    total: int
    flagged: int = 0  # of `total`, units with a flag (stolen, recalled, ...)
    flags: dict[str, int] = field(default_factory=dict)  # units per flag


@dataclass(frozen=True)
class Pivot:
    """Units per `key` (product, branch or serial prefix) and state."""

    key: str
    title: str
    states: tuple[str, ...]
    rows: list[PivotRow]
    shown: int  # rows kept (the largest first when there are more)
    of: int  # rows there are


@dataclass(frozen=True)
class CountsView:
    filters: CountFilter
    states: tuple[str, ...]
    totals: dict[str, int]
    total: int
    pivots: list[Pivot] = field(default_factory=list)
    flagged: dict[str, int] = field(default_factory=dict)  # units per flag, of `total`
    flagged_total: int = 0  # units with any flag


def dashboard_counts(store: ReadStore, filters: CountFilter, *, limit: int = 200) -> CountsView:
    """Units per state, by product, branch and serial prefix: three reads of the kept
    counts (a prefix longer than the counted length reads that index range instead)."""
    args: dict[str, Any] = {
        "prefix": filters.prefix,
        "product": filters.product,
        "branch": filters.branch,
    }
    pivots = []
    totals: dict[str, int] = {}
    marked = flagged_units(store, filters)
    for key, title in (("product", "By product"), ("branch", "By branch"), ("prefix", "By prefix")):
        rows = counts(store, by=(key, "state"), **args)
        pivots.append(_pivot(key, title, rows, limit, marked))
        if key == "product":
            for row in rows:
                totals[row["state"]] = totals.get(row["state"], 0) + int(row["units"])
    states = _ordered(totals)
    pivots = [Pivot(p.key, p.title, states, p.rows, p.shown, p.of) for p in pivots]
    per_flag: dict[str, int] = {}
    for unit in marked:
        for flag in unit.flags:
            per_flag[flag] = per_flag.get(flag, 0) + 1
    flag_order = [f.value for f in Flag]
    return CountsView(
        filters,
        states,
        {s: totals[s] for s in states},
        sum(totals.values()),
        pivots,
        dict(sorted(per_flag.items(), key=lambda kv: (_rank(flag_order, kv[0]), kv[0]))),
        len(marked),
    )


@dataclass(frozen=True)
class FlaggedUnit:
    product: str
    branch: str
    prefix: str  # its serial key's counted prefix, as the counts table groups it
    flags: tuple[str, ...]

    def key(self, by: str) -> str:
        return {"product": self.product, "branch": self.branch, "prefix": self.prefix}[by]


def flagged_units(store: ReadStore, filters: CountFilter) -> list[FlaggedUnit]:
    """Units with a flag (stolen, recalled, in conflict, on hold) the filters cover.

    A unit gets a flag only through a flag event, so this reads the few flag events
    (through the `events_kind` index) and their units, never a scan of every unit."""
    where = [
        "u.flags <> ''",
        f"u.id IN (SELECT e.unit_id FROM events e WHERE e.kind = ? AND {not_receipt('e.kind')})",
    ]
    params: list[Any] = [Kind.FLAG]
    if filters.prefix:
        key = serial_key(filters.prefix)
        where.append("u.serial_key >= ? AND u.serial_key < ?")
        params += [key, key + "\U0010ffff"]
    if filters.product:
        where.append("p.code = ?")
        params.append(filters.product)
    if filters.branch:
        where.append("u.branch = ?")
        params.append(filters.branch)
    rows = store.db.execute(
        "SELECT p.code, u.branch, u.serial_key, u.flags FROM units u"
        " JOIN products p ON p.id = u.product_id WHERE " + " AND ".join(where),
        params,
    ).fetchall()
    length = store.prefix_length
    # A filter longer than the counted prefix is the one prefix the counts show.
    whole = serial_key(filters.prefix) if filters.prefix else ""
    return [
        FlaggedUnit(
            str(r[0]),
            str(r[1]),
            whole if len(whole) > length else str(r[2])[:length],
            tuple(f for f in str(r[3]).split(",") if f),
        )
        for r in rows
    ]


def _rank(order: list[str], value: str) -> int:
    return order.index(value) if value in order else len(order)


def _pivot(
    key: str,
    title: str,
    rows: list[dict[str, Any]],
    limit: int,
    marked: list[FlaggedUnit] | None = None,
) -> Pivot:
    table: dict[str, dict[str, int]] = {}
    for row in rows:
        cells = table.setdefault(str(row[key]), {})
        cells[row["state"]] = cells.get(row["state"], 0) + int(row["units"])
    flagged: dict[str, int] = {}
    flags: dict[str, dict[str, int]] = {}
    for unit in marked or []:
        flagged[unit.key(key)] = flagged.get(unit.key(key), 0) + 1
        per = flags.setdefault(unit.key(key), {})
        for flag in unit.flags:
            per[flag] = per.get(flag, 0) + 1
    found = [
        PivotRow(k, cells, sum(cells.values()), flagged.get(k, 0), flags.get(k, {}))
        for k, cells in table.items()
    ]
    if len(found) > limit:
        found.sort(key=lambda r: -r.total)
    kept = sorted(found[:limit], key=lambda r: r.key)
    return Pivot(key, title, (), kept, len(kept), len(found))


def _ordered(states: dict[str, int]) -> tuple[str, ...]:
    known = [s for s in STATE_ORDER if s in states]
    return (*known, *sorted(s for s in states if s not in STATE_ORDER))


def change_marker(store: ReadStore) -> tuple[int, int]:
    """Changes whenever HQ stores an event (any terminal's, or its own) or a conflict
    opens or closes: the sum of the stream watermarks, and the open conflicts."""
    stored = store.db.execute("SELECT coalesce(sum(acked), 0) FROM hq_streams").fetchone()
    conflicts = open_conflict_count(store)
    return int(stored[0]), conflicts


def open_conflict_count(store: ReadStore) -> int:
    row = store.db.execute("SELECT count(*) FROM hq_conflicts WHERE resolved_at IS NULL").fetchone()
    return int(row[0])


def choices(store: ReadStore) -> dict[str, list[str]]:
    """Product codes and branches, for the filters' drop-downs."""
    products = [str(r[0]) for r in store.db.execute("SELECT code FROM products ORDER BY code")]
    branches = {
        str(r[0]) for r in store.db.execute("SELECT branch FROM hq_branches").fetchall()
    } | {str(r[0]) for r in store.db.execute("SELECT branch FROM hq_terminals").fetchall()}
    return {"products": products, "branches": sorted(branches)}


# -- terminals ------------------------------------------------------------------


@dataclass(frozen=True)
class TerminalRow:
    terminal: str
    branch: str
    epoch: str
    online: bool
    seen_at: str
    stored_seq: int  # every event up to this one is stored at HQ
    last_stored_at: str | None
    waiting: int  # events parked behind a gap
    waiting_since: str | None
    feed_unsent: int  # events for the terminal's branch not yet sent
    held_at: int | None = None  # HQ refused this event: nothing after it is stored
    problems: int = 0  # open problems HQ recorded about what it sent
    last_problem: str | None = None
    backlog: int = 0  # own events HQ had not confirmed, as its status last said
    waiting_for_hq_since: str | None = None  # since when, as its status last said

    @property
    def ok(self) -> bool:
        """HQ takes its events and has no open problem about it."""
        return self.held_at is None and self.problems == 0


def terminals(store: ReadStore) -> list[TerminalRow]:
    rows = store.db.execute(
        "SELECT t.terminal, t.branch, t.epoch, t.online, t.seen_at, s.acked, s.updated_at,"
        " s.gap_since, (SELECT count(*) FROM hq_parked p WHERE p.terminal = t.terminal"
        " AND p.epoch = t.epoch AND p.seq > s.acked), b.head - b.published, s.held_seq,"
        " (SELECT count(*) FROM hq_problems q WHERE q.terminal = t.terminal"
        " AND q.dismissed_at IS NULL),"
        " (SELECT q.message FROM hq_problems q WHERE q.terminal = t.terminal"
        " AND q.dismissed_at IS NULL ORDER BY q.id DESC LIMIT 1),"
        " t.backlog, t.waiting_since"
        " FROM hq_terminals t"
        " LEFT JOIN hq_streams s ON s.terminal = t.terminal AND s.epoch = t.epoch"
        " LEFT JOIN hq_branches b ON b.branch = t.branch ORDER BY t.terminal"
    ).fetchall()
    return [
        TerminalRow(
            terminal=str(r[0]),
            branch=str(r[1]),
            epoch=str(r[2]),
            online=bool(r[3]),
            seen_at=str(r[4]),
            stored_seq=int(r[5] or 0),
            last_stored_at=_stamp(r[6]),
            waiting=int(r[8] or 0),
            waiting_since=_stamp(r[7]),
            feed_unsent=int(r[9] or 0),
            held_at=None if r[10] is None else int(r[10]),
            problems=int(r[11] or 0),
            last_problem=r[12],
            backlog=int(r[13] or 0),
            waiting_for_hq_since=r[14],
        )
        for r in rows
    ]


@dataclass(frozen=True)
class ProblemRow:
    id: int
    terminal: str | None  # the sender, by the topic it used
    seq: int | None
    message: str
    at: str
    last_at: str | None
    seen: int


def open_problems(store: ReadStore, limit: int = 50) -> list[ProblemRow]:
    """What HQ refused and no operator has dismissed yet, newest first."""
    rows = store.db.execute(
        "SELECT id, terminal, seq, message, at, last_at, seen FROM hq_problems"
        " WHERE dismissed_at IS NULL ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [
        ProblemRow(
            int(r[0]), r[1], None if r[2] is None else int(r[2]), r[3], r[4], r[5], int(r[6])
        )
        for r in rows
    ]


def _stamp(seconds: float | None) -> str | None:
    if not seconds:
        return None
    return datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="seconds")[:19] + "Z"


# -- conflicts ------------------------------------------------------------------


@dataclass(frozen=True)
class ForkSide:
    """One of the events that changed a unit without knowing of the other."""

    uuid: str
    kind: str
    terminal: str
    branch: str
    at: str
    actor: str
    document: str | None
    outcome: dict[str, Any]  # the unit's fields after it


@dataclass(frozen=True)
class Conflict:
    id: int
    product: str
    serial: str
    opened_at: str
    sides: list[ForkSide]
    resolved_at: str | None = None
    resolution: str | None = None
    note: str | None = None


def conflicts(store: ReadStore, *, resolved: bool = False, limit: int = 200) -> list[Conflict]:
    """Open conflicts (oldest first), or the latest resolved ones."""
    where = "resolved_at IS NOT NULL" if resolved else "resolved_at IS NULL"
    order = "DESC" if resolved else "ASC"
    rows = store.db.execute(
        "SELECT id, product, serial, events, opened_at, resolved_at, resolution, note"
        f" FROM hq_conflicts WHERE {where} ORDER BY id {order} LIMIT ?",
        [limit],
    ).fetchall()
    wanted = [uuid for row in rows for uuid in json.loads(row[3])]
    bodies: dict[str, EventBody] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        for uuid, body in store.db.execute(
            f"SELECT uuid, body FROM events WHERE uuid IN ({placeholders(len(part))})", part
        ).fetchall():
            bodies[str(uuid)] = EventBody.parse(body)
    found = []
    for r in rows:
        sides = [_side(uuid, bodies.get(uuid)) for uuid in json.loads(r[3])]
        found.append(Conflict(int(r[0]), r[1], r[2], r[4], sides, r[5], r[6], r[7]))
    return found


def _side(uuid: str, event: EventBody | None) -> ForkSide:
    if event is None:
        return ForkSide(uuid, "?", "?", "?", "?", "?", None, {})
    doc = event.doc
    return ForkSide(
        uuid=uuid,
        kind=event.kind,
        terminal=event.terminal,
        branch=event.branch,
        at=event.at,
        actor=event.actor,
        document=doc.label if doc else None,
        outcome={k: v for k, v in event.after.items() if v not in (None, "", [])},
    )


# -- recalls --------------------------------------------------------------------


@dataclass(frozen=True)
class RecallNotice:
    notice: str
    opened_at: str
    branch: str
    flagged: int  # units the notice flagged recalled
    actor: str | None = None
    reason: str | None = None


def recalls(store: ReadStore) -> list[RecallNotice]:
    rows = store.db.execute(
        "SELECT d.number, d.opened_at, d.branch, count(e.id) FROM documents d"
        " LEFT JOIN events e ON e.doc_id = d.id AND e.kind = ?"
        " WHERE d.type = 'recall' GROUP BY d.id, d.number, d.opened_at, d.branch"
        " ORDER BY d.opened_at DESC, d.number",
        [Kind.FLAG],
    ).fetchall()
    return [RecallNotice(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in rows]


def recall_notice(store: ReadStore, notice: str) -> RecallNotice | None:
    row = store.db.execute(
        "SELECT d.id, d.number, d.opened_at, d.branch FROM documents d"
        " WHERE d.type = 'recall' AND d.number = ?",
        [notice],
    ).fetchone()
    if row is None:
        return None
    flagged, first = 0, None
    for (body,) in store.db.execute(
        "SELECT body FROM events WHERE doc_id = ? AND kind = ? ORDER BY id", [row[0], Kind.FLAG]
    ).fetchall():
        flagged += 1
        first = first or EventBody.parse(body)
    actor = first.actor if first else None
    reason = first.data.get("reason") if first else None
    return RecallNotice(str(row[1]), str(row[2]), str(row[3]), flagged, actor, reason)
