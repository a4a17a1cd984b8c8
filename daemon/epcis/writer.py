"""An EPCIS 2.0 JSON-LD document written as its events come: one event in memory at a
time, so an export of millions of events runs in constant memory.

    with open("chain.jsonld", "w") as out:
        document = DocumentWriter(out, places, gtin_of, created="2026-12-02T10:00:00.000Z")
        for event in events:
            document.add(event)
        document.close()
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from daemon.epcis.eventhash import event_hash
from daemon.epcis.identifiers import Places
from daemon.epcis.mapping import CONTEXT, PREFIXES, GtinOf, object_event
from daemon.ledger.events import EventBody


def with_event_id(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its hash as `eventID` (written first, for people reading)."""
    return {"eventID": event_hash(event, PREFIXES), **event}


class DocumentWriter:
    """Writes one EPCISDocument to `out`; `add` each ledger event, then `close`."""

    def __init__(self, out: TextIO, places: Places, gtin_of: GtinOf, *, created: str) -> None:
        self.out = out
        self.places = places
        self.gtin_of = gtin_of
        self.written = 0
        self.skipped = 0
        head = {
            "@context": CONTEXT,
            "type": "EPCISDocument",
            "schemaVersion": "2.0",
            "creationDate": created,
        }
        text = json.dumps(head, ensure_ascii=False)
        out.write(text[:-1] + ', "epcisBody": {"eventList": [')

    def add(self, event: EventBody) -> bool:
        """Write the event's ObjectEvent; False when the event moves no unit."""
        mapped = object_event(event, self.gtin_of, self.places)
        if mapped is None:
            self.skipped += 1
            return False
        self.out.write(",\n" if self.written else "\n")
        self.out.write(json.dumps(with_event_id(mapped), ensure_ascii=False))
        self.written += 1
        return True

    def close(self) -> None:
        self.out.write("\n]}}\n")
        self.out.flush()
