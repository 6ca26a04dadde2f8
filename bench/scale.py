"""What a change costs at scale: N AIGatewayRoutes (two Backends each) in a folder, one file per route.

For each size, in one run:

- **full**: load + translate + snapshot of the whole folder, in this process (the first load of ``serve``);
- **serve RSS**: a real ``controlplane serve`` on the folder once its first snapshot is set (now and peak);
- **change -> ACK**: the file source, the publisher and the xDS server of ``serve`` in this process, with a
  real Envoy on Delta ADS; one route file's Backend port is rewritten (``--edit route``: its route's header
  match instead, which changes the route configuration), and the time until Envoy has ACKed
  every resource of the new snapshot is taken from the file write and from the source handing the load
  over (p50/p99). It runs twice: with Envoy resources reused from the previous load (what ``serve`` does)
  and with every load rebuilt from scratch (the baseline);
- **loop stall**: the worst lateness of a 1 ms timer on the server's event loop during the first full load,
  while Envoy connects and receives all of it, and during the changes (translation runs in a worker thread;
  goal <= 20 ms), and for 2 s with nothing happening (what the machine's other load adds).

Not a test: the figures depend on the machine.

    .venv/bin/python -m bench.scale [--sizes 1000,5000] [--changes 20] [--edit backend|route]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.manifests import NAMESPACE, gateway_manifests, route_yaml
from bench.xds_push import Acks
from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.controlplane_process import ControlPlaneProcess
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.gatewayapi import ObjectStatus, TranslateOptions
from controlplane.heap import building_configuration
from controlplane.log import configure_logging
from controlplane.netutil import PortReservations
from controlplane.pipeline import Translator
from controlplane.refusals import ProxyRefusals
from controlplane.resources.parse import LoadResult
from controlplane.resources.problems import ObjectKey
from controlplane.serving import SnapshotPublisher
from controlplane.sources.file_reading import FileLimits
from controlplane.sources.files import FileSource
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.server import XdsServer, XdsSettings

_TIMEOUT = 600.0
_OBJECTS_PER_ROUTE = 5
"""Two Backends, two AIServiceBackends and the AIGatewayRoute (``route_file``)."""


def route_file(index: int, *, backend_port: int, match: str | None = None) -> str:
    """Route ``r<index>``: two AIServiceBackends on a Backend each, the first on ``backend_port``; requests
    with ``x-route: <match>`` (by default ``r<index>``)."""
    documents = []
    for side, port in (("a", backend_port), ("b", 18190)):
        documents.append(f"""apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: b{index}-{side}
  namespace: {NAMESPACE}
spec:
  endpoints:
  - ip:
      address: 127.0.0.1
      port: {port}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: a{index}-{side}
  namespace: {NAMESPACE}
spec:
  schema:
    name: OpenAI
  backendRef:
    name: b{index}-{side}
    kind: Backend
    group: gateway.envoyproxy.io
""")
    documents.append(route_yaml(index, [f"a{index}-a", f"a{index}-b"], value=match))
    return "---\n".join(documents)


def objects_in(routes: int) -> int:
    """How many objects ``write_manifests`` writes for ``routes`` routes: the file source's default
    ``--max-objects`` (10,000) is below what 2,000 routes hold, and a load over it is refused whole."""
    return routes * _OBJECTS_PER_ROUTE + len(gateway_manifests(0).split("\n---\n"))


def write_manifests(folder: Path, routes: int, *, gateway_port: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shared.yaml").write_text(gateway_manifests(gateway_port))
    for index in range(routes):
        _route_path(folder, index).write_text(route_file(index, backend_port=18190))


def _route_path(folder: Path, index: int) -> Path:
    return folder / f"r{index:05d}.yaml"


@dataclass
class Changes:
    mode: str
    from_handover_ms: list[float] = field(default_factory=list)
    from_write_ms: list[float] = field(default_factory=list)
    first_load_stall_ms: float = 0.0
    connect_stall_ms: float = 0.0
    """From Envoy's start until it ACKed the whole first snapshot: the responses of every resource."""
    change_stall_ms: float = 0.0
    idle_stall_ms: float = 0.0
    """The same canary while nothing changes: what the machine itself adds."""


