"""`make bench` must not rot: every benchmark runs at a tiny size, with every peer, and writes its results.

Not a measurement (the figures of a tiny run mean nothing): it proves each benchmark still starts its
processes, drives its peers (go-control-plane, plain Envoy, nginx, wrk, aigw, LiteLLM) and reports rows,
and that the driver writes RESULTS.md and results.json. The first run on a machine builds ``aigw`` and
installs LiteLLM into the tools cache (minutes, hence the long time-out); later runs take about a minute.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.scale_manifests import KEY_PREFIX

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.envoy
@pytest.mark.timeout(1800)
def test_every_benchmark_runs_at_a_tiny_size_and_writes_its_results(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--output", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1700,
        check=False,
    )
    # Every peer is built here, so nothing may be left "not measured".
    results = json.loads((tmp_path / "results.json").read_text())
    missing = [entry["what"] for table in results["tables"] for entry in table["missing"]]
    assert missing == [], run.stdout[-3000:] + run.stderr[-3000:]
    assert run.returncode == 0, run.stderr[-3000:]

    measured = {table["rows_of_issue"] for table in results["tables"] if table["rows"] or table["raw"]}
    assert {"1, 3", "2", "3", "4", "5", "6", "16"} <= measured, measured
    gateways = {
        row[0] for table in results["tables"] if table["rows_of_issue"] == "5" for row in table["rows"]
    }
    assert gateways == {"direct", "plain Envoy", "ours", "aigw", "LiteLLM"}
    row5 = next(table for table in results["tables"] if table["rows_of_issue"] == "5")
    errors = row5["columns"].index("errors")
    assert all(row[errors] == 0 for row in row5["rows"]), row5["rows"]

    report = (tmp_path / "RESULTS.md").read_text()
    for row in ("Row 1, 3:", "Row 2:", "Row 3:", "Row 4:", "Row 5:", "Row 6:"):
        assert row in report
    # bench.scale's BackendSecurityPolicy scenario and Envoy's memory, in the report and the JSON alike; the
    # policies' (made-up) keys in nothing the benchmarks printed or wrote.
    written = (tmp_path / "results.json").read_text()
    for figure in (
        "Envoy RSS MiB",
        "with policies: a Backend's port changed",
        "with policies: a policy's Secret",
    ):
        assert figure in report
        assert figure in written
    for output in (run.stdout, run.stderr, report, written):
        assert KEY_PREFIX not in output
    if importlib.util.find_spec("matplotlib"):
        assert (tmp_path / "charts" / "row5_latency.png").stat().st_size > 0
    else:
        assert "Charts not drawn" in report
