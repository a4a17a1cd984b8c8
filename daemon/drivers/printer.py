"""Receipt printer through python-escpos, with a print queue that never prints a job twice.

Give ``ReceiptPrinter`` a python-escpos printer object: ``escpos.printer.Serial``,
``File`` (a USB printer at ``/dev/usb/lp0``), ``Network`` (port 9100) or ``Dummy`` in
tests. What the model can do (columns, cutter, barcode functions, code pages) comes from
the printer's escpos ``profile``, not from branches here.

Every call runs on the printer's own thread with a deadline. Status is ``ok``, ``error``
(with a reason) or ``unknown``; a printer that does not answer is ``unknown``, never
"out of paper". A receipt that cannot print stays queued under its job id and prints
again only when asked, and a job that printed is never printed again.
"""

from __future__ import annotations

import contextlib
import enum
import io
import logging
import termios
import textwrap
import threading
import unicodedata
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal

import escpos.exceptions
import serial
from escpos.escpos import Escpos
from escpos.magicencode import Encoder, MagicEncode
from escpos.printer import Dummy

from daemon.drivers.base import DeviceTimeout, DeviceWorker, PrinterError, spell_out

log = logging.getLogger(__name__)
MASK = "\u2022"  # bullet; python-escpos picks a code page that has it
REPRINT_MARK = "*** REPRINT ***"


# ------------------------------------------------------------------------ receipt


class SerialShown(enum.Enum):
    """How much of a unit's serial the receipt shows."""

    MASKED = "masked"  # last four characters only
    FULL = "full"


@dataclass(frozen=True)
class ReceiptLine:
    description: str
    price: Decimal
    serial: str | None = None
    serial_shown: SerialShown = SerialShown.MASKED
    warranty_ends: date | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.price, Decimal):
            raise TypeError(
                f"price {self.price!r} of {self.description!r} must be a Decimal, "
                "so totals add up to the cent"
            )


@dataclass(frozen=True)
class ReceiptTender:
    method: str  # "Cash", "Card", ...
    amount: Decimal


@dataclass(frozen=True)
class Receipt:
    """Everything printed on one customer receipt."""

    store: str
    branch: str
    terminal_id: str
    invoice_number: str
    issued_at: datetime
    cashier: str
    lines: tuple[ReceiptLine, ...]
    tenders: tuple[ReceiptTender, ...] = ()
    footer: tuple[str, ...] = ()
    currency: str = ""

    def __post_init__(self) -> None:
        if not self.lines:
            raise ValueError(f"receipt {self.invoice_number!r} has no lines; add what was sold")
        if not self.invoice_number or not all(" " <= c <= "~" for c in self.invoice_number):
            raise ValueError(
                f"invoice number {self.invoice_number!r} cannot go in a CODE128 barcode; "
                "use printable ASCII letters, digits and punctuation"
            )

    @property
    def total(self) -> Decimal:
        return sum((line.price for line in self.lines), Decimal("0"))

    @property
    def paid(self) -> Decimal:
        return sum((tender.amount for tender in self.tenders), Decimal("0"))

    @property
    def change(self) -> Decimal:
        return max(self.paid - self.total, Decimal("0"))


def mask_serial(serial_number: str, visible: int = 4) -> str:
    """``SN-00071234`` -> ``•••••••1234``: enough for the customer to match the unit."""
    hidden = max(len(serial_number) - visible, 0)
    return MASK * hidden + serial_number[hidden:]


class _Text:
    """Turns receipt text into what this printer model can print."""

    def __init__(self, profile: object) -> None:
        # A separate encoder: asking python-escpos's own one would change its choices.
        self._encoder = Encoder(profile.get_code_pages())  # type: ignore[attr-defined]
        self._known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        return "".join(self._char(c) for c in text)

    def _char(self, char: str) -> str:
        if " " <= char <= "~":
            return char
        if char not in self._known:
            if unicodedata.category(char).startswith("C"):
                # A control character in a description or serial would reach the
                # printer as a command (a cut, a drawer kick).
                self._known[char] = "?"
            elif self._encoder.find_suitable_encoding(char):
                self._known[char] = char
            else:
                self._known[char] = spell_out(char)
        return self._known[char]


