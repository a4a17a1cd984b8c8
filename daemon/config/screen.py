"""The lane screen's settings: the `[screen]` table of the configuration.

    [screen]
    enabled = true              # serve the touch screen at http://127.0.0.1:<api.port>/
    language = "de"             # the language every customer starts in
    languages = ["de", "en"]    # the languages a customer may switch to, in this order
    idle_timeout_s = 20         # a finished or forgotten screen goes back to the start

The screen is the terminal browser's page; it talks to the kiosk API only. Whether it
is a self-checkout customer's screen or a cashier's follows `terminal.mode`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from daemon.config.base import Section

# Every language the screen has a catalogue for (daemon/lane/screen/static/i18n/*.json).
Language = Literal["en", "de"]
LANGUAGES: tuple[Language, ...] = ("en", "de")


class PracticeItemConfig(Section):
    """Something to touch on screen instead of scanning it: for demonstrations and
    training on a terminal with no scanner attached."""

    label: str = Field(min_length=1, max_length=40)
    barcode: str = Field(min_length=1, max_length=128)
    kind: Literal["product", "serial", "badge", "receipt"] = "product"


class ScreenConfig(Section):
    enabled: bool = True
    language: Language = "en"
    languages: list[Language] = Field(default_factory=lambda: list(LANGUAGES))
    idle_timeout_s: float = Field(default=20.0, ge=1, le=3600)
    practice_items: list[PracticeItemConfig] = Field(default_factory=list, max_length=24)

    @model_validator(mode="after")
    def _offered(self) -> ScreenConfig:
        if len(set(self.languages)) != len(self.languages):
            raise ValueError("languages: a language is listed twice")
        if self.language not in self.languages:
            offered = ", ".join(self.languages) or "none"
            raise ValueError(
                f"language {self.language!r} is not among languages ({offered}); "
                "the language customers start in must be one they can switch back to"
            )
        return self
