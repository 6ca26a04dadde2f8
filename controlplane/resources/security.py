"""The BackendSecurityPolicy spec: which backends it protects and the credential each provider needs.

Every upstream credential type is declared so users' manifests load; which types the translator supports
is its decision (it reports the others per object). The OIDC provider settings embedded from Envoy
Gateway are kept loose: the translator checks the few fields minting uses (``gatewayapi.token_policies``).
An ``oidcExchangeToken``'s ``grantType`` and ``aud`` are declared upstream but read by none of its code (no
release from v0.1.0 to v1.1.0 uses them: its OIDC client asks for the token with ``grant_type`` set to
``client_credentials``, with scopes and no audience), so they are noted as having no effect here either;
a ``grantType`` of ``client_credentials`` asks for what is done anyway and is not noted.
Facts: envoyproxy/ai-gateway ``api/v1beta1/backendsecurity_policy.go`` at v1.1.0.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, JsonValue, ValidationError, model_validator
from pydantic.config import JsonDict
from pydantic_core import PydanticCustomError

from controlplane.resources.cel import X_VALIDATIONS, cel, x_validations
from controlplane.resources.gateway_api import LocalPolicyTargetReference, SecretObjectReference
from controlplane.resources.groups import AIGATEWAY_GROUP, INFERENCE_POOL_KIND
from controlplane.resources.meta import Loose, Model
from controlplane.resources.notes import FieldNote, FieldState

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


_BACKEND_OR_POOL = "must name an aigateway.envoyproxy.io AIServiceBackend or an InferencePool"


class PolicyTargetReference(LocalPolicyTargetReference):
    # Upstream also pins the pool's group to inference.networking.k8s.io; v1alpha2 pools are ours to read.
    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                f"(self.group == '{AIGATEWAY_GROUP}' && self.kind == 'AIServiceBackend')"
                f" || self.kind == '{INFERENCE_POOL_KIND}'",
                _BACKEND_OR_POOL,
            )
        )
    )

    @model_validator(mode="after")
    def _backend_or_pool(self) -> PolicyTargetReference:
        # A ref to any other kind would silently protect nothing.
        backend = (self.group, self.kind) == (AIGATEWAY_GROUP, "AIServiceBackend")
        if not backend and self.kind != INFERENCE_POOL_KIND:
            raise PydanticCustomError("policy_target", _BACKEND_OR_POOL)
        return self


class SecretKeyRef(Model):
    """The shape shared by apiKey, azureAPIKey, anthropicAPIKey and gcpCredentials.credentialsFile."""

    secret_ref: SecretObjectReference


_GRANT_TYPE_SENT = "client_credentials"
"""The ``grant_type`` the OIDC token is asked for with, whatever the policy says (as upstream)."""
_GRANT_TYPE_IGNORED = FieldNote(
    FieldState.UNIMPLEMENTED,
    "ignored, as Envoy AI Gateway ignores it: the OIDC token is always asked for with grant_type "
    f"{_GRANT_TYPE_SENT}",
    quiet_values=(_GRANT_TYPE_SENT,),
)
_AUD_IGNORED = FieldNote(
    FieldState.UNIMPLEMENTED,
    "ignored, as Envoy AI Gateway ignores it: the OIDC token is asked for with no audience",
)


class OIDCExchangeToken(Model):
    oidc: Loose
    grant_type: Annotated[str, _GRANT_TYPE_IGNORED] = ""
    aud: Annotated[str, _AUD_IGNORED] = ""

    def loose_references(self) -> list[SecretObjectReference]:
        """The OIDC client's Secret, which the loose ``oidc`` holds as ``clientSecret`` (for
        ``resources.references``: a Kubernetes source watches it like any typed reference)."""
        try:
            return [SecretObjectReference.model_validate(self.oidc.get("clientSecret"))]
        except ValidationError:
            return []


class AWSOIDCExchangeToken(OIDCExchangeToken):
    aws_role_arn: str = Field(min_length=1)


class AWSCredentialsFile(Model):
    secret_ref: SecretObjectReference
    profile: str = "default"


class AWSCredentials(Model):
    region: str = Field(min_length=1)
    credentials_file: AWSCredentialsFile | None = None
    oidc_exchange_token: AWSOIDCExchangeToken | None = None


_AZURE_ONE_SOURCE = "exactly one of clientSecretRef or oidcExchangeToken must be specified"


class AzureCredentials(Model):
    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel("has(self.clientSecretRef) != has(self.oidcExchangeToken)", _AZURE_ONE_SOURCE)
        )
    )

    client_id: str = Field(min_length=1, alias="clientID")
    tenant_id: str = Field(min_length=1, alias="tenantID")
    client_secret_ref: SecretObjectReference | None = None
    oidc_exchange_token: OIDCExchangeToken | None = None

    @model_validator(mode="after")
    def _one_source(self) -> AzureCredentials:
        if (self.client_secret_ref is None) == (self.oidc_exchange_token is None):
            raise PydanticCustomError("azure_source", _AZURE_ONE_SOURCE)
        return self


class GCPServiceAccountImpersonation(Model):
    service_account_name: str = Field(min_length=1)


class GCPWorkloadIdentityFederationConfig(Model):
    project_id: str = Field(min_length=1, alias="projectID")
    workload_identity_provider_name: str = Field(min_length=1)
    oidc_exchange_token: OIDCExchangeToken
    workload_identity_pool_name: str = Field(min_length=1)
    service_account_impersonation: GCPServiceAccountImpersonation | None = None


_GCP_AT_MOST_ONE = "at most one of credentialsFile or workloadIdentityFederationConfig may be specified"


class GCPCredentials(Model):
    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel(
                "!(has(self.credentialsFile) && has(self.workloadIdentityFederationConfig))", _GCP_AT_MOST_ONE
            )
        )
    )

    project_name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    credentials_file: SecretKeyRef | None = None
    workload_identity_federation_config: GCPWorkloadIdentityFederationConfig | None = None

    @model_validator(mode="after")
    def _at_most_one(self) -> GCPCredentials:
        if self.credentials_file is not None and self.workload_identity_federation_config is not None:
            raise PydanticCustomError("gcp_source", _GCP_AT_MOST_ONE)
        return self


class CredentialOverrideFromRequestHeaders(Model):
    header: str = ""
    fallback_to_configured: bool = Field(default=True, strict=True)


class CredentialOverrideFromDynamicMetadata(Model):
    namespace: str = Field(min_length=1)
    key: str = ""
    fallback_to_configured: bool = Field(default=True, strict=True)


_OVERRIDE_ONE_SOURCE = "exactly one of fromRequestHeaders or fromDynamicMetadata must be specified"


class CredentialOverride(Model):
    """Per request, the credential a trusted filter put in a request header or dynamic metadata, instead of
    the configured one."""

    model_config = ConfigDict(
        json_schema_extra=x_validations(
            cel("has(self.fromRequestHeaders) != has(self.fromDynamicMetadata)", _OVERRIDE_ONE_SOURCE)
        )
    )

    from_request_headers: CredentialOverrideFromRequestHeaders | None = None
    from_dynamic_metadata: CredentialOverrideFromDynamicMetadata | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CredentialOverride:
        if (self.from_request_headers is None) == (self.from_dynamic_metadata is None):
            raise PydanticCustomError("override_source", _OVERRIDE_ONE_SOURCE)
        return self


def _credential_rules(schema: JsonDict, model: type[Any]) -> None:
    """The CEL twin of ``_credential_matches_type``: per type, its field and no other credential."""
    aliases = {name: str(model.model_fields[name].alias) for name in _FIELD_FOR_TYPE.values()}
    rules: list[JsonValue] = []
    for policy_type, wanted in _FIELD_FOR_TYPE.items():
        others = " && ".join(f"!has(self.{alias})" for name, alias in aliases.items() if name != wanted)
        rules.append(
            cel(
                f"self.type == '{policy_type}' ? (has(self.{aliases[wanted]}) && {others}) : true",
                f"type {policy_type} needs {aliases[wanted]} and no other credential field",
            )
        )
    schema[X_VALIDATIONS] = rules


class BackendSecurityPolicySpec(Model):
    model_config = ConfigDict(json_schema_extra=_credential_rules)

    target_refs: list[PolicyTargetReference] = Field(default_factory=list, max_length=16)
    """The AIServiceBackends and InferencePools whose requests carry this credential."""
    type: SecurityPolicyType
    """Which credential: the field of the same name must be set, and no other credential field."""
    api_key: SecretKeyRef | None = None
    aws_credentials: AWSCredentials | None = None
    azure_api_key: SecretKeyRef | None = Field(default=None, alias="azureAPIKey")
    azure_credentials: AzureCredentials | None = None
    gcp_credentials: GCPCredentials | None = None
    anthropic_api_key: SecretKeyRef | None = Field(default=None, alias="anthropicAPIKey")
    credential_override: CredentialOverride | None = None

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
