"""`Section`: the base of every configuration table posd reads (the terminal's
`posd.toml`, its device sections, the broker settings the terminal and HQ share, HQ's
own). Unknown keys are errors that name the key, and a loaded section never changes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Every configuration table: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)
