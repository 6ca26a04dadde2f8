"""Helpers for the end-to-end tests: a running local stack per module and what its answers say."""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import openai

from controlplane.cli import main
from controlplane.devtools.fake_backend import Normal
from controlplane.devtools.stack import LocalStack
from tests.polling import wait_until

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples"
CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hello"}]}

T = TypeVar("T")


@contextmanager
def running_stack(manifests: Path, workdir: Path, *, delta: bool = False) -> Iterator[LocalStack]:
    with LocalStack(manifests, move_ports=True, delta=delta, workdir=workdir) as stack:
        yield stack


def reset_backends(stack: LocalStack) -> None:
    for backend in stack.backends.values():
        backend.set_mode(Normal())
        backend.clear()


def envoy_samples(stack: LocalStack, name: str) -> dict[str, float]:
    """``envoy_<name>`` samples from Envoy's Prometheus page, by their label set."""
    assert stack.envoy is not None
    samples = {}
    for line in stack.envoy.admin("/stats/prometheus").splitlines():
        if line.startswith(f"envoy_{name}{{"):
            labels, value = line[len(f"envoy_{name}") :].rsplit(" ", 1)
            samples[labels] = float(value)
    return samples


def answered_by(reply: httpx.Response) -> str:
    """The fake backend that produced a 200 answer (its name heads the completion's content)."""
    assert reply.status_code == 200, f"HTTP {reply.status_code}: {reply.text}"
    content: str = reply.json()["choices"][0]["message"]["content"]
    return content.split(",", 1)[0]


def everywhere_but_upstream(
    stack: LocalStack, answers: list[httpx.Response], *, translate_exit: int
) -> dict[str, str]:
    """Every place a secret could leak to, read: both processes' logs, Envoy's admin, the control plane's
    metrics, status and proxy-status, the clients' answers and ``translate`` (which must exit so)."""
    envoy = stack.envoy
    assert envoy is not None
    admin = f"http://127.0.0.1:{stack.admin_port}"
    places = {
        "control plane log": stack.control_plane_log(),
        "envoy log": envoy.log_path.read_text(encoding="utf-8", errors="replace"),
        "envoy config dump": envoy.admin("/config_dump", params={"include_eds": "true"}),
        "envoy secrets": envoy.admin("/config_dump", params={"resource": "dynamic_active_secrets"}),
        "envoy stats": envoy.admin("/stats"),
        "envoy prometheus stats": envoy.admin("/stats/prometheus"),
        "envoy clusters": envoy.admin("/clusters"),
        "envoy listeners": envoy.admin("/listeners"),
        "control plane metrics": httpx.get(f"{admin}/metrics").text,
        "control plane status": httpx.get(f"{admin}/status").text,
        "proxy-status": _proxy_status(stack),
        "client answers": "\n".join(f"{reply.headers}\n{reply.text}" for reply in answers),
    }
    for output in ("yaml", "json"):
        translated = subprocess.run(
            [sys.executable, "-m", "controlplane", "translate", str(stack.config_dir), "-o", output],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert translated.returncode == translate_exit, translated.stderr
        places[f"translate -o {output}"] = translated.stdout
        places[f"translate -o {output} problems"] = translated.stderr
    return places


def _proxy_status(stack: LocalStack) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["proxy-status", f"--xds-address=127.0.0.1:{stack.xds_port}", "-o", "json"]) == 0
    return printed.getvalue()


@contextmanager
def openai_client(stack: LocalStack, gateway: int, *, model: str) -> Iterator[openai.OpenAI]:
    """The OpenAI SDK on ``gateway``'s ``/v1``, once a chat completion for ``model`` is served (30 s at most:
    the route and its backends are in Envoy)."""
    with openai.OpenAI(
        base_url=stack.url(gateway, "/v1"), api_key="client-key", max_retries=0, timeout=10
    ) as sdk:

        def served() -> bool:
            try:
                sdk.chat.completions.create(model=model, messages=[{"role": "user", "content": "up?"}])
            except openai.APIError:
                return False
            return True

        assert wait_until(served, timeout=30), f"no chat completion for {model} was served"
        yield sdk
