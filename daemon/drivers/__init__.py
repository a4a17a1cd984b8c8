"""Device drivers: bytes and key events in, domain events out; commands in, bytes out."""
