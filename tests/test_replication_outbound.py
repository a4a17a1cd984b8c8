"""What the terminal publishes next: the window, HQ's watermark, refusals and stalls."""

from __future__ import annotations

from daemon.replication.outbound import Outbound


def outbound(acked: int = 0, **limits: float) -> Outbound:
    settings = {
        "window": 2,
        "unacked_limit": 500,
        "ack_timeout_s": 10.0,
        "ack_timeout_max_s": 40.0,
        "retry_max_s": 5.0,
    }
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


def test_a_refused_message_is_sent_again_one_event_at_a_time_after_a_pause() -> None:
    out = outbound(window=5)
    out.sent(1, 1, 20, 0)
    out.sent(2, 21, 40, 0)
    out.puback(1, False, "Not authorized", 1)
    assert out.refused == "the broker refused events 1-20: Not authorized"
    assert out.to_send(head=40, now_monotonic=1.4) is None  # paused
    out.puback(2, False, "Not authorized", 1.4)
    assert out.to_send(40, 2.3) is None  # the pause doubled
    assert out.to_send(40, 2.5) == (1, 1)  # a probe: one event
    out.sent(3, 1, 1, 2.5)
    assert out.to_send(40, 2.6) is None  # one probe at a time
    out.puback(3, True, "Success", 2.6)
    assert out.to_send(40, 2.6) == (2, 40)  # it went through: everything again
    assert out.hq_acked(40, 3) and out.refused is None


def test_the_pause_after_refusals_never_exceeds_its_bound() -> None:
    """HQ away for half an hour: every attempt refused ("No matching subscribers").
    Before, the pause doubled up to ack_timeout_max_s (600 s) and an ack did not end
    it, so a terminal sat silent for ten minutes after HQ came back."""
    out = outbound(window=5, ack_timeout_s=30.0, ack_timeout_max_s=600.0, retry_max_s=5.0)
    now, mid = 0.0, 0
    while now < 1800:
        room = out.to_send(head=500, now_monotonic=now)
        if room is not None:
            mid += 1
            out.sent(mid, room[0], room[1], now)
            out.puback(mid, False, "No matching subscribers", now, no_subscribers=True)
        now += 0.25
    assert mid > 300  # it kept trying, every 5 s at most, one event each time
    assert out.waiting_since_monotonic == 0.0 and "no HQ process" in (out.waiting_reason or "")
    # HQ is back: its first PUBACK goes through within the bound.
    first_try = next(t / 4 for t in range(7200, 7200 + 40) if out.to_send(500, t / 4))
    assert first_try - 1800 <= 5.0


def test_no_subscribers_means_everything_unconfirmed_is_sent_again() -> None:
    out = outbound(acked=10, window=5)
    out.sent(1, 11, 50, 0)
    out.puback(1, True, "Success", 0)  # queued for an HQ process whose session then ended
    out.sent(2, 51, 90, 1)
    out.puback(2, False, "No matching subscribers", 1, no_subscribers=True)
    assert out.refused is not None and "no HQ process is taking events" in out.refused
    out.hq_back(1.1)  # an HQ process says it is online: no pause
    assert out.to_send(90, 1.1) == (11, 90)


def test_hq_coming_back_ends_the_pause_and_its_watermark_must_move_soon() -> None:
    out = outbound(acked=5, window=5, ack_timeout_s=30.0, ack_timeout_max_s=600.0)
    out.sent(1, 6, 25, 0)
    out.puback(1, True, "Success", 0)
    for t in (30, 90, 210, 450):  # HQ's process gone, its session kept: stalls double
        assert out.check_stall(t + 1)
        out.sent(t, 6, 25, t + 1)
        out.puback(t, True, "Success", t + 1)
    out.hq_back(500)
    assert not out.check_stall(504)
    assert out.check_stall(505.1) and out.to_send(25, 505.1) == (6, 25)  # not after 600 s
    out.sent(2, 6, 25, 505.1)
    assert out.hq_acked(25, 506)
    assert out.waiting_since_monotonic is None


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
