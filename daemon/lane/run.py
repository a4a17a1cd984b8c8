"""`posd run`: the daemon. One asyncio loop wires scanners -> lane -> ledger -> outputs.

    daemon = await start(config)          # ledger open, devices enumerated, API up
    ...                                   # systemd has been told READY=1
    await daemon.stop()                   # SIGTERM does this: finish the input in hand

Threads only do blocking device and ledger work handed to them by the loop (the
drivers' device workers, the ledger thread); everything the lane decides happens on
the loop, one input at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from gpiozero.pins import Factory

from daemon.config.model import PosdConfig
from daemon.drivers.gpio import AttendantButton
from daemon.drivers.kinds import KINDS
from daemon.drivers.registry import DeviceKinds
from daemon.drivers.scanner import ReadingScanner
from daemon.lane.api import Api, PinHolder, start_api
from daemon.lane.attendants import FILE_NAME, PinGuard
from daemon.lane.devices import (
    DeviceStartError,
    display_output,
    gpio_board,
    gpio_outputs,
    help_button,
    printer_output,
    scanners,
)
from daemon.lane.ledger import LaneLedger, open_ledger
from daemon.lane.loop import Lane
from daemon.lane.outputs import Background, Outputs
from daemon.lane.recovery import recover
from daemon.lane.screen.web import ScreenInfo
from daemon.ledger import LedgerError
from daemon.ledger.errors import LedgerDamaged, StorageFull
from daemon.rules.lane.machine import initial_state
from daemon.rules.lane.types import Command, CommandName, LaneSettings
from daemon.sdnotify import Notifier, NotifySendError, arm_stall_trigger, pet_watchdog

if TYPE_CHECKING:
    # Imported when the lane replicates (`start`): a lane without HQ doesn't load MQTT.
    from daemon.replication.terminal import ReplicationStatus, Replicator

log = logging.getLogger(__name__)
STOP_GRACE_S = 5.0
EX_CONFIG = 78  # the lane cannot run as configured; systemd does not restart it


def lane_settings(config: PosdConfig) -> LaneSettings:
    lane = config.lane
    return LaneSettings(
        terminal=config.terminal.id,
        branch=config.terminal.branch,
        self_checkout=config.self_checkout,
        currency=config.terminal.currency,
        serial_timeout_s=lane.serial_timeout_s,
        mode_timeout_s=lane.mode_timeout_s,
        abandoned_sale_s=lane.abandoned_sale_s,
        return_condition=lane.return_condition,
        return_disposition=lane.disposition(),
        supplier=lane.supplier,
        walk_in_customer=lane.walk_in_customer,
        badges={a.badge: a.name for a in config.attendants if a.badge},
        managers={m.badge: m.name for m in config.managers if m.badge},
    )


@dataclass
class Daemon:
    """A running lane and everything it owns."""

    config: PosdConfig
    lane: Lane
    ledger: LaneLedger
    outputs: Outputs
    background: Background
    api_port: int | None = None
    api_runner: web.AppRunner | None = None
    button: AttendantButton | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    lane_task: asyncio.Task[None] | None = None
    replicator: Replicator | None = None
    kinds: DeviceKinds = KINDS  # the device kinds its configuration was read with

    async def stop(self) -> None:
        """Stop taking input, finish the one in hand, then close every device."""
        if self.outputs.display is not None:
            self.outputs.display.stop()
        await _cancel(self.tasks)
        deadline = time.monotonic() + STOP_GRACE_S
        while self.lane.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.lane.stop_ticks()
        if self.lane_task is not None:
            await _cancel([self.lane_task])
        self.lane.close_subscriptions()
        if self.api_runner is not None:
            await self.api_runner.cleanup()
        await self.background.close()
        loop = asyncio.get_running_loop()
        if self.replicator is not None:
            await loop.run_in_executor(None, self.replicator.stop)
        for part in (self.outputs.display, self.outputs.gpio, self.outputs.printer, self.button):
            if part is not None:
                with contextlib.suppress(Exception):  # closing a dead device
                    part.close()
        await asyncio.get_running_loop().run_in_executor(None, self.ledger.close)


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    if tasks:
        _, stuck = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
        for task in stuck:
            log.warning("task %s did not stop within %g s", task.get_name(), STOP_GRACE_S)


async def start(
    config: PosdConfig,
    *,
    factory: Factory | None = None,
    kinds: DeviceKinds = KINDS,
    monotonic: Callable[[], float] = time.monotonic,
    wall: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Daemon:
    """Open the ledger, make the devices, start reading and serving; DeviceStartError when
    the configuration does not fit this terminal or its ledger. `kinds` are the device
    kinds `config` was read with."""
    try:
        ledger = open_ledger(config.ledger.path)
    except (LedgerDamaged, StorageFull):
        raise
    except LedgerError as error:
        raise DeviceStartError(str(error)) from None
    if ledger.cannot_write is not None:
        ledger.close()
        raise StorageFull(f"the lane cannot sell: {ledger.cannot_write}")
    if (ledger.terminal, ledger.branch) != (config.terminal.id, config.terminal.branch):
        ledger.close()
        raise DeviceStartError(
            f"the ledger at {config.ledger.path} belongs to terminal {ledger.terminal} at "
            f"branch {ledger.branch}, but terminal.id is {config.terminal.id!r} and "
            f"terminal.branch {config.terminal.branch!r}; fix the configuration or the path"
        )
    lane_ledger = LaneLedger(ledger, actor=config.operator)
    settings = lane_settings(config)
    background = Background()
    outputs = Outputs()
    first = lane_ledger.journal.next_invoice(f"{settings.terminal}-")
    lane = Lane(
        settings,
        lane_ledger,
        outputs,
        options=config.barcode.options(),
        state=initial_state(first),
        background=background,
        monotonic=monotonic,
        wall=wall,
    )
    daemon = Daemon(config, lane, lane_ledger, outputs, background, kinds=kinds)
    try:
        await _fit_devices(daemon, factory)
    except BaseException:
        await daemon.stop()
        raise
    if config.replication is not None:
        from daemon.replication.terminal import Replicator, on_loop

        daemon.replicator = Replicator(
            config.replication,
            config.ledger.path,
            notify=on_loop(asyncio.get_running_loop(), _replication_logger()),
        )
        daemon.replicator.start()
    return daemon


def _replication_logger() -> Callable[[ReplicationStatus], None]:
    """Log when the link to HQ comes or goes, or a new error appears; the lane keeps
    selling either way and the ledger keeps every event until HQ has stored it."""
    last: list[tuple[bool, str | None]] = [(False, None)]

    def seen(status: ReplicationStatus) -> None:
        now = (status.connected, status.last_error)
        if now == last[0]:
            return
        if status.connected != last[0][0]:
            log.info(
                "replication %s; %d event(s) waiting for HQ",
                "connected" if status.connected else "offline",
                status.backlog,
            )
        if status.last_error and status.last_error != last[0][1]:
            log.warning("replication: %s", status.last_error)
        last[0] = now

    return seen


async def _fit_devices(daemon: Daemon, factory: Factory | None) -> None:
    config, lane = daemon.config, daemon.lane
    report = lane.submit
    outputs = daemon.outputs
    kinds = daemon.kinds
    outputs.display = display_output(config, report, kinds)
    fitted = gpio_board(config, factory, kinds)
    if fitted is not None:
        board, pins = fitted
        try:
            outputs.gpio = gpio_outputs(board, pins, report, daemon.background)
            daemon.button = help_button(
                board, pins, lambda: lane.submit(Command(CommandName.HELP, source="button"))
            )
        except ValueError as error:  # a pin taken twice or out of range
            raise DeviceStartError(f"gpio: {error}") from None
    outputs.printer = printer_output(config, report, daemon.background, kinds)
    try:
        readers = scanners(config, kinds)
    except (ValueError, LookupError) as error:
        raise DeviceStartError(f"scanners: {error}") from None
    loop = asyncio.get_running_loop()
    if outputs.display is not None:
        daemon.tasks.append(loop.create_task(outputs.display.run(), name="display"))
    if outputs.printer is not None:
        daemon.tasks.append(loop.create_task(outputs.printer.watch(), name="printer"))
    for reader in readers:
        daemon.tasks.append(loop.create_task(_read(reader, lane), name=f"scanner-{reader.source}"))
    recovered = await daemon.ledger.call(lambda _: recover(daemon.ledger, lane.settings))
    daemon.lane_task = loop.create_task(lane.run(), name="lane")
    lane.show_state()
    for said in recovered:  # the sale open at the stop, then each receipt still owed
        lane.submit(said)
    pins = [PinHolder(a.name, a.pin_hash) for a in config.attendants if a.pin_hash]
    managers = [PinHolder(m.name, m.pin_hash) for m in config.managers if m.pin_hash]
    guard = PinGuard(path=config.ledger.path.parent / FILE_NAME)
    api = Api(lane, pins, guard, managers=managers, screen=ScreenInfo.of(config))
    daemon.api_runner, daemon.api_port = await start_api(api, config.api.host, config.api.port)


async def _read(scanner: ReadingScanner, lane: Lane) -> None:
    async for item in scanner.scans():
        lane.submit(item)


def _device_status(notifier: Notifier, ready: str, missing: dict[str, str]) -> None:
    """`systemctl status posd` names the devices that are missing."""
    text = ready
    if missing:
        text += "; missing: " + "; ".join(
            f"{name} ({why})" for name, why in sorted(missing.items())
        )
    with contextlib.suppress(NotifySendError):  # a status line is not worth stopping for
        notifier.status(text)


async def serve(config: PosdConfig, *, notifier: Notifier | None = None) -> int:
    """Run the daemon until SIGTERM or SIGINT; the exit status."""
    notifier = notifier or Notifier.from_environ(os.environ)
    notifier.status("opening the ledger and the devices")
    try:
        daemon = await start(config)
    except DeviceStartError as error:
        log.error("%s", error)
        notifier.status(f"cannot start: {error}")
        return EX_CONFIG
    except LedgerDamaged as error:
        # Not a ledger posd can use: restarting cannot help (the unit does not).
        log.error("cannot start: %s", error)
        notifier.status(f"cannot start: {error}")
        return error.exit_status
    except StorageFull as error:
        # systemd starts it again (Restart=on-failure) until there is room.
        log.error("cannot start: %s", error)
        notifier.status(f"cannot start: {error}")
        return 1
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    watchdog = loop.create_task(pet_watchdog(notifier), name="watchdog")
    arm_stall_trigger(loop, os.environ)  # test only; see its docstring
    ready = f"lane {config.terminal.id} ready; kiosk API on {config.api.host}:{daemon.api_port}"
    daemon.lane.on_devices = lambda missing: _device_status(notifier, ready, missing)
    # Everything made so far lives as long as the daemon: keep it out of the garbage
    # collector's full passes, which would otherwise walk it in the middle of a scan.
    gc.freeze()
    notifier.ready(status=ready)
    if daemon.lane.state.devices:  # already missing at start
        _device_status(notifier, ready, dict(daemon.lane.state.devices))
    log.info("lane %s ready; kiosk API on port %s", config.terminal.id, daemon.api_port)
    await stopping.wait()
    with contextlib.suppress(NotifySendError):  # stopping either way
        notifier.stopping()
    log.info("stopping")
    watchdog.cancel()
    await daemon.stop()
    return 0
