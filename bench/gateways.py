"""The processes row 5 (``bench.dataplane``) starts: the nginx backend and each gateway put in front of it.

Each gateway is a context manager taking a work folder and the ``Ports`` it is to use, and yielding where it
answers (``Served``); one that cannot be built or started raises ``PeerUnavailable`` with the reason, so the
runner reports it "not measured" and goes on with the others. Every gateway serves the same route
(``manifests``: priority failover with a model-name override) as far as its configuration allows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.tools import PeerUnavailable, aigw, litellm
from bench.wrk import HOST, MODEL, PATH, REQUEST
from controlplane.bootstrap import render_bootstrap
from controlplane.devtools.controlplane_process import ControlPlaneError, ControlPlaneProcess
from controlplane.devtools.envoy_process import EnvoyError, EnvoyProcess, envoy_binary
from controlplane.devtools.manifests import gateway_yaml, openai_backend_yaml
from controlplane.devtools.procutil import dying_with_parent
from controlplane.netutil import ReservedPort

OVERRIDE = "gpt-4o-mini"
COMPLETION = (
    '{"id":"cmpl-bench","object":"chat.completion","created":0,"model":"' + OVERRIDE + '",'
    '"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}'
)
# aigw's func-e runs the Envoy version Envoy AI Gateway v1.0.0 pins; we put our binary where it looks.
AIGW_ENVOY_VERSION = "1.38.1"
_START_TIMEOUT = 120.0


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
            dying_with_parent(command),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
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
