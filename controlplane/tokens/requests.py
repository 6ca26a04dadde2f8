"""What to mint for one policy: everything the token endpoints need, resolved from the policy and its Secrets.

Built by the translator (``gatewayapi.credentials``), which also reports what is wrong with a policy, and
handed to the broker; equal requests mean the running token stays. Secret values never show in ``repr``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

AZURE_SCOPE = "https://cognitiveservices.azure.com/.default"
"""What an Entra ID token is asked for: Azure OpenAI (Cognitive Services), as upstream asks."""
GCP_CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
"""What the impersonated service account's token is for (Vertex AI)."""
GCP_IAM_SCOPE = "https://www.googleapis.com/auth/iam"
"""What the federated STS token is for when a service account is impersonated with it."""


@dataclass(frozen=True, slots=True)
class OidcClient:
    """An OAuth2 client-credentials grant at an OIDC provider: the identity token to exchange."""

    issuer: str
    token_endpoint: str | None
    """None: discovered from the issuer's ``/.well-known/openid-configuration``."""
    client_id: str
    client_secret: str = field(repr=False)
    scopes: tuple[str, ...] = ()
    """The ``scope`` asked for, as the policy lists it (none: no ``scope``). Envoy AI Gateway also asks for
    every scope the issuer's discovery document lists (``scopes_supported``): more than the policy grants the
    gateway, and Okta refuses a client-credentials grant asking for OIDC scopes (``openid``, ``profile``),
    which such lists hold; what the policy lists is enough, and least privilege."""


@dataclass(frozen=True, slots=True)
class AzureClientSecret:
    """Entra ID client-credentials grant with the application's client secret."""

    tenant_id: str
    client_id: str
    client_secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class AzureFederated:
    """Entra ID client-credentials grant with an OIDC token as the client assertion (workload identity)."""

    tenant_id: str
    client_id: str
    oidc: OidcClient


@dataclass(frozen=True, slots=True)
class GcpWorkloadIdentity:
    """GCP workload identity federation: an OIDC token exchanged at STS, then (optionally) a service
    account impersonated with the federated token."""

    audience: str
    """``//iam.googleapis.com/projects/P/locations/global/workloadIdentityPools/POOL/providers/PROVIDER``."""
    service_account: str | None
    """The e-mail of the service account to impersonate; None: the federated token is used as is."""
    oidc: OidcClient


@dataclass(frozen=True, slots=True)
class GcpServiceAccountKey:
    """A service account key file: a JWT signed with its private key, traded for a token (RFC 7523)."""

    client_email: str
    private_key_id: str
    private_key: str = field(repr=False)
    """PEM."""
    token_uri: str


@dataclass(frozen=True, slots=True)
class GcpApplicationDefault:
    """GCP Application Default Credentials of the control plane (``tokens.google_credentials``): nothing to
    say but that, so every such policy's request is equal."""


@dataclass(frozen=True, slots=True)
class AwsWebIdentity:
    """AWS STS ``AssumeRoleWithWebIdentity`` with an OIDC token: temporary keys (and a session token) for
    the role, which Envoy then signs with."""

    role_arn: str
    session_name: str
    region: str
    """Where STS is asked (its regional endpoint), as the policy's ``region`` says."""
    oidc: OidcClient


MintRequest = (
    AzureClientSecret
    | AzureFederated
    | GcpWorkloadIdentity
    | GcpServiceAccountKey
    | GcpApplicationDefault
    | AwsWebIdentity
)
