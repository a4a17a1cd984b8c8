"""Live counts: new figures pushed to open pages as HQ stores events.

HQ stores terminals' events in its own process (`posd hq run`), maybe several.
The dashboard notices by watching a marker that moves with every stored event
(the sum of the stream watermarks) and with every conflict opened or closed: one
read of a few rows, every `poll_s`, and only while a page is listening. When it
moves, each open page gets its counts again (read from the kept counts, never
from a scan of the units) as a server-sent event:

    event: counts
    data: {"html": "<section>...</section>", "conflicts": 1, "at": "...", "shown_at": "..."}

A change made from the dashboard itself wakes the watcher at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from daemon.hq.web.reads import (
    CountFilter,
    change_marker,
    dashboard_counts,
    open_conflict_count,
)
from daemon.hq.web.state import DASHBOARD, Dashboard
from daemon.ledger.store import iso, utc_now

log = logging.getLogger(__name__)


class LiveCounts:
    def __init__(self, dash: Dashboard) -> None:
        self.dash = dash
        self.generation = 0
        self.listeners = 0
        self.closing = False
        self._marker: tuple[int, int] | None = None
        self._changed = asyncio.Condition()
        self._nudged = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    def nudge(self) -> None:
        """Look at HQ's database now (after a change made from the dashboard)."""
        self._nudged.set()

    async def close(self) -> None:
        self.closing = True
        async with self._changed:
            self._changed.notify_all()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait(self, seen: int, timeout: float) -> int:
        """The generation after `seen`, or `seen` again after `timeout` seconds."""
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: self.generation != seen or self.closing),
                    timeout,
                )
        return self.generation

    async def _watch(self) -> None:
        try:
            self._marker = await self.dash.db.read(change_marker)
        except Exception:
            log.exception("HQ dashboard: cannot read HQ's database; trying again")
        while not self.closing:
            if self.listeners:
                marker: tuple[int, int] | None
                try:
                    marker = await self.dash.db.read(change_marker)
                except Exception:
                    log.exception("HQ dashboard: cannot read HQ's database; trying again")
                    marker = self._marker
                if marker != self._marker:
                    self._marker = marker
                    self.generation += 1
                    async with self._changed:
                        self._changed.notify_all()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._nudged.wait(), self.dash.settings.poll_s)
            self._nudged.clear()


LIVE = web.AppKey("live", LiveCounts)


def count_filter(request: web.Request) -> CountFilter:
    def value(name: str) -> str | None:
        text = request.query.get(name, "").strip()
        return text or None

    return CountFilter(value("prefix"), value("product"), value("branch"))


async def stream(request: web.Request) -> web.StreamResponse:
    """GET /counts/stream?prefix=&product=&branch=: the counts, again on every change."""
    dash = request.app[DASHBOARD]
    live = request.app[LIVE]
    filters = count_filter(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    live.listeners += 1
    live.nudge()
    try:
        seen = live.generation
        sent = await _send(response, dash, filters, None)
        while not live.closing:
            generation = await live.wait(seen, dash.settings.keepalive_s)
            if live.closing:
                break
            if generation == seen:
                await response.write(b": keep-alive\n\n")
                continue
            seen = generation
            sent = await _send(response, dash, filters, sent)
    except ConnectionResetError:
        pass  # the page was closed
    finally:
        live.listeners -= 1
    return response


async def _send(
    response: web.StreamResponse, dash: Dashboard, filters: CountFilter, last: str | None
) -> str:
    """Send the counts, unless they are what was sent `last`; returns what was sent."""
    view, conflicts = await dash.db.read(
        lambda store: (dashboard_counts(store, filters), open_conflict_count(store))
    )
    html = dash.env.get_template("_counts_live.html").render(view=view)
    figures = json.dumps({"html": html, "conflicts": conflicts})
    if figures != last:
        at = iso(utc_now())
        # The time the page shows, in the store's zone as every time on the dashboard.
        shown = dash.env.filters["when"](at)
        data = json.dumps({"html": html, "conflicts": conflicts, "at": at, "shown_at": shown})
        await response.write(f"event: counts\ndata: {data}\n\n".encode())
    return figures


async def end_streams(app: web.Application) -> None:
    await app[LIVE].close()