def _money(amount: Decimal, currency: str) -> str:
    figure = f"{amount:.2f}"
    return f"{currency} {figure}" if currency else figure


def _two_columns(left: str, right: str, width: int) -> str:
    room = max(width - len(right) - 1, 0)
    return left[:room].ljust(room) + " " + right


def _invoice_barcode(p: Escpos, invoice_number: str) -> None:
    # python-escpos prints which renderer it used ("Using hardware barcode renderer")
    # on standard output, into a command's JSON or the walk-through: a debug note instead.
    with contextlib.redirect_stdout(io.StringIO()) as notes:
        _draw_invoice_barcode(p, invoice_number)
    if notes.getvalue().strip():
        log.debug("python-escpos: %s", notes.getvalue().strip())


def _draw_invoice_barcode(p: Escpos, invoice_number: str) -> None:
    if p.profile.supports("barcodeB"):
        # "{B": CODE128 code set B, which covers all printable ASCII
        p.barcode(
            "{B" + invoice_number,
            "CODE128",
            height=64,
            width=2,
            pos="BELOW",
            function_type="B",
            align_ct=True,
        )
        return
    try:
        # No CODE128 in this model's firmware: python-escpos draws it as an image.
        p.barcode(invoice_number, "CODE128", height=64, width=2, force_software=True)
    except escpos.exceptions.BarcodeTypeError:
        p.set(align="center")
        p.textln(invoice_number)  # nothing can draw it; the number still reads back


