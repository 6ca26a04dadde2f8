"""What a change costs at scale: N AIGatewayRoutes (two Backends each) in a folder, one file per route.

For each size, in one run:

- **full**: load + translate + snapshot of the whole folder, in this process (the first load of ``serve``);
- **serve RSS**: a real ``controlplane serve`` on the folder once its first snapshot is set (now and peak);
- **Envoy RSS**: the real Envoy of the changes below once it has ACKed the whole first snapshot and reports
  ready (now and peak), without and with the policies of the last scenario;
- **change -> ACK**: the file source, the publisher and the xDS server of ``serve`` in this process, with a
  real Envoy on Delta ADS; one route file's Backend port is rewritten (``--edit route``: its route's header
  match instead, which changes the route configuration), and the time until Envoy has ACKed
  every resource of the new snapshot is taken from the file write and from the source handing the load
  over (p50/p99). It runs twice: with Envoy resources reused from the previous load (what ``serve`` does)
  and with every load rebuilt from scratch (the baseline);
- **with policies** (``bench.scale_manifests``): every AIServiceBackend gets an APIKey BackendSecurityPolicy
  and a Secret; the same changes with reused resources, once rewriting a Backend's port (a change elsewhere,
  to compare with the rows above) and once pointing one policy at another Secret;
- **loop stall**: the worst lateness of a 1 ms timer on the server's event loop during the first full load,
  while Envoy connects and receives all of it, and during the changes (translation runs in a worker thread;
  goal <= 20 ms), and for 2 s with nothing happening (what the machine's other load adds); next to each,
  how much of that worst tick the loop's thread was runnable but waiting for a processor
  (``bench.loop_canary``): a stall mostly waiting is the machine's, not the server's.

Not a test: the figures depend on the machine.

    .venv/bin/python -m bench.scale [--sizes 1000,5000] [--changes 20] [--edit backend|route]
                                    [--only-policies]
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

from bench.acks import Acks
from bench.loop_canary import LoopCanary, Stall
from bench.manifests import gateway_manifests
from bench.memory import Memory, process_memory
from bench.scale_manifests import (
    EDITS,
    changed_route,
    edited_route_file,
    objects_in,
    original_route_file,
    route_path,
    write_manifests,
)
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
from controlplane.resources.problems import ObjectKey, Severity
from controlplane.serving import SnapshotPublisher
from controlplane.sources.file_reading import FileLimits
from controlplane.sources.files import FileSource
from controlplane.xds.cache import Snapshot, SnapshotCache
from controlplane.xds.server import XdsServer, XdsSettings

_TIMEOUT = 600.0


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
    first_load_waiting_ms: float | None = None
    """Of each stall above, the time the loop's thread was runnable but waited for a processor (None where
    the kernel does not report it): what the machine's other work, not the server, added to that tick."""
    connect_waiting_ms: float | None = None
    change_waiting_ms: float | None = None
    idle_waiting_ms: float | None = None
    envoy_memory: Memory | None = None
    """Envoy's, once it ACKed the whole first snapshot and reports ready."""


@dataclass
class Row:
    routes: int
    load_s: float
    translate_s: float
    cpu_s: float
    """Processor time of load + translate + snapshot: what a busy machine's other jobs do not inflate."""
    serve_memory: Memory
    changes: list[Changes]
    """Without policies (full rebuild, reused), then with them (a Backend changed, a policy changed)."""


class TimedHandler:
    """The publisher, noting when the source handed each load over, what the loads refused and the statuses
    of the newest translation (the benchmark's own manifests must pass whole, or it would time less than it
    claims). The statuses are read by ``require_accepted``, between changes: scanning the 35,000 statuses'
    conditions after each change ran on the very loop the benchmark measures (5 ms CPU a change at 5,000
    routes with policies)."""

    def __init__(self, publisher: SnapshotPublisher) -> None:
        self._publisher = publisher
        self.handed_over: list[float] = []
        self._load_problems: list[str] = []
        self._statuses: Mapping[ObjectKey, ObjectStatus] = {}

    async def __call__(self, result: LoadResult, /) -> Mapping[ObjectKey, ObjectStatus] | None:
        self.handed_over.append(time.perf_counter())
        self._load_problems += [
            problem.message for problem in result.problems if problem.severity is Severity.ERROR
        ]
        statuses = await self._publisher(result)
        if statuses is None:
            self._load_problems.append("translating a load failed (see the log)")
        else:
            self._statuses = statuses
        return statuses

    def require_accepted(self, what: str) -> None:
        """Raises unless every load so far and the newest translation accepted everything (every change
        leaves its route file edited until the series ends, so the newest statuses cover each change's
        objects)."""
        refused = self._load_problems + [
            f"{key.kind} {key.name}: {condition.reason}"
            for key, status in self._statuses.items()
            for condition in status.conditions
            if not condition.status
        ]
        if refused:
            raise RuntimeError(f"{what} were not all accepted: {refused[:3]}")


