"""A broker user name goes into the broker ACL's topic patterns (`posd/v1/t/%u/#`): one
with `/`, `+` or `#` would widen them, so every configuration that names one (a
terminal's replication, HQ's broker) refuses it, as provisioning does (test_provision)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from daemon.config.hq import HqConfig
from daemon.config.replication import BrokerConfig, ReplicationConfig

WIDENING = st.tuples(st.text(max_size=10), st.sampled_from("/+#"), st.text(max_size=10)).map(
    "".join
)


@given(WIDENING)
def test_no_configuration_takes_a_user_name_that_widens_the_acl(name: str) -> None:
    for make in (
        lambda: ReplicationConfig(username=name),
        lambda: HqConfig(broker=BrokerConfig(username=name)),
    ):
        with pytest.raises(ValidationError, match="broker user name"):
            make()
