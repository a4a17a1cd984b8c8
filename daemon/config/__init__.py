"""Configuration: every TOML section posd reads, each a strict model on one `Section` base.

`model` is the terminal's configuration (`posd.toml`), `devices` its device sections,
`replication` the broker settings the terminal and HQ share.
"""