@dataclass
class Row:
    routes: int
    load_s: float
    translate_s: float
    cpu_s: float
    """Processor time of load + translate + snapshot: what a busy machine's other jobs do not inflate."""
    rss_mib: float
    peak_rss_mib: float
    changes: list[Changes]


class LoopCanary:
    """The worst lateness of a 1 ms timer on the running loop since the last ``reset``."""

    def __init__(self) -> None:
        self.worst = 0.0

    def reset(self) -> float:
        worst, self.worst = self.worst, 0.0
        return worst

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.perf_counter() - started - 0.001)


class TimedHandler:
    """The publisher, noting when the source handed each load over."""

    def __init__(self, publisher: SnapshotPublisher) -> None:
        self._publisher = publisher
        self.handed_over: list[float] = []

    async def __call__(self, result: LoadResult, /) -> Mapping[ObjectKey, ObjectStatus]:
        self.handed_over.append(time.perf_counter())
        return await self._publisher(result)


def _limits(routes: int) -> FileLimits:
    return FileLimits(max_objects=objects_in(routes))


def _full(folder: Path, routes: int) -> tuple[float, float, float]:
    """As ``serve`` does it: without full garbage collections (``controlplane.heap``), its first translation
    recording what the next change reuses (``Translator(reuse=False)``, the ``translate`` command's path,
    records nothing and costs less). (Load seconds, translate + snapshot seconds, processor seconds of
    both.)"""
    started, cpu = time.perf_counter(), time.process_time()
    with building_configuration():
        loaded = FileSource([folder], limits=_limits(routes)).load()
    read = time.perf_counter()
    if len(loaded.objects) != objects_in(routes) or not loaded.ok:
        raise RuntimeError(f"the load of {routes} routes is incomplete: {loaded.problems[:3]}")
    with building_configuration():
        Translator().snapshot(loaded.resource_set()).snapshot.consistency_problems()
    return read - started, time.perf_counter() - read, time.process_time() - cpu


def _serve_rss(folder: Path, workdir: Path, routes: int) -> tuple[float, float]:
    """(RSS, peak RSS) in MiB of ``controlplane serve`` once its first snapshot is set."""
    process = ControlPlaneProcess(
        [str(folder), "--max-objects", str(objects_in(routes))], log_file=workdir / "serve.log"
    )
    try:
        process.start(timeout=_TIMEOUT)
        deadline = time.monotonic() + _TIMEOUT
        while process.status()["snapshotVersion"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
    finally:
        process.stop()
    values = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith("Vm")}
    return values["VmRSS"], values["VmHWM"]


def _edited(index: int, *, attempt: int, edit: str) -> str:
    """Route file ``index`` as the change numbered ``attempt`` writes it (``--edit``)."""
    if edit == "route":
        return route_file(index, backend_port=18190, match=f"r{index}-edit{attempt}")
    return route_file(index, backend_port=20000 + attempt)


