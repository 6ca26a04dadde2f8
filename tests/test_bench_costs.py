"""`make bench` runs the CEL costs benchmark: at a tiny size it still starts its stack and its fake,
measures both Gateways unary and streamed with no failed request, and the driver writes its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.envoy
@pytest.mark.timeout(300)
def test_the_cel_costs_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", "CEL costs", "--output", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (table,) = json.loads((tmp_path / "results.json").read_text())["tables"]
    assert table["rows_of_issue"] == "16"
    assert not table["missing"]
    assert [row[0] for row in table["rows"]] == ["unary", "streamed"]
    columns = table["columns"]
    for row in table["rows"]:
        assert row[columns.index("requests each")] > 0
        assert row[columns.index("non-200")] == 0
    assert "CEL costs in Envoy" in (tmp_path / "RESULTS.md").read_text()
