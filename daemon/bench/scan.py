"""Scan path figures: key events to a parsed barcode, and one GS1 DataMatrix parse.

- `decode_us_per_scan`: the kernel `input_event` records of a 20-character serial typed
  by a wedge scanner on a `us` layout (Shift pressed and released around each capital,
  as scanners do), through the evdev scanner's decoder to a `Scan`, then
  `barcode.parse` to its result. Target: at most 50 µs.
- `decode_us_per_scan_fr`: the same on AZERTY, where every digit needs Shift too.
- `gs1_parse_us`: `barcode.parse` of one GS1 DataMatrix element string with GTIN,
  expiry, lot and serial. Target: at most 50 µs.
- `serial_rule_evil_us`: a product's serial rule written to make a backtracking engine
  hang, `(A+)+$`, checked against the longest serial (63 `A` and a `B`; Python's `re`
  would take about 2**63 steps), beside `serial_rule_plain_us`, an ordinary rule
  (`SN-[0-9A-Z]{16}`) on a 20-character serial: the floor. Rules run on RE2, so the
  first stays within a small multiple of the second.

Each figure is the median over several batches of many iterations, timed with
`time.perf_counter_ns`.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

from evdev import ecodes

from daemon.drivers.keymap import KeyboardLayout
from daemon.drivers.scanner import Scan
from daemon.drivers.scanner_evdev import INPUT_EVENT, EvdevScanner
from daemon.rules.barcode import GS, BarcodeOptions, PlainLabel, UnitCode, parse
from daemon.rules.serials import MAX_SERIAL_LENGTH, compile_serial_rule

SERIAL = "SN-4F7K2Q9X1M3B8Z6W0Y"  # 20 characters
GS1_DATAMATRIX = f"0109506000134352172512311010ABC123{GS}21SN-4F7K2Q9X1M3B"
BATCHES = 7
ITERATIONS = 2000


def _records(layout: KeyboardLayout, text: str) -> bytes:
    """What the kernel writes for the scan: MSC_SCAN, EV_KEY, SYN_REPORT per key event."""
    events = [*layout.key_events_for(text), (ecodes.KEY_ENTER, 1), (ecodes.KEY_ENTER, 0)]
    out = []
    for index, (code, value) in enumerate(events):
        micros = index * 1000
        out.append(INPUT_EVENT.pack(100, micros, ecodes.EV_MSC, ecodes.MSC_SCAN, code))
        out.append(INPUT_EVENT.pack(100, micros, ecodes.EV_KEY, code, value))
        out.append(INPUT_EVENT.pack(100, micros, ecodes.EV_SYN, ecodes.SYN_REPORT, 0))
    return b"".join(out)


def _median_us(work: Callable[[], object]) -> float:
    work()  # warm caches once, as a running lane has
    batches = []
    for _ in range(BATCHES):
        start = time.perf_counter_ns()
        for _ in range(ITERATIONS):
            work()
        batches.append((time.perf_counter_ns() - start) / ITERATIONS / 1000)
    return round(statistics.median(batches), 2)


def _decode_us(layout_name: str) -> float:
    layout = KeyboardLayout(layout_name)
    scanner = EvdevScanner(lambda: 0, layout, source="bench")
    records = _records(layout, SERIAL)
    options = BarcodeOptions()

    def one_scan() -> object:
        (scan,) = scanner.feed(records, 0.0)
        assert isinstance(scan, Scan)
        result = parse(scan.text, options, scan.symbology_id)
        assert result == PlainLabel(SERIAL)
        return result

    return _median_us(one_scan)


def run() -> dict[str, float]:
    options = BarcodeOptions()

    def one_gs1() -> object:
        result = parse(GS1_DATAMATRIX, options, "]d2")
        assert isinstance(result, UnitCode)
        return result

    evil = compile_serial_rule("(A+)+$")
    evil_key = "A" * (MAX_SERIAL_LENGTH - 1) + "B"
    plain = compile_serial_rule("SN-[0-9A-Z]{16}")
    return {
        "decode_us_per_scan": _decode_us("us"),
        "decode_us_per_scan_fr": _decode_us("fr"),
        "gs1_parse_us": _median_us(one_gs1),
        "serial_rule_evil_us": _median_us(lambda: evil.fullmatch(evil_key)),
        "serial_rule_plain_us": _median_us(lambda: plain.fullmatch(SERIAL)),
    }


if __name__ == "__main__":
    print(run())
