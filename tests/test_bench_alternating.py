"""`make bench` runs the benchmarks that alternate two ways of serving one request (bench/alternate.py): at a
tiny size each still starts its stack and fakes, measures every row unary and streamed with no failed
request, and the driver writes its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.envoy
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("benchmark", "title", "rows"),
    [
        (
            "transcoding",
            "Transcoding cost",
            ["unary, Anthropic", "unary, Bedrock", "streamed, Anthropic", "streamed, Bedrock"],
        ),
        ("CEL costs", "CEL costs in Envoy", ["unary", "streamed"]),
    ],
)
def test_the_benchmark_runs_at_a_tiny_size(
    tmp_path: Path, benchmark: str, title: str, rows: list[str]
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--tiny", "--only", benchmark, "--output", str(tmp_path)],
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
    assert [row[0] for row in table["rows"]] == rows
    columns = table["columns"]
    for row in table["rows"]:
        assert row[columns.index("requests each")] > 0
        assert row[columns.index("non-200")] == 0
    assert title in (tmp_path / "RESULTS.md").read_text()
