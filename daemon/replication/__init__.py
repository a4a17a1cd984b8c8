"""Replication of the terminal's ledger to HQ over MQTT (see PROTOCOL.md).

from daemon.replication import ReplicationConfig, Replicator
replicator = Replicator(ReplicationConfig(url="mqtts://hq.example:8883", ...), ledger_path)
replicator.start()
replicator.status.backlog   # own events HQ has not confirmed yet
replicator.stop()
"""

from daemon.config.replication import BrokerConfig, BrokerSettingError, ReplicationConfig
from daemon.replication.terminal import ReplicationStatus, Replicator, on_loop

__all__ = [
    "BrokerConfig",
    "BrokerSettingError",
    "ReplicationConfig",
    "ReplicationStatus",
    "Replicator",
    "on_loop",
]
