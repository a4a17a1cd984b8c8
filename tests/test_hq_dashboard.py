"""The HQ dashboard over HTTP, as its users meet it: signing in, the pages, the
conflict queue and recalls reaching the terminals, the live counts stream, and
what it refuses (strangers, wrong passwords, guessing, forged or viewers' POSTs)."""

from __future__ import annotations

import csv
import html
import io
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.hq.web import WebSettings
from daemon.hq.web.sessions import SessionPolicy
from daemon.ledger import Refusal, SaleLine, UnitRef
from daemon.rules.units import Flag, State
from tests.hq_fixtures_web import (
    MANAGER,
    PASSWORD,
    VIEWER,
    Chain,
    Client,
    DashboardServer,
    EventStream,
    build_chain,
    cell,
)


class Clocks:
    """Wall and monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def wall(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def chain(tmp_path: Path) -> Iterator[Chain]:
    found = build_chain(tmp_path)
    yield found
    found.close()


@pytest.fixture
def clocks() -> Clocks:
    return Clocks()


@pytest.fixture
def server(chain: Chain, clocks: Clocks) -> Iterator[DashboardServer]:
    settings = WebSettings(
        poll_s=0.05, wall=clocks.wall, monotonic=clocks.monotonic, zone=ZoneInfo("UTC")
    )
    started = DashboardServer(chain.source, settings)
    yield started
    started.stop()


def signed_in(server: DashboardServer, name: str) -> Client:
    client = Client(server.url)
    assert client.login(name).status == 303
    return client


# -- signing in ------------------------------------------------------------------------


def test_pages_send_strangers_to_sign_in_and_back(server: DashboardServer) -> None:
    client = Client(server.url)
    page = client.get("/unit?product=LAP&serial=LX-3")
    assert page.status == 303 and page.headers["Location"].startswith("/login?next=")
    assert client.get("/counts/stream").status == 401
    form = client.get(page.headers["Location"])
    assert form.status == 200 and form.field("next") == "/unit?product=LAP&serial=LX-3"
    signed = client.post(
        "/login",
        {
            "csrf": form.field("csrf"),
            "name": MANAGER,
            "password": PASSWORD,
            "next": "/unit?product=LAP&serial=LX-3",
        },
    )
    assert signed.status == 303 and signed.headers["Location"] == "/unit?product=LAP&serial=LX-3"
    assert "serial LX-3" in client.get("/unit?product=LAP&serial=LX-3").text


def test_a_bad_sign_in_is_refused_with_a_clear_message(server: DashboardServer) -> None:
    client = Client(server.url)
    for name, password in ((MANAGER, "not the password"), ("nobody", PASSWORD)):
        refused = client.login(name, password)
        assert refused.status == 401
        assert "Wrong user name or password: nobody was signed in." in refused.text
    assert not any(c.name == "posd_hq_session" for c in client.cookies)
    assert client.get("/counts").status == 303


def test_the_session_cookie_is_httponly_strict_and_only_its_hash_is_stored(
    server: DashboardServer, chain: Chain
) -> None:
    client = Client(server.url)
    reply = client.login(MANAGER)
    cookie = next(h for h in reply.headers.get_all("Set-Cookie") if "posd_hq_session=" in h)
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    token = next(c.value for c in client.cookies if c.name == "posd_hq_session")
    assert chain.source.db is not None
    with sqlite3.connect(chain.source.db) as db:
        stored = [r[0] for r in db.execute("SELECT token_hash FROM hq_web_sessions")]
    assert stored and token not in stored


def test_password_guessing_is_stopped_then_allowed_again(
    server: DashboardServer, clocks: Clocks
) -> None:
    client = Client(server.url)
    for _ in range(5):
        assert client.login(MANAGER, "guess guess guess").status == 401
    stopped = client.login(MANAGER)  # even the right password, for now
    assert stopped.status == 429
    assert "Too many failed sign-ins for 'olga' from this address; try again in 15 minutes" in (
        stopped.text.replace("&#39;", "'")
    )
    clocks.now += 15 * 60
    assert client.login(MANAGER).status == 303


def test_a_sign_in_form_without_its_token_is_refused(server: DashboardServer) -> None:
    reply = Client(server.url).post(
        "/login", {"csrf": "made-up", "name": MANAGER, "password": PASSWORD, "next": ""}
    )
    assert reply.status == 403 and "sign-in form had expired" in reply.text


def test_signing_out_ends_the_session_for_a_copied_cookie_too(server: DashboardServer) -> None:
    client = signed_in(server, MANAGER)
    copy = Client(server.url)
    for cookie in client.cookies:
        copy.cookies.set_cookie(cookie)
    page = client.get("/counts")
    assert client.post("/logout", {"csrf": page.field("csrf")}).status == 303
    assert copy.get("/counts").status == 303


def test_an_idle_session_ends(server: DashboardServer, clocks: Clocks) -> None:
    client = signed_in(server, VIEWER)
    assert client.get("/counts").status == 200
    clocks.now += SessionPolicy().idle_s + 1
    assert client.get("/counts").status == 303


# -- what is refused ---------------------------------------------------------------------


def test_a_post_without_the_sessions_csrf_token_changes_nothing(
    server: DashboardServer, chain: Chain
) -> None:
    client = signed_in(server, MANAGER)
    form = {"product": "LAP", "serial": "LX-1", "keep": "", "note": "forged"}
    for token in ({}, {"csrf": "not-the-token"}):
        reply = client.post("/conflicts/resolve", form | token)
        assert reply.status == 403 and "did not come from this dashboard" in reply.text
    page = client.get("/conflicts")
    foreign = client.post(
        "/conflicts/resolve",
        form | {"csrf": page.field("csrf")},
        headers={"Origin": "http://evil.example"},
    )
    assert foreign.status == 403
    assert len(chain.central.conflicts()) == 1


def test_a_viewer_sees_no_actions_and_a_forged_post_is_refused(
    server: DashboardServer, chain: Chain
) -> None:
    client = signed_in(server, VIEWER)
    queue = client.get("/conflicts")
    assert "LX-1" in queue.text and "Resolve</button>" not in queue.text
    assert "A manager decides conflicts." in queue.text
    assert 'id="new-recall"' not in client.get("/recalls").text
    token = queue.field("csrf")
    resolve = client.post(
        "/conflicts/resolve",
        {"csrf": token, "product": "LAP", "serial": "LX-1", "keep": "", "note": "mine now"},
    )
    assert resolve.status == 403
    assert "resolving a conflict needs a manager; victor is signed in as viewer" in resolve.text
    recall = client.post(
        "/recalls",
        {"csrf": token, "action": "flag", "notice": "RC-X", "reason": "r", "prefix": "LX"},
    )
    assert recall.status == 403 and "creating a recall needs a manager" in recall.text
    assert len(chain.central.conflicts()) == 1
    assert "No recalls yet." in client.get("/recalls").text


# -- the pages -----------------------------------------------------------------------------


def test_counts_by_product_branch_and_prefix(server: DashboardServer) -> None:
    client = signed_in(server, VIEWER)
    page = client.get("/counts").text
    assert cell(page, "product", "LAP", "in_stock") == 13
    assert cell(page, "product", "LAP", "sold") == 2
    assert cell(page, "branch", "B2", "in_stock") == 5
    assert cell(page, "prefix", "LX-2", "sold") == 1
    narrowed = client.get("/counts?branch=B1").text
    assert cell(narrowed, "product", "LAP", "total") == 10
    assert 'data-key="B2"' not in narrowed


def test_finding_units_by_serial_prefix_and_range(server: DashboardServer) -> None:
    client = signed_in(server, VIEWER)
    exact = client.get("/units?mode=serial&q=lx-7")
    assert exact.status == 303 and exact.headers["Location"] == "/unit?product=LAP&serial=LX-7"
    assert client.get("/units?mode=prefix&q=LY").text.count('href="/unit?') == 5
    ranged = client.get("/units?mode=range&q=LX-3&to=LX-5").text
    assert [s for s in ("LX-3", "LX-4", "LX-5", "LX-6") if f">{s}</a>" in ranged] == [
        "LX-3",
        "LX-4",
        "LX-5",
    ]
    backwards = client.get("/units?mode=range&q=LX-5&to=LX-3")
    assert backwards.status == 400
    assert "is backwards: the first serial sorts after the last" in backwards.text
    assert "No unit at HQ matches" in client.get("/units?mode=serial&q=ZZ-1").text
    missing = client.get("/unit?product=LAP&serial=ZZ-1")
    assert missing.status == 404 and "HQ has no unit LAP serial" in missing.text


def test_a_passport_shows_the_whole_history(server: DashboardServer) -> None:
    page = signed_in(server, VIEWER).get("/unit?product=LAP&serial=LX-1").text
    history = page[page.index('id="history"') :]
    assert [k for k in ("receive", "sell", "flag") if f'data-kind="{k}"' in history] == [
        "receive",
        "sell",
        "flag",
    ]
    assert history.count('data-kind="sell"') == 2  # both sides of the fork
    assert "invoice INV-1" in history and "invoice INV-2" in history
    assert 'class="flag flag-conflict"' in page


def test_terminals_show_presence_watermark_and_what_waits(
    server: DashboardServer, chain: Chain
) -> None:
    from tests.test_hq_ingest import batches, watermark

    t3 = chain.terminals["T3"]
    t3.receive("PO-3", "Bolt", "LAP", ["LY-7"], actor="bea")
    t3.receive("PO-4", "Bolt", "LAP", ["LY-8"], actor="bea")
    after = watermark(chain.central, t3)
    chain.central.ingest(batches(t3, after=after, size=1)[1:])  # the first one lost on the way
    page = signed_in(server, VIEWER).get("/terminals").text
    rows = {
        name: page[page.index(f'data-terminal="{name}"') :].split("</tr>")[0]
        for name in ("T1", "T2", "T3")
    }
    assert ">online<" in rows["T1"] and ">offline<" in rows["T2"]
    assert f'<td class="num">{after}</td>' in rows["T3"]
    assert '<td class="num warn">1 <small>since' in rows["T3"]


def test_terminals_show_what_hq_refused_and_who_waits_for_hq(
    server: DashboardServer, chain: Chain
) -> None:
    from daemon.replication.protocol import Presence
    from tests.test_hq_bad_events import batch_of, forged_next
    from tests.test_hq_ingest import watermark

    t3 = chain.terminals["T3"]
    t3.receive("PO-3", "Bolt", "LAP", ["LY-7"], actor="bea")
    chain.send("T3")
    held = watermark(chain.central, t3) + 1
    bad = forged_next(t3, lambda body: body | {"set": {**body["set"], "cost_cents": 2**70}})
    chain.central.ingest([batch_of(t3, [bad], held)])
    chain.central.note_problem("terminal T7 sent a message claiming to be T1; refused", "T7")
    t1 = chain.terminals["T1"]
    chain.central.presence(
        [
            Presence(
                terminal="T1",
                branch="B1",
                epoch=t1.epoch,
                session=2,
                state="online",
                at="2026-11-23T09:40:00Z",
                backlog=12,
                waiting_since="2026-11-23T09:35:00.000Z",
            )
        ]
    )
    page = html.unescape(signed_in(server, VIEWER).get("/terminals").text)
    rows = {
        name: page[page.index(f'data-terminal="{name}"') :].split("</tr>")[0]
        for name in ("T1", "T2", "T3")
    }
    assert 'data-ok="no"' in rows["T3"] and f"held at event {held}" in rows["T3"]
    assert "set.cost_cents" in rows["T3"]  # the latest problem, in words
    assert 'data-ok="yes"' in rows["T1"] and 'data-ok="yes"' in rows["T2"]
    assert "waiting for HQ since 23 Nov 2026 09:35 with 12 events" in rows["T1"]
    problems = page[page.index('id="problems"') :]
    assert "<td>T7</td>" in problems and "<td>T3</td>" in problems


def test_analytics_tables_with_charts_and_downloads(server: DashboardServer, chain: Chain) -> None:
    t3 = chain.terminals["T3"]
    t3.sell("INV-7", "Hal", [SaleLine("LAP", "LY-0", 99000)], actor="bea", branch="B2")
    t3.return_unit(
        "INV-7", "LAP", "LY-0", actor="bea", condition="dead", disposition=State.QUARANTINED
    )
    chain.send("T3")
    client = signed_in(server, VIEWER)
    page = client.get("/analytics").text
    for title in ("Supplier failure rates", "Return rate per branch", "Units registered per day"):
        assert title in page
    failures = page[page.index('id="supplier-failure"') : page.index('id="repeated-defects"')]
    assert "<svg" in failures and "Bolt · LAP: 20.0%" in failures
    returns = page[page.index('id="branch-returns"') : page.index('id="warranty-vs-margin"')]
    assert 'class="bar warn"' in returns  # B2's returns stand out from the chain's
    rows = list(csv.reader(io.StringIO(client.get("/analytics/supplier-failure.csv").text)))
    assert rows[0] == ["supplier", "product", "received", "returned", "repaired", "failure_rate"]
    assert {r[0]: r[5] for r in rows[1:]} == {"Acme": "0.0", "Bolt": "0.2"}
    per_day = json.loads(client.get("/analytics/registered-per-day.json").text)
    assert sum(r["received"] for r in per_day["rows"]) == 15
    assert client.get("/analytics/no-such-report.csv").status == 404


# -- changes, and their way to the terminals ------------------------------------------------


def test_resolving_a_conflict_clears_it_at_hq_and_on_the_terminals(
    server: DashboardServer, chain: Chain
) -> None:
    client = signed_in(server, MANAGER)
    [conflict] = chain.central.conflicts()
    t1_sale = conflict["events"][0]
    page = client.get("/conflicts")
    refused = client.post(
        "/conflicts/resolve",
        {
            "csrf": page.field("csrf"),
            "product": "LAP",
            "serial": "LX-1",
            "keep": t1_sale,
            "note": " ",
        },
    )
    assert refused.status == 303
    assert "say why in the note" in client.get(refused.headers["Location"]).text
    done = client.post(
        "/conflicts/resolve",
        {
            "csrf": page.field("csrf"),
            "product": "LAP",
            "serial": "LX-1",
            "keep": t1_sale,
            "note": "T1 sold it first",
        },
    )
    after = html.unescape(client.get(done.headers["Location"]).text)
    assert 'LAP serial "LX-1": conflict resolved' in after
    assert "No conflicts are waiting." in after and "T1 sold it first" in after
    passport = client.get("/unit?product=LAP&serial=LX-1").text
    assert 'class="flag flag-conflict"' not in passport and "Dana" in passport
    last = passport[passport.rindex('data-kind="') :]
    assert last.startswith('data-kind="resolve"') and f'class="actor">{MANAGER}<' in last
    for name in ("T1", "T2"):
        chain.deliver(name)
        unit = chain.terminals[name].unit("LAP", "LX-1")
        assert unit is not None and Flag.CONFLICT not in unit.flags and unit.invoice == "INV-1"
    assert chain.central.verify().ok


def test_a_recall_flags_units_everywhere_and_lists_customers(
    server: DashboardServer, chain: Chain
) -> None:
    client = signed_in(server, MANAGER)
    token = client.get("/recalls").field("csrf")
    form = {"csrf": token, "notice": "RC-7", "reason": "battery swelling", "prefix": "LX-"}
    preview = client.post("/recalls", form | {"action": "preview"})
    assert preview.status == 200 and "<strong>10</strong> units match" in preview.text
    assert "No recalls yet." in client.get("/recalls").text  # a preview changes nothing
    done = client.post("/recalls", form | {"action": "flag"})
    assert done.status == 303 and done.headers["Location"] == "/recall?notice=RC-7"
    page = client.get(done.headers["Location"]).text
    assert "recall RC-7: 10 unit(s) match, 10 flagged recalled" in page
    assert f"by {MANAGER}" in page and "battery swelling" in page
    rows = list(csv.reader(io.StringIO(client.get("/recall/outreach.csv?notice=RC-7").text)))
    assert rows[0] == ["product", "serial", "customer", "invoice", "branch", "sold_on", "state"]
    assert [(r[1], r[2], r[3]) for r in rows[1:]] == [
        ("LX-1", "Eve", "INV-2"),
        ("LX-2", "Frank", "INV-3"),
    ]
    listed = json.loads(client.get("/recall/outreach.json?notice=RC-7").text)
    assert [r["customer"] for r in listed["rows"]] == ["Eve", "Frank"]
    again = client.post("/recalls", form | {"action": "flag"})
    assert "0 flagged recalled (10 already were)" in client.get(again.headers["Location"]).text
    chain.deliver("T1")
    unit = chain.terminals["T1"].unit("LAP", "LX-0")
    assert unit is not None and Flag.RECALLED in unit.flags
    with pytest.raises(Refusal, match="recalled"):
        chain.terminals["T1"].sell("INV-9", "Gus", [SaleLine("LAP", "LX-0", 1)], actor="bob")
    assert chain.central.verify().ok


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "a recall needs a product, lot, range, prefix or list of serials"),
        ({"prefix": "ZZ"}, "no unit at HQ matches {&#39;prefix&#39;: &#39;ZZ&#39;}"),
        ({"serials": "LX-3, LX-4", "notice": ""}, "a recall needs its notice number"),
    ],
)
def test_a_recall_that_cannot_be_made_says_why(
    server: DashboardServer, form: dict[str, str], message: str
) -> None:
    client = signed_in(server, MANAGER)
    token = client.get("/recalls").field("csrf")
    posted = {"csrf": token, "action": "flag", "notice": "RC-8", "reason": "r"} | form
    reply = client.post("/recalls", posted)
    assert reply.status == 400 and message in reply.text
    assert "No recalls yet." in reply.text


# -- live counts ------------------------------------------------------------------------------


def test_new_figures_are_pushed_when_hq_stores_events(
    server: DashboardServer, chain: Chain
) -> None:
    client = signed_in(server, VIEWER)
    stream = EventStream(client, "/counts/stream?product=LAP")
    try:
        name, first = stream.next()
        assert name == "counts" and cell(str(first["html"]), "branch", "B2", "in_stock") == 5
        chain.terminals["T3"].receive("PO-5", "Bolt", "LAP", ["LY-5", "LY-6"], actor="bea")
        chain.send("T3")
        _, pushed = stream.next()
        assert cell(str(pushed["html"]), "branch", "B2", "in_stock") == 7
        assert pushed["conflicts"] == 1
    finally:
        stream.close()


def test_unit_transfers_move_counts_between_branches(server: DashboardServer, chain: Chain) -> None:
    chain.terminals["T1"].transfer_out("TR-1", "B2", [UnitRef("LAP", "LX-5")], actor="ann")
    chain.send("T1")
    page = signed_in(server, VIEWER).get("/counts").text
    assert cell(page, "branch", "B1", "in_stock") == 7
    assert cell(page, "branch", "B1", "in_transit") == 1
