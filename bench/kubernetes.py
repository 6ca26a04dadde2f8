"""What the Kubernetes source costs: 1,000 AIGatewayRoutes from a real API server into a real Envoy.

Runs one configuration twice in the same run, through the file source (the baseline) and through a real
kube-apiserver (``serve --kubernetes``), each feeding its own real Envoy:

- **all in Envoy**: from the moment the routes are written (files copied / ``kubectl apply`` started) until
  every route answers through Envoy;
- **one change**: a route's header match is changed (a file rewritten / one PUT to the API server); the
  time until a request with the new value is routed, repeated, reported as p50/p99;
- the RSS of the ``controlplane serve`` process once everything is loaded.

Ratios are Kubernetes over files. Not a test: the numbers depend on the machine.

    .venv/bin/python -m bench.kubernetes [--routes 1000] [--changes 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.manifests import NAMESPACE, gateway_manifests, route_yaml
from bench.memory import process_memory
from controlplane.devtools.crds import start_kube_with_crds
from controlplane.devtools.gotools import ensure_test_tools
from controlplane.devtools.kube import LocalKube
from controlplane.devtools.stack import LocalStack
from controlplane.log import configure_logging
from controlplane.sources.kubernetes.api import ApiResource, KubeApi

GATEWAY_PORT = 10090
BACKEND_PORT = 18190
BODY = {"messages": [{"role": "user", "content": "hello"}]}
_ROUTES = ApiResource("aigateway.envoyproxy.io", "v1beta1", "aigatewayroutes", "AIGatewayRoute")
_SHARED = (
    gateway_manifests(GATEWAY_PORT)
    + f"""---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: model
  namespace: {NAMESPACE}
spec:
  endpoints:
  - ip:
      address: 127.0.0.1
      port: {BACKEND_PORT}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: model
  namespace: {NAMESPACE}
spec:
  schema:
    name: OpenAI
  backendRef:
    name: model
    kind: Backend
    group: gateway.envoyproxy.io
"""
)


@dataclass(frozen=True)
class Result:
    source: str
    written_s: float
    """How long writing the routes took (``kubectl apply`` is one request per object)."""
    all_in_envoy_s: float
    change_p50_ms: float
    change_p99_ms: float
    rss_mib: float


def route(index: int, value: str | None = None) -> str:
    """Route ``r<index>`` to the one AIServiceBackend ``model`` (``value``: the header it matches)."""
    return route_yaml(index, ["model"], value=value)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--routes", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    with tempfile.TemporaryDirectory(prefix="bench-kube-") as scratch:
        manifests = Path(scratch) / "manifests"
        manifests.mkdir()
        (manifests / "shared.yaml").write_text(_SHARED)
        routes_text = "---\n".join(route(index) for index in range(args.routes))
        results = [
            _run_files(manifests, routes_text, args, Path(scratch) / "files"),
            _run_kubernetes(manifests, routes_text, args, Path(scratch) / "kube"),
        ]
    _print(results, args.routes)


def _run_files(manifests: Path, routes_text: str, args: argparse.Namespace, workdir: Path) -> Result:
    with LocalStack(manifests, move_ports=True, workdir=workdir) as stack:
        started = time.monotonic()
        stack.rewrite_config("routes.yaml", routes_text)
        written = time.monotonic() - started
        all_in = _all_routed(stack, args.routes, started)

        def change(index: int, value: str) -> None:
            stack.rewrite_config("routes.yaml", routes_text.replace(route(index), route(index, value)))

        return _measure_changes("files", stack, (written, all_in), change, args.changes)


def _run_kubernetes(manifests: Path, routes_text: str, args: argparse.Namespace, workdir: Path) -> Result:
    kube = start_kube_with_crds(ensure_test_tools(log=True))
    try:
        kube.kubectl("create", "namespace", NAMESPACE)
        arguments = (f"--namespace={NAMESPACE}", f"--leader-election-namespace={NAMESPACE}")
        with LocalStack(
            manifests, move_ports=True, workdir=workdir, kubeconfig=kube.kubeconfig, serve_args=arguments
        ) as stack:
            kube.apply((stack.config_dir / "shared.yaml").read_text())
            started = time.monotonic()
            _apply_in_chunks(kube, routes_text)
            written = time.monotonic() - started
            all_in = _all_routed(stack, args.routes, started)

            api = KubeApi.connect(kubeconfig=kube.kubeconfig)

            def change(index: int, value: str) -> None:
                # Through the API (not kubectl, whose start-up and discovery would be counted too).
                current = api.get(_ROUTES, namespace=NAMESPACE, name=f"r{index}")
                assert current is not None
                current["spec"]["rules"][0]["matches"][0]["headers"][0]["value"] = value
                api.replace(_ROUTES, namespace=NAMESPACE, name=f"r{index}", body=current)

            return _measure_changes("kubernetes", stack, (written, all_in), change, args.changes)
    finally:
        kube.stop()


def _apply_in_chunks(kube: LocalKube, routes_text: str) -> None:
    # kubectl applies a stream one object at a time; a few streams keep the command lines reasonable.
    documents = routes_text.split("---")
    for first in range(0, len(documents), 250):
        kube.apply("---".join(documents[first : first + 250]))


def _all_routed(stack: LocalStack, routes: int, started: float) -> float:
    """Seconds from ``started`` until every route answers through Envoy (each checked until it does)."""
    pending = list(range(routes))
    with httpx.Client(timeout=5) as http:
        while pending:
            pending = [index for index in pending if not _routed(http, stack, f"r{index}")]
            if pending:
                time.sleep(0.05)
    return time.monotonic() - started


def _routed(http: httpx.Client, stack: LocalStack, value: str) -> bool:
    try:
        reply = http.post(stack.url(GATEWAY_PORT), json=BODY, headers={"x-route": value})
    except httpx.HTTPError:
        return False
    return reply.status_code == 200


def _measure_changes(
    source: str,
    stack: LocalStack,
    loaded: tuple[float, float],
    change: Callable[[int, str], None],
    changes: int,
) -> Result:
    latencies = []
    with httpx.Client(timeout=5) as http:
        for attempt in range(changes):
            value = f"changed-{attempt}"
            started = time.monotonic()
            change(attempt, value)
            while not _routed(http, stack, value):
                time.sleep(0.005)
            latencies.append((time.monotonic() - started) * 1000)
    latencies.sort()
    return Result(
        source=source,
        written_s=loaded[0],
        all_in_envoy_s=loaded[1],
        change_p50_ms=statistics.median(latencies),
        change_p99_ms=latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))],
        rss_mib=process_memory(stack.control_plane.pid).rss_mib,
    )


def _print(results: list[Result], routes: int) -> None:
    baseline = results[0]
    print(f"\n{routes} AIGatewayRoutes, one Envoy per source\n")
    columns = (
        "source",
        "written s",
        "all in Envoy s",
        "ratio",
        "change p50 ms",
        "change p99 ms",
        "p99 ratio",
        "RSS MiB",
    )
    print("| " + " | ".join(columns) + " |")
    print("|---" * len(columns) + "|")
    for result in results:
        print(
            f"| {result.source} | {result.written_s:.2f} | {result.all_in_envoy_s:.2f} "
            f"| {result.all_in_envoy_s / baseline.all_in_envoy_s:.2f} "
            f"| {result.change_p50_ms:.0f} | {result.change_p99_ms:.0f} "
            f"| {result.change_p99_ms / baseline.change_p99_ms:.2f} | {result.rss_mib:.0f} |"
        )


if __name__ == "__main__":
    main()
