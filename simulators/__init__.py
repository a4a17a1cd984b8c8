"""Simulated hardware on real transports (ptys, sockets, MockFactory) for tests and the
demo lane."""
