"""API keys reach the upstream request and nothing else, for each key type, through a real Envoy.

OpenAI's ``Authorization: Bearer``, Azure's ``api-key`` and Anthropic's ``x-api-key`` are injected from SDS
secrets, replacing what the client sent; an AWS credentials file's profile signs requests with SigV4 (checked
as AWS would, by botocore's signer: ``tests.aws_sigv4``). Then every place a key could leak is read: both
processes' logs, Envoy's admin (config dump, secrets, stats, clusters), the control plane's metrics, status
and proxy-status, the answers clients got, and ``controlplane translate``: no key is in any of them. Envoy
itself redacts SDS secret values and the AWS secret key and session token in its config dump; this checks it
stays so.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from controlplane.cli import main
from controlplane.devtools.fake_backend import Status
from controlplane.devtools.stack import LocalStack
from tests.aws_sigv4 import AwsKey, SignatureMismatch, verify_sigv4
from tests.e2e import answered_by, reset_backends, running_stack
from tests.polling import wait_until

pytestmark = pytest.mark.envoy

KEYS = Path(__file__).parent / "data" / "e2e_keys"
KEY_MARK = "sk-e2e-"
"""Every key value in the manifests starts so (the unparsable Secret's too)."""
BEDROCK_KEY = AwsKey("AKIAE2EBEDROCK", "sk-e2e-aws-bedrock-0c9d47", "sk-e2e-aws-session-b38f12")
"""The [bedrock] profile of the aws-credentials Secret, which the policy picks over [default]."""
BEDROCK_REGION = "eu-west-3"
CLIENT_CREDENTIALS = {
    "authorization": "Bearer client-key",
    "api-key": "client-key",
    "x-api-key": "client-key",
}


def _chat(model: str) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with running_stack(KEYS, tmp_path_factory.mktemp("secrets")) as running:
        wait_until(lambda: answered_by(httpx.post(running.url(10090), json=_chat("chat"), timeout=5)))
        reset_backends(running)
        yield running


def test_each_key_type_replaces_what_the_client_sent_and_leaks_nowhere(stack: LocalStack) -> None:
    answers: list[httpx.Response] = []
    with httpx.Client(timeout=10, headers=CLIENT_CREDENTIALS) as client:
        answers.append(client.post(stack.url(10090), json=_chat("chat")))
        answers.append(client.post(stack.url(10090), json=_chat("claude")))
        stack.backends["openai-host"].set_mode(Status(503))  # the next priority, keyed for Azure, answers
        answers.append(client.post(stack.url(10090), json=_chat("chat")))
        answers.append(client.post(stack.url(10090, "/v1/no-such-api"), json=_chat("chat")))
        answers.append(client.post(stack.url(10090), json=_chat("gpt-oss")))
    assert [answered_by(reply) for reply in answers[:3]] == ["openai-host", "anthropic-host", "azure-host"]
    assert answered_by(answers[4]) == "bedrock-host"
    verify_sigv4(
        stack.backends["bedrock-host"].received[-1], key=BEDROCK_KEY, region=BEDROCK_REGION, service="bedrock"
    )

    injected = {
        "openai-host": ("authorization", "Bearer sk-e2e-openai-7d1f0c"),
        "anthropic-host": ("x-api-key", "sk-e2e-anthropic-51b0e8"),
        "azure-host": ("api-key", "sk-e2e-azure-93ce4a"),
    }
    for backend, (header, value) in injected.items():
        received = stack.backends[backend].received[-1]
        assert received.headers.getall(header) == [value], f"{backend} got the client's {header}"

    places = _everywhere_but_upstream(stack, answers)
    assert len(places) >= 14
    for where, text in places.items():
        assert text, f"nothing read from the {where}"
        assert KEY_MARK not in text, f"an API key leaked into the {where}"
    # The checks read something real: the secrets are in Envoy (redacted), the bad Secret is reported.
    assert "credential/default/azure-key" in places["envoy secrets"]
    assert '"inline_string": "[redacted]"' in places["envoy secrets"]
    assert "Secret/default/broken: data.apiKey: is not valid base64" in places["control plane status"]
    # The AWS access key ID is no secret (it travels in every request's Authorization) and Envoy's config
    # dump shows it; everywhere else it is absent like the keys.
    assert BEDROCK_KEY.access_key_id in places["envoy config dump"]
    assert '"secret_access_key": "[redacted]"' in places["envoy config dump"]
    for where, text in places.items():
        if where != "envoy config dump":
            assert BEDROCK_KEY.access_key_id not in text, f"the AWS access key ID is in the {where}"


def test_aws_credentials_sign_each_request_as_the_backend_receives_it(stack: LocalStack) -> None:
    bedrock = stack.backends["bedrock-host"]
    bedrock.clear()
    with httpx.Client(timeout=10, headers=CLIENT_CREDENTIALS) as client:
        answered = client.post(stack.url(10090), json=_chat("gpt-oss"))
        with client.stream("POST", stack.url(10090), json={**_chat("gpt-oss"), "stream": True}) as streamed:
            assert streamed.status_code == 200
            events = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert answered_by(answered) == "bedrock-host"
    assert events[-1] == "data: [DONE]"
    assert len(bedrock.received) == 2
    for received in bedrock.received:
        # Signed as finally sent: the schema's path prefix and the overridden model in the body.
        assert received.path == "/openai/v1/chat/completions"
        assert received.model == "openai.gpt-oss-20b-1:0"
        signed = verify_sigv4(received, key=BEDROCK_KEY, region=BEDROCK_REGION, service="bedrock")
        assert signed == [
            "content-type",
            "host",
            "x-amz-content-sha256",
            "x-amz-date",
            "x-amz-security-token",
        ]
        assert "client-key" not in received.headers["authorization"]
    # The check is the one AWS makes: another profile's secret, or a request changed after signing, fails.
    received = bedrock.received[0]
    other_profile = dataclasses.replace(BEDROCK_KEY, secret_access_key="sk-e2e-aws-default-5e21aa")
    with pytest.raises(SignatureMismatch, match="signature does not match"):
        verify_sigv4(received, key=other_profile, region=BEDROCK_REGION, service="bedrock")
    with pytest.raises(SignatureMismatch, match="signature does not match"):
        verify_sigv4(
            dataclasses.replace(received, path="/v1/chat/completions"),
            key=BEDROCK_KEY,
            region=BEDROCK_REGION,
            service="bedrock",
        )
    with pytest.raises(SignatureMismatch, match="SHA-256 of the body"):
        verify_sigv4(
            dataclasses.replace(received, body=received.body + b" "),
            key=BEDROCK_KEY,
            region=BEDROCK_REGION,
            service="bedrock",
        )


def _everywhere_but_upstream(stack: LocalStack, answers: list[httpx.Response]) -> dict[str, str]:
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
        assert translated.returncode == 1, "the unparsable Secret is an error"
        places[f"translate -o {output}"] = translated.stdout
        places[f"translate -o {output} problems"] = translated.stderr
    return places


def _proxy_status(stack: LocalStack) -> str:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["proxy-status", f"--xds-address=127.0.0.1:{stack.xds_port}", "-o", "json"]) == 0
    return printed.getvalue()


def test_a_rotated_aws_key_signs_the_next_requests(stack: LocalStack) -> None:
    original = (KEYS / "route.yaml").read_text(encoding="utf-8")
    rotated = BEDROCK_KEY.secret_access_key.replace("bedrock", "rotated")
    bedrock = stack.backends["bedrock-host"]

    def signed_with(secret_access_key: str) -> bool:
        bedrock.clear()
        reply = httpx.post(stack.url(10090), json=_chat("gpt-oss"), timeout=5)
        key = dataclasses.replace(BEDROCK_KEY, secret_access_key=secret_access_key)
        try:
            verify_sigv4(bedrock.received[-1], key=key, region=BEDROCK_REGION, service="bedrock")
        except SignatureMismatch:
            return False
        return answered_by(reply) == "bedrock-host"

    stack.rewrite_config("route.yaml", original.replace(BEDROCK_KEY.secret_access_key, rotated))
    try:
        wait_until(lambda: signed_with(rotated), message="requests signed with the rotated key")
    finally:
        stack.rewrite_config("route.yaml", original)
    wait_until(lambda: signed_with(BEDROCK_KEY.secret_access_key), message="the original key again")
    assert rotated not in stack.control_plane_log()
