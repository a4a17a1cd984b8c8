"""What systemd hears from posd: the sd_notify protocol against real datagram sockets."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.sdnotify import (
    NOTIFY_MESSAGE_MAX,
    Notifier,
    NotifyEnvironmentError,
    NotifySendError,
    arm_stall_trigger,
    pet_watchdog,
)

RECEIVE_TIMEOUT_S = 5.0


def receive(server: socket.socket) -> str:
    server.settimeout(RECEIVE_TIMEOUT_S)
    return server.recv(65536).decode()


def pending(server: socket.socket) -> list[str]:
    """Every datagram already queued, without waiting."""
    server.setblocking(False)
    found = []
    try:
        while True:
            found.append(server.recv(65536).decode())
    except BlockingIOError:
        return found


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's notification socket, as a socket file in a temporary directory."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(path)
        yield server, path


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    """systemd's notification socket in the abstract namespace, named '@…' in the env."""
    name = f"posd-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        yield server, "@" + name


# ------------------------------------------------------------------ the messages


def test_ready_carries_the_status_the_daemon_gives(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.ready(status="ledger open; scanner, printer, display found")
    assert receive(server) == "READY=1\nSTATUS=ledger open; scanner, printer, display found"


def test_an_abstract_notify_socket_receives_the_same_messages(
    abstract_socket: tuple[socket.socket, str],
) -> None:
    server, name = abstract_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": name})
    notifier.status("opening the ledger")
    notifier.ready(status="serving")
    assert receive(server) == "STATUS=opening the ledger"
    assert receive(server) == "READY=1\nSTATUS=serving"


def test_each_call_sends_the_assignment_systemd_expects(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.watchdog()
    notifier.stopping()
    notifier.reloading(monotonic_usec=123_456_789)
    notifier.extend_timeout(30_000_000)
    notifier.errno(28)
    assert [receive(server) for _ in range(5)] == [
        "WATCHDOG=1",
        "STOPPING=1",
        "RELOADING=1\nMONOTONIC_USEC=123456789",
        "EXTEND_TIMEOUT_USEC=30000000",
        "ERRNO=28",
    ]


def test_reloading_stamps_the_monotonic_clock_when_not_given(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    Notifier.from_environ({"NOTIFY_SOCKET": path}).reloading()
    reloading, stamp = receive(server).split("\n")
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert reloading == "RELOADING=1"
    assert before <= int(stamp.removeprefix("MONOTONIC_USEC=")) <= after


def test_a_status_with_a_newline_cannot_announce_readiness(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.status("last scan: SN-1\nREADY=1\r\x00")
    message = receive(server)
    assert message.split("\n") == ["STATUS=last scan: SN-1 READY=1  "]


def test_a_long_status_is_cut_to_what_systemd_accepts(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    notifier.ready(status="é" * 5000)
    message = receive(server)
    assert message.startswith("READY=1\nSTATUS=éé")
    assert len(message.encode()) <= NOTIFY_MESSAGE_MAX


def test_bad_arguments_are_refused_with_the_value(
    path_socket: tuple[socket.socket, str],
) -> None:
    _, path = path_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    with pytest.raises(ValueError, match="-5"):
        notifier.extend_timeout(-5)
    with pytest.raises(ValueError, match="0"):
        notifier.errno(0)


# ------------------------------------------------------------------ not under systemd


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    opened: list[object] = []

    def no_sockets(*args: object, **kwargs: object) -> None:
        opened.append(args)
        raise AssertionError("a socket was opened with NOTIFY_SOCKET unset")

    monkeypatch.setattr(socket, "socket", no_sockets)
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "30000000"})
    assert not notifier.enabled
    assert notifier.watchdog_usec is None
    notifier.ready(status="serving")
    notifier.status("x")
    notifier.watchdog()
    notifier.stopping()
    notifier.reloading()
    notifier.extend_timeout(1)
    notifier.errno(5)
    assert opened == []


def test_without_notify_socket_the_watchdog_task_ends_at_once() -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "30000000"})

    async def no_sleeping(seconds: float) -> None:
        raise AssertionError(f"pet_watchdog slept {seconds} s with no watchdog to pet")

    asyncio.run(pet_watchdog(notifier, sleep=no_sleeping))


def test_an_empty_notify_socket_means_not_under_systemd() -> None:
    assert not Notifier.from_environ({"NOTIFY_SOCKET": ""}).enabled


@pytest.mark.parametrize(
    ("environ", "quoted"),
    [
        ({"NOTIFY_SOCKET": "run/notify"}, "'run/notify'"),
        ({"NOTIFY_SOCKET": "@"}, "'@'"),
        ({"NOTIFY_SOCKET": "/" + "x" * 200}, "xxxx"),
        ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30s"}, "'30s'"),
        ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "-1"}, "'-1'"),
        ({"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "me"}, "'me'"),
    ],
)
def test_a_malformed_environment_is_named_in_the_error(
    environ: dict[str, str], quoted: str
) -> None:
    with pytest.raises(NotifyEnvironmentError, match=quoted):
        Notifier.from_environ(environ)


def test_a_vanished_notify_socket_is_reported_with_its_path(tmp_path: Path) -> None:
    path = str(tmp_path / "gone")
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path})
    with pytest.raises(NotifySendError, match="gone"):
        notifier.ready(status="serving")


