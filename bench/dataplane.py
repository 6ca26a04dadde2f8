"""Row 5 of the benchmarks: what a request pays through our gateway, next to the peers a user would pick.

One canned chat completion served by nginx (one worker; answers faster than any proxy forwards), loaded by
``wrk`` (one thread) at 1, 16 and 64 connections, in one run, through:

- **direct**: wrk straight to nginx (the backend's own ceiling; must be far above the proxied figures);
- **plain Envoy**: the same Envoy binary, one worker, a static bootstrap proxying the path with no AI
  filters (the floor);
- **ours**: ``controlplane serve`` on an AIGatewayRoute with a priority-failover rule and a model-name
  override (both backends on nginx), Envoy with one worker on our ADS;
- **aigw**: Envoy AI Gateway's ``aigw run`` (standalone, built from the Go module proxy) on the same
  manifests, its Envoy being our binary (placed where func-e looks, so nothing is downloaded);
- **LiteLLM**: the LiteLLM proxy (its own virtualenv), one worker, the same model with a fallback.

A peer that cannot be built or started is reported "not measured" with the reason. Not a test.

Next to requests/s, the Envoy process's CPU time per request (user + system, read from ``/proc`` around each
run) for the two Envoys this module starts itself: on a machine other jobs load, requests/s swings with
them from one run to the next, while the CPU a request costs stays put (aigw's Envoy and LiteLLM are not
read).

    .venv/bin/python -m bench.dataplane [--seconds 5] [--connections 1,16,64]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import httpx

from bench.report import Chart, Missing, Series, Table, ratio, render_text
from bench.tools import PeerUnavailable, aigw, litellm
from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.controlplane_process import ControlPlaneError, ControlPlaneProcess
from controlplane.devtools.envoy_process import EnvoyError, EnvoyProcess, envoy_binary
from controlplane.devtools.manifests import gateway_yaml, openai_backend_yaml
from controlplane.devtools.procutil import terminate_with_parent
from controlplane.log import configure_logging
from controlplane.netutil import PortReservations, ReservedPort

MODEL = "bench-model"
OVERRIDE = "gpt-4o-mini"
HOST = "llm.example.com"
PATH = "/v1/chat/completions"
REQUEST = '{"model":"' + MODEL + '","messages":[{"role":"user","content":"hello"}]}'
COMPLETION = (
    '{"id":"cmpl-bench","object":"chat.completion","created":0,"model":"' + OVERRIDE + '",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
)
PERCENTILES = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.9)
# aigw's func-e runs the Envoy version Envoy AI Gateway v1.0.0 pins; we put our binary where it looks.
AIGW_ENVOY_VERSION = "1.38.1"
_START_TIMEOUT = 120.0

_WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{REQUEST}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Host"] = "{HOST}"
wrk.headers["Authorization"] = "Bearer sk-bench"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH %d %d %d", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
  for _, p in ipairs({{{", ".join(str(p) for p in PERCENTILES)}}}) do
    io.write(string.format(" %.1f", latency:percentile(p)))
  end
  io.write("\\n")
end
"""


@dataclass(frozen=True)
class Load:
    """One wrk run: requests/s, errors (non-2xx included) and latency percentiles in microseconds."""

    connections: int
    requests: int
    requests_per_second: float
    errors: int
    percentiles_us: dict[float, float]
    envoy_cpu_us_per_request: float | None = None
    """The gateway's Envoy CPU time over the run per request; None when it is not a process we started."""


@dataclass(frozen=True)
class Served:
    """Where a gateway under test answers, and its Envoy process when this module started it."""

    url: str
    envoy_pid: int | None = None


@dataclass(frozen=True)
class Ports:
    gateway: int
    primary: int
    secondary: int


def manifests(ports: Ports) -> str:
    """The route every gateway under test serves: priority failover with a model-name override."""
    backends = "".join(
        openai_backend_yaml(name, [port])
        for name, port in (("primary", ports.primary), ("secondary", ports.secondary))
    )
    return f"""apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {{name: ai-gateway}}
spec: {{controllerName: gateway.envoyproxy.io/gatewayclass-controller}}
---
{gateway_yaml("bench", ports.gateway)}---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: bench, namespace: default}}
spec:
  parentRefs: [{{name: bench}}]
  rules:
  - matches:
    - headers: [{{type: Exact, name: x-ai-eg-model, value: {MODEL}}}]
    backendRefs:
    - {{name: primary, priority: 0, modelNameOverride: {OVERRIDE}}}
    - {{name: secondary, priority: 1}}
{backends}"""


_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"


