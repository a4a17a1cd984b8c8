"""Configuration: every TOML section posd reads, each a strict model on one `Section` base.

`model` is the terminal's configuration (`posd.toml`), `devices` the base every device
section stands on (each kind of device brings its own section, registered with its
driver in `daemon.drivers`), `replication` the broker settings the terminal and HQ
share, `pins` the attendants' PIN hashes.
"""