def render_receipt(receipt: Receipt, *, profile: object = None, reprint: bool = False) -> bytes:
    """The exact ESC/POS bytes of ``receipt`` for a printer with this escpos ``profile``
    (python-escpos's default profile when None). ``reprint`` marks the copy REPRINT."""
    p = Dummy()
    if profile is not None:
        # escpos accepts only user-made profiles in the constructor; a built-in model's
        # profile is set afterwards, with the code-page chooser rebuilt from it.
        p.profile = profile
        p.magic = MagicEncode(p)
    width = int(p.profile.get_columns("a"))
    text = _Text(p.profile)
    currency = text(receipt.currency)

    def row(left: str, right: str) -> None:
        p.textln(_two_columns(left, right, width))

    p.hw("INIT")
    p.set(align="center", bold=True, double_width=True, double_height=True)
    p.textln(text(receipt.store)[: width // 2])
    p.set(normal_textsize=True, bold=False)
    p.textln(text(receipt.branch)[:width])
    if reprint:
        p.set(bold=True)
        p.textln(REPRINT_MARK)
        p.set(bold=False)
    p.set(align="left")
    row(f"Terminal {text(receipt.terminal_id)}", f"Invoice {receipt.invoice_number}")
    row(receipt.issued_at.strftime("%Y-%m-%d %H:%M"), f"Cashier {text(receipt.cashier)}")
    p.textln("-" * width)
    for line in receipt.lines:
        price = _money(line.price, currency)
        described = textwrap.wrap(text(line.description), max(width - len(price) - 1, 1)) or [""]
        row(described[0], price)
        for more in described[1:]:
            p.textln(more)
        if line.serial is not None:
            full = line.serial_shown is SerialShown.FULL
            p.textln(f"  S/N {text(line.serial if full else mask_serial(line.serial))}")
        if line.warranty_ends is not None:
            p.textln(f"  Warranty until {line.warranty_ends.isoformat()}")
    p.textln("-" * width)
    p.set(bold=True)
    row("TOTAL", _money(receipt.total, currency))
    p.set(bold=False)
    for tender in receipt.tenders:
        row(text(tender.method), _money(tender.amount, currency))
    if receipt.change:
        row("Change", _money(receipt.change, currency))
    p.ln()
    _invoice_barcode(p, receipt.invoice_number)
    p.ln()
    for footer in receipt.footer:
        p.textln(text(footer)[:width])
    if reprint:
        p.textln(REPRINT_MARK)
    p.cut()
    return bytes(p.output)


# ------------------------------------------------------------------------- status


class PrinterState(enum.Enum):
    OK = "ok"
    ERROR = "error"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class PrinterStatus:
    state: PrinterState
    reason: str = ""  # why ERROR or UNKNOWN; a note such as "paper low" with OK

    def __str__(self) -> str:
        return f"{self.state.value} ({self.reason})" if self.reason else self.state.value


# DLE EOT n: real-time status. Answers carry fixed bits (bit 1 and 4 set, 0 and 7 clear).
_DLE_EOT = b"\x10\x04"
_FIXED_MASK, _FIXED_BITS = 0x93, 0x12
_PRINTER, _OFFLINE_CAUSE, _ERROR_CAUSE, _PAPER_SENSOR = 1, 2, 3, 4
_OFFLINE = 0x08  # in the _PRINTER answer
_HAS_ERROR = 0x40  # in the _OFFLINE_CAUSE answer
_PAPER_LOW = 0x0C  # in the _PAPER_SENSOR answer
_FAULTS: tuple[tuple[int, int, str], ...] = (  # (request, bits, what a person is told)
    (_PAPER_SENSOR, 0x60, "paper out"),
    (_OFFLINE_CAUSE, 0x20, "paper out"),
    (_OFFLINE_CAUSE, 0x04, "cover open"),
    (_ERROR_CAUSE, 0x08, "paper cutter jammed"),
    (_ERROR_CAUSE, 0x20, "unrecoverable error; switch the printer off and on"),
    (_ERROR_CAUSE, 0x40, "print head too hot; wait for it to cool"),
)


def _answers_status(printer: Escpos) -> bool:
    # Dummy and File cannot read back; Serial, Network and Usb override _read.
    return type(printer)._read is not Escpos._read


def _ask(printer: Escpos, request: int) -> int | None:
    """Send DLE EOT ``request``; the answer byte, or None when the printer kept quiet."""
    device = printer.device
    query = _DLE_EOT + bytes([request])
    try:
        if isinstance(device, serial.Serial):
            # python-escpos reads 16 bytes, which waits out the whole serial timeout
            # even after the one-byte answer; read exactly one.
            device.reset_input_buffer()
            printer._raw(query)
            answer = device.read(1)
        else:
            answer = printer.query_status(query)
    except TimeoutError:
        return None
    if not answer or answer[-1] & _FIXED_MASK != _FIXED_BITS:
        return None
    return int(answer[-1])


def read_status(printer: Escpos) -> PrinterStatus:
    """Ask the printer how it is, over DLE EOT. Blocking; ``ReceiptPrinter`` wraps it."""
    if not _answers_status(printer):
        return PrinterStatus(PrinterState.UNKNOWN, "this connection cannot report status")
    answers: dict[int, int] = {}
    wanted = [_PRINTER, _PAPER_SENSOR]
    while wanted:
        request = wanted.pop(0)
        answer = _ask(printer, request)
        if answer is None:
            quiet = "no answer" if not answers else "stopped answering"
            return PrinterStatus(
                PrinterState.UNKNOWN, f"{quiet} to status request DLE EOT {request}"
            )
        answers[request] = answer
        if request == _PRINTER and answer & _OFFLINE:
            wanted.append(_OFFLINE_CAUSE)
        if request == _OFFLINE_CAUSE and answer & _HAS_ERROR:
            wanted.append(_ERROR_CAUSE)
    faults = [why for request, bits, why in _FAULTS if answers.get(request, 0) & bits]
    if faults:
        return PrinterStatus(PrinterState.ERROR, ", ".join(dict.fromkeys(faults)))
    if answers[_PRINTER] & _OFFLINE:
        return PrinterStatus(PrinterState.ERROR, "offline")
    if answers[_PAPER_SENSOR] & _PAPER_LOW:
        return PrinterStatus(PrinterState.OK, "paper low")
    return PrinterStatus(PrinterState.OK)


# --------------------------------------------------------------------- print queue


class JobState(enum.Enum):
    QUEUED = "queued"  # waiting for a (first or further) attempt
    PRINTING = "printing"
    PRINTED = "printed"
    FAILED = "failed"  # stays queued; print again with retry()


@dataclass(frozen=True)
class PrintJob:
    id: str
    receipt: Receipt
    reprint: bool = False
    state: JobState = JobState.QUEUED
    attempts: int = 0
    reason: str = ""

    @property
    def waiting(self) -> bool:
        """Still owed to the customer."""
        return self.state is not JobState.PRINTED


# What a dead link raises: socket and tty errors, pyserial's (OSError too), termios
# calls on a vanished tty, and python-escpos's DeviceNotFoundError on reopening.
_Transport = (OSError, termios.error, escpos.exceptions.Error)


@dataclass
class _Queue:
    jobs: dict[str, PrintJob] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ReceiptPrinter:
    """The lane's receipt printer.

    ``printer``: a python-escpos printer object (``Serial``, ``File``, ``Network``,
    ``Usb`` or ``Dummy``). ``timeout_s`` bounds one print job, ``status_timeout_s`` one
    status check or drawer kick. ``drawer_pin`` is the kick connector pin (2 or 5).

    Print methods do not raise for printer trouble: they return the ``PrintJob``, whose
    ``state`` and ``reason`` say what happened.
    """

    def __init__(
        self,
        printer: Escpos,
        *,
        timeout_s: float = 10.0,
        status_timeout_s: float = 2.0,
        drawer_pin: int = 2,
        name: str = "printer",
    ) -> None:
        if drawer_pin not in (2, 5):
            raise ValueError(
                f"drawer pin {drawer_pin!r} does not exist; the kick connector has 2 and 5"
            )
        self._printer = printer
        self.timeout_s = timeout_s
        self.status_timeout_s = status_timeout_s
        self.drawer_pin = drawer_pin
        self._worker = DeviceWorker(name)
        self._queue = _Queue()
        self._kicks_done: set[str] = set()

    # status

    def status(self) -> PrinterStatus:
        try:
            return self._worker.call(self.status_timeout_s, self._status_now)
        except DeviceTimeout:
            return PrinterStatus(
                PrinterState.UNKNOWN, f"no answer within {self.status_timeout_s:g} s"
            )

    async def status_async(self) -> PrinterStatus:
        try:
            return await self._worker.call_async(self.status_timeout_s, self._status_now)
        except DeviceTimeout:
            return PrinterStatus(
                PrinterState.UNKNOWN, f"no answer within {self.status_timeout_s:g} s"
            )

    # printing

    def print_receipt(self, receipt: Receipt, job_id: str) -> PrintJob:
        """Print ``receipt`` as job ``job_id``, unless that job already printed."""
        return self._run(self._enqueue(job_id, receipt, reprint=False))

    async def print_receipt_async(self, receipt: Receipt, job_id: str) -> PrintJob:
        return await self._run_async(self._enqueue(job_id, receipt, reprint=False))

    def reprint(self, receipt: Receipt, job_id: str) -> PrintJob:
        """Print a copy marked REPRINT. ``job_id`` names this request: asking twice with
        the same id prints one copy."""
        return self._run(self._enqueue(job_id, receipt, reprint=True))

    async def reprint_async(self, receipt: Receipt, job_id: str) -> PrintJob:
        return await self._run_async(self._enqueue(job_id, receipt, reprint=True))

    def retry(self, job_id: str) -> PrintJob:
        """One more attempt at a queued job; a job that printed is left alone."""
        return self._run(self.job(job_id))

    async def retry_async(self, job_id: str) -> PrintJob:
        return await self._run_async(self.job(job_id))

    def job(self, job_id: str) -> PrintJob:
        with self._queue.lock:
            try:
                return self._queue.jobs[job_id]
            except KeyError:
                raise KeyError(f"no print job {job_id!r}; print the receipt first") from None

    @property
    def waiting(self) -> list[PrintJob]:
        """Jobs still owed to customers, oldest first."""
        with self._queue.lock:
            return [job for job in self._queue.jobs.values() if job.waiting]

    # cash drawer

    def open_drawer(self, kick_id: str | None = None) -> None:
        """Pulse the drawer connector (ESC p). A repeated ``kick_id`` does nothing."""
        if kick_id is not None and kick_id in self._kicks_done:
            return
        try:
            self._worker.call(self.status_timeout_s, self._kick)
        except DeviceTimeout as error:
            raise PrinterError(f"drawer kick not sent: {error}") from error
        if kick_id is not None:
            self._kicks_done.add(kick_id)

    async def open_drawer_async(self, kick_id: str | None = None) -> None:
        if kick_id is not None and kick_id in self._kicks_done:
            return
        try:
            await self._worker.call_async(self.status_timeout_s, self._kick)
        except DeviceTimeout as error:
            raise PrinterError(f"drawer kick not sent: {error}") from error
        if kick_id is not None:
            self._kicks_done.add(kick_id)

    def close(self) -> None:
        self._worker.close()

    # internals: bookkeeping runs on the caller's thread, device work on the worker

    def _enqueue(self, job_id: str, receipt: Receipt, *, reprint: bool) -> PrintJob:
        with self._queue.lock:
            known = self._queue.jobs.get(job_id)
            if known is None:
                known = PrintJob(job_id, receipt, reprint)
                self._queue.jobs[job_id] = known
            elif known.receipt != receipt or known.reprint != reprint:
                raise ValueError(
                    f"print job {job_id!r} is already invoice {known.receipt.invoice_number!r}"
                    f"{' (reprint)' if known.reprint else ''}; give this receipt its own job id"
                )
            return known

    def _start(self, job: PrintJob) -> PrintJob | None:
        """Mark the job as being attempted; None if it printed or is printing now."""
        with self._queue.lock:
            job = self._queue.jobs[job.id]
            if job.state in (JobState.PRINTED, JobState.PRINTING):
                return None
            job = replace(job, state=JobState.PRINTING, attempts=job.attempts + 1, reason="")
            self._queue.jobs[job.id] = job
            return job

    def _finish(self, job: PrintJob, state: JobState, reason: str = "") -> PrintJob:
        with self._queue.lock:
            current = self._queue.jobs[job.id]
            if current.attempts == job.attempts and current.state is JobState.PRINTING:
                current = replace(current, state=state, reason=reason)
                self._queue.jobs[job.id] = current
            return current

    def _run(self, job: PrintJob) -> PrintJob:
        attempt = self._start(job)
        if attempt is None:
            return self.job(job.id)
        try:
            return self._worker.call(self.timeout_s, self._print_now, attempt)
        except DeviceTimeout as error:
            return self._timed_out(attempt, error)

    async def _run_async(self, job: PrintJob) -> PrintJob:
        attempt = self._start(job)
        if attempt is None:
            return self.job(job.id)
        try:
            return await self._worker.call_async(self.timeout_s, self._print_now, attempt)
        except DeviceTimeout as error:
            return self._timed_out(attempt, error)

    def _timed_out(self, attempt: PrintJob, error: DeviceTimeout) -> PrintJob:
        return self._finish(attempt, JobState.FAILED, f"{error}; the receipt may be partly printed")

    def _status_now(self) -> PrinterStatus:
        try:
            return read_status(self._printer)
        except _Transport as error:
            self._drop_link()
            return PrinterStatus(PrinterState.UNKNOWN, f"cannot reach the printer: {error}")

    def _print_now(self, job: PrintJob) -> PrintJob:
        if _answers_status(self._printer):
            status = self._status_now()
            if status.state is not PrinterState.OK:
                return self._finish(job, JobState.FAILED, f"printer {status}")
        data = render_receipt(job.receipt, profile=self._printer.profile, reprint=job.reprint)
        try:
            self._printer._raw(data)
        except _Transport as error:
            self._drop_link()
            return self._finish(job, JobState.FAILED, f"sending failed: {error}")
        return self._finish(job, JobState.PRINTED)

    def _kick(self) -> None:
        try:
            self._printer.cashdraw(self.drawer_pin)
        except _Transport as error:
            self._drop_link()
            raise PrinterError(f"drawer kick not sent: {error}") from error

    def _drop_link(self) -> None:
        # python-escpos reopens a closed printer on its next use, which is how a
        # replugged or rebooted printer comes back without restarting the lane.
        with contextlib.suppress(Exception):  # the link is broken; closing is best effort
            self._printer.close()
        self._printer.device = False
