"""HQ: the central ledger that every terminal replicates to (see replication/PROTOCOL.md).

from daemon.hq import Central, HqConfig, HqNode, open_backend
node = HqNode(HqConfig(broker=...), open_backend(db="hq.db", pg=None))
node.run(stop_event)
"""

from daemon.config.hq import HqConfig
from daemon.hq.backend import Backend
from daemon.hq.central import Central, HqRefusal
from daemon.hq.connect import open_backend
from daemon.hq.node import HqNode

__all__ = ["Backend", "Central", "HqConfig", "HqNode", "HqRefusal", "open_backend"]
