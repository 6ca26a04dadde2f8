"""What every benchmark hands the driver (``python -m bench``): tables, chart series and peers not measured.

One shape for all of them so the driver can print one table, write ``bench/RESULTS.md`` and
``bench/results.json`` and draw the PNG charts without knowing any benchmark's internals. A peer that could
not be built or run is a :class:`Missing` with the reason; its cells are ``None`` and print "not measured":
never a made-up figure.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from controlplane.log import configure_logging

Cell = str | float | int | None


@dataclass
class Series:
    """One line of a chart: y over x (e.g. convergence seconds over cluster count, for one server)."""

    label: str
    x: list[float]
    y: list[float]


@dataclass
class Chart:
    name: str
    title: str
    x_label: str
    y_label: str
    series: list[Series] = field(default_factory=list)
    log_x: bool = False
    kind: str = "line"  # "line" (scaling curves) or "cdf" (latency distributions; x holds the samples)


@dataclass
class Missing:
    """A peer or baseline that could not be measured, and exactly why."""

    what: str
    reason: str


@dataclass
class Table:
    """One benchmark's result: the issue's row number(s), a header and rows of cells."""

    rows_of_issue: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    raw: str = ""
    """Output of a benchmark run as a child process whose figures are shown verbatim (e.g. bench.scale)."""


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of a non-empty sample."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(value: float | None, baseline: float | None) -> float | None:
    """value / baseline, or None when either was not measured."""
    if value is None or baseline is None or baseline == 0:
        return None
    return value / baseline


def cell_text(cell: Cell) -> str:
    if cell is None:
        return "not measured"
    if isinstance(cell, float):
        return f"{cell:,.3f}" if abs(cell) < 10 else f"{cell:,.1f}"
    if isinstance(cell, int):
        return f"{cell:,d}"
    return cell


def render_text(table: Table) -> str:
    """The table as aligned plain text, for the terminal."""
    cells = [table.columns, *([cell_text(cell) for cell in row] for row in table.rows)]
    widths = [max(len(row[index]) for row in cells) for index in range(len(table.columns))]
    lines = [f"row {table.rows_of_issue}: {table.title}"]
    lines += ["  ".join(text.rjust(width) for text, width in zip(row, widths, strict=True)) for row in cells]
    lines += [f"  not measured: {missing.what}: {missing.reason}" for missing in table.missing]
    if table.raw:
        lines.append(table.raw)
    return "\n".join(lines)


def run_from_command_line(
    description: str | None,
    measure: Callable[..., Table],
    *,
    default_seconds: float = 10.0,
    seconds_help: str = "duration of each kind of request",
) -> None:
    """``python -m bench.<name> [--seconds S]``: prints the table ``measure(seconds=S)`` gives."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=default_seconds, help=seconds_help)
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    print(render_text(measure(seconds=args.seconds)))
