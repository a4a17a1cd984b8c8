"""The lane's journal in the ledger database (`lane_log`, migration m003_lane).

Every input the lane takes — a scan, a command, an attendant's release, a device
fault, a ledger answer — is appended with a sequence number and what the lane made of
it, before anything is acted on. The journal is what tells a restarted lane whether
the basket it had open was paid for, and where invoice numbers continue.

Durability: an entry is committed at `synchronous=NORMAL`, so it is written into the
WAL without an fsync of its own. It survives a crash of the daemon at once, and a
power cut from the next commit at `synchronous=FULL` on (every sale, return, receipt
and release is one), because that commit's fsync of the WAL carries every frame
before it. So nothing durable is ever done on the strength of an entry that is not
itself durable, and a scan costs no fsync. The connection stays at NORMAL after an
entry; the store's next durable transaction switches it back to FULL before it begins
(`LedgerStore.synchronous`), so a scan costs no switching either.
"""

from __future__ import annotations

from dataclasses import dataclass

from daemon.ledger.store import LedgerStore

OWED_WINDOW = 50_000  # journal entries a restart looks back for receipts still owed

_INSERT = (
    "INSERT INTO lane_log (at, terminal, kind, source, input, mode, outcome, code, message,"
    " invoice, basket_open) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class Entry:
    at: str
    kind: str  # scan, command, release, ledger, print, device, scanner, start, fault
    source: str
    input: str
    mode: str  # the lane's mode after the input
    outcome: str | None = None
    code: str | None = None
    message: str | None = None
    invoice: str | None = None  # the invoice (basket) the input concerned
    basket_open: str | None = None  # the basket still open after it


@dataclass(frozen=True)
class LastBasket:
    """The basket that was open when the lane last stopped."""

    invoice: str
    seq: int


class LaneLog:
    """Appends to and reads the lane's journal in `store`'s database. The caller owns
    the store's connection and its thread."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self._conn = store.db.conn
        self.terminal = store.terminal

    def append(self, entry: Entry) -> int:
        """Store one entry (no fsync of its own; see the module's docstring); its seq."""
        conn = self._conn
        self._store.synchronous(full=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.execute(
                _INSERT,
                (
                    entry.at,
                    self.terminal,
                    entry.kind,
                    entry.source,
                    entry.input,
                    entry.mode,
                    entry.outcome,
                    entry.code,
                    entry.message,
                    entry.invoice,
                    entry.basket_open,
                ),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return int(cursor.lastrowid or 0)

    def open_basket(self) -> LastBasket | None:
        """The basket left open by the last entry, if the lane stopped mid-sale."""
        row = self._conn.execute(
            "SELECT seq, basket_open FROM lane_log ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None or row[1] is None:
            return None
        return LastBasket(row[1], int(row[0]))

    def unprinted_sale(self) -> str | None:
        """The last completed sale, if its receipt is not known to have printed."""
        row = self._conn.execute(
            "SELECT seq, invoice FROM lane_log WHERE code = 'sale_complete'"
            " ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        if row is None:
            return None
        printed = self._conn.execute(
            "SELECT 1 FROM lane_log WHERE seq > ? AND code = 'printed' AND invoice = ? LIMIT 1",
            (row[0], row[1]),
        ).fetchone()
        return None if printed else str(row[1])

    def owed_receipts(self) -> list[str]:
        """Invoices whose receipt is known not to have printed (the printer said so) and
        has not printed since, oldest first. Looked for among the last `OWED_WINDOW`
        entries, so a restart never reads the whole journal."""
        rows = self._conn.execute(
            "SELECT invoice, code FROM lane_log WHERE seq > (SELECT coalesce(max(seq), 0)"
            " FROM lane_log) - ? AND invoice IS NOT NULL AND code IN ('receipt_failed',"
            " 'printed') ORDER BY seq",
            (OWED_WINDOW,),
        ).fetchall()
        owed: dict[str, None] = {}
        for invoice, code in rows:
            if code == "printed":
                owed.pop(invoice, None)
            else:
                owed[invoice] = None
        return list(owed)

    def next_invoice(self, prefix: str) -> int:
        """The number after the highest invoice `prefix`NNNNNN this lane has used, in its
        journal or in the ledger (a journal entry lost to a power cut is in the ledger)."""
        numbers = [0]
        row = self._conn.execute(
            "SELECT invoice FROM lane_log WHERE invoice IS NOT NULL AND invoice >= ?"
            " AND invoice < ? ORDER BY seq DESC LIMIT 1",
            (prefix, prefix + "\U0010ffff"),
        ).fetchone()
        if row:
            numbers.append(_number(row[0], prefix))
        row = self._conn.execute(
            "SELECT number FROM documents WHERE type = 'invoice' AND number >= ? AND number < ?"
            " ORDER BY number DESC LIMIT 1",
            (prefix, prefix + "\U0010ffff"),
        ).fetchone()
        if row:
            numbers.append(_number(row[0], prefix))
        return max(numbers) + 1

    def entries(self, limit: int = 50) -> list[dict[str, object]]:
        """The last `limit` entries, newest last."""
        cursor = self._conn.execute(
            "SELECT * FROM (SELECT * FROM lane_log ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (limit,),
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor]


def _number(invoice: str, prefix: str) -> int:
    tail = invoice[len(prefix) :]
    return int(tail) if tail.isdigit() else 0
