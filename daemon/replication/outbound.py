"""Which of the terminal's own events to publish next, and when to send again.

Pure bookkeeping, no I/O: the replication thread tells `Outbound` what it sent,
what the broker acknowledged (PUBACK, which is *not* durability), what HQ
confirmed storing (its ack watermark, which moves the cursor) and when an HQ
process came (back) online, and asks it what to send. Times are monotonic seconds
passed in by the caller.

Resuming is bounded. A refused PUBACK (no HQ process subscribed: "No matching
subscribers"; or not authorised) is tried again with a single event after a pause
that doubles up to `retry_max_s`, never longer; an HQ process coming online, or
HQ's watermark moving, ends the pause at once. So once HQ is back, publishing
starts within `retry_max_s` at most, and at once when the terminal sees HQ's
status.
"""

from __future__ import annotations

from dataclasses import dataclass

RETRY_MIN_S = 0.5  # the first pause after a refused PUBACK
# After HQ is back: how long it may take to move its watermark (it may be busy with
# what the broker kept for it) before everything unconfirmed is sent again.
RESUME_GRACE_S = 5.0


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
        retry_max_s: float = 5.0,
    ) -> None:
        self.acked = acked
        self.next_seq = acked + 1
        self.window = window
        self.unacked_limit = unacked_limit
        self.ack_timeout_s = ack_timeout_s
        self.ack_timeout_max_s = ack_timeout_max_s
        self.retry_max_s = retry_max_s
        self.inflight: dict[int, Sent] = {}
        self.refused: str | None = None
        # Since when HQ has not been taking events (monotonic), and why; None: it is.
        self.waiting_since_monotonic: float | None = None
        self.waiting_reason: str | None = None
        self._timeout = ack_timeout_s
        self._progress_monotonic = now_monotonic
        self._paused_until_monotonic = 0.0
        self._retry_s = 0.0
        self._probing = False  # after a refusal: one event at a time until one goes through

    def to_send(self, head: int, now_monotonic: float) -> tuple[int, int] | None:
        """The range of seqs (first, most) the next message may carry, or None."""
        if now_monotonic < self._paused_until_monotonic or len(self.inflight) >= self.window:
            return None
        if self._probing and self.inflight:
            return None
        most = min(head, self.acked + self.unacked_limit)
        if self.next_seq > most:
            return None
        return self.next_seq, self.next_seq if self._probing else most

    def sent(self, mid: int, first: int, last: int, now_monotonic: float) -> None:
        if self.next_seq - 1 <= self.acked:
            self._progress_monotonic = now_monotonic  # the stall clock starts now
        self.inflight[mid] = Sent(mid, first, last)
        self.next_seq = last + 1

    def puback(
        self,
        mid: int,
        ok: bool,
        reason: str,
        now_monotonic: float,
        *,
        no_subscribers: bool = False,
    ) -> Sent | None:
        """The broker answered a message. A refusal sends it again after a pause;
        `no_subscribers` (no HQ process took it) sends everything HQ has not
        confirmed again, since whatever queue held it is gone."""
        sent = self.inflight.pop(mid, None)
        if sent is None:
            return None
        if ok:
            if self._probing:
                self._probing = False
                self._retry_s = 0.0
            return sent
        if no_subscribers:
            self.refused = (
                f"no HQ process is taking events (the broker dropped events {sent.first}-"
                f"{sent.last}: {reason}); sending again when HQ is back"
            )
            self.next_seq = self.acked + 1
        else:
            self.refused = f"the broker refused events {sent.first}-{sent.last}: {reason}"
            self.next_seq = min(self.next_seq, sent.first)
        self._probing = True
        self._retry_s = min(max(self._retry_s * 2, RETRY_MIN_S), self.retry_max_s)
        self._paused_until_monotonic = now_monotonic + self._retry_s
        self._waiting(now_monotonic, self.refused)
        return sent

    def hq_acked(self, seq: int, now_monotonic: float) -> bool:
        """HQ's watermark arrived; True when it moved forward (which ends any pause)."""
        if seq <= self.acked:
            return False
        self.acked = seq
        self.next_seq = max(self.next_seq, seq + 1)
        self.refused = None
        self._timeout = self.ack_timeout_s
        self._progress_monotonic = now_monotonic
        self._resume()
        self.waiting_since_monotonic = self.waiting_reason = None
        return True

    def hq_back(self, now_monotonic: float) -> None:
        """An HQ process came (back) online: publish now, and if HQ's watermark does
        not move within RESUME_GRACE_S, start again from it (what was queued for HQ
        while it was away is gone if its broker session expired meanwhile)."""
        self._resume()
        self._timeout = self.ack_timeout_s
        grace = min(RESUME_GRACE_S, self.ack_timeout_s)
        self._progress_monotonic = now_monotonic - (self._timeout - grace)

    def resend_from(self, seq: int, now_monotonic: float) -> None:
        """HQ asked for events again from `seq`."""
        self.next_seq = min(self.next_seq, max(seq, 1))
        self._resume()
        self._progress_monotonic = now_monotonic

    def check_stall(self, now_monotonic: float) -> bool:
        """Start again from HQ's watermark if it stalled; True when that happened."""
        outstanding = self.next_seq - 1 > self.acked
        if not outstanding or now_monotonic - self._progress_monotonic < self._timeout:
            return False
        self.next_seq = self.acked + 1
        self._progress_monotonic = now_monotonic
        self._timeout = min(self._timeout * 2, self.ack_timeout_max_s)
        self._waiting(now_monotonic, "HQ has not confirmed events for a while")
        return True

    def settled(self, head: int) -> None:
        """Called with the newest own event: when HQ has them all, nothing waits."""
        if head <= self.acked:
            self.waiting_since_monotonic = self.waiting_reason = None

    @property
    def waiting_for_hq(self) -> int:
        """Events published and not yet confirmed by HQ."""
        return max(0, self.next_seq - 1 - self.acked)

    def _resume(self) -> None:
        self._paused_until_monotonic = 0.0
        self._retry_s = 0.0
        self._probing = False

    def _waiting(self, now_monotonic: float, reason: str) -> None:
        if self.waiting_since_monotonic is None:
            self.waiting_since_monotonic = now_monotonic
        self.waiting_reason = reason