def _plain_envoy_bootstrap(*, listen_port: int, backend_port: int) -> str:
    return f"""
admin: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}}}
static_resources:
  listeners:
  - name: plain
    address: {{socket_address: {{address: 127.0.0.1, port_value: {listen_port}}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": {_HCM}
          stat_prefix: plain
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes: [{{match: {{prefix: /}}, route: {{cluster: backend}}}}]
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
  clusters:
  - name: backend
    type: STATIC
    load_assignment:
      cluster_name: backend
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1,
        port_value: {backend_port}}}}}}}}}]}}]
"""


@contextlib.contextmanager
def _child(command: Sequence[str], *, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    """A child process (own session, stopped with its group) logging to `log`."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=terminate_with_parent,
        )
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 15)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


@contextlib.contextmanager
def nginx(workdir: Path, ports: Sequence[int]) -> Iterator[None]:
    """nginx, one worker, answering the canned completion on every port in `ports`."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(binary).is_file():
        raise PeerUnavailable("nginx is not installed (apt-get install nginx-light)")
    listens = "".join(f"listen 127.0.0.1:{port} reuseport; " for port in ports)
    temp = "".join(f"{kind}_temp_path {workdir}/{kind}; " for kind in ("client_body", "proxy", "fastcgi"))
    temp += f"uwsgi_temp_path {workdir}/uwsgi; scgi_temp_path {workdir}/scgi; "
    config = workdir / "nginx.conf"
    config.write_text(
        f"worker_processes 1; daemon off; pid {workdir}/nginx.pid; error_log {workdir}/nginx-error.log;\n"
        "events { worker_connections 4096; }\n"
        f"http {{ access_log off; {temp}keepalive_requests 1000000; server {{ {listens}\n"
        f"  location / {{ default_type application/json; return 200 '{COMPLETION}'; }} }} }}\n"
    )
    with _child(
        [binary, "-p", str(workdir), "-c", str(config), "-e", f"{workdir}/nginx-error.log"],
        log=workdir / "nginx.log",
    ):
        _wait_answering(f"http://127.0.0.1:{ports[0]}{PATH}", what="nginx", log=workdir / "nginx-error.log")
        yield


def _wait_answering(url: str, *, what: str, log: Path, timeout: float = _START_TIMEOUT) -> None:
    """Polls until a chat completion through `url` answers 200; the reason names the log's tail otherwise."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            reply = httpx.post(
                url,
                content=REQUEST,
                headers={
                    "host": HOST,
                    "content-type": "application/json",
                    "authorization": "Bearer sk-bench",
                },
                timeout=5,
            )
            if reply.status_code == 200:
                return
            last = f"HTTP {reply.status_code}: {reply.text[:200]}"
        except httpx.HTTPError as error:
            last = f"{type(error).__name__}: {error}"
        time.sleep(0.2)
    tail = log.read_text(errors="replace").strip().splitlines()[-3:] if log.is_file() else []
    raise PeerUnavailable(
        f"{what} never answered 200 within {timeout:.0f} s ({last}); log: {' | '.join(tail)}"
    )


def wrk(url: str, *, connections: int, seconds: float, workdir: Path) -> Load:
    binary = shutil.which("wrk")
    if binary is None:
        raise PeerUnavailable("wrk is not installed (apt-get install wrk)")
    script = workdir / "bench.lua"
    script.write_text(_WRK_SCRIPT)
    duration = max(1, round(seconds))
    result = subprocess.run(
        [binary, "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "5s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=False,
        timeout=duration + 30,
    )
    line = next((line for line in result.stdout.splitlines() if line.startswith("BENCH ")), None)
    if line is None:
        raise PeerUnavailable(f"wrk failed: {result.stderr.strip() or result.stdout.strip()}")
    requests, duration_us, errors, *latencies = line.split()[1:]
    return Load(
        connections=connections,
        requests=int(requests),
        requests_per_second=int(requests) / (int(duration_us) / 1e6),
        errors=int(errors),
        percentiles_us=dict(zip(PERCENTILES, (float(value) for value in latencies), strict=True)),
    )


def _cpu_us(pid: int) -> float:
    """A process's user + system CPU time so far, in microseconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3 of proc(5), utime and stime fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") * 1e6


def _run(served: Served, *, connections: int, seconds: float, workdir: Path) -> Load:
    """One wrk run on `served`, with its Envoy's CPU time per request when it is ours to read."""
    if served.envoy_pid is None:
        return wrk(served.url, connections=connections, seconds=seconds, workdir=workdir)
    before = _cpu_us(served.envoy_pid)
    load = wrk(served.url, connections=connections, seconds=seconds, workdir=workdir)
    spent = _cpu_us(served.envoy_pid) - before
    return replace(load, envoy_cpu_us_per_request=spent / load.requests if load.requests else None)


Target = Callable[[Path, Ports], contextlib.AbstractContextManager[Served]]


@contextlib.contextmanager
def direct(workdir: Path, ports: Ports) -> Iterator[Served]:
    del workdir
    yield Served(f"http://127.0.0.1:{ports.primary}{PATH}")


@contextlib.contextmanager
def plain_envoy(workdir: Path, ports: Ports) -> Iterator[Served]:
    del workdir
    with EnvoyProcess(
        bootstrap_yaml=_plain_envoy_bootstrap(listen_port=ports.gateway, backend_port=ports.primary),
        concurrency=1,
        log_level="warning",
    ) as envoy:
        yield Served(f"http://127.0.0.1:{ports.gateway}{PATH}", envoy.pid)


@contextlib.contextmanager
def ours(workdir: Path, ports: Ports) -> Iterator[Served]:
    folder = workdir / "ours"
    folder.mkdir()
    (folder / "bench.yaml").write_text(manifests(ports))
    control_plane = ControlPlaneProcess(
        [str(folder), "--listen-address", "127.0.0.1"], log_file=workdir / "cp.log"
    )
    try:
        with (
            control_plane.start(timeout=_START_TIMEOUT),
            EnvoyProcess(
                bootstrap_yaml=render_bootstrap(
                    xds_address=f"127.0.0.1:{control_plane.xds_port}", admin_port=0
                ),
                concurrency=1,
                log_level="warning",
            ) as envoy,
        ):
            url = f"http://127.0.0.1:{ports.gateway}{PATH}"
            _wait_answering(url, what="our gateway", log=workdir / "cp.log")
            yield Served(url, envoy.pid)
    except (ControlPlaneError, EnvoyError) as error:
        raise PeerUnavailable(f"our gateway did not start: {error}") from error


@contextlib.contextmanager
def aigw_run(workdir: Path, ports: Ports) -> Iterator[Served]:
    binary = aigw()
    home = workdir / "aigw"
    envoy_dir = home / "data" / "envoy-versions" / AIGW_ENVOY_VERSION / "bin"
    envoy_dir.mkdir(parents=True)
    (envoy_dir / "envoy").symlink_to(envoy_binary())
    (home / "bench.yaml").write_text(manifests(ports))
    env = {
        **os.environ,
        "HOME": str(home),
        "AIGW_CONFIG_HOME": str(home / "config"),
        "AIGW_DATA_HOME": str(home / "data"),
        "AIGW_STATE_HOME": str(home / "state"),
        "AIGW_RUNTIME_DIR": str(home / "run"),
    }
    admin = ReservedPort()
    command = [str(binary), "run", "--admin-port", str(admin.port), str(home / "bench.yaml")]
    with admin, _child(command, log=workdir / "aigw.log", env=env):
        url = f"http://127.0.0.1:{ports.gateway}{PATH}"
        _wait_answering(url, what="aigw run", log=workdir / "aigw.log")
        yield Served(url)


@contextlib.contextmanager
def litellm_proxy(workdir: Path, ports: Ports) -> Iterator[Served]:
    binary = litellm()
    config = workdir / "litellm.yaml"
    config.write_text(
        f"""model_list:
- model_name: {MODEL}
  litellm_params:
    {{model: openai/{OVERRIDE}, api_base: "http://127.0.0.1:{ports.primary}/v1", api_key: sk-up}}
- model_name: {MODEL}-fallback
  litellm_params:
    {{model: openai/{MODEL}, api_base: "http://127.0.0.1:{ports.secondary}/v1", api_key: sk-up}}
router_settings:
  fallbacks: [{{{MODEL}: [{MODEL}-fallback]}}]
"""
    )
    command = [str(binary), "--config", str(config), "--host", "127.0.0.1", "--port", str(ports.gateway)]
    command += ["--num_workers", "1"]
    with _child(command, log=workdir / "litellm.log", env={**os.environ, "LITELLM_LOG": "ERROR"}):
        url = f"http://127.0.0.1:{ports.gateway}{PATH}"
        _wait_answering(url, what="LiteLLM proxy", log=workdir / "litellm.log")
        yield Served(url)


TARGETS: dict[str, Target] = {
    "direct": direct,
    "plain Envoy": plain_envoy,
    "ours": ours,
    "aigw": aigw_run,
    "LiteLLM": litellm_proxy,
}


def measure(*, seconds: float, connections: Sequence[int], targets: Sequence[str] = tuple(TARGETS)) -> Table:
    """Every gateway is started first; then each connection count is run on each gateway in turn, so a
    burst of load from the machine's other jobs falls on all of them rather than on one."""
    loads: dict[str, list[Load]] = {}
    missing: list[Missing] = []
    with tempfile.TemporaryDirectory(prefix="bench-dataplane-") as folder, contextlib.ExitStack() as running:
        root = Path(folder)
        # Held until every child is gone (the stack unwinds in reverse): each child binds its own.
        reserved = running.enter_context(PortReservations())
        backend_ports = (reserved.reserve(), reserved.reserve())
        served: dict[str, Served] = {}
        try:
            running.enter_context(nginx(root, backend_ports))
        except PeerUnavailable as error:
            missing.append(Missing("backend (nginx)", str(error)))
            targets = ()
        for name in targets:
            workdir = root / re.sub(r"\W", "-", name)
            workdir.mkdir()
            ports = Ports(gateway=reserved.reserve(), primary=backend_ports[0], secondary=backend_ports[1])
            try:
                served[name] = running.enter_context(TARGETS[name](workdir, ports))
                # A discarded second first: connection pools, lazy initialisation, caches.
                wrk(served[name].url, connections=max(connections), seconds=1, workdir=workdir)
            except PeerUnavailable as error:
                served.pop(name, None)
                missing.append(Missing(name, str(error)))
        loads = {name: [] for name in served}
        for count in connections:
            for name, target in served.items():
                loads[name].append(_run(target, connections=count, seconds=seconds, workdir=root))
    return _table(loads, missing, connections=connections, seconds=seconds)


def _table(
    loads: dict[str, list[Load]], missing: list[Missing], *, connections: Sequence[int], seconds: float
) -> Table:
    table = Table(
        rows_of_issue="5",
        title="Chat completions through each gateway (Envoy with one worker; wrk, one thread)",
        columns=[
            "gateway",
            "connections",
            "requests/s",
            "p50 us",
            "p99 us",
            "p99.9 us",
            "errors",
            "req/s vs plain Envoy",
            "added p99 vs direct us",
            "Envoy CPU us/request",
        ],
        missing=missing,
        notes=[
            f"{seconds:.0f} s per point. Backend: nginx, one worker, a canned completion. Goals: ours "
            ">= 0.6x plain Envoy's requests/s and added p99 vs direct <= 1 ms at 16 connections; "
            ">= 10x LiteLLM's requests/s; lower p99 and higher requests/s than aigw. "
            "aigw's Envoy worker count is its own. Envoy CPU us/request: the Envoy process's user + system "
            "CPU time over the run per request (the Envoys this benchmark starts; steadier than requests/s "
            "when other jobs load the machine).",
        ],
    )
    for name, runs in loads.items():
        for load in runs:
            plain = _at(loads, "plain Envoy", load.connections)
            direct_load = _at(loads, "direct", load.connections)
            table.rows.append(
                [
                    name,
                    load.connections,
                    round(load.requests_per_second),
                    load.percentiles_us[50],
                    load.percentiles_us[99],
                    load.percentiles_us[99.9],
                    load.errors,
                    ratio(load.requests_per_second, plain.requests_per_second if plain else None),
                    load.percentiles_us[99] - direct_load.percentiles_us[99] if direct_load else None,
                    round(load.envoy_cpu_us_per_request, 1)
                    if load.envoy_cpu_us_per_request is not None
                    else None,
                ]
            )
    middle = connections[len(connections) // 2]
    distribution = Chart(
        name="row5_latency",
        title=f"Latency distribution at {middle} connections",
        x_label="latency us",
        y_label="percentile",
        kind="cdf",
        log_x=True,
    )
    throughput = Chart(
        name="row5_throughput", title="Requests/s", x_label="connections", y_label="requests/s"
    )
    for name, runs in loads.items():
        at_middle = _at(loads, name, middle)
        if at_middle:
            distribution.series.append(
                Series(
                    name,
                    list(at_middle.percentiles_us.values()),
                    [float(p) for p in at_middle.percentiles_us],
                )
            )
        throughput.series.append(
            Series(
                name, [float(load.connections) for load in runs], [load.requests_per_second for load in runs]
            )
        )
    table.charts += [distribution, throughput]
    return table


def _at(loads: dict[str, list[Load]], name: str, connections: int) -> Load | None:
    return next((load for load in loads.get(name, []) if load.connections == connections), None)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk duration per point")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated connection counts")
    parser.add_argument(
        "--targets", default=",".join(TARGETS), help="comma-separated, from: " + ", ".join(TARGETS)
    )
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    table = measure(
        seconds=args.seconds,
        connections=[int(count) for count in args.connections.split(",")],
        targets=args.targets.split(","),
    )
    print(render_text(table))
    raise SystemExit(1 if table.missing else 0)


if __name__ == "__main__":
    main()
