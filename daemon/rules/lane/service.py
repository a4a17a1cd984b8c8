"""The lane's inputs that are not items: attendants, devices, time, and restarts.

Handlers for `daemon.rules.lane.machine.TABLE`: an attendant's badge or PIN (`release`), the
help button, bad scans and scanner trouble, device faults, receipts that did or did
not print, a reprint, the basket found open at start, and deadlines passing.
"""

from __future__ import annotations

from daemon.rules.barcode import PlainLabel, Rejected
from daemon.rules.lane import text
from daemon.rules.lane.manager import decline
from daemon.rules.lane.modes import leave_mode
from daemon.rules.lane.sale import serial_timed_out
from daemon.rules.lane.steps import (
    Step,
    accept,
    ignore,
    lock,
    prompt,
    refuse,
    resting_display,
    with_op,
)
from daemon.rules.lane.types import (
    AttendantRelease,
    Busy,
    Command,
    CommandName,
    DeviceChanged,
    Effects,
    Input,
    LaneSettings,
    LaneState,
    Light,
    Mode,
    Notice,
    Now,
    Printed,
    ReceiptOwed,
    RecordRelease,
    Recovered,
    Scanned,
    ScannerTrouble,
    Tick,
    Verdict,
)


def badge(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    assert isinstance(event.parsed, PlainLabel)
    code = event.parsed.text
    # A manager may do whatever an attendant may.
    name = cfg.badges[code] if code in cfg.badges else cfg.managers[code]
    return release(state, AttendantRelease(name, "badge"), now, cfg)


def release(state: LaneState, event: AttendantRelease, now: Now, cfg: LaneSettings) -> Step:
    held = state.lock
    assert held is not None
    if state.pending is not None:
        return ignore(state, "releasing", "the release is being recorded")
    sending, op_id = with_op(state)
    op = RecordRelease(op_id, event.attendant, event.method, held.code, held.message)
    return sending.evolve(pending=op), Effects(
        ledger=op, prompt=f"released by {event.attendant} ({event.method})"
    )


def still_locked(state: LaneState, event: Input, now: Now, cfg: LaneSettings) -> Step:
    held = state.lock
    why = held.message if held else "an attendant is needed"
    return ignore(state, "locked", f"waiting for an attendant's badge or PIN: {why}")


def call_for_help(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    return lock(
        state, "help_requested", f"help asked for at lane {cfg.terminal}", resume=state.mode
    )


# ----------------------------------------------------------- inputs in any mode


def bad_scan(state: LaneState, event: Scanned, now: Now, cfg: LaneSettings) -> Step:
    parsed = event.parsed
    assert isinstance(parsed, Rejected)
    return refuse(state, cfg, "bad_scan", parsed.message, "SCAN FAILED")


def scanner_trouble(state: LaneState, event: ScannerTrouble, now: Now, cfg: LaneSettings) -> Step:
    device = f"scanner {event.source}"
    if event.reason in ("disconnected", "reconnected"):
        devices = dict(state.devices)
        if event.connected:
            devices.pop(device, None)
        else:
            devices[device] = event.message
        changed = state.evolve(devices=devices)
        return prompt(changed, event.reason, event.message, _at_rest(changed) or state.display)
    if state.mode is Mode.ATTENDANT_NEEDED:
        return ignore(state, "bad_scan", event.message)
    return refuse(state, cfg, "bad_scan", event.message, "SCAN FAILED")


def device_changed(state: LaneState, event: DeviceChanged, now: Now, cfg: LaneSettings) -> Step:
    devices = dict(state.devices)
    if event.working:
        devices.pop(event.device, None)
        message = f"{event.device} is working again"
    else:
        devices[event.device] = event.message
        message = f"{event.device}: {event.message}"
    changed = state.evolve(devices=devices)
    # Only a device gone or back changes the display, not new words about one still away.
    moved = devices.keys() != state.devices.keys()
    return changed, Effects(
        display=_at_rest(changed) if moved else None,
        prompt=message if moved else None,
        verdict=Verdict("prompt", "device", message),
    )


def _at_rest(state: LaneState) -> tuple[str, str] | None:
    """The display again, when the lane is at rest: it says which device to check."""
    if state.mode is Mode.IDLE and state.basket is None and state.pending is None:
        return resting_display(state)
    return None


def printed(state: LaneState, event: Printed, now: Now, cfg: LaneSettings) -> Step:
    if event.ok:
        still = None if state.receipt_waiting == event.invoice else state.receipt_waiting
        message = f"receipt {event.invoice} printed"
        return state.evolve(receipt_waiting=still), Effects(
            verdict=Verdict("accepted", "printed", message)
        )
    waiting = state.evolve(receipt_waiting=event.invoice)
    message = (
        f"the receipt of {event.invoice} did not print ({event.reason}); the sale is saved. "
        "Fix the printer: the receipt prints by itself once the printer is back (or REPRINT)"
    )
    if cfg.self_checkout and state.mode is not Mode.ATTENDANT_NEEDED:
        return lock(waiting, "receipt_failed", message, resume=state.mode)
    if state.mode is Mode.IDLE:
        return waiting, Effects(
            display=("THANK YOU", "RECEIPT TO FOLLOW"),
            light=Light.AMBER,
            prompt=message,
            verdict=Verdict("refused", "receipt_failed", message),
        )
    return waiting, Effects(prompt=message, verdict=Verdict("refused", "receipt_failed", message))


def receipt_owed(state: LaneState, event: ReceiptOwed, now: Now, cfg: LaneSettings) -> Step:
    """A receipt still owed from before a restart: print it (the printer queues it until
    it can, and it prints once)."""
    invoice = event.receipt.invoice
    waiting = state.evolve(receipt_waiting=invoice, last_receipt=event.receipt)
    message = (
        f"the receipt of {invoice} did not print before the restart; it prints by itself "
        "once the printer can"
    )
    return waiting, Effects(
        receipt=event.receipt, verdict=Verdict("prompt", "receipt_owed", message)
    )


def reprint(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    if state.last_receipt is None:
        return refuse(state, cfg, "nothing_to_reprint", "no receipt has been printed yet")
    invoice = state.last_receipt.invoice
    return state, Effects(
        reprint=True,
        prompt=f"printing receipt {invoice} again",
        verdict=Verdict("accepted", "reprint", f"receipt {invoice} sent to the printer again"),
    )


def recovered(state: LaneState, event: Recovered, now: Now, cfg: LaneSettings) -> Step:
    if event.saved:
        after = state.evolve(
            last_receipt=event.receipt or state.last_receipt,
            receipt_waiting=event.invoice if event.receipt else None,
        )
        message = (
            f"invoice {event.invoice} ({text.money(event.total_cents)}) was saved before the "
            "restart" + ("; its receipt may not have printed: REPRINT it" if event.receipt else "")
        )
        display = ("LAST SALE SAVED", text.row(event.invoice, text.money(event.total_cents)))
        after = after.evolve(
            notice=Notice("last_sale_saved", message, event.invoice, event.total_cents)
        )
        return accept(after, "last_sale_saved", message, display, beep=None)
    message = (
        f"the basket of {event.invoice} was not paid before the restart, so nothing of it "
        "was sold; scan its items again"
    )
    lost = state.evolve(notice=Notice("last_sale_lost", message, event.invoice))
    return prompt(lost, "last_sale_lost", message, ("LAST SALE NOT SAVED", "PLEASE SCAN AGAIN"))


def ledger_busy(state: LaneState, event: Busy, now: Now, cfg: LaneSettings) -> Step:
    """The ledger was busy with another program's writing: nothing was done, the lane
    stays as it was, and the person at it is asked to try again."""
    return refuse(state, cfg, "ledger_busy", event.message, "PLEASE WAIT")


def tick(state: LaneState, event: Tick, now: Now, cfg: LaneSettings) -> Step:
    if state.deadline is None or now.monotonic < state.deadline or state.pending is not None:
        return state, Effects()
    if state.mode is Mode.AWAITING_SERIAL:
        return serial_timed_out(state, cfg)
    if state.mode in (Mode.RETURN, Mode.RECEIVING, Mode.WRITE_OFF):
        return leave_mode(state, Command(CommandName.CANCEL, source="timeout"), now, cfg)
    if state.mode is Mode.MANAGER_NEEDED:
        return decline(state, event, now, cfg)
    if state.mode is Mode.IN_SALE and cfg.self_checkout:
        return lock(
            state,
            "abandoned_basket",
            f"nothing scanned for {cfg.abandoned_sale_s:g} s with items in the basket",
            resume=Mode.IN_SALE,
        )
    return state.evolve(deadline=None), Effects()


def not_locked(state: LaneState, event: Input, now: Now, cfg: LaneSettings) -> Step:
    return ignore(state, "not_locked", "the lane is not waiting for an attendant")


def device_status(state: LaneState, event: Command, now: Now, cfg: LaneSettings) -> Step:
    """STATUS: which devices are missing, on the display and in full for the kiosk."""
    devices = state.devices
    if not devices:
        return accept(state, "devices_ok", "every device is working", ("DEVICES", "ALL WORKING"))
    names = sorted(name.split()[0].upper() for name in devices)
    message = "; ".join(f"{name}: {why}" for name, why in sorted(devices.items()))
    display = ("MISSING", text.line(" ".join(dict.fromkeys(names))))
    return accept(state, "devices_missing", message, display, beep=None)
