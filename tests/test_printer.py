"""The receipt printer: exact bytes, what comes out of the printer, status and the queue."""

from __future__ import annotations

import asyncio
import io
import threading
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from escpos.capabilities import get_profile
from escpos.escpos import Escpos
from escpos.printer import Dummy, File, Network, Serial

from daemon.drivers.base import PrinterError
from daemon.drivers.display import EPSON, CustomerDisplay
from daemon.drivers.printer import (
    JobState,
    PrinterState,
    Receipt,
    ReceiptLine,
    ReceiptPrinter,
    ReceiptTender,
    SerialShown,
    mask_serial,
    render_receipt,
)
from simulators.display import DisplayDecoder
from simulators.printer import Barcode, SimulatedPrinter, decode_receipts

BULLETS = "\u2022" * 6


def sale(invoice: str = "INV-451", **changes: object) -> Receipt:
    fields: dict[str, object] = {
        "store": "Kowalski Tools",
        "branch": "Riverside",
        "terminal_id": "T-03",
        "invoice_number": invoice,
        "issued_at": datetime(2026, 11, 23, 14, 5),
        "cashier": "Ana",
        "lines": (
            ReceiptLine(
                "Laptop X1",
                Decimal("1299.00"),
                serial="PF3K9Z1234",
                warranty_ends=date(2028, 11, 23),
            ),
            ReceiptLine(
                "Drill 18V", Decimal("89.50"), serial="DRL-778", serial_shown=SerialShown.FULL
            ),
        ),
        "tenders": (ReceiptTender("Cash", Decimal("1400.00")),),
        "footer": ("Thank you",),
    }
    fields.update(changes)
    return Receipt(**fields)  # type: ignore[arg-type]


# ------------------------------------------------------------------ golden bytes

GOLDEN = (
    b"\x1b@"  # ESC @ initialise
    b"\x1b!\x00\x1b!\x00\x1b!0\x1bE\x01\x1ba\x01"  # double size, bold, centred
    b"\x1bt\x00Kowalski Tools\n"  # ESC t 0: code page 437
    b"\x1b!\x00\x1b!\x00\x1b!\x00\x1bE\x00Riverside\n"
    b"\x1ba\x00Terminal T-03              Invoice INV-451\n"
    b"2026-11-23 14:05               Cashier Ana\n"
    b"------------------------------------------\n"
    b"Laptop X1                          1299.00\n"
    b"  S/N \x1bt\x10\x95\x95\x95\x95\x95\x951234\n"  # ESC t 16 (1252): six bullets
    b"  Warranty until 2028-11-23\n"
    b"Drill 18V                            89.50\n"
    b"  S/N DRL-778\n"
    b"------------------------------------------\n"
    b"\x1bE\x01TOTAL                              1388.50\n"
    b"\x1bE\x00Cash                               1400.00\n"
    b"Change                               11.50\n"
    b"\n"
    b"\x1ba\x01\x1dh@\x1dw\x02\x1df\x00\x1dH\x02"  # barcode: height 64, width 2, HRI below
    b"\x1dkI\t{BINV-451\n"  # GS k 73: CODE128, 9 bytes, code set B
    b"Thank you\n"
    b"\x1bd\x06\x1dV\x00"  # feed six lines, full cut
)


def test_a_receipt_reaches_the_printer_as_exactly_these_bytes() -> None:
    printer = Dummy()
    job = ReceiptPrinter(printer).print_receipt(sale(), "sale-1")
    assert job.state is JobState.PRINTED
    assert printer.output == GOLDEN


def test_render_receipt_gives_the_same_bytes_without_a_printer() -> None:
    assert render_receipt(sale()) == GOLDEN


def test_a_reprint_says_so_at_the_top_and_the_bottom() -> None:
    (receipt,) = decode_receipts(render_receipt(sale(), reprint=True))
    assert receipt.lines[2] == "*** REPRINT ***"
    assert receipt.lines[-1] == "*** REPRINT ***"
    (original,) = decode_receipts(render_receipt(sale()))
    assert "REPRINT" not in original.text