def _limits(routes: int, *, policies: bool = False) -> FileLimits:
    return FileLimits(max_objects=objects_in(routes, policies=policies))


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


def _serve_memory(folder: Path, workdir: Path, routes: int) -> Memory:
    """``controlplane serve``'s memory once its first snapshot is set."""
    process = ControlPlaneProcess(
        [str(folder), "--max-objects", str(objects_in(routes))], log_file=workdir / "serve.log"
    )
    try:
        process.start(timeout=_TIMEOUT)
        deadline = time.monotonic() + _TIMEOUT
        while process.status()["snapshotVersion"] is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return process_memory(process.pid)
    finally:
        process.stop()


async def _changes(
    folder: Path,
    *,
    routes: int,
    count: int,
    reuse: bool,
    gateway_port: int,
    edits: tuple[str, ...] = ("backend",),
    policies: bool = False,
) -> list[Changes]:
    """``count`` changes of each kind in ``edits`` (keys of ``EDITS``), one kind after the other, served by
    one server to one Envoy (its start-up is the longest part at 5,000 routes with policies). With ``policy``
    among them, ``count * len(edits)`` may not exceed ``routes`` (see ``main``)."""
    mode = "reused" if reuse else "full rebuild"
    results = [
        Changes(f"{mode}, with policies: {EDITS[edit]} changed" if policies else mode) for edit in edits
    ]
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
    source_task = asyncio.create_task(
        FileSource([folder], limits=_limits(routes, policies=policies)).run(handler)
    )
    node_id = f"scale-{routes}-{'policies-' if policies else ''}{mode.replace(' ', '-')}"
    envoy = EnvoyProcess(
        bootstrap_yaml=render_bootstrap(
            xds_address=f"127.0.0.1:{port}", delta=True, node_id=node_id, admin_port=0
        )
    )
    try:
        snapshot = await _next_snapshot(cache, None)
        first_load = canary.reset()
        handler.require_accepted(f"the manifests of {routes} routes")
        # Off the loop: spawning Envoy forks this (large) process, which is no part of the server's work.
        await asyncio.to_thread(envoy.start)
        await acks.until(node_id, snapshot)
        connect = canary.reset()
        await asyncio.to_thread(envoy.wait_ready, timeout=_TIMEOUT)
        envoy_memory = process_memory(envoy.pid)
        canary.reset()  # the idle figure below starts now
        await asyncio.sleep(2)
        idle = canary.reset()
        for series, (edit, result) in enumerate(zip(edits, results, strict=True)):
            result.first_load_stall_ms, result.first_load_waiting_ms = _ms(first_load)
            result.connect_stall_ms, result.connect_waiting_ms = _ms(connect)
            result.idle_stall_ms, result.idle_waiting_ms = _ms(idle)
            result.envoy_memory = envoy_memory
            for attempt in range(series * count, (series + 1) * count):
                path = route_path(folder, changed_route(attempt, routes=routes))
                text = edited_route_file(attempt, edit=edit, routes=routes, policies=policies)
                written = time.perf_counter()
                path.write_text(text)
                snapshot = await _next_snapshot(cache, snapshot)
                acked = await acks.until(node_id, snapshot)
                result.from_write_ms.append((acked - written) * 1000)
                result.from_handover_ms.append((acked - handler.handed_over[-1]) * 1000)
            result.change_stall_ms, result.change_waiting_ms = _ms(canary.reset())
            handler.require_accepted(f"the edited manifests ({edit}) of {routes} routes")
        # Back to the original, so the next mode starts from the same files.
        for index in {changed_route(attempt, routes=routes) for attempt in range(count * len(edits))}:
            route_path(folder, index).write_text(original_route_file(index, policies=policies))
        return results
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


def _ms(stall: Stall) -> tuple[float, float | None]:
    """A canary's worst tick in milliseconds: late, and of that, waiting for a processor."""
    return stall.late_s * 1000, None if stall.waiting_s is None else stall.waiting_s * 1000


