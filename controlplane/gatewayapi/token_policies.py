"""AzureCredentials, GCPCredentials and AWS OIDC-exchange policies -> what the token broker mints for them.

Upstream facts (envoyproxy/ai-gateway ``internal/controller`` at v1.0.0, ``backend_security_policy.go``,
``rotators/gcp_oidc_token_rotator.go``, ``tokenprovider/``): Azure's client secret and an OIDC client's
secret are read from the key ``client-secret``; Entra ID is asked for the Cognitive Services scope; an
``oidcExchangeToken`` is an OAuth2 client-credentials grant at the Envoy Gateway ``OIDC`` provider it embeds
(its ``provider.issuer``, ``provider.tokenEndpoint``, ``clientID``, ``clientSecret`` and ``scopes``; upstream
also asks for every scope in the issuer's discovery document, ``scopes_supported``, and we deliberately do
not: ``tokens.requests.OidcClient.scopes`` says why; its ``grantType`` and ``aud`` have no effect there or
here: ``resources.security``), whose token Azure takes as a client assertion and GCP exchanges at STS for
the audience
``//iam.googleapis.com/projects/{projectID}/locations/global/workloadIdentityPools/{pool}/providers/{provider}``,
then uses to impersonate ``{serviceAccountName}@{projectName}.iam.gserviceaccount.com`` when one is named,
and AWS gives STS ``AssumeRoleWithWebIdentity`` for ``awsRoleArn`` at the policy region's STS, with the role
session name ``ai-gateway-{policy name}`` (``rotators/aws_oidc_rotator.go``, ``aws_common.go``).
A GCP ``credentialsFile`` Secret holds a service account key file at ``service_account.json`` (upstream reads
it with Google's ``CredentialsFromJSON`` for the cloud-platform scope); only keys of type ``service_account``
are taken. GCP credentials with neither form use Application Default Credentials (upstream's external
processor resolves them beside Envoy; ``serve`` resolves them where it runs: ``tokens.google_credentials``).
"""

from __future__ import annotations

from typing import Final, Protocol

from pydantic import ValidationError

from controlplane.gatewayapi.report import Report
from controlplane.resources.aigateway import BackendSecurityPolicy
from controlplane.resources.gateway_api import SecretObjectReference
from controlplane.resources.security import AWSCredentials, OIDCExchangeToken
from controlplane.tokens.google_credentials import KeyFileError, is_url, json_object, service_account_key
from controlplane.tokens.requests import (
    AwsWebIdentity,
    AzureClientSecret,
    AzureFederated,
    GcpApplicationDefault,
    GcpServiceAccountKey,
    GcpWorkloadIdentity,
    MintRequest,
    OidcClient,
)

CLIENT_SECRET_KEY: Final = "client-secret"  # noqa: S105 - the name of a key, not a secret
SERVICE_ACCOUNT_KEY: Final = "service_account.json"
TOKEN_TYPES: Final = {"AzureCredentials": "spec.azureCredentials", "GCPCredentials": "spec.gcpCredentials"}
"""The policy types whose credential is a minted access token, and the spec field each is configured in."""
AWS_EXCHANGE_PATH: Final = "spec.awsCredentials.oidcExchangeToken"
"""Where an AWSCredentials policy asks for minted keys (an AWS role's, for an OIDC token)."""
_AWS_SESSION_PREFIX: Final = "ai-gateway-"


class SecretReader(Protocol):
    """Reads one key of a Secret a policy names (reporting on the policy what keeps it from being read)."""

    def __call__(
        self, policy: BackendSecurityPolicy, ref: SecretObjectReference, *, path: str, key: str
    ) -> str | None: ...