def test_serials_are_masked_to_the_last_four_unless_the_line_shows_them_in_full() -> None:
    (receipt,) = decode_receipts(render_receipt(sale()))
    assert f"  S/N {BULLETS}1234" in receipt.lines
    assert "  S/N DRL-778" in receipt.lines
    assert "PF3K9Z" not in receipt.text
    assert "  Warranty until 2028-11-23" in receipt.lines
    assert receipt.barcodes == [Barcode("CODE128", "INV-451")]


def test_mask_serial_keeps_the_last_four_characters() -> None:
    assert mask_serial("SN-00071234") == "\u2022" * 7 + "1234"
    assert mask_serial("1234") == "1234"


def test_a_narrow_printer_gets_a_narrow_receipt_and_a_drawn_barcode() -> None:
    data = render_receipt(sale(), profile=get_profile("POS-5890"))  # 58 mm, 32 columns
    (receipt,) = decode_receipts(data, model="POS-5890")
    assert "-" * 32 in receipt.lines
    assert "-" * 33 not in receipt.text
    assert receipt.images == 1  # no CODE128 in its firmware: drawn as an image
    assert b"\x1dV" not in data  # and it has no cutter to drive


def test_characters_the_printer_lacks_are_spelled_out() -> None:
    receipt = sale(footer=("Prices in \u20ac",))
    (printed,) = decode_receipts(
        render_receipt(receipt, profile=get_profile("TM-U220")), model="TM-U220"
    )
    assert "Prices in EUR" in printed.lines
    assert "  S/N ******1234" in printed.lines


def test_control_characters_in_receipt_text_cannot_kick_the_drawer_or_cut(
    simulated: SimulatedPrinter,
) -> None:
    # ESC p 0 25 25 would open the drawer; GS V 0 would cut the receipt in two
    receipt = sale(lines=(ReceiptLine("Drill\x1bp\x00\x19\x19\x1dV\x00", Decimal("1.00")),))
    printer = ReceiptPrinter(network_printer(simulated))
    assert printer.print_receipt(receipt, "sale-1").state is JobState.PRINTED
    assert simulated.wait_for_receipts(1)
    (printed,) = simulated.receipts
    assert printed.lines[5].startswith("Drill?p????V?")
    assert simulated.drawer_kicks == 0