# ------------------------------------------------------------------ the watchdog


def test_the_watchdog_interval_comes_from_the_environment() -> None:
    env = {"NOTIFY_SOCKET": "/run/systemd/notify", "WATCHDOG_USEC": "20000000"}
    assert Notifier.from_environ(env).watchdog_usec == 20_000_000
    assert Notifier.from_environ({**env, "WATCHDOG_PID": "4242"}, pid=4242).watchdog_usec == (
        20_000_000
    )
    assert Notifier.from_environ(env | {"WATCHDOG_PID": str(os.getpid())}).watchdog_usec == (
        20_000_000
    )


def test_a_watchdog_meant_for_another_process_is_not_petted(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    env = {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "4242"}
    notifier = Notifier.from_environ(env, pid=4243)
    assert notifier.watchdog_usec is None
    asyncio.run(pet_watchdog(notifier))
    assert pending(server) == []


class _Stop(Exception):
    pass


def test_the_watchdog_is_petted_every_half_interval(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000000"})
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 3:
            raise _Stop

    with pytest.raises(_Stop):
        asyncio.run(pet_watchdog(notifier, sleep=fake_sleep))
    assert slept == [10.0, 10.0, 10.0]
    assert pending(server) == ["WATCHDOG=1"] * 3


def test_a_stuck_event_loop_stops_the_petting_and_a_free_one_resumes_it(
    path_socket: tuple[socket.socket, str],
) -> None:
    server, path = path_socket
    # 20 ms watchdog: a pet every 10 ms while the loop runs.
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "20000"})

    async def scenario() -> tuple[list[str], list[str]]:
        loop = asyncio.get_running_loop()
        server.setblocking(False)
        task = asyncio.create_task(pet_watchdog(notifier))
        try:
            before = [
                (await asyncio.wait_for(loop.sock_recv(server, 64), RECEIVE_TIMEOUT_S)).decode()
                for _ in range(2)
            ]
            pending(server)
            # The loop is stuck for twenty watchdog intervals: a hung call on the loop.
            time.sleep(0.2)
            while_stuck = pending(server)
            after = (await asyncio.wait_for(loop.sock_recv(server, 64), RECEIVE_TIMEOUT_S)).decode()
            return [*before, after], while_stuck
        finally:
            task.cancel()

    petted, while_stuck = asyncio.run(scenario())
    assert while_stuck == []
    assert petted == ["WATCHDOG=1"] * 3


def test_a_failed_pet_is_logged_and_petting_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier.from_environ(
        {"NOTIFY_SOCKET": str(tmp_path / "gone"), "WATCHDOG_USEC": "2000000"}
    )
    rounds: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        rounds.append(seconds)
        if len(rounds) == 2:
            raise _Stop

    with pytest.raises(_Stop):
        asyncio.run(pet_watchdog(notifier, sleep=fake_sleep))
    assert len(rounds) == 2
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "WATCHDOG=1" in caplog.records[0].getMessage()


# ------------------------------------------------------------ the test-only stall trigger


@pytest.mark.parametrize("value", [None, "", "0", "yes", "true"])
def test_sigusr2_stalls_nothing_unless_the_test_variable_is_exactly_1(value: str | None) -> None:
    environ = {} if value is None else {"POSD_TEST_WATCHDOG_STALL": value}
    loop = asyncio.new_event_loop()
    try:
        assert arm_stall_trigger(loop, environ) is False
        assert loop.remove_signal_handler(signal.SIGUSR2) is False  # none was installed
    finally:
        loop.close()


def test_the_test_variable_arms_sigusr2_to_stall_the_loop() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert arm_stall_trigger(loop, {"POSD_TEST_WATCHDOG_STALL": "1"}) is True
        assert loop.remove_signal_handler(signal.SIGUSR2) is True
    finally:
        loop.close()
