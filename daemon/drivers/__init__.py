"""Device drivers: bytes and key events in, domain events out; commands in, bytes out.

Each kind of device registers once, next to its driver (`registry.DeviceKind`): its
configuration section, how it is built, how `posd doctor` checks it and how `posd
provision` recognises it. `kinds.KINDS` lists them; `base` is what every driver shares.
"""
