"""The kiosk API on the loopback interface: the live lane, and the cashier's commands.

    GET  /api/lane                 the lane now: mode, display, light, basket, prompt
    GET  /api/events               server-sent events: every verdict and prompt as it
                                   happens (`event: lane` first, then `event: verdict`)
    POST /api/commands             {"command": "tender", "argument": "CASH:50.00"}
    POST /api/attendant/release    {"pin": "4821"}: an attendant releases a locked lane
    GET  /api/journal?limit=50     the lane's last journal entries
    GET  /api/health               {"ok": true, "mode": ...}

Commands: start, void, cancel, tender, return, receive, done, reprint, help. Each is
the same input as its command barcode and answers with the verdict and the lane after
it. There is no log-in: the API listens on 127.0.0.1 or ::1 only (the configuration
refuses anything else), and releasing a lane takes an attendant's PIN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from daemon.attendants import PinGuard, verify_pin
from daemon.config import describe
from daemon.lane import Lane
from daemon.lane_ledger import LedgerUnusable
from daemon.ledger.lane_log import Entry
from daemon.ledger.store import iso
from daemon.rules.lane_types import AttendantRelease, Command, CommandName

KEEPALIVE_S = 15.0
ANSWER_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class PinHolder:
    name: str
    pin_hash: str


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: Literal[
        "start", "void", "cancel", "tender", "return", "receive", "done", "reprint", "help"
    ]
    argument: str = Field(default="", max_length=200)


class ReleaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pin: str = Field(min_length=1, max_length=32)


@dataclass
class Api:
    lane: Lane
    pins: Sequence[PinHolder]
    guard: PinGuard
    monotonic: Callable[[], float] = time.monotonic


API = web.AppKey("api", Api)


def make_app(api: Api) -> web.Application:
    app = web.Application()
    app[API] = api
    app.router.add_get("/api/lane", lane_now)
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/commands", command)
    app.router.add_post("/api/attendant/release", release)
    app.router.add_get("/api/journal", journal)
    app.router.add_get("/api/health", health)
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
    return _json({"ok": snapshot["out_of_service"] is None, "mode": snapshot["mode"]})


async def command(request: web.Request) -> web.Response:
    try:
        asked = CommandRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    lane = request.app[API].lane
    return await _answer(lane, Command(CommandName(asked.command.upper()), asked.argument, "api"))


async def release(request: web.Request) -> web.Response:
    api = request.app[API]
    try:
        asked = ReleaseRequest.model_validate(await _body(request))
    except ValidationError as error:
        return _bad_request(error)
    wait = api.guard.blocked_for(api.monotonic())
    if wait > 0:
        return _json({"ok": False, "error": f"too many wrong PINs; try again in {wait:.0f} s"}, 429)
    loop = asyncio.get_running_loop()
    name = await loop.run_in_executor(None, _holder_of, asked.pin, api.pins)
    if name is None:
        api.guard.failed(api.monotonic())
        await _note_wrong_pin(api.lane)
        return _json({"ok": False, "error": "that PIN is not an attendant's"}, 403)
    api.guard.succeeded()
    return await _answer(api.lane, AttendantRelease(name, "pin"))


async def _answer(lane: Lane, item: Command | AttendantRelease) -> web.Response:
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


async def _note_wrong_pin(lane: Lane) -> None:
    entry = Entry(
        at=iso(lane.wall()),
        kind="release",
        source="pin",
        input="a wrong PIN",
        mode=lane.state.mode.value,
        outcome="refused",
        code="bad_pin",
        message="a PIN that is no attendant's was entered at the kiosk",
    )
    # If the ledger cannot take it, the lane reports that the next time it needs it.
    with contextlib.suppress(LedgerUnusable):
        await lane.ledger.log(entry)
