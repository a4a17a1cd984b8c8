"""How many wrong PINs the lane takes before it stops checking them for a while.

guard = PinGuard(attempts=5, window_s=300)
if guard.blocked_for(now) == 0 and not verify_pin(pin, stored):
    guard.failed(now)
"""

from __future__ import annotations

from collections import deque


class PinGuard:
    """At most `attempts` wrong PINs in `window_s`; after that, every PIN is refused
    until the window has passed. Time is passed in (`now`, monotonic seconds)."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0) -> None:
        self.attempts = attempts
        self.window_s = window_s
        self._failures: deque[float] = deque()

    def blocked_for(self, now: float) -> float:
        """Seconds until a PIN may be tried again (0: now)."""
        while self._failures and now - self._failures[0] >= self.window_s:
            self._failures.popleft()
        if len(self._failures) < self.attempts:
            return 0.0
        return self._failures[0] + self.window_s - now

    def failed(self, now: float) -> None:
        self._failures.append(now)

    def succeeded(self) -> None:
        self._failures.clear()
