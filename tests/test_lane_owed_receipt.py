"""A receipt the printer owes (out of paper when the sale completed) prints by itself once
the printer is back, also after posd was restarted in between, and exactly once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon.ledger.lane_log import Entry, LaneLog
from simulators.lane import SimulatedLane, wait_until
from tests.lane_sim import stocked_copy
from tests.ledger_fixtures import make_ledger


def test_an_owed_receipt_prints_by_itself_after_a_restart_exactly_once(
    tmp_path: Path, template_dir: Path
) -> None:
    async def main() -> None:
        sim = SimulatedLane(tmp_path / "lane")
        stocked_copy(sim.folder, template_dir)
        try:
            await sim.start()
            sim.printer.paper_out()
            await sim.scan("LX-0001")
            paid = await sim.command("TENDER", "CARD")
            assert paid["verdict"]["code"] == "sale_complete"
            await wait_until(lambda: sim.lane.state.receipt_waiting is not None, "the failure")
            await sim.stop()  # posd restarts with the receipt still owed

            await sim.start()
            await sim.settled()
            assert sim.lane.state.notice is not None
            assert sim.lane.state.notice.code == "last_sale_saved"
            assert "REPRINT" not in sim.lane.state.notice.message  # it prints by itself
            assert sim.lane.state.receipt_waiting == "T-001-000001"
            assert sim.printer.receipts == []
            sim.printer.paper_in()  # nobody presses REPRINT
            await wait_until(lambda: sim.printer.receipts, "the owed receipt", 10.0)
            await wait_until(lambda: sim.lane.state.receipt_waiting is None, "its result")
            await asyncio.sleep(1.5)  # several looks at the printer: nothing prints again
            (receipt,) = sim.printer.receipts
            assert "T-001-000001" in receipt.text and "REPRINT" not in receipt.text
            await sim.stop()

            await sim.start()  # printed now: not owed after another restart
            await sim.settled()
            await asyncio.sleep(1.0)
            assert len(sim.printer.receipts) == 1
            assert sim.lane.state.receipt_waiting is None
        finally:
            await sim.stop()
            sim.close()

    asyncio.run(main())


def test_the_journal_owes_each_failed_receipt_until_it_prints() -> None:
    ledger = make_ledger()
    journal = LaneLog(ledger)

    def said(code: str, invoice: str) -> None:
        journal.append(
            Entry(
                "2026-11-23T10:00:00Z",
                "print",
                "printer",
                "x",
                "idle",
                "refused",
                code,
                "",
                invoice,
            )
        )

    said("sale_complete", "T1-000001")
    said("receipt_failed", "T1-000001")
    said("sale_complete", "T1-000002")
    said("receipt_failed", "T1-000002")
    said("receipt_failed", "T1-000001")  # tried again: still no paper
    said("sale_complete", "T1-000003")
    said("printed", "T1-000003")
    assert journal.owed_receipts() == ["T1-000001", "T1-000002"]
    said("printed", "T1-000001")
    assert journal.owed_receipts() == ["T1-000002"]
    said("printed", "T1-000002")
    assert journal.owed_receipts() == []
