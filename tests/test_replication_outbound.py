"""What the terminal publishes next: the window, HQ's watermark, refusals and stalls."""

from __future__ import annotations

from daemon.replication.outbound import Outbound


def outbound(acked: int = 0, **limits: float) -> Outbound:
    settings = {"window": 2, "unacked_limit": 500, "ack_timeout_s": 10.0, "ack_timeout_max_s": 40.0}
    settings.update(limits)
    return Outbound(acked, now_monotonic=0.0, **settings)  # type: ignore[arg-type]


def test_starts_after_hqs_watermark_and_keeps_at_most_a_window_in_flight() -> None:
    out = outbound(acked=10)
    assert out.to_send(head=100, now_monotonic=0) == (11, 100)
    out.sent(1, 11, 30, 0)
    out.sent(2, 31, 50, 0)
    assert out.to_send(100, 0) is None  # two messages await PUBACK
    out.puback(1, True, "Success", 0)
    assert out.to_send(100, 0) == (51, 100)


def test_a_puback_is_not_hqs_ack_and_the_unacked_limit_holds() -> None:
    out = outbound(unacked_limit=50, window=10)
    out.sent(1, 1, 50, 0)
    out.puback(1, True, "Success", 0)
    assert out.acked == 0 and out.waiting_for_hq == 50
    assert out.to_send(head=200, now_monotonic=0) is None
    assert out.hq_acked(40, 1)
    assert out.to_send(200, 1) == (51, 90)
    assert not out.hq_acked(30, 2)  # an older watermark moves nothing back


def test_a_refused_message_is_sent_again_after_a_pause() -> None:
    out = outbound()
    out.sent(1, 1, 20, 0)
    out.sent(2, 21, 40, 0)
    out.puback(1, False, "Not authorized", 1)
    assert out.refused == "the broker refused events 1-20: Not authorized"
    assert out.to_send(head=40, now_monotonic=5) is None  # paused
    out.puback(2, True, "Success", 5)
    assert out.to_send(40, 11.5) == (1, 40)
    out.sent(3, 1, 40, 11.5)
    out.puback(3, False, "Not authorized", 12)
    assert out.to_send(40, 12 + 15) is None  # the pause doubled
    assert out.to_send(40, 12 + 21) == (1, 40)
    assert out.hq_acked(40, 34) and out.refused is None


def test_when_hq_stalls_publishing_starts_again_from_its_watermark() -> None:
    out = outbound(acked=5)
    out.sent(1, 6, 25, 100)
    out.puback(1, True, "Success", 100)
    assert not out.check_stall(109)
    assert out.check_stall(111) and out.to_send(25, 111) == (6, 25)
    out.sent(2, 6, 25, 111)
    out.puback(2, True, "Success", 111)
    assert not out.check_stall(125)  # waits twice as long now
    assert out.check_stall(132)
    assert out.hq_acked(25, 133)
    assert not out.check_stall(500)  # nothing outstanding


def test_hq_asking_for_a_resend_rewinds() -> None:
    out = outbound(window=5)
    out.sent(1, 1, 100, 0)
    out.resend_from(60, 1)
    assert out.to_send(100, 1) == (60, 100)
    out.resend_from(0, 1)
    assert out.to_send(100, 1) == (1, 100)