def _waiting(milliseconds: float | None) -> str:
    return "n/a" if milliseconds is None else f"{milliseconds:.0f}"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def _mib(memory: Memory | None) -> str:
    return "not measured" if memory is None else f"{memory.rss_mib:.0f} ({memory.peak_rss_mib:.0f})"


def _print(rows: list[Row], *, full: bool) -> None:
    """The tables; ``full=False`` (``--only-policies``): only the changes' table, as the first one's figures
    were not measured."""
    if full:
        print(
            "\n| routes | load s | translate+snapshot s | full s | full cpu s | serve RSS MiB (peak) "
            "| Envoy RSS MiB (peak) | Envoy RSS with policies MiB (peak) |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|")
        for row in rows:
            envoy = next(changes.envoy_memory for changes in row.changes if changes.mode == "reused")
            with_policies = next(
                changes.envoy_memory for changes in row.changes if "policies" in changes.mode
            )
            print(
                f"| {row.routes:,} | {row.load_s:.2f} | {row.translate_s:.2f} "
                f"| {row.load_s + row.translate_s:.2f} | {row.cpu_s:.2f} "
                f"| {_mib(row.serve_memory)} | {_mib(envoy)} | {_mib(with_policies)} |"
            )
    print(
        "\n| routes | mode | from handover p50 / p99 ms | from write p50 / p99 ms "
        "| loop stall first load / Envoy connects / changes / idle ms "
        "| of which waiting for a CPU ms |"
    )
    print("|---:|---|---:|---:|---:|---:|")
    for row in rows:
        for changes in row.changes:
            handover, written = changes.from_handover_ms, changes.from_write_ms
            print(
                f"| {row.routes:,} | {changes.mode} "
                f"| {statistics.median(handover):.0f} / {_percentile(handover, 0.99):.0f} "
                f"| {statistics.median(written):.0f} / {_percentile(written, 0.99):.0f} "
                f"| {changes.first_load_stall_ms:.0f} / {changes.connect_stall_ms:.0f} "
                f"/ {changes.change_stall_ms:.0f} "
                f"/ {changes.idle_stall_ms:.0f} "
                f"| {_waiting(changes.first_load_waiting_ms)} / {_waiting(changes.connect_waiting_ms)} "
                f"/ {_waiting(changes.change_waiting_ms)} / {_waiting(changes.idle_waiting_ms)} |"
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
    parser.add_argument(
        "--only-policies",
        action="store_true",
        help="only the scenario with policies (no full-load, serve RSS or policy-free rows)",
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if 2 * args.changes > min(sizes):
        # A policy change points a policy at the Secret it does not read yet, so it changes each route once;
        # the changes elsewhere before it, in the same scenario, take routes of their own.
        parser.error(f"--changes {args.changes} needs sizes of at least {2 * args.changes} routes")
    configure_logging(json=False, level="warning")
    rows = []
    for routes in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as scratch, PortReservations() as ports:
            load_s, translate_s, cpu_s, serve_memory = 0.0, 0.0, 0.0, Memory(0.0, 0.0)
            changes: list[Changes] = []
            if not args.only_policies:  # the folder without policies is written only for its rows
                folder = Path(scratch) / "manifests"
                write_manifests(folder, routes, gateway_port=ports.reserve())
                load_s, translate_s, cpu_s = _full(folder, routes)
                serve_memory = _serve_memory(folder, Path(scratch), routes)
                changes = [
                    change
                    for reuse in (False, True)
                    for change in asyncio.run(
                        _changes(
                            folder,
                            routes=routes,
                            count=args.changes,
                            reuse=reuse,
                            gateway_port=ports.reserve(),
                            edits=(args.edit,),
                        )
                    )
                ]
            with_policies = Path(scratch) / "with-policies"
            write_manifests(with_policies, routes, gateway_port=ports.reserve(), policies=True)
            changes += asyncio.run(
                _changes(
                    with_policies,
                    routes=routes,
                    count=args.changes,
                    reuse=True,
                    gateway_port=ports.reserve(),
                    edits=("backend", "policy"),
                    policies=True,
                )
            )
        rows.append(Row(routes, load_s, translate_s, cpu_s, serve_memory, changes))
        print(rows[-1], flush=True)
    _print(rows, full=not args.only_policies)


if __name__ == "__main__":
    main()
