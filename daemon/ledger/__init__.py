"""The serial ledger: an append-only, hash-chained event log and its projection.

ledger = Ledger.create("ledger.db", terminal="T1", branch="B1")
ledger.define_product("LAP-X1", "Laptop X1", actor="setup", warranty_months=24)
ledger.receive("PO-1", "Acme", "LAP-X1", ["SN-1", "SN-2"], actor="ann", quantity=2)
"""

from daemon.ledger.errors import LedgerError, LedgerNotFound, Problem, Refusal
from daemon.ledger.ledger import Ledger, Outcome, SaleLine, UnitRef
from daemon.ledger.store import Product, Unit

__all__ = [
    "Ledger",
    "LedgerError",
    "LedgerNotFound",
    "Outcome",
    "Problem",
    "Product",
    "Refusal",
    "SaleLine",
    "Unit",
    "UnitRef",
]
