"""The lane: the loop that wires scanners → rules → ledger → outputs, and what serves it.

`run` starts a whole lane from a configuration (`posd run`); `loop` is the event loop's
lane itself; `ledger` its line to the ledger; `devices` builds the configured devices and
`outputs` drives the display, printer and GPIO; `api` is the kiosk API on loopback.
"""