def test_bad_receipt_data_is_refused_with_the_value_and_a_remedy() -> None:
    with pytest.raises(ValueError, match=r"'INV 45\\x00'.*printable ASCII"):
        sale(invoice="INV 45\x00")
    with pytest.raises(TypeError, match=r"1.5.*Decimal"):
        ReceiptLine("Cable", 1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no lines"):
        sale(lines=())


# ------------------------------------------------------ simulator round trips


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[SimulatedPrinter]:
    with SimulatedPrinter(link=tmp_path / "printer") as printer:
        yield printer


def serial_printer(simulated: SimulatedPrinter) -> Serial:
    return Serial(devfile=simulated.path, timeout=0.3)


def network_printer(simulated: SimulatedPrinter) -> Network:
    return Network(*simulated.address, timeout=0.3)


Connect = Callable[[SimulatedPrinter], Escpos]
transports = pytest.mark.parametrize("connect", [serial_printer, network_printer])


@transports
def test_a_receipt_prints_over_a_real_transport(
    simulated: SimulatedPrinter, connect: Connect
) -> None:
    printer = ReceiptPrinter(connect(simulated))
    assert printer.status().state is PrinterState.OK
    assert printer.print_receipt(sale(), "sale-1").state is JobState.PRINTED
    assert simulated.wait_for_receipts(1)
    receipt = simulated.receipts[-1]
    assert receipt.lines[0] == "Kowalski Tools"
    assert f"  S/N {BULLETS}1234" in receipt.lines
    assert receipt.barcodes == [Barcode("CODE128", "INV-451")]
    assert simulated.unknown_commands == []


@transports
def test_paper_out_is_an_error_and_the_receipt_waits_in_the_queue(
    simulated: SimulatedPrinter,
    connect: Connect,
) -> None:
    printer = ReceiptPrinter(connect(simulated))
    simulated.paper_out()
    status = printer.status()
    assert status.state is PrinterState.ERROR
    assert status.reason == "paper out"

    job = printer.print_receipt(sale(), "sale-1")
    assert job.state is JobState.FAILED
    assert "paper out" in job.reason
    assert [waiting.id for waiting in printer.waiting] == ["sale-1"]
    assert simulated.receipts == []

    simulated.paper_in()
    assert printer.retry("sale-1").state is JobState.PRINTED
    assert simulated.wait_for_receipts(1)
    assert printer.waiting == []


def test_an_open_cover_is_an_error_with_its_reason(simulated: SimulatedPrinter) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    simulated.cover_open()
    assert printer.status().reason == "cover open"
    simulated.cover_close()
    assert printer.status().state is PrinterState.OK


@transports
def test_a_printer_that_does_not_answer_is_unknown_not_out_of_paper(
    simulated: SimulatedPrinter,
    connect: Connect,
) -> None:
    printer = ReceiptPrinter(connect(simulated))
    simulated.stop_answering()
    status = printer.status()
    assert status.state is PrinterState.UNKNOWN
    assert "no answer" in status.reason
    assert "paper" not in status.reason

    job = printer.print_receipt(sale(), "sale-1")
    assert job.state is JobState.FAILED
    assert job.id in [waiting.id for waiting in printer.waiting]


def test_an_unplugged_printer_is_unknown_and_printing_resumes_when_it_is_back(
    simulated: SimulatedPrinter,
) -> None:
    printer = ReceiptPrinter(serial_printer(simulated))
    assert printer.print_receipt(sale("INV-1"), "sale-1").state is JobState.PRINTED
    simulated.unplug()
    assert printer.status().state is PrinterState.UNKNOWN
    assert printer.print_receipt(sale("INV-2"), "sale-2").state is JobState.FAILED

    simulated.replug()
    assert printer.status().state is PrinterState.OK
    assert printer.retry("sale-2").state is JobState.PRINTED
    assert simulated.wait_for_receipts(2)
    assert [r.barcodes for r in simulated.receipts] == [
        [Barcode("CODE128", "INV-1")],
        [Barcode("CODE128", "INV-2")],
    ]


# --------------------------------------------------------------- idempotence


def test_the_same_job_prints_once_however_often_it_is_asked_for(
    simulated: SimulatedPrinter,
) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    for _ in range(3):
        assert printer.print_receipt(sale(), "sale-1").state is JobState.PRINTED
    assert printer.retry("sale-1").attempts == 1
    printer.reprint(sale(), "reprint-1")
    assert simulated.wait_for_receipts(2)
    assert len(simulated.receipts) == 2


def test_a_reprint_request_prints_one_copy_per_request_id(simulated: SimulatedPrinter) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    printer.print_receipt(sale(), "sale-1")
    printer.reprint(sale(), "reprint-1")
    printer.reprint(sale(), "reprint-1")
    printer.reprint(sale(), "reprint-2")
    assert simulated.wait_for_receipts(3)
    reprints = [r for r in simulated.receipts if "*** REPRINT ***" in r.lines]
    assert len(simulated.receipts) == 3
    assert len(reprints) == 2


def test_a_failed_job_is_retried_once_per_request(simulated: SimulatedPrinter) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    simulated.paper_out()
    printer.print_receipt(sale(), "sale-1")
    printer.retry("sale-1")
    assert printer.job("sale-1").attempts == 2
    assert printer.job("sale-1").state is JobState.FAILED


def test_reusing_a_job_id_for_another_receipt_is_refused() -> None:
    printer = ReceiptPrinter(Dummy())
    printer.print_receipt(sale("INV-1"), "sale-1")
    with pytest.raises(ValueError, match=r"'sale-1'.*'INV-1'"):
        printer.print_receipt(sale("INV-2"), "sale-1")


def test_asking_about_an_unknown_job_names_it() -> None:
    with pytest.raises(KeyError, match="'sale-9'"):
        ReceiptPrinter(Dummy()).retry("sale-9")


# ------------------------------------------------------------------ transports


def test_a_write_only_printer_reports_unknown_and_still_prints(tmp_path: Path) -> None:
    device = tmp_path / "lp0"
    device.touch()
    printer = ReceiptPrinter(File(devfile=str(device)))
    status = printer.status()
    assert status.state is PrinterState.UNKNOWN
    assert "cannot report" in status.reason
    assert printer.print_receipt(sale(), "sale-1").state is JobState.PRINTED
    assert device.read_bytes() == GOLDEN


# --------------------------------------------------------------- cash drawer


def test_the_drawer_opens_through_the_printer_once_per_kick_id(
    simulated: SimulatedPrinter,
) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    printer.open_drawer("sale-1")
    printer.open_drawer("sale-1")
    assert simulated.wait_for_kicks(1)
    printer.open_drawer("sale-2")
    assert simulated.wait_for_kicks(2)
    assert simulated.drawer_kicks == 2


def test_the_drawer_pulse_is_escpos_kick_on_pin_2() -> None:
    printer = Dummy()
    ReceiptPrinter(printer).open_drawer()
    assert printer.output == b"\x1bp\x00\x32\x32"  # ESC p 0, 100 ms on, 100 ms off


def test_a_drawer_kick_that_cannot_be_sent_raises_a_printer_error(
    simulated: SimulatedPrinter,
) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    simulated.unplug()
    with pytest.raises(PrinterError, match="drawer kick not sent"):
        printer.open_drawer()


# ------------------------------------------------------------------ hangs


class HungPrinter(Dummy):  # type: ignore[misc]
    """A printer whose link accepts nothing and never errors, like a stalled USB endpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def _raw(self, msg: bytes) -> None:
        self.release.wait()

    def _read(self) -> bytes:
        self.release.wait()
        return b""


def test_a_hung_printer_gives_unknown_and_a_queued_job_but_never_blocks_the_display() -> None:
    hung = HungPrinter()
    printer = ReceiptPrinter(hung, timeout_s=0.1, status_timeout_s=0.1)
    try:
        assert printer.status().state is PrinterState.UNKNOWN
        job = printer.print_receipt(sale(), "sale-1")
        assert job.state is JobState.FAILED
        assert "no answer" in job.reason

        port = io.BytesIO()
        display = CustomerDisplay(port, EPSON)
        display.show("SN-1 OK", "TOTAL 5.00")
        glass = DisplayDecoder("epson")
        glass.feed(port.getvalue())
        assert glass.lines[0].rstrip() == "SN-1 OK"
    finally:
        hung.release.set()


def test_the_async_calls_run_side_by_side_on_the_event_loop(
    simulated: SimulatedPrinter,
) -> None:
    printer = ReceiptPrinter(network_printer(simulated))
    display = CustomerDisplay(io.BytesIO(), EPSON)

    async def checkout() -> tuple[object, ...]:
        return tuple(
            await asyncio.gather(
                printer.print_receipt_async(sale(), "sale-1"),
                display.show_async("THANK YOU", "TOTAL 1388.50"),
                printer.status_async(),
            )
        )

    job, _, status = asyncio.run(checkout())
    assert job.state is JobState.PRINTED  # type: ignore[attr-defined]
    assert status.state is PrinterState.OK  # type: ignore[attr-defined]
    assert simulated.wait_for_receipts(1)
    asyncio.run(printer.reprint_async(sale(), "reprint-1"))
    asyncio.run(printer.open_drawer_async("kick-1"))
    assert simulated.wait_for_receipts(2)
    assert simulated.wait_for_kicks(1)


def test_python_escpos_notes_stay_off_standard_output(capsys: pytest.CaptureFixture[str]) -> None:
    render_receipt(sale())  # python-escpos says "Using hardware barcode renderer" here
    assert capsys.readouterr().out == ""
