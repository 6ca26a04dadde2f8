"""The BackendSecurityPolicy spec: which backends it protects and the credential each provider needs.

Every upstream credential type is declared so users' manifests load; which types the translator supports
is its decision (it reports the others per object). The OIDC provider settings embedded from Envoy
Gateway are kept loose: we never act on them.
Facts: envoyproxy/ai-gateway ``api/v1beta1/backendsecurity_policy.go`` at v1.1.0.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from controlplane.resources.gateway_api import LocalPolicyTargetReference, SecretObjectReference
from controlplane.resources.groups import AIGATEWAY_GROUP, INFERENCE_POOL_KIND
from controlplane.resources.meta import Loose, Model
from controlplane.resources.notes import UNIMPLEMENTED

API_KEY_SECRET_KEY = "apiKey"  # noqa: S105 - the name of a key, not a secret
"""The Secret key that holds the key for APIKey, AzureAPIKey and AnthropicAPIKey policies."""
AWS_CREDENTIALS_SECRET_KEY = "credentials"  # noqa: S105 - the name of a key, not a secret

SecurityPolicyType = Literal[
    "APIKey", "AWSCredentials", "AzureAPIKey", "AzureCredentials", "GCPCredentials", "AnthropicAPIKey"
]

# The spec field each type requires (and the only credential field it allows), as upstream's CEL rules say.
_FIELD_FOR_TYPE: dict[str, str] = {
    "APIKey": "api_key",
    "AWSCredentials": "aws_credentials",
    "AzureAPIKey": "azure_api_key",
    "AzureCredentials": "azure_credentials",
    "GCPCredentials": "gcp_credentials",
    "AnthropicAPIKey": "anthropic_api_key",
}


class PolicyTargetReference(LocalPolicyTargetReference):
    @model_validator(mode="after")
    def _backend_or_pool(self) -> PolicyTargetReference:
        # Upstream enforces this with CEL; a ref to any other kind would silently protect nothing.
        backend = (self.group, self.kind) == (AIGATEWAY_GROUP, "AIServiceBackend")
        if not backend and self.kind != INFERENCE_POOL_KIND:
            raise PydanticCustomError(
                "policy_target", "must name an aigateway.envoyproxy.io AIServiceBackend or an InferencePool"
            )
        return self


class SecretKeyRef(Model):
    """The shape shared by apiKey, azureAPIKey, anthropicAPIKey and gcpCredentials.credentialsFile."""

    secret_ref: SecretObjectReference


class OIDCExchangeToken(Model):
    oidc: Loose
    grant_type: str = ""
    aud: str = ""


class AWSOIDCExchangeToken(OIDCExchangeToken):
    aws_role_arn: str = Field(min_length=1)


class AWSCredentialsFile(Model):
    secret_ref: SecretObjectReference
    profile: str = "default"


class AWSCredentials(Model):
    region: str = Field(min_length=1)
    credentials_file: AWSCredentialsFile | None = None
    oidc_exchange_token: AWSOIDCExchangeToken | None = None


class AzureCredentials(Model):
    client_id: str = Field(min_length=1, alias="clientID")
    tenant_id: str = Field(min_length=1, alias="tenantID")
    client_secret_ref: SecretObjectReference | None = None
    oidc_exchange_token: OIDCExchangeToken | None = None


class GCPServiceAccountImpersonation(Model):
    service_account_name: str = Field(min_length=1)


class GCPWorkloadIdentityFederationConfig(Model):
    project_id: str = Field(min_length=1, alias="projectID")
    workload_identity_provider_name: str = Field(min_length=1)
    oidc_exchange_token: OIDCExchangeToken
    workload_identity_pool_name: str = Field(min_length=1)
    service_account_impersonation: GCPServiceAccountImpersonation | None = None


class GCPCredentials(Model):
    project_name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    credentials_file: SecretKeyRef | None = None
    workload_identity_federation_config: GCPWorkloadIdentityFederationConfig | None = None


class CredentialOverrideFromRequestHeaders(Model):
    header: str = ""
    fallback_to_configured: bool = True


class CredentialOverrideFromDynamicMetadata(Model):
    namespace: str = Field(min_length=1)
    key: str = ""
    fallback_to_configured: bool = True


class CredentialOverride(Model):
    from_request_headers: CredentialOverrideFromRequestHeaders | None = None
    from_dynamic_metadata: CredentialOverrideFromDynamicMetadata | None = None


class BackendSecurityPolicySpec(Model):
    target_refs: list[PolicyTargetReference] = Field(default_factory=list)
    type: SecurityPolicyType
    api_key: SecretKeyRef | None = None
    aws_credentials: AWSCredentials | None = None
    azure_api_key: SecretKeyRef | None = Field(default=None, alias="azureAPIKey")
    azure_credentials: AzureCredentials | None = None
    gcp_credentials: GCPCredentials | None = None
    anthropic_api_key: SecretKeyRef | None = Field(default=None, alias="anthropicAPIKey")
    credential_override: Annotated[CredentialOverride | None, UNIMPLEMENTED] = None

    @model_validator(mode="after")
    def _credential_matches_type(self) -> BackendSecurityPolicySpec:
        fields = type(self).model_fields
        wanted = _FIELD_FOR_TYPE[self.type]
        present = sorted(name for name in _FIELD_FOR_TYPE.values() if getattr(self, name) is not None)
        if present != [wanted]:
            raise PydanticCustomError(
                "credential_mismatch",
                "type {type} needs {wanted} and no other credential field (found: {found})",
                {
                    "type": self.type,
                    "wanted": fields[wanted].alias,
                    "found": ", ".join(str(fields[name].alias) for name in present) or "none",
                },
            )
        return self
