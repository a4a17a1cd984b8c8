"""Serving the lane screen: its files, and `GET /api/screen`.

    GET /api/screen  ->  {"ok": true, "screen": {
        "enabled": true,
        "mode": "customer",            # "customer" (self-checkout) or "cashier"
        "terminal": "T-001", "store_name": "…", "currency": "EUR",
        "language": "de",              # the language every customer starts in
        "languages": ["de", "en"],     # the ones a customer may switch to
        "idle_timeout_s": 20.0,        # a finished screen goes back to the start
        "practice_items": [{"label": "…", "barcode": "…", "kind": "product"}],
        "catalogues": {"de": "/screen/i18n/de.json", …}}}

`practice_items` stand in for a scanner on a terminal that has none (a demonstration,
training): the page shows them, and touching one posts its barcode to `/api/scan`.
With `screen.enabled = false` only `/api/screen` answers (saying so).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from daemon.config.model import PosdConfig

STATIC = Path(__file__).resolve().parent / "static"
INDEX = STATIC / "index.html"


@dataclass(frozen=True)
class ScreenInfo:
    """What the page needs to know about this lane (from its configuration)."""

    enabled: bool
    mode: str  # "customer" or "cashier"
    terminal: str
    store_name: str
    currency: str
    language: str
    languages: tuple[str, ...]
    idle_timeout_s: float
    practice_items: tuple[dict[str, str], ...] = ()

    @classmethod
    def of(cls, config: PosdConfig) -> ScreenInfo:
        screen = config.screen
        return cls(
            enabled=screen.enabled,
            mode="customer" if config.self_checkout else "cashier",
            terminal=config.terminal.id,
            store_name=config.terminal.store_name,
            currency=config.terminal.currency,
            language=screen.language,
            languages=tuple(screen.languages),
            idle_timeout_s=screen.idle_timeout_s,
            practice_items=tuple(item.model_dump() for item in screen.practice_items),
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "mode": self.mode,
            "terminal": self.terminal,
            "store_name": self.store_name,
            "currency": self.currency,
            "language": self.language,
            "languages": list(self.languages),
            "idle_timeout_s": self.idle_timeout_s,
            "practice_items": [dict(item) for item in self.practice_items],
            "catalogues": {name: f"/screen/i18n/{name}.json" for name in self.languages},
        }


SCREEN = web.AppKey("screen", ScreenInfo)


def add_screen(app: web.Application, info: ScreenInfo) -> None:
    """Serve the page and `/api/screen` from `app` (before it starts)."""
    app[SCREEN] = info
    app.router.add_get("/api/screen", screen_settings)
    if info.enabled:
        app.router.add_get("/", index)
        # aiohttp's static route refuses paths that leave the folder, and symlinks.
        app.router.add_static("/screen/", STATIC, follow_symlinks=False, show_index=False)


async def screen_settings(request: web.Request) -> web.Response:
    return web.json_response({"ok": True, "screen": request.app[SCREEN].as_json()})


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(INDEX, headers={"Content-Type": "text/html; charset=utf-8"})
