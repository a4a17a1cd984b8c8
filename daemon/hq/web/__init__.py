"""The HQ dashboard: live counts, unit passports, conflicts, terminals, recalls and
analytics over HQ's central ledger, for signed-in HQ users (viewers and managers).

    from daemon.hq.web import HqSource, create_app
    app = create_app(HqSource(db=Path("hq.db")))
"""

from daemon.hq.web.app import create_app
from daemon.hq.web.db import DatabaseMissing, HqSource
from daemon.hq.web.state import WebSettings

__all__ = ["DatabaseMissing", "HqSource", "WebSettings", "create_app"]
