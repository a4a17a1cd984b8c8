"""An HQ a store manager reads: the chain of `hq_fixtures_web.build_chain`, plus a
thousand-odd units at B2, a sale a manager let through (the unit was in transit), a
stolen unit, a recall, a return, and a terminal that sends its morning late."""

from __future__ import annotations

import html
import re
from pathlib import Path

from daemon.hq.web import actions
from daemon.hq.web.db import open_reader
from daemon.ledger import SaleLine, UnitRef
from daemon.ledger.recalls import RecallSelector
from daemon.rules.units import Flag, State
from tests.hq_fixtures_web import Chain, build_chain

BULK = 1200  # units at B2, so counts need a thousands separator
MANAGER_PAGES = (
    "/counts",
    "/units?mode=prefix&q=LX",
    "/unit?product=LAP&serial=LX-1",
    "/unit?product=LAP&serial=LX-3",
    "/unit?product=LAP&serial=LX-5",
    "/conflicts",
    "/recalls",
    "/recall?notice=RC-1",
    "/analytics",
)
ENGINEER_PAGES = ("/terminals",)
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")
FIELD_NAME = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")


def build_store(tmp_path: Path) -> Chain:
    chain = build_chain(tmp_path)
    t1, t2, t3 = (chain.terminals[name] for name in ("T1", "T2", "T3"))
    t3.receive("PO-3", "Bolt", "LAP", [f"BK-{i}" for i in range(BULK)], actor="bea")
    # LX-3 goes to B2; before it arrives, a manager lets B1 sell it (in transit).
    t1.transfer_out("TR-1", "B2", [UnitRef("LAP", "LX-3")], actor="ann")
    t1.sell("INV-4", "Gina", [SaleLine("LAP", "LX-3", 124900)], actor="bob", manager="Mia")
    t1.set_flag([UnitRef("LAP", "LX-7")], Flag.STOLEN, actor="ann", reason="taken from display")
    t1.return_unit(
        "INV-3",
        "LAP",
        "LX-2",
        actor="bob",
        condition="as new",
        disposition=State.IN_STOCK,
        reason="changed mind",
    )
    chain.send("T1")
    chain.send("T3")
    # T2 sells LX-5 at 11:00 and reports at once; T1 put it on hold at 10:00 while
    # offline, and reports after: HQ stores the hold after the sale.
    chain.deliver("T2")
    t1.clock.advance(hours=1)  # type: ignore[attr-defined]
    t2.clock.advance(hours=2)  # type: ignore[attr-defined]
    t2.sell("INV-5", "Hana", [SaleLine("LAP", "LX-5", 99900)], actor="sue")
    t1.set_flag([UnitRef("LAP", "LX-5")], Flag.ON_HOLD, actor="ann", reason="customer reserved")
    chain.send("T2")
    chain.send("T1")
    reader = open_reader(chain.source)
    try:
        actions.recall(
            chain.central,
            reader,
            "RC-1",
            RecallSelector(product="LAP", first="LX-0", last="LX-2"),
            reason="battery may swell",
            actor="olga",
        )
    finally:
        reader.close()
    return chain


def page_text(page: str) -> str:
    """What a reader sees: the page without its tags, scripts and attributes."""
    body = re.sub(r"<(script|style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", body))
