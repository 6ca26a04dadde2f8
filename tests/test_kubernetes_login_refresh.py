"""A kubeconfig login that fails when the client runs it again (its token expired) fails the request, as an
``ApiError`` naming no value: the watch, lease and status loops retry it. It escaped them before, a raw
``ConfigException`` quoting the command's stderr: the thread died for good and ``threading.excepthook``
printed the traceback past the log filter. The status writer stops a batch at such a failure (the next
writes would each run the login again, and fail alike) and writes it once a wait later.

The login is a ``gcp`` auth-provider's ``cmd-path`` that gives a token on its first run and fails on the
next (the client raises its failure; an exec plugin's it logs, and the log filter rewrites that)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
import structlog

from controlplane.gatewayapi.report import Condition, ObjectStatus
from controlplane.resources.problems import ObjectKey
from controlplane.sources.kubernetes.api import ApiError, ApiResource, KubeApi
from controlplane.sources.kubernetes.reflector import Reflector, WatchScope
from controlplane.sources.kubernetes.status import Observed, StatusWriter
from tests.polling import wait_until
from tests.test_cli_kubeconfig import CLUSTER, KUBECONFIG_HEAD, SECRET
from tests.test_kubernetes_status_writer import HeldBackoff

pytestmark = pytest.mark.envoy  # the login is a command run

_PODS = ApiResource(group="", version="v1", plural="pods", kind="Pod")

_FIRST_RUN_ONLY = """#!/bin/sh
if [ -e "$0.ran" ]; then echo "{secret}-stderr" >&2; exit 1; fi
touch "$0.ran"
echo '{{"credential": {{"access_token": "{secret}-token", "token_expiry": "2000-01-01T00:00:00Z"}}}}'
"""
"""Its token has expired by the time it is used: the client runs the command again for the first request."""


def _gcp_command_kubeconfig(tmp_path: Path, *, script: str, clusters: str) -> Path:
    """A kubeconfig whose user logs in through a ``gcp`` auth-provider running ``script`` (formatted with the
    test's secret) as its token command."""
    command = tmp_path / "token-command"
    command.write_text(script.format(secret=SECRET))
    command.chmod(0o755)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        f"{KUBECONFIG_HEAD}{clusters}users:\n- name: u\n  user:\n    auth-provider:\n      name: gcp\n"
        f"      config: {{cmd-path: '{command}'}}\n"
    )
    return kubeconfig


@pytest.fixture
def api(tmp_path: Path) -> KubeApi:
    return KubeApi.connect(
        kubeconfig=_gcp_command_kubeconfig(tmp_path, script=_FIRST_RUN_ONLY, clusters=CLUSTER)
    )


def test_a_login_failing_on_a_request_is_an_api_error_naming_no_value(api: KubeApi) -> None:
    try:
        for _ in range(2):  # the next request runs the login again
            with pytest.raises(ApiError) as failed:
                api.list(_PODS)
            assert failed.value.status == 0
            assert str(failed.value) == (
                "GET /api/v1/pods: reading the API credentials failed (ConfigException)"
            )
            assert failed.value.__cause__ is None
            assert failed.value.__suppress_context__
    finally:
        api.close()


class _Sink:
    def replaced(self, scope: WatchScope, objects: Any, /) -> None: ...

    def changed(self, scope: WatchScope, event_type: str, obj: dict[str, Any], /) -> None: ...

    def unavailable(self, scope: WatchScope, reason: str, /) -> None: ...


def test_a_watch_whose_login_fails_keeps_retrying(api: KubeApi) -> None:
    retried = threading.Semaphore(0)

    def counted(logger: Any, method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        if event["event"] == "watch failed, retrying":
            retried.release()
        return event

    reflector = Reflector(api, WatchScope(group="", kind="Pod"), resolve=lambda _: _PODS, sink=_Sink())
    with structlog.testing.capture_logs(processors=[counted]) as logged:
        reflector.start()
        try:
            for _ in range(2):
                assert retried.acquire(timeout=30)
        finally:
            reflector.stop()
            reflector.join(timeout=10)
            api.close()
    assert not any(SECRET in str(entry) for entry in logged)


_WHILE_NOT_FAILING = """#!/bin/sh
echo run >> "$0.runs"
if [ -e "$0.failing" ]; then echo "{secret}-stderr" >&2; exit 1; fi
echo '{{"credential": {{"access_token": "{secret}-token", "token_expiry": "2000-01-01T00:00:00Z"}}}}'
"""
"""Each run is a line in ``.runs``; it fails while ``.failing`` exists. Its token has always expired: the
client runs it again for every request."""

_ROUTES = ApiResource(
    group="aigateway.envoyproxy.io", version="v1alpha1", plural="aigatewayroutes", kind="AIGatewayRoute"
)


class _StatusApi(BaseHTTPRequestHandler):
    """An API server that takes every status PATCH."""

    patched: ClassVar[list[str]] = []

    def do_PATCH(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.patched.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def status_api() -> Iterator[int]:
    """The port of a ``_StatusApi`` on 127.0.0.1, its PATCHes recorded from empty."""
    _StatusApi.patched = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusApi)
    serving = threading.Thread(target=server.serve_forever, name="status-api", daemon=True)
    serving.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    serving.join(timeout=10)


def test_a_status_batch_whose_login_fails_stops_and_is_written_once_the_login_works(
    tmp_path: Path, status_api: int
) -> None:
    clusters = f"clusters:\n- name: k\n  cluster: {{server: 'http://127.0.0.1:{status_api}'}}\n"
    kubeconfig = _gcp_command_kubeconfig(tmp_path, script=_WHILE_NOT_FAILING, clusters=clusters)
    api = KubeApi.connect(kubeconfig=kubeconfig)
    runs = tmp_path / "token-command.runs"
    assert len(runs.read_text().splitlines()) == 1
    keys = [ObjectKey("aigateway.envoyproxy.io", "AIGatewayRoute", "ns", f"route-{i}") for i in range(5)]
    accepted = (Condition(type="Accepted", status=True, reason="Accepted", message=""),)
    statuses = {key: ObjectStatus(key=key, conditions=accepted) for key in keys}
    observed = {key: Observed(resource=_ROUTES, generation=1, conditions=()) for key in keys}
    (tmp_path / "token-command.failing").touch()
    backoff = HeldBackoff()
    writer = StatusWriter(api, may_write=lambda: True, backoff=backoff)
    writer.start()
    try:
        writer.submit(statuses, observed)
        assert backoff.asked.acquire(timeout=30)
        assert len(runs.read_text().splitlines()) == 2  # the batch stopped at its first write
        assert _StatusApi.patched == []
        (tmp_path / "token-command.failing").unlink()
        backoff.go.set()
        wait_until(lambda: writer.writes == len(keys), timeout=30)
    finally:
        writer.stop()
        api.close()
    assert _StatusApi.patched == [
        f"/apis/aigateway.envoyproxy.io/v1alpha1/namespaces/ns/aigatewayroutes/{key.name}/status"
        for key in keys
    ]
