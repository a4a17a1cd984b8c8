"""The same value checks at the other doors: the configuration file, the kiosk API, the
lane's tender and the replication protocol."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from daemon.config.model import ConfigFileError, parse_config
from daemon.lane.api import CommandRequest, ResolveRequest
from daemon.replication.protocol import EventBatch, Presence, ProtocolError, decode
from daemon.rules.lane.types import Command, CommandName, SellBasket
from simulators.lane import SimulatedLane
from tests.lane_fixtures import CASHIER, Driven, label, unit
from tests.lane_sim import run_lane

BASE: dict[str, Any] = {"terminal": {"id": "T-001", "branch": "NORTH"}, "ledger": {"path": "x.db"}}


def config_with(section: str, key: str, value: object) -> dict[str, Any]:
    data = json.loads(json.dumps(BASE))
    data.setdefault(section, {})[key] = value
    return data


@pytest.mark.parametrize(
    ("section", "key", "value", "says"),
    [
        ("terminal", "branch", "NORTH/#", "terminal.branch: id \"NORTH/#\" has the character '/'"),
        ("terminal", "branch", "", 'terminal.branch: id "" is empty'),
        ("terminal", "branch", "NORTH\n", "terminal.branch: id"),
        ("terminal", "store_name", "S" * 100_000, "terminal.store_name: name"),
        ("terminal", "operator", "lane\nroot", "control character (U+000A)"),
        ("terminal", "currency", "\x1b@", "terminal.currency"),
        ("lane", "walk_in_customer", "w" * 129, "lane.walk_in_customer: name"),
        ("replication", "username", "+", 'replication.username: broker user name "+"'),
        ("replication", "client_id", "posd/#", "replication.client_id: client id"),
    ],
)
def test_a_config_value_of_the_wrong_kind_is_refused_naming_the_key(
    section: str, key: str, value: object, says: str
) -> None:
    with pytest.raises(ConfigFileError) as refused:
        parse_config(config_with(section, key, value))
    assert says in str(refused.value)
    assert len(str(refused.value)) < 600  # a long value is quoted short


def test_a_config_with_ordinary_values_is_read() -> None:
    config = parse_config(config_with("terminal", "store_name", "Kowalski Tools & Söhne"))
    assert config.terminal.branch == "NORTH"


# ---------------------------------------------------------------- the kiosk API


@pytest.mark.parametrize(
    ("model", "body"),
    [
        (CommandRequest, {"command": "start", "argument": "Ann\nSmith"}),
        (CommandRequest, {"command": "start", "argument": "A" * 100_000}),
        (ResolveRequest, {"count": "C/1", "product": "LAP", "serial": "S1", "pin": "1"}),
        (ResolveRequest, {"count": "C1", "product": "LAP+", "serial": "S1", "pin": "1"}),
    ],
)
def test_kiosk_api_bodies_are_checked_as_every_other_interface_checks(
    model: type[CommandRequest] | type[ResolveRequest], body: dict[str, str]
) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(body)


def test_a_tender_of_absurd_money_is_refused_and_nothing_is_sold() -> None:
    lane = Driven(CASHIER)
    lane.scan(label("LX-1", unit("LX-1")))
    for argument in ("CASH:1e30", "CASH:99999999999999999999", "CASH:-5", "CASH:NaN"):
        lane.feed(Command(CommandName.TENDER, argument))
        assert lane.last_code == "bad_tender", argument
    assert not [op for op in lane.ops if isinstance(op, SellBasket)]
    lane.feed(Command(CommandName.TENDER, "CASH:1300.00"))
    assert [op for op in lane.ops if isinstance(op, SellBasket)]


def test_the_kiosk_api_refuses_bad_values_over_http(tmp_path: Path, template_dir: Path) -> None:
    async def play(sim: SimulatedLane) -> None:
        assert sim.daemon is not None
        base = f"http://127.0.0.1:{sim.daemon.api_port}"
        async with aiohttp.ClientSession() as session:
            body = {"command": "start", "argument": "x" * 100_000}
            async with session.post(f"{base}/api/commands", json=body) as response:
                reply = await response.json()
                assert response.status == 400 and "argument: text" in reply["error"]
                assert len(reply["error"]) < 400
            body = {"count": "C-1", "product": "LAP/X", "serial": "LX-1", "pin": "0000"}
            async with session.post(f"{base}/api/count/resolve", json=body) as response:
                reply = await response.json()
                assert response.status == 400 and "product: id" in reply["error"]

    run_lane(tmp_path, template_dir, play)


# ---------------------------------------------------------------- replication


def batch(**fields: object) -> bytes:
    body = {
        "v": 1,
        "terminal": "T-001",
        "epoch": "0e1c0e1c",
        "branch": "NORTH",
        "first": 1,
        "last": 1,
        "events": [{"hash": "0" * 64, "body": "{}"}],
    }
    return json.dumps(body | fields).encode()


@pytest.mark.parametrize(
    ("field", "value"),
    [("terminal", "T/+"), ("terminal", ""), ("branch", "#"), ("epoch", "0e1c\n0e1c")],
)
def test_a_payload_with_an_id_unsafe_for_topics_is_refused(field: str, value: str) -> None:
    decode(EventBatch, batch(), "posd/v1/t/T-001/events")  # the good one is read
    with pytest.raises(ProtocolError) as refused:
        decode(EventBatch, batch(**{field: value}), "posd/v1/t/T-001/events")
    assert field in str(refused.value)


def test_a_presence_for_a_wildcard_terminal_is_refused() -> None:
    payload = {"v": 1, "terminal": "+", "branch": "B", "epoch": "e", "session": 1}
    payload |= {"state": "online", "at": "2026-11-23T10:00:00Z"}
    with pytest.raises(ProtocolError):
        decode(Presence, json.dumps(payload).encode(), "posd/v1/t/+/status")


def test_a_customer_name_that_could_never_be_stored_is_refused_when_the_sale_starts() -> None:
    lane = Driven(CASHIER)
    lane.feed(Command(CommandName.START, "C" * 500))
    assert lane.last_code == "bad_value"
    assert lane.state.basket is None
    lane.feed(Command(CommandName.START, "Dana Smith"))
    assert lane.state.basket is not None and lane.state.basket.customer == "Dana Smith"
