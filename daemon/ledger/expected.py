"""Expected units: what a purchase order will bring, serial by serial, as a supplier's
advance ship notice says (with lot and expiry), so receiving is one scan per unit.

    ledger.expect_units([ExpectedUnit("PO-7", "LAP-X1", "LX-1", "Acme", "L42", "2028-01-31")])
    ledger.receive_expected("PO-7", ["LX-1"], actor="ann")   # product, supplier, lot, expiry
                                                             # all from the notice

An expectation is not part of the record (it is no event); the receipt is. `receive`
against a PO with expectations takes each unit's lot and expiry from them when the
receipt names none, so the lane's receiving gets them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from daemon.ledger.core import SALE_FIELDS, LedgerCore, Outcome, UnitRef, uuids, values_problems
from daemon.ledger.errors import Problem, Refusal
from daemon.ledger.kinds import Kind
from daemon.ledger.reader import chunks, placeholders
from daemon.rules.serials import SerialError, check_serial, serial_key
from daemon.rules.units import Op, Refused, Request, decide
from daemon.rules.values import IDENTIFIER, NAME


@dataclass(frozen=True)
class ExpectedUnit:
    """One unit a purchase order will bring. `label` says where it came from (e.g.
    "event 3") in problems; `source` is kept (the notice's event id)."""

    po: str
    product: str
    serial: str
    supplier: str | None = None
    lot: str | None = None
    expiry: str | None = None  # YYYY-MM-DD
    source: str | None = None
    label: str = ""


class Expecting(LedgerCore):
    """Registering expected units and receiving them."""

    def expect_units(self, units: Sequence[ExpectedUnit]) -> Outcome:
        """Register every unit or none: each problem names the unit and its label."""
        problems: list[Problem] = []
        for unit in units:
            where = f"{unit.label}: " if unit.label else ""
            for problem in values_problems(
                (IDENTIFIER, unit.po, "purchase order"),
                (IDENTIFIER, unit.product, "product"),
                (NAME, unit.supplier, "supplier"),
                (NAME, unit.lot, "lot"),
            ):
                problems.append(Problem(problem.code, where + problem.message, unit.serial))
            if unit.expiry is not None:
                try:
                    date.fromisoformat(unit.expiry)
                except ValueError:
                    problems.append(
                        Problem(
                            "bad_date", f"{where}expiry {unit.expiry!r} is no date", unit.serial
                        )
                    )
        self._refuse_if(problems)
        refs = [UnitRef(u.product, u.serial) for u in units]
        found, ref_problems = self._resolve(refs)
        labels = {ref: u.label for ref, u in zip(refs, units, strict=True)}
        by_serial = {u.serial: u.label for u in reversed(units)}
        problems += [
            Problem(p.code, _at(by_serial.get(p.serial or "")) + p.message, p.serial)
            for p in ref_problems
        ]
        for ref, present in found.items():
            if present is None:
                continue
            verdict = decide(present.view(), Request(Op.RECEIVE, self.branch))
            if isinstance(verdict, Refused):
                problems.append(
                    Problem(verdict.code, _at(labels[ref]) + verdict.message, ref.serial)
                )
        self._refuse_if(problems)
        known = self._expected_by_key([serial_key(u.serial) for u in units])
        rows = []
        already = 0
        for unit in units:
            key = serial_key(unit.serial)
            earlier = known.get((unit.product, key))
            if earlier is not None:
                same = (earlier["po"], earlier["lot"], earlier["expiry"]) == (
                    unit.po,
                    unit.lot,
                    unit.expiry,
                )
                if same:
                    already += 1
                    continue
                problems.append(
                    Problem(
                        "already_expected",
                        f"{_at(unit.label)}{unit.product} serial {unit.serial!r} is already"
                        f" expected on PO {earlier['po']} (lot {earlier['lot']},"
                        f" expiry {earlier['expiry']})",
                        unit.serial,
                    )
                )
                continue
            product = self.product(unit.product)
            assert product is not None
            at = self.stamp("import").at
            row = (unit.po, product.id, unit.serial.strip(), key, unit.supplier, unit.lot)
            rows.append((*row, unit.expiry, unit.source, at))
        self._refuse_if(problems)
        conn = self.db.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT INTO expected_units (po, product_id, serial, serial_key, supplier, lot,"
                " expiry, source, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        pos = sorted({u.po for u in units})
        message = f"{len(rows)} unit(s) expected on PO {', '.join(pos)}"
        if already:
            message += f" ({already} were already)"
        return Outcome(message, [], {"expected": len(rows), "already": already, "pos": pos})

    def _expected_by_key(self, keys: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for part in chunks(list(dict.fromkeys(keys))):
            for row in self.db.query(
                "SELECT x.*, p.code AS product FROM expected_units x"
                " JOIN products p ON p.id = x.product_id"
                f" WHERE x.serial_key IN ({placeholders(len(part))})",
                part,
            ):
                found[(row["product"], row["serial_key"])] = row
        return found

    def expected(self, po: str | None = None) -> list[dict[str, Any]]:
        """Expected units not received yet (of one PO, or all), oldest first."""
        sql = (
            "SELECT x.po, p.code AS product, x.serial, x.supplier, x.lot, x.expiry, x.source"
            " FROM expected_units x JOIN products p ON p.id = x.product_id"
            " LEFT JOIN units u ON u.product_id = x.product_id AND u.serial_key = x.serial_key"
            " WHERE (u.id IS NULL OR u.state = 'returned_to_supplier')"
        )
        params: list[Any] = []
        if po is not None:
            sql += " AND x.po = ?"
            params.append(po)
        return list(self.db.query(sql + " ORDER BY x.id", params))

    def expected_lots(
        self, po: str, product: str, serials: Sequence[str]
    ) -> dict[str, tuple[str | None, str | None]]:
        """(lot, expiry) by serial key of the units `po` expects of `product`."""
        # Most receipts have no notice: one look at the (po, …) index says so.
        if (
            self.db.execute("SELECT 1 FROM expected_units WHERE po = ? LIMIT 1", [po]).fetchone()
            is None
        ):
            return {}
        keys = []
        for serial in serials:
            try:
                keys.append(check_serial(serial))
            except SerialError:
                continue  # the receipt reports it
        return {
            key: (row["lot"], row["expiry"])
            for (code, key), row in self._expected_by_key(keys).items()
            if code == product and row["po"] == po
        }

    def receive_expected(
        self, po: str, serials: Sequence[str], *, actor: str, branch: str | None = None
    ) -> Outcome:
        """Receive units by serial alone: product, supplier, lot and expiry come from
        what `po` expects. All units or none."""
        branch = branch or self.branch
        self._refuse_if(values_problems((IDENTIFIER, po, "purchase order")))
        keys: dict[str, str] = {}
        problems: list[Problem] = []
        for serial in serials:
            try:
                keys[serial] = check_serial(serial)
            except SerialError as error:
                problems.append(Problem("bad_serial", str(error), serial))
        rows: dict[str, list[dict[str, Any]]] = {}
        for part in chunks(list(dict.fromkeys(keys.values()))):
            for row in self.db.query(
                "SELECT x.*, p.code AS product FROM expected_units x"
                " JOIN products p ON p.id = x.product_id"
                f" WHERE x.po = ? AND x.serial_key IN ({placeholders(len(part))})",
                [po, *part],
            ):
                rows.setdefault(row["serial_key"], []).append(row)
        chosen: list[tuple[UnitRef, dict[str, Any]]] = []
        for serial, key in keys.items():
            matches = rows.get(key, [])
            if not matches:
                problems.append(
                    Problem("not_expected", f"serial {serial!r} is not expected on PO {po}", serial)
                )
            elif len(matches) > 1:
                products = ", ".join(sorted(m["product"] for m in matches))
                problems.append(
                    Problem(
                        "ambiguous_serial",
                        f"serial {serial!r} is expected on PO {po} for {products}:"
                        " receive it with its product",
                        serial,
                    )
                )
            else:
                # The serial as the supplier printed it, however it was scanned.
                chosen.append((UnitRef(matches[0]["product"], matches[0]["serial"]), matches[0]))
        refs = [ref for ref, _ in chosen]
        units, ref_problems = self._resolve(refs)
        problems += ref_problems
        decisions = self._decide_each(refs, units, Request(Op.RECEIVE, branch), problems)
        self._refuse_if(problems)
        expected = dict(chosen)
        day = self.clock().date().isoformat()
        changes = []
        for ref, unit, allowed in decisions:
            row = expected[ref]
            new = {
                "state": allowed.state.value,
                "branch": allowed.branch,
                "po": po,
                "supplier": row["supplier"] or "",
                "cost_cents": 0,
                "lot": row["lot"],
                "expiry": row["expiry"],
                "dest_branch": None,
                "pre_repair_state": None,
                "repair_ticket": None,
                **dict.fromkeys(SALE_FIELDS),
            }
            data = {"party": row["supplier"], "received_on": day}
            changes.append(self.unit_change(Kind.RECEIVE, ref, unit, new, ("po", po), data))
        if not changes:
            raise Refusal([Problem("nothing_to_receive", "scan at least one serial")])
        sealed = self.record(self.stamp(actor, branch), changes)
        return Outcome(f"received {len(changes)} expected unit(s) on PO {po}", uuids(sealed))


def _at(label: str | None) -> str:
    return f"{label}: " if label else ""
