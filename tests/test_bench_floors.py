"""`posd bench` shows each ledger figure beside its floor, measured in the same run,
and the import floor stores what posd's import stores."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from click.testing import CliRunner

from daemon.bench.ledger import fill
from daemon.cli import build


def test_the_ledger_bench_prints_each_ratio_with_its_floor() -> None:
    result = CliRunner().invoke(build(), ["bench", "--only", "ledger", "--units", "4000", "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout[result.stdout.index("{") :])
    for ratio, posd, floor in (
        ("import_ratio", "import_median_serials_per_s", "import_floor_serials_per_s"),
        ("lookup_ratio", "lookup_median_ms", "lookup_floor_median_ms"),
        ("sale_commit_ratio", "sale_commit_median_ms", "sale_commit_floor_median_ms"),
    ):
        assert figures[floor] > 0
        expected = figures[floor] / figures[posd] if ratio == "import_ratio" else None
        expected = expected or figures[posd] / figures[floor]
        # Ratios are of unrounded medians; the figures shown are rounded.
        assert abs(figures[ratio] - expected) <= 0.1 * expected + 0.02, ratio
    assert 300 < figures["ledger_bytes_per_unit"] < 5000
    assert figures["import_serials_per_s"] > 0  # the old absolute figures stay


def test_the_import_floor_stores_the_same_rows_with_bodies_of_the_same_size(
    tmp_path: Path,
) -> None:
    ledger, _ = fill(tmp_path / "posd.db", 4000, floor=tmp_path / "floor.db")
    ledger.close()
    shape = (
        "SELECT count(*), sum(length(e.body)), count(DISTINCT u.serial_key), sum(u.cost_cents)"
        " FROM events e JOIN units u ON u.id = e.unit_id WHERE e.kind = 'receive'"
    )
    with (
        sqlite3.connect(tmp_path / "posd.db") as posd,
        sqlite3.connect(tmp_path / "floor.db") as floor,
    ):
        posd_rows, floor_rows = posd.execute(shape).fetchone(), floor.execute(shape).fetchone()
        assert posd_rows[0] == floor_rows[0] == 4000
        assert posd_rows[2:] == floor_rows[2:]
        # Bodies differ only where posd's carry ids, hashes and times of their own.
        assert abs(posd_rows[1] - floor_rows[1]) < 0.05 * posd_rows[1]
        documents = "SELECT count(*) FROM documents WHERE type = 'po'"
        assert posd.execute(documents).fetchone() == floor.execute(documents).fetchone()
