"""GCPCredentials with neither a key file nor workload identity: Application Default Credentials, found as
Google's libraries find them (``GOOGLE_APPLICATION_CREDENTIALS``, gcloud's file, the metadata server) and
minted over real HTTP against the fake provider on loopback; errors name the file, never its content."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controlplane.gatewayapi import TranslateOptions, build_ir
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.sources.file_reading import load_paths
from controlplane.tokens.minting import Endpoints, HttpMinter, Minted, MintError
from controlplane.tokens.requests import GcpApplicationDefault
from tests.token_endpoints import USER_CLIENT_SECRET, USER_REFRESH_TOKEN, TokenEndpoints

MINTED_CASE = Path(__file__).parent / "testdata" / "translate" / "minted-credentials.in.yaml"


@pytest.fixture
def endpoints() -> Iterator[TokenEndpoints]:
    with TokenEndpoints(lifetime_seconds=600).running() as running:
        yield running


def _mint(endpoints: TokenEndpoints, environ: dict[str, str]) -> Minted:
    async def once() -> Minted:
        minter = HttpMinter(endpoints=Endpoints.from_environment({**endpoints.environment(), **environ}))
        try:
            return await minter(GcpApplicationDefault())
        finally:
            await minter.close()

    return asyncio.run(once())


def _refused(endpoints: TokenEndpoints, environ: dict[str, str]) -> str:
    with pytest.raises(MintError) as refused:
        _mint(endpoints, environ)
    return str(refused.value)


def test_without_a_file_the_metadata_server_gives_the_token(
    endpoints: TokenEndpoints, tmp_path: Path
) -> None:
    assert _mint(endpoints, {"CLOUDSDK_CONFIG": str(tmp_path)}).value == "adc-minted-1"
    assert endpoints.received == [("metadata", {"scopes": "https://www.googleapis.com/auth/cloud-platform"})]


def test_the_named_file_comes_first_then_gclouds(endpoints: TokenEndpoints, tmp_path: Path) -> None:
    key_file = tmp_path / "key.json"
    key_file.write_text(endpoints.service_account_key(), encoding="utf-8")
    (tmp_path / "application_default_credentials.json").write_text(
        endpoints.authorized_user_file(), encoding="utf-8"
    )
    both = {"CLOUDSDK_CONFIG": str(tmp_path), "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    assert _mint(endpoints, both).value == "gcpkey-minted-1"  # the fake checked the JWT's signature
    assert _mint(endpoints, {"CLOUDSDK_CONFIG": str(tmp_path)}).value == "gcpuser-minted-1"
    grant = endpoints.received[-1][1]
    assert grant == {
        "grant_type": "refresh_token",
        "client_id": "gcloud-user",
        "client_secret": USER_CLIENT_SECRET,
        "refresh_token": USER_REFRESH_TOKEN,
    }
    assert [where for where, _ in endpoints.received] == ["google oauth", "google oauth"]


def test_what_keeps_adc_from_a_token_is_said_without_the_files_content(
    endpoints: TokenEndpoints, tmp_path: Path
) -> None:
    def named(text: str) -> dict[str, str]:
        path = tmp_path / "adc.json"
        path.write_text(text, encoding="utf-8")
        return {"CLOUDSDK_CONFIG": str(tmp_path), "GOOGLE_APPLICATION_CREDENTIALS": str(path)}

    where = f"the Application Default Credentials file {tmp_path / 'adc.json'}"
    missing = {"GOOGLE_APPLICATION_CREDENTIALS": str(tmp_path / "absent.json")}
    assert _refused(endpoints, missing).endswith("absent.json cannot be read (No such file or directory)")
    assert _refused(endpoints, named(f"not json {USER_REFRESH_TOKEN}")) == f"{where} is not a JSON object"
    external = json.dumps({"type": "external_account", "audience": "//iam.googleapis.com/x"})
    assert _refused(endpoints, named(external)) == (
        f"{where} is of type 'external_account'; service_account and authorized_user are supported"
    )
    user = json.loads(endpoints.authorized_user_file())
    no_token = json.dumps({**user, "refresh_token": ""})
    assert _refused(endpoints, named(no_token)) == f"{where} has no usable refresh_token"
    revoked = _refused(endpoints, named(json.dumps({**user, "client_secret": f"x{USER_CLIENT_SECRET}"})))
    assert revoked == (
        f"{endpoints.url}/google/token answered HTTP 400 (invalid_grant: Token has been expired or revoked.)"
    )
    unreachable = {"CLOUDSDK_CONFIG": str(tmp_path / "none"), "GCE_METADATA_HOST": "127.0.0.1:9"}
    assert _refused(endpoints, unreachable) == (
        "no Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS names no file, gcloud has none, "
        "and the metadata server at http://127.0.0.1:9/computeMetadata/v1/instance/service-accounts/default/"
        "token?scopes=https://www.googleapis.com/auth/cloud-platform cannot be reached (ClientConnectorError)"
    )


def test_a_policy_with_neither_form_asks_for_application_default_credentials() -> None:
    resources = load_paths([MINTED_CASE]).resource_set()
    built = build_ir(resources.with_tokens({}), options=TranslateOptions(listen_address="127.0.0.1"))
    adc = BackendSecurityPolicy.key_for("default", "gcp-adc")
    assert built.mint_requests[adc] == GcpApplicationDefault()
    assert built.statuses[adc].conditions[0].reason == "TokenPending"
