"""A configuration Envoy refuses (a Gateway listener on a port another process holds) is reported on the
object that produced it, once in the log and as a metric, is not sent again, and disturbs nothing else;
moving the Gateway to a free port clears it."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.devtools.stack import LocalStack
from controlplane.netutil import PortReservations
from tests.e2e import CHAT, EXAMPLES, answered_by
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

SPLIT = "001-weighted-split/route.yaml"
SPLIT_GATEWAY_PORT = 10081  # the port that file's Gateway listens on
OTHER_GATEWAY_PORT = 10083  # examples/003-model-failover's Gateway, untouched throughout


def _programmed(stack: LocalStack, kind: str, name: str) -> list[dict[str, Any]]:
    for item in stack.control_plane.status()["objects"]:
        if (item["kind"], item["name"]) == (kind, name):
            return [condition for condition in item["conditions"] if condition["type"] == "Programmed"]
    raise AssertionError(f"no status for {kind} {name}")


def _refused_listeners(stack: LocalStack) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.admin_port}/metrics", timeout=5) as reply:
        for line in reply.read().decode().splitlines():
            if line.startswith('xds_refused_resources{type="Listener"}'):
                return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("delta", [False, True], ids=["sotw", "delta"])
def test_a_listener_envoy_cannot_bind_is_reported_on_its_gateway(
    tmp_path: Path, delta: bool, ports: PortReservations
) -> None:
    stack = LocalStack(EXAMPLES, move_ports=True, delta=delta, workdir=tmp_path / "stack")
    with socket.socket() as squatter:
        # Another process listens on the Gateway's port before Envoy is given its listener (binding it
        # beside the stack's reservation, as any listener with SO_REUSEADDR may).
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", stack.port(SPLIT_GATEWAY_PORT)))
        squatter.listen()
        with (
            stack,
            httpx.Client(timeout=5) as http,
        ):
            refused = wait_until(
                lambda: _programmed(stack, "Gateway", "qwen-gateway"), message="the Gateway's refusal"
            )
            assert [(c["status"], c["reason"]) for c in refused] == [("False", "RefusedByProxy")]
            message = refused[0]["message"]
            assert message.startswith("Envoy local refused Listener gateway/default/qwen-gateway/")
            assert str(stack.port(SPLIT_GATEWAY_PORT)) in message
            assert _refused_listeners(stack) == 1.0
            # Everything else serves, and other objects carry no such condition.
            assert answered_by(http.post(stack.url(OTHER_GATEWAY_PORT, "/model"), json=CHAT))
            assert _programmed(stack, "Gateway", "ai-gateway") == []
            assert _programmed(stack, "AIGatewayRoute", "qwen") == []
            assert stack.control_plane_log().count("proxy refused configuration") == 1

            # Moved to a free port, the Gateway is programmed and serves; the refusal is gone.
            moved = ports.reserve()
            text = (EXAMPLES / SPLIT).read_text(encoding="utf-8")
            stack.rewrite_config(SPLIT, text.replace(f"port: {SPLIT_GATEWAY_PORT}", f"port: {moved}", 1))
            wait_until(
                lambda: _programmed(stack, "Gateway", "qwen-gateway") == [], message="the refusal to clear"
            )
            assert _refused_listeners(stack) == 0.0
            reply = wait_until(
                lambda: http.post(f"http://127.0.0.1:{moved}/v1/chat/completions", json=CHAT),
                message="the moved Gateway to answer",
            )
            assert answered_by(reply) in {"ollama-small", "ollama-large"}
            assert stack.control_plane_log().count("proxy refused configuration") == 1
