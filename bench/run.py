"""``make bench`` / ``python -m bench``: every benchmark in one run, each figure next to its baseline.

Runs rows 1-6 of the benchmark table (issue 12) and the transcoder's cost (issue 16) at sizes that fit in
about 15 minutes on two cores (or ``--tiny``, what the smoke tests run), prints one table per row, and
writes ``RESULTS.md``, ``results.json`` and PNG charts into ``--output`` (``bench/`` by default). A
benchmark or peer that fails is reported "not measured" with its reason, the others still run, and the exit
status is 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import costs, dataplane, failover, fanout, transcoding, xds_push
from bench.report import Missing, Table, cell_text, render_text
from controlplane.devtools.envoy_process import envoy_binary
from controlplane.log import configure_logging

BENCH = Path(__file__).parent


@dataclass(frozen=True)
class Sizes:
    """How big each benchmark runs: the full run, or the smoke test's."""

    scale_args: tuple[str, ...]
    kubernetes_args: tuple[str, ...]
    clusters: tuple[int, ...]
    repeat: int
    changes: int
    fanout_clients: int
    fanout_envoys: int
    fanout_clusters: int
    fanout_changes: int
    load_seconds: float
    connections: tuple[int, ...]
    failover_seconds: float
    failover_settle: float
    transcoding_seconds: float


FULL = Sizes(
    scale_args=("--sizes", "1000,5000", "--changes", "20"),
    kubernetes_args=("--routes", "1000", "--changes", "10"),
    clusters=(1000, 5000),
    # Row 2 at 1,000 clusters converges in ~0.3 s, and single runs of one server vary by +-20 % on two shared
    # cores (five runs of ours over go-control-plane's, Delta: 0.82-1.21x): a median of three, not two.
    repeat=3,
    changes=50,
    fanout_clients=100,
    fanout_envoys=3,
    fanout_clusters=1000,
    fanout_changes=20,
    load_seconds=5,
    connections=(1, 16, 64),
    failover_seconds=10,
    failover_settle=6.5,
    transcoding_seconds=10,
)
TINY = Sizes(
    scale_args=("--sizes", "20", "--changes", "2"),
    kubernetes_args=("--routes", "5", "--changes", "2"),
    clusters=(20,),
    repeat=1,
    changes=3,
    fanout_clients=5,
    fanout_envoys=1,
    fanout_clusters=20,
    fanout_changes=2,
    load_seconds=1,
    connections=(1, 4),
    failover_seconds=1,
    failover_settle=0,
    transcoding_seconds=1,
)


def _child_benchmark(module: str, args: tuple[str, ...], *, rows: str, title: str, timeout: float) -> Table:
    """A benchmark whose figures are its own printed tables (run as a child, shown verbatim)."""
    table = Table(rows_of_issue=rows, title=title, columns=[])
    result = subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    table.raw = result.stdout.strip()
    table.notes.append(f"`python -m {module} {' '.join(args)}`, figures as it printed them.")
    if result.returncode != 0:
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        table.missing.append(Missing(module, f"exited with status {result.returncode}: {tail}"))
    return table


def benchmarks(sizes: Sizes) -> list[tuple[str, Callable[[], list[Table]]]]:
    return [
        (
            "rows 1 and 3: translation at scale, file source (bench.scale)",
            lambda: [
                _child_benchmark(
                    "bench.scale",
                    sizes.scale_args,
                    rows="1, 3",
                    title="Load + translate + snapshot, RSS, one route change -> ACK (file source)",
                    timeout=900,
                )
            ],
        ),
        (
            "row 3: Kubernetes source (bench.kubernetes)",
            lambda: [
                _child_benchmark(
                    "bench.kubernetes",
                    sizes.kubernetes_args,
                    rows="3",
                    title="Routes from a real API server vs the file source, one change -> routed",
                    timeout=600,
                )
            ],
        ),
        (
            "rows 2 and 3: xDS convergence and push (bench.xds_push)",
            lambda: xds_push.measure(sizes=sizes.clusters, repeat=sizes.repeat, changes=sizes.changes),
        ),
        (
            "row 4: fan-out (bench.fanout)",
            lambda: [
                fanout.measure(
                    clients=sizes.fanout_clients,
                    envoys=sizes.fanout_envoys,
                    clusters=sizes.fanout_clusters,
                    changes=sizes.fanout_changes,
                )
            ],
        ),
        (
            "row 5: data plane (bench.dataplane)",
            lambda: [dataplane.measure(seconds=sizes.load_seconds, connections=sizes.connections)],
        ),
        (
            "row 6: failover (bench.failover)",
            lambda: [failover.measure(seconds=sizes.failover_seconds, settle_seconds=sizes.failover_settle)],
        ),
        (
            "issue 16: transcoding (bench.transcoding)",
            lambda: [transcoding.measure(seconds=sizes.transcoding_seconds)],
        ),
        (
            "issue 16: CEL costs (bench.costs)",
            lambda: [costs.measure(seconds=sizes.transcoding_seconds)],
        ),
    ]


