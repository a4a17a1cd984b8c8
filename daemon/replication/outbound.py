"""Which of the terminal's own events to publish next, and when to send again.

Pure bookkeeping, no I/O: the replication thread tells `Outbound` what it sent,
what the broker acknowledged (PUBACK, which is *not* durability) and what HQ
confirmed storing (its ack watermark, which moves the cursor), and asks it what
to send. Times are monotonic seconds passed in by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sent:
    mid: int
    first: int
    last: int


class Outbound:
    """Publishing state of one terminal epoch.

    `acked` is HQ's watermark; `next_seq` the next event to publish. At most
    `window` messages await a PUBACK and at most `unacked_limit` events are out
    ahead of HQ's watermark. When HQ's watermark stalls for `ack_timeout_s` while
    events are out, publishing starts again from the watermark (HQ drops what it
    already has), waiting twice as long each time up to `ack_timeout_max_s`.
    """

    def __init__(
        self,
        acked: int,
        *,
        window: int,
        unacked_limit: int,
        ack_timeout_s: float,
        ack_timeout_max_s: float,
        now_monotonic: float,
    ) -> None:
        self.acked = acked
        self.next_seq = acked + 1
        self.window = window
        self.unacked_limit = unacked_limit
        self.ack_timeout_s = ack_timeout_s
        self.ack_timeout_max_s = ack_timeout_max_s
        self.inflight: dict[int, Sent] = {}
        self.refused: str | None = None
        self._timeout = ack_timeout_s
        self._progress_monotonic = now_monotonic
        self._paused_until_monotonic = 0.0

    def to_send(self, head: int, now_monotonic: float) -> tuple[int, int] | None:
        """The range of seqs (first, most) the next message may carry, or None."""
        if now_monotonic < self._paused_until_monotonic or len(self.inflight) >= self.window:
            return None
        most = min(head, self.acked + self.unacked_limit)
        if self.next_seq > most:
            return None
        return self.next_seq, most

    def sent(self, mid: int, first: int, last: int, now_monotonic: float) -> None:
        if self.next_seq - 1 <= self.acked:
            self._progress_monotonic = now_monotonic  # the stall clock starts now
        self.inflight[mid] = Sent(mid, first, last)
        self.next_seq = last + 1

    def puback(self, mid: int, ok: bool, reason: str, now_monotonic: float) -> Sent | None:
        """The broker answered a message; a refusal sends it again after a pause."""
        sent = self.inflight.pop(mid, None)
        if sent is None:
            return None
        if ok:
            return sent
        self.refused = f"the broker refused events {sent.first}-{sent.last}: {reason}"
        self.next_seq = min(self.next_seq, sent.first)
        self._paused_until_monotonic = now_monotonic + self._timeout
        self._timeout = min(self._timeout * 2, self.ack_timeout_max_s)
        return sent

    def hq_acked(self, seq: int, now_monotonic: float) -> bool:
        """HQ's watermark arrived; True when it moved forward."""
        if seq <= self.acked:
            return False
        self.acked = seq
        self.next_seq = max(self.next_seq, seq + 1)
        self.refused = None
        self._timeout = self.ack_timeout_s
        self._progress_monotonic = now_monotonic
        return True

    def resend_from(self, seq: int, now_monotonic: float) -> None:
        """HQ asked for events again from `seq`."""
        self.next_seq = min(self.next_seq, max(seq, 1))
        self._paused_until_monotonic = 0.0
        self._progress_monotonic = now_monotonic

    def check_stall(self, now_monotonic: float) -> bool:
        """Start again from HQ's watermark if it stalled; True when that happened."""
        outstanding = self.next_seq - 1 > self.acked
        if not outstanding or now_monotonic - self._progress_monotonic < self._timeout:
            return False
        self.next_seq = self.acked + 1
        self._progress_monotonic = now_monotonic
        self._timeout = min(self._timeout * 2, self.ack_timeout_max_s)
        return True

    @property
    def waiting_for_hq(self) -> int:
        """Events published and not yet confirmed by HQ."""
        return max(0, self.next_seq - 1 - self.acked)
