"""The kiosk API on the loopback interface: the live lane, and the cashier's commands.

    GET  /api/lane                 the lane now: mode, display, light, basket, prompt
    GET  /api/events               server-sent events: every verdict and prompt as it
                                   happens (`event: lane` first, then `event: verdict`)
    POST /api/commands             {"command": "tender", "argument": "CASH:50.00"}
    POST /api/scan                 {"text": "LX-0001"}: a barcode keyed in at the kiosk
    POST /api/attendant/release    {"pin": "4821"}: an attendant releases a locked lane
    POST /api/manager/approve      {"pin": "9000"}: a manager approves what the lane
                                   waits for (an override, a void, a write-off)
    GET  /api/count                the report of the count under way (or the last one)
    GET  /api/counts/{number}      the report of any stock count
    POST /api/count/resolve        {"count", "product", "serial", "pin"}: a manager
                                   settles one difference (lost, found, moved here)
    GET  /api/journal?limit=50     the lane's last journal entries
    GET  /api/health               {"ok": true, "mode": ..., "devices": {...}}
    GET  /api/screen               what the lane screen needs: customer or cashier,
                                   languages, time-outs (`daemon.lane.screen.web`)
    GET  /                         the lane screen itself (`daemon.lane.screen`)

Commands: start, void, cancel, tender, return, receive, done, reprint, help, count,
writeoff, status. Each is the same input as its command barcode and answers with the
verdict and the lane after it. There is no log-in: the API listens on 127.0.0.1 or ::1
only (the configuration refuses anything else); releasing a lane takes an attendant's
PIN, and what only a manager may do takes a manager's. Every PIN, at either, is counted
towards one limit before its hash is checked, and the count is kept on disk across
restarts (`daemon.lane.attendants`): a burst of guesses meets the lock-out, not the hash.
Requests another web site could have made the terminal's browser send (a foreign Host,
Origin or Sec-Fetch-Site; a POST not declared JSON) are refused with 403 or 415
before any handler sees them, and every answer carries a strict Content-Security-Policy
(`daemon.lane.crosssite`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.config.model import describe
from daemon.config.pins import verify_pin
from daemon.drivers.scanner import Scan
from daemon.lane.attendants import PinGuard
from daemon.lane.crosssite import protect
from daemon.lane.ledger import LedgerUnusable
from daemon.lane.loop import Lane
from daemon.lane.screen.web import ScreenInfo, add_screen
from daemon.ledger import Ledger, Outcome, Refusal
from daemon.ledger.lane_log import Entry
from daemon.ledger.stocktake import CountedUnit, CountReport, count_report, resolve
from daemon.ledger.store import iso
from daemon.rules.lane.types import AttendantRelease, Command, CommandName, ManagerApproval, Mode
from daemon.rules.values import Identifier, Line

log = logging.getLogger(__name__)
KEEPALIVE_S = 15.0
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PinHolder:
    name: str
    pin_hash: str


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: Literal[
        "start",
        "void",
        "cancel",
        "tender",
        "return",
        "receive",
        "done",
        "reprint",
        "help",
        "count",
        "writeoff",
        "status",
    ]
    argument: Line = ""  # e.g. CASH:50.00, or a customer's name


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(min_length=1, max_length=32)


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=512)


class ResolveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: Identifier
    product: Identifier
    serial: str = Field(min_length=1, max_length=128)
    pin: str = Field(min_length=1, max_length=32)


@dataclass
class Api:
    lane: Lane
    pins: Sequence[PinHolder]  # attendants
    guard: PinGuard
    managers: Sequence[PinHolder] = ()
    screen: ScreenInfo | None = None  # None: no lane screen, the API only


API = web.AppKey("api", Api)


def make_app(api: Api) -> web.Application:
    app = web.Application()
    protect(app)
    app[API] = api
    app.router.add_get("/api/lane", lane_now)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/commands", command)
    app.router.add_post("/api/scan", scan)
    app.router.add_post("/api/attendant/release", release)
    app.router.add_post("/api/manager/approve", manager_approve)
    app.router.add_get("/api/count", count_now)
    app.router.add_get("/api/counts/{number}", count_of)
    app.router.add_post("/api/count/resolve", count_resolve)
    app.router.add_get("/api/journal", journal)
    app.router.add_get("/api/health", health)
    if api.screen is not None:
        add_screen(app, api.screen)
    app.on_shutdown.append(_end_streams)
    return app


async def start_api(api: Api, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the API; returns the runner (clean up to stop) and the port it listens on."""
    runner = web.AppRunner(make_app(api), access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # the port actually bound, when 0 (any free port) was asked
    sockets = getattr(server, "sockets", None) or []
    return runner, int(sockets[0].getsockname()[1]) if sockets else port


def _json(payload: dict[str, Any], status: int = 200) -> web.Response:
    return web.json_response(payload, status=status, dumps=lambda v: json.dumps(v, default=str))


def _bad_request(error: ValidationError) -> web.Response:
    problems = [describe(e) for e in error.errors()]
    return _json({"ok": False, "error": "; ".join(problems)}, 400)


async def _body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text=json.dumps({"ok": False, "error": "the body must be a JSON object"}),
            content_type="application/json",
        ) from None