def token_request(
    policy: BackendSecurityPolicy, *, read_secret: SecretReader, report: Report
) -> MintRequest | None:
    """What to mint for ``policy`` (an AzureCredentials or GCPCredentials one); None when it cannot be
    minted, with the reason reported on the policy."""
    spec = policy.spec
    if spec.azure_credentials is not None:
        azure = spec.azure_credentials
        path = TOKEN_TYPES["AzureCredentials"]
        if azure.client_secret_ref is not None:
            secret = read_secret(
                policy, azure.client_secret_ref, path=f"{path}.clientSecretRef", key=CLIENT_SECRET_KEY
            )
            if secret is None:
                return None
            return AzureClientSecret(
                tenant_id=azure.tenant_id, client_id=azure.client_id, client_secret=secret
            )
        assert azure.oidc_exchange_token is not None  # the model requires exactly one of the two
        oidc = _oidc_client(
            policy, azure.oidc_exchange_token, f"{path}.oidcExchangeToken", read_secret, report
        )
        if oidc is None:
            return None
        return AzureFederated(tenant_id=azure.tenant_id, client_id=azure.client_id, oidc=oidc)
    gcp = spec.gcp_credentials
    assert gcp is not None  # TOKEN_TYPES holds only the two types
    path = TOKEN_TYPES["GCPCredentials"]
    federation = gcp.workload_identity_federation_config
    if gcp.credentials_file is not None:
        key_path = f"{path}.credentialsFile.secretRef"
        key_file = read_secret(
            policy, gcp.credentials_file.secret_ref, path=key_path, key=SERVICE_ACCOUNT_KEY
        )
        return None if key_file is None else _service_account_key(policy, key_file, key_path, report)
    if federation is None:
        return GcpApplicationDefault()
    oidc = _oidc_client(
        policy,
        federation.oidc_exchange_token,
        f"{path}.workloadIdentityFederationConfig.oidcExchangeToken",
        read_secret,
        report,
    )
    if oidc is None:
        return None
    impersonated = federation.service_account_impersonation
    return GcpWorkloadIdentity(
        audience=(
            f"//iam.googleapis.com/projects/{federation.project_id}/locations/global/workloadIdentityPools/"
            f"{federation.workload_identity_pool_name}/providers/{federation.workload_identity_provider_name}"
        ),
        service_account=(
            None
            if impersonated is None
            else f"{impersonated.service_account_name}@{gcp.project_name}.iam.gserviceaccount.com"
        ),
        oidc=oidc,
    )


def aws_keys_request(
    policy: BackendSecurityPolicy, aws: AWSCredentials, *, read_secret: SecretReader, report: Report
) -> AwsWebIdentity | None:
    """What to mint for an AWSCredentials policy with an ``oidcExchangeToken``; None when it cannot be minted,
    with the reason reported on the policy."""
    assert aws.oidc_exchange_token is not None  # the caller's branch
    exchange = aws.oidc_exchange_token
    oidc = _oidc_client(policy, exchange, AWS_EXCHANGE_PATH, read_secret, report)
    if oidc is None:
        return None
    return AwsWebIdentity(
        role_arn=exchange.aws_role_arn,
        # STS allows 64 characters; a longer Kubernetes name would be refused there.
        session_name=f"{_AWS_SESSION_PREFIX}{policy.name}"[:64],
        region=aws.region,
        oidc=oidc,
    )


def _service_account_key(
    policy: BackendSecurityPolicy, key_file: str, path: str, report: Report
) -> GcpServiceAccountKey | None:
    """The parts of a service account key file minting needs; what is wrong is said without its content."""
    document = json_object(key_file)
    if document is None:
        report.reject(policy, path, f"{SERVICE_ACCOUNT_KEY} is not a JSON object")
        return None
    if document.get("type") != "service_account":
        report.reject(
            policy,
            path,
            f"{SERVICE_ACCOUNT_KEY} must be a key of type service_account",
            reason="UnsupportedValue",
        )
        return None
    try:
        return service_account_key(document)
    except KeyFileError as error:
        report.reject(policy, path, f"{SERVICE_ACCOUNT_KEY} {error}")
        return None


def _oidc_client(
    policy: BackendSecurityPolicy,
    exchange: OIDCExchangeToken,
    path: str,
    read_secret: SecretReader,
    report: Report,
) -> OidcClient | None:
    """The embedded Envoy Gateway OIDC settings, checked here since the model keeps them loose."""
    oidc = exchange.oidc
    provider = oidc.get("provider")
    issuer = provider.get("issuer") if isinstance(provider, dict) else None
    token_endpoint = provider.get("tokenEndpoint") if isinstance(provider, dict) else None
    client_id = oidc.get("clientID")
    scopes = oidc.get("scopes", [])
    problems = [
        (f"{path}.oidc.provider.issuer", "must be an https or http URL") if not is_url(issuer) else None,
        (f"{path}.oidc.provider.tokenEndpoint", "must be an https or http URL")
        if token_endpoint is not None and not is_url(token_endpoint)
        else None,
        (f"{path}.oidc.clientID", "is required") if not isinstance(client_id, str) or not client_id else None,
        (f"{path}.oidc.scopes", "must be a list of strings")
        if not isinstance(scopes, list) or not all(isinstance(scope, str) for scope in scopes)
        else None,
    ]
    try:
        secret_ref = SecretObjectReference.model_validate(oidc.get("clientSecret"))
    except ValidationError:
        problems.append((f"{path}.oidc.clientSecret", "must name a Secret (name, optional namespace)"))
    for found in problems:
        if found is not None:
            report.reject(policy, found[0], found[1])
            return None
    secret = read_secret(policy, secret_ref, path=f"{path}.oidc.clientSecret", key=CLIENT_SECRET_KEY)
    if secret is None:
        return None
    return OidcClient(
        issuer=str(issuer),
        token_endpoint=token_endpoint,
        client_id=str(client_id),
        client_secret=secret,
        scopes=tuple(scopes),
    )
