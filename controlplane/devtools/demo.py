"""``python -m controlplane.devtools.demo examples``: the examples running for real, with what answered
each request.

Starts fake model servers for the examples' Backends, ``controlplane serve`` on the examples, and Envoy
bootstrapped from ``controlplane bootstrap``; then sends the seeds' requests through Envoy and prints which
backend answered and what it received. The API key is checked, never printed.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import httpx

from controlplane.devtools.controlplane_process import ControlPlaneError
from controlplane.devtools.fake_backend import Normal, Status
from controlplane.devtools.stack import LocalStack
from controlplane.log import configure_logging

_CHAT: dict[str, object] = {"messages": [{"role": "user", "content": "What is kubernetes?"}]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controlplane.devtools.demo", description=__doc__)
    parser.add_argument("examples", type=Path, nargs="?", default=Path("examples"))
    parser.add_argument(
        "--free-ports", action="store_true", help="move every example port to one reserved for the demo"
    )
    parser.add_argument("--delta", action="store_true", help="Envoy uses incremental xDS")
    args = parser.parse_args(argv)
    configure_logging(json=False, level="warning")
    try:
        with (
            LocalStack(args.examples, move_ports=args.free_ports, delta=args.delta) as stack,
            httpx.Client(timeout=10) as http,
        ):
            _say(f"control plane: xDS :{stack.xds_port}, admin http://127.0.0.1:{stack.admin_port}/status")
            _weighted_split(stack, http)
            _header_and_model_routing(stack, http)
            _model_failover(stack, http)
            _local_failover(stack, http)
            _region_failback(stack, http)
    except ControlPlaneError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 1
    _say("done")
    return 0


def _weighted_split(stack: LocalStack, http: httpx.Client) -> None:
    _say("seed 001: 50/50 split between two models, no model in the request")
    answered = Counter(_ask(http, stack.url(10081), _CHAT) for _ in range(20))
    for who, count in sorted(answered.items()):
        print(f"    {count:2d} x {who}")


def _header_and_model_routing(stack: LocalStack, http: httpx.Client) -> None:
    _say("seed 002: a header picks the InferencePool or the AIServiceBackend; the body's model picks a rule")
    url = stack.url(10082)
    for value in ("yes", "yes", "no"):
        who = _ask(http, url, {**_CHAT, "model": "any"}, headers={"x-target-inference-extension": value})
        print(f"    x-target-inference-extension: {value:3s} -> {who}")
    for model in ("llama3-8b", "mistral-7b", "no-such-model"):
        print(f"    model {model:13s} -> {_ask(http, url, {**_CHAT, 'model': model})}")


def _model_failover(stack: LocalStack, http: httpx.Client) -> None:
    _say("seed 003: /model rewritten to /v1/chat/completions, model from the backend, API key from a Secret")
    primary = stack.backends["openai-pool-1"]
    primary.clear()
    print(f"    POST /model, no model -> {_ask(http, stack.url(10083, '/model'), _CHAT)}")
    got = primary.received[-1]
    key_ok = "yes" if got.headers.get("authorization", "").startswith("Bearer sk-") else "NO"
    print(f"    backend saw path {got.path}, model {got.model}, key from the Secret: {key_ok}")
    primary.set_mode(Status(429))
    print(f"    primary answers 429 -> {_ask(http, stack.url(10083, '/model'), _CHAT)}")
    primary.set_mode(Normal())


def _local_failover(stack: LocalStack, http: httpx.Client) -> None:
    _say("seed 001: local-to-local failover when the primary's host does not resolve, or it answers 429")
    url = stack.url(10084)
    unresolvable = {"x-failover-case": "unresolvable"}
    print(f"    primary host unresolvable -> {_ask(http, url, _CHAT, headers=unresolvable)}")
    stack.backends["qwen-large"].set_mode(Status(429))
    print(f"    primary answers 429       -> {_ask(http, url, _CHAT)}")
    stack.backends["qwen-large"].set_mode(Normal())


def _region_failback(stack: LocalStack, http: httpx.Client) -> None:
    _say("seed 000: eu is primary; stop it, us answers; start it again, traffic fails back to eu")
    url, host = stack.url(10080), {"host": "llm.example.com"}
    eu = stack.backends["vllm-eu"]
    print(f"    eu up      -> {_ask(http, url, _CHAT, headers=host)}")
    eu.stop()
    while_down = Counter(_ask(http, url, _CHAT, headers=host) for _ in range(10))
    print(f"    eu stopped -> {dict(while_down)} (eu is ejected after 3 failures; no client sees an error)")
    eu.start()
    started = time.monotonic()
    while time.monotonic() - started < 15:
        answer = _ask(http, url, _CHAT, headers=host)
        if answer.startswith("vllm-eu"):
            break
        time.sleep(0.1)
    print(f"    eu started -> {answer} after {time.monotonic() - started:.1f} s")


def _ask(http: httpx.Client, url: str, body: dict[str, object], headers: dict[str, str] | None = None) -> str:
    reply = http.post(url, json=body, headers=headers)
    if reply.status_code != 200:
        return f"HTTP {reply.status_code} {reply.text.strip()}"
    name, _, requested = reply.json()["choices"][0]["message"]["content"].split(",", 2)
    return f"{name} (model {requested})"


def _say(text: str) -> None:
    print(f"==> {text}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
