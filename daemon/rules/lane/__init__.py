"""The lane's rules: a pure, table-driven state machine from scan to verdict.

`machine.step` decides what a scan, a command or a finished ledger operation does to the
lane's state; `types` holds the states, inputs and effects; the other modules hold one
mode each (sale, manager, count, …) and `text` the words the customer reads.
"""