async def lane_now(request: web.Request) -> web.Response:
    lane = request.app[API].lane
    return _json({"ok": True, "lane": lane.snapshot(), "last": lane.last or None})


async def health(request: web.Request) -> web.Response:
    snapshot = request.app[API].lane.snapshot()
    return _json(
        {
            "ok": snapshot["out_of_service"] is None,
            "mode": snapshot["mode"],
            "devices": snapshot["devices"],
        }
    )


async def command(request: web.Request) -> web.Response:
    try:
        asked = CommandRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    lane = request.app[API].lane
    return await _answer(lane, Command(CommandName(asked.command.upper()), asked.argument, "api"))


async def scan(request: web.Request) -> web.Response:
    """A barcode keyed in at the kiosk: the same input as the scanner's, from "kiosk"."""
    try:
        asked = ScanRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    lane = request.app[API].lane
    return await _answer(lane, Scan(asked.text, None, "kiosk", time.monotonic()))


async def release(request: web.Request) -> web.Response:
    api = request.app[API]
    try:
        asked = ReleaseRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    # A manager may release a lane as an attendant may.
    name, refused = await _check_pin(api, request, asked.pin, [*api.pins, *api.managers])
    if refused is not None:
        if refused.status == 403:
            await _note_wrong_pin(api.lane)
        return refused
    assert name is not None
    return await _answer(api.lane, AttendantRelease(name, "pin"))


async def manager_approve(request: web.Request) -> web.Response:
    api = request.app[API]
    try:
        asked = ReleaseRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    name, refused = await _check_pin(api, request, asked.pin, api.managers)
    if refused is not None and refused.status != 403:
        return refused
    # A wrong PIN goes to the lane too: when it waits for a manager, the attempt is
    # recorded in the ledger.
    event = await _answer(api.lane, ManagerApproval(name, "pin"))
    return refused if refused is not None else event


async def _check_pin(
    api: Api, request: web.Request, pin: str, holders: Sequence[PinHolder]
) -> tuple[str | None, web.Response | None]:
    """Whose PIN `pin` is among `holders`, or the response that refuses it (403 for a
    wrong PIN, 429 while guessing is stopped). The attempt is counted before the hash
    runs (`PinGuard.reserve`), so a burst cannot outrun the limit."""
    try:
        wait, attempt = await api.guard.reserve(request.remote or "?")
    except OSError as error:  # counted in memory all the same; the disk is reported
        log.warning("a PIN attempt could not be written down: %s", error)
        wait, attempt = 0.0, ""
    if wait > 0:
        message = f"too many wrong PINs; try again in {math.ceil(wait)} s"
        return None, _json({"ok": False, "error": message}, 429)
    loop = asyncio.get_running_loop()
    name = await loop.run_in_executor(None, _holder_of, pin, holders)
    if name is None:
        whose = "a manager's" if holders is api.managers else "an attendant's"
        return None, _json({"ok": False, "error": f"that PIN is not {whose}"}, 403)
    if attempt:
        with contextlib.suppress(OSError):  # then it counts as a failure: the safe side
            await api.guard.release(attempt)
    return name, None


async def count_now(request: web.Request) -> web.Response:
    lane = request.app[API].lane
    number = lane.state.document if lane.state.mode is Mode.COUNTING else lane.state.last_count
    if number is None:
        message = "no stock count has been run at this lane since it started; scan COUNT"
        return _json({"ok": False, "error": message}, 404)
    return await _report(lane, number)


async def count_of(request: web.Request) -> web.Response:
    return await _report(request.app[API].lane, request.match_info["number"])


async def _report(lane: Lane, number: str) -> web.Response:
    try:
        report = await lane.ledger.call(lambda led: count_report(led, number))
    except Refusal as refusal:
        return _json({"ok": False, "error": str(refusal)}, 404)
    return _json({"ok": True, "report": report_json(report)})