async def _changes(
    folder: Path, *, routes: int, count: int, reuse: bool, gateway_port: int, edit: str = "backend"
) -> Changes:
    result = Changes("reused" if reuse else "full rebuild")
    # A port of its own: the previous mode's Envoy may not have released its listener yet.
    (folder / "shared.yaml").write_text(gateway_manifests(gateway_port))
    cache = SnapshotCache()
    acks = Acks()
    server = XdsServer(cache=cache, settings=XdsSettings())
    server.add_observer(acks)
    port = await server.start()
    publisher = SnapshotPublisher(
        cache=cache, options=TranslateOptions(), refusals=ProxyRefusals(), reuse=reuse
    )
    handler = TimedHandler(publisher)
    canary = LoopCanary()
    canary_task = asyncio.create_task(canary.run())
    source_task = asyncio.create_task(FileSource([folder], limits=_limits(routes)).run(handler))
    node_id = f"scale-{routes}-{result.mode.replace(' ', '-')}"
    envoy = EnvoyProcess(
        bootstrap_yaml=render_bootstrap(
            xds_address=f"127.0.0.1:{port}", delta=True, node_id=node_id, admin_port=0
        )
    )
    try:
        snapshot = await _next_snapshot(cache, None)
        result.first_load_stall_ms = canary.reset() * 1000
        # Off the loop: spawning Envoy forks this (large) process, which is no part of the server's work.
        await asyncio.to_thread(envoy.start)
        await acks.until(node_id, snapshot)
        result.connect_stall_ms = canary.reset() * 1000
        await asyncio.sleep(2)
        result.idle_stall_ms = canary.reset() * 1000
        for attempt in range(count):
            index = (attempt * 7919) % routes
            path = _route_path(folder, index)
            written = time.perf_counter()
            path.write_text(_edited(index, attempt=attempt, edit=edit))
            snapshot = await _next_snapshot(cache, snapshot)
            acked = await acks.until(node_id, snapshot)
            result.from_write_ms.append((acked - written) * 1000)
            result.from_handover_ms.append((acked - handler.handed_over[-1]) * 1000)
        result.change_stall_ms = canary.reset() * 1000
        # Back to the original, so the next mode starts from the same files.
        for attempt in range(count):
            index = (attempt * 7919) % routes
            _route_path(folder, index).write_text(route_file(index, backend_port=18190))
        return result
    finally:
        envoy.stop()
        for task in (source_task, canary_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await server.stop(grace_seconds=1)


async def _next_snapshot(cache: SnapshotCache, previous: Snapshot | None) -> Snapshot:
    deadline = time.monotonic() + _TIMEOUT
    while time.monotonic() < deadline:
        current = cache.get_snapshot()
        if current is not None and current is not previous:
            return current
        await asyncio.sleep(0.0005)
    raise TimeoutError("no new snapshot")


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _print(rows: list[Row]) -> None:
    print("\n| routes | load s | translate+snapshot s | full s | full cpu s | serve RSS MiB (peak) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row.routes:,} | {row.load_s:.2f} | {row.translate_s:.2f} "
            f"| {row.load_s + row.translate_s:.2f} | {row.cpu_s:.2f} "
            f"| {row.rss_mib:.0f} ({row.peak_rss_mib:.0f}) |"
        )
    print(
        "\n| routes | mode | from handover p50 / p99 ms | from write p50 / p99 ms "
        "| loop stall first load / Envoy connects / changes / idle ms |"
    )
    print("|---:|---|---:|---:|---:|")
    for row in rows:
        for changes in row.changes:
            handover, written = changes.from_handover_ms, changes.from_write_ms
            print(
                f"| {row.routes:,} | {changes.mode} "
                f"| {statistics.median(handover):.0f} / {_percentile(handover, 0.99):.0f} "
                f"| {statistics.median(written):.0f} / {_percentile(written, 0.99):.0f} "
                f"| {changes.first_load_stall_ms:.0f} / {changes.connect_stall_ms:.0f} "
                f"/ {changes.change_stall_ms:.0f} "
                f"/ {changes.idle_stall_ms:.0f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000,5000", help="comma-separated route counts")
    parser.add_argument("--changes", type=int, default=20, help="changes per size and mode")
    parser.add_argument(
        "--edit",
        choices=("backend", "route"),
        default="backend",
        help="what each change rewrites in a route file: a Backend's port or the route's header match",
    )
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    rows = []
    for routes in (int(size) for size in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch, PortReservations() as ports:
            folder = Path(scratch) / "manifests"
            write_manifests(folder, routes, gateway_port=ports.reserve())
            load_s, translate_s, cpu_s = _full(folder, routes)
            rss, peak = _serve_rss(folder, Path(scratch), routes)
            changes = [
                asyncio.run(
                    _changes(
                        folder,
                        routes=routes,
                        count=args.changes,
                        reuse=reuse,
                        gateway_port=ports.reserve(),
                        edit=args.edit,
                    )
                )
                for reuse in (False, True)
            ]
        rows.append(Row(routes, load_s, translate_s, cpu_s, rss, peak, changes))
        print(rows[-1], flush=True)
    _print(rows)


if __name__ == "__main__":
    main()
