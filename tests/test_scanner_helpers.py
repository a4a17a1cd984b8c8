"""Shared helpers for the scanner tests: run a scanner's async stream from plain tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from daemon.drivers.scanner import ReadingScanner, Scan, ScanEvent, ScanProblem

T = TypeVar("T")

# Generous: only reached when a scanner fails to deliver; passing tests take milliseconds.
WAIT_S = 3.0


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(scenario(), 10 * WAIT_S)

    return asyncio.run(bounded())


class Reader:
    """Pulls scan events from a scanner one at a time, failing a test that waits too long."""

    def __init__(self, scanner: ReadingScanner) -> None:
        self._stream: AsyncIterator[ScanEvent] = aiter(scanner.scans())
        self._pending: asyncio.Future[ScanEvent] | None = None

    async def start(self) -> None:
        """Begin reading, so the scanner opens its device before the test sends anything
        (opening a serial port discards what arrived before, as on real hardware)."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(self._stream))
        for _ in range(3):
            await asyncio.sleep(0)

    async def next(self) -> ScanEvent:
        pending, self._pending = self._pending, None
        if pending is None:
            pending = asyncio.ensure_future(anext(self._stream))
        return await asyncio.wait_for(pending, WAIT_S)

    async def scan(self) -> Scan:
        event = await self.next()
        assert isinstance(event, Scan), event
        return event

    async def problem(self) -> ScanProblem:
        event = await self.next()
        assert isinstance(event, ScanProblem), event
        return event

    async def close(self) -> None:
        await self._stream.aclose()  # type: ignore[attr-defined]
