"""PNG charts of the benchmark tables (matplotlib, from the ``bench`` extra; never a runtime dependency)."""

from __future__ import annotations

from pathlib import Path

from bench.report import Chart


def draw(charts: list[Chart], folder: Path) -> list[Path]:
    """One PNG per chart in `folder`; raises ImportError when the ``bench`` extra is not installed."""
    import matplotlib  # optional: only `make bench` installs it

    matplotlib.use("Agg")
    from matplotlib import pyplot

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in charts:
        if not chart.series:
            continue
        figure, axes = pyplot.subplots(figsize=(7, 4.2))
        for series in chart.series:
            axes.plot(series.x, series.y, marker="." if chart.kind == "cdf" else "o", label=series.label)
        if chart.log_x:
            axes.set_xscale("log")
        axes.set_title(chart.title)
        axes.set_xlabel(chart.x_label)
        axes.set_ylabel(chart.y_label)
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize="small")
        figure.tight_layout()
        path = folder / f"{chart.name}.png"
        figure.savefig(path, dpi=100)
        pyplot.close(figure)
        written.append(path)
    return written
