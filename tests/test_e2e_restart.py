"""The control plane and the backends killed under a client loop through a real Envoy (seed 000), both modes.

``kill -9`` of ``serve`` loses no request: Envoy keeps serving what it has, reconnects to the restarted
process, and is sent the very same versions, so it modifies no listener and no cluster. SIGTERM ends the
streams cleanly (Envoy sees the server go, not an error) and exits 0, with traffic unaffected. A primary
backend killed mid-loop costs no request (the next priority answers); with every priority gone the client
promptly gets OpenAI's error JSON.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest

from controlplane.cli import main
from controlplane.devtools.envoy_process import EnvoyProcess
from controlplane.devtools.stack import LocalStack
from tests.e2e import CHAT, EXAMPLES, running_stack
from tests.polling import wait_until
from tests.xds_support import TrafficLoop

pytestmark = pytest.mark.envoy

REGION = EXAMPLES / "000-region-failover"
HOST = "llm.example.com"
MODIFIED = ("listener_manager.listener_modified", "cluster_manager.cluster_modified")
CONNECTED = "control_plane.connected_state"


@pytest.fixture
def stack(tmp_path: Path, mode: str) -> Iterator[LocalStack]:
    with running_stack(REGION, tmp_path / "stack", delta=mode == "delta") as running:
        yield running


def _envoy(stack: LocalStack) -> EnvoyProcess:
    assert stack.envoy is not None
    return stack.envoy


def _connected(envoy: EnvoyProcess) -> int:
    return envoy.stats(filter_regex=CONNECTED)[CONNECTED]


def _modified(envoy: EnvoyProcess) -> dict[str, int]:
    stats = envoy.stats(filter_regex="_modified$")
    return {name: stats[name] for name in MODIFIED}


def _answered_more(loop: TrafficLoop, than: int) -> bool:
    return loop.total() > than


def _in_sync(stack: LocalStack) -> bool:
    """The (restarted) control plane has every type it sent ACKed by Envoy, as ``proxy-status`` says."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(["proxy-status", f"--xds-address=127.0.0.1:{stack.xds_port}", "-o", "json"])
    assert code == 0
    (proxy,) = json.loads(printed.getvalue())["proxies"]
    syncs: dict[str, str] = {s["type_url"].rsplit(".", 1)[-1]: s["sync"] for s in proxy["types"]}
    assert set(syncs.values()) <= {"SYNCED", "NOT_SENT"}, syncs
    return syncs["Listener"] == syncs["Cluster"] == "SYNCED"


def test_kill_9_and_restart_lose_no_request_and_change_nothing_in_envoy(stack: LocalStack) -> None:
    envoy = _envoy(stack)
    with TrafficLoop(port=stack.port(10080), host=HOST, chat=True) as loop:
        wait_until(lambda: _answered_more(loop, 50), message="traffic through Envoy")
        version = stack.control_plane.status()["snapshotVersion"]
        before = _modified(envoy)
        for _ in range(3):
            stack.control_plane.kill()
            wait_until(lambda: _connected(envoy) == 0, message="Envoy to see the control plane gone")
            sent = loop.total()
            wait_until(partial(_answered_more, loop, sent + 50), message="traffic with no control plane")
            stack.control_plane.start()
            assert stack.control_plane.status()["snapshotVersion"] == version
            wait_until(lambda: _connected(envoy) == 1, timeout=30, message="Envoy to reconnect")
            wait_until(partial(_in_sync, stack), timeout=30, message="Envoy to ACK the restart")
            sent = loop.total()
            wait_until(partial(_answered_more, loop, sent + 50), message="traffic after the restart")
        assert _modified(envoy) == before
    print(f"kill -9 and restart x3: {loop.total()} requests, {len(loop.failures)} failed")
    assert loop.failures == []
    assert loop.total() > 300
    assert set(loop.answers) == {"vllm-eu"}


def test_sigterm_ends_the_streams_and_exits_0_while_envoy_serves_on(stack: LocalStack) -> None:
    envoy = _envoy(stack)
    with TrafficLoop(port=stack.port(10080), host=HOST, chat=True) as loop:
        wait_until(lambda: _answered_more(loop, 50), message="traffic through Envoy")
        assert stack.control_plane.terminate() == 0
        wait_until(lambda: _connected(envoy) == 0, message="Envoy to see the control plane gone")
        sent = loop.total()
        wait_until(lambda: _answered_more(loop, sent + 50), message="traffic after the stop")
    assert loop.failures == []
    log = stack.control_plane_log()
    assert "shutting down" in log
    assert "proxy disconnected" in log
    assert "Traceback" not in log


def test_a_killed_primary_costs_no_request_and_none_left_is_a_prompt_json_error(
    stack: LocalStack,
) -> None:
    eu, us = stack.backends["vllm-eu"], stack.backends["vllm-us"]
    with TrafficLoop(port=stack.port(10080), host=HOST, chat=True) as loop:
        wait_until(lambda: _answered_more(loop, 50), message="traffic through Envoy")
        eu.stop()
        wait_until(lambda: loop.answers["vllm-us"] > 100, timeout=30, message="us to take over")
    print(f"primary killed: {loop.total()} requests, {len(loop.failures)} failed, {dict(loop.answers)}")
    assert loop.failures == []
    us.stop()
    with httpx.Client(timeout=10) as client:  # a hang would fail here, not stall the suite
        for _ in range(3):
            reply = client.post(stack.url(10080), json=CHAT, headers={"host": HOST})
            assert reply.status_code == 503
            assert reply.headers["content-type"] == "application/json"
            assert reply.json()["error"]["type"] == "server_error"
