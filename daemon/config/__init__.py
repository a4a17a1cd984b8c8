"""Configuration: every TOML section posd reads, each a strict model on one `Section` base.

`base` is that base (unknown keys are errors naming the key); `model` the terminal's
configuration (`posd.toml`); `devices` what device sections share (each kind of device
brings its own section, registered with its driver in `daemon.drivers`); `replication`
the broker settings the terminal and HQ share; `hq` HQ's own settings; `screen` the lane
screen's; `pins` the attendants' PIN hashes.
"""
