"""The `posd` command line: a thin layer over the library.

Library errors become messages (and exit status 1 for a refusal, 2 for a missing
or unusable ledger) only here, at the edge. Every command takes `--json`.
"""

from __future__ import annotations

import click

from daemon.cli.appliance_commands import register as register_appliance
from daemon.cli.common import main_group
from daemon.cli.epcis import register as register_epcis
from daemon.cli.hq_commands import register as register_hq
from daemon.cli.hq_web_commands import register as register_hq_web
from daemon.cli.ledger_commands import register as register_ledger
from daemon.cli.query_commands import register as register_queries
from daemon.cli.report_commands import register as register_reports
from daemon.cli.run_commands import register as register_run
from daemon.cli.screen_commands import register as register_screen


def build() -> click.Group:
    group = main_group()
    register_ledger(group)
    register_queries(group)
    register_reports(group)
    from daemon.cli.tools import register as register_tools

    register_tools(group)
    register_run(group)
    register_screen(group)
    register_hq(group)
    register_appliance(group)
    register_hq_web(group)
    register_epcis(group)
    return group


def main() -> None:
    build()(prog_name="posd")