def run(sizes: Sizes, *, only: str | None = None) -> list[Table]:
    tables: list[Table] = []
    for name, benchmark in benchmarks(sizes):
        if only and only not in name:
            continue
        print(f"== {name}", flush=True)
        started = time.monotonic()
        try:
            produced = benchmark()
        except Exception as error:
            rows = name.split(":")[0].removeprefix("rows ").removeprefix("row ")
            produced = [Table(rows_of_issue=rows, title=name, columns=[])]
            produced[0].missing.append(Missing(name, f"{type(error).__name__}: {error}"))
        for table in produced:
            table.notes.append(f"Benchmark took {time.monotonic() - started:.0f} s.")
            print(render_text(table), flush=True)
        tables += produced
    return tables


def _machine() -> dict[str, str]:
    envoy = subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True, check=False)
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": str(os.cpu_count()),
        "load average at start": " ".join(f"{value:.1f}" for value in os.getloadavg()),
        "python": platform.python_version(),
        "envoy": envoy.stdout.strip().split("version: ")[-1][:60],
    }


def write_results(tables: list[Table], machine: dict[str, str], *, output: Path, elapsed: float) -> None:
    machine = {**machine, "load average at end": " ".join(f"{v:.1f}" for v in os.getloadavg())}
    machine["duration"] = f"{elapsed / 60:.1f} min"
    output.mkdir(parents=True, exist_ok=True)
    payload = {"machine": machine, "tables": [dataclasses.asdict(table) for table in tables]}
    (output / "results.json").write_text(json.dumps(payload, indent=1) + "\n")
    try:
        from bench.charts import draw

        charts = draw([chart for table in tables for chart in table.charts], output / "charts")
        chart_note = ""
    except ImportError as error:
        charts, chart_note = [], f"Charts not drawn: {error} (install the `bench` extra: `make bench`)."
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); see README.md to read them.",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    if chart_note:
        lines += ["", chart_note]
    for table in tables:
        lines += ["", f"## Row {table.rows_of_issue}: {table.title}", ""]
        if table.columns:
            lines.append("| " + " | ".join(table.columns) + " |")
            lines.append("|" + "---|" * len(table.columns))
            lines += ["| " + " | ".join(cell_text(cell) for cell in row) + " |" for row in table.rows]
        if table.raw:
            lines += ["```", table.raw, "```"]
        lines += [""] + [f"- {note}" for note in table.notes]
        lines += [f"- **Not measured: {missing.what}**: {missing.reason}" for missing in table.missing]
        for chart in table.charts:
            path = output / "charts" / f"{chart.name}.png"
            if path in charts:
                lines += ["", f"![{chart.title}](charts/{chart.name}.png)"]
    (output / "RESULTS.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="every benchmark at a tiny size (the smoke test)")
    parser.add_argument(
        "--output", type=Path, default=BENCH, help="where RESULTS.md, results.json, charts/ go"
    )
    parser.add_argument("--only", help="run only the benchmarks whose name contains this (e.g. 'row 5')")
    args = parser.parse_args(argv)
    configure_logging(json=False, level="warning")
    machine = _machine()
    started = time.monotonic()
    tables = run(TINY if args.tiny else FULL, only=args.only)
    write_results(tables, machine, output=args.output, elapsed=time.monotonic() - started)
    missing = [missing for table in tables for missing in table.missing]
    print(f"wrote {args.output / 'RESULTS.md'} in {(time.monotonic() - started) / 60:.1f} min")
    for item in missing:
        print(f"not measured: {item.what}: {item.reason}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