async def count_resolve(request: web.Request) -> web.Response:
    """A manager settles one difference of a count: a unit missing is marked lost, a unit
    the ledger had as lost is found, a unit the ledger had elsewhere is moved here."""
    api = request.app[API]
    try:
        asked = ResolveRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    name, refused = await _check_pin(api, request, asked.pin, api.managers)
    if refused is not None:
        if refused.status == 403:
            await _note_wrong_pin(api.lane, "a count's difference", "manager")
        return refused
    assert name is not None
    ledger = api.lane.ledger

    def settle(led: Ledger) -> Outcome:
        return resolve(
            led, asked.count, asked.product, asked.serial, actor=ledger.actor, manager=name
        )

    try:
        outcome = await ledger.call(settle)
    except Refusal as refusal:
        await _note(api.lane, "resolve", name, asked, "refused", str(refusal))
        return _json({"ok": False, "error": str(refusal)}, 409)
    message = f"{outcome.message} (count {asked.count}, approved by {name})"
    await _note(api.lane, "resolve", name, asked, "accepted", message)
    return _json({"ok": True, "message": message, "events": outcome.events})


def report_json(report: CountReport) -> dict[str, Any]:
    def units(found: list[CountedUnit]) -> list[dict[str, str]]:
        return [{"product": u.product, "serial": u.serial, "note": u.note} for u in found]

    return {
        "count": report.count,
        "branch": report.branch,
        "product": report.product,
        "expected": report.expected,
        "found": report.found,
        "accuracy": report.accuracy,
        "missing": units(report.missing),
        "unexpected": units(report.unexpected),
        "duplicates": units(report.duplicates),
        "unknown": units(report.unknown),
    }


async def _answer(
    lane: Lane, item: Command | AttendantRelease | ManagerApproval | Scan
) -> web.Response:
    try:
        event = await lane.ask(item, ANSWER_TIMEOUT_S)
    except TimeoutError:
        message = f"the lane did not answer within {ANSWER_TIMEOUT_S:g} s; see its display"
        return _json({"ok": False, "error": message}, 504)
    return _json({"ok": True, **event})


async def journal(request: web.Request) -> web.Response:
    limit_text = request.query.get("limit", "50")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        return _json({"ok": False, "error": f"limit {limit_text!r} must be 1 to 1000"}, 400)
    ledger = request.app[API].lane.ledger
    entries = await ledger.call(lambda _: ledger.journal.entries(int(limit_text)))
    return _json({"ok": True, "entries": entries})


async def events(request: web.Request) -> web.StreamResponse:
    lane = request.app[API].lane
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    queue = lane.subscribe()
    try:
        await _send(response, "lane", {"lane": lane.snapshot(), "last": lane.last or None})
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if event is None:
                break
            await _send(response, "verdict", event)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        lane.unsubscribe(queue)
    return response


async def _send(response: web.StreamResponse, name: str, data: dict[str, Any]) -> None:
    seq = data.get("seq")
    head = f"id: {seq}\n" if seq is not None else ""
    body = json.dumps(data, default=str)
    await response.write(f"{head}event: {name}\ndata: {body}\n\n".encode())


async def _end_streams(app: web.Application) -> None:
    app[API].lane.close_subscriptions()


def _holder_of(pin: str, holders: Sequence[PinHolder]) -> str | None:
    # Every hash is checked, so the time taken does not tell which attendant matched.
    found = None
    for holder in holders:
        if verify_pin(pin, holder.pin_hash) and found is None:
            found = holder.name
    return found


async def _note_wrong_pin(lane: Lane, what: str = "a release", whose: str = "attendant") -> None:
    entry = Entry(
        at=iso(lane.wall()),
        kind="release",
        source="pin",
        input="a wrong PIN",
        mode=lane.state.mode.value,
        outcome="refused",
        code="bad_pin",
        message=f"a PIN that is no {whose}'s was entered at the kiosk for {what}",
    )
    # If the ledger cannot take it, the lane reports that the next time it needs it.
    with contextlib.suppress(LedgerUnusable):
        await lane.ledger.log(entry)


async def _note(
    lane: Lane, kind: str, manager: str, asked: ResolveRequest, outcome: str, message: str
) -> None:
    """Put a kiosk action that is not a lane input in the lane's journal."""
    entry = Entry(
        at=iso(lane.wall()),
        kind=kind,
        source="kiosk",
        input=f"{asked.product} {asked.serial} on {asked.count} by {manager}",
        mode=lane.state.mode.value,
        outcome=outcome,
        code="count_resolved" if outcome == "accepted" else "count_not_resolved",
        message=message,
    )
    with contextlib.suppress(LedgerUnusable):
        await lane.ledger.log(entry)
