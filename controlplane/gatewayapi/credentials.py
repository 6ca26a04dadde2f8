"""BackendSecurityPolicy -> the credential a backend's hop applies to each attempt.

Key-style credentials (APIKey, AzureAPIKey, AnthropicAPIKey) become a header injected from an SDS secret.
AzureCredentials and GCPCredentials become an access token the control plane mints (``controlplane.tokens``):
the policy is turned into a mint request here, and the token minted for it is read back as an input of the
translation. AWSCredentials become SigV4 signing by Envoy's ``aws_request_signing`` filter with the key of one
profile of a credentials file, the temporary keys the control plane mints for an ``oidcExchangeToken`` (OIDC
token, then STS ``AssumeRoleWithWebIdentity``), or Envoy's default credential chain when the policy names no
source. Secret values, tokens and keys are read here and go nowhere but the Envoy resource that carries them:
no problem message, status or log line contains them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final

from controlplane import ir
from controlplane.gatewayapi.aws_credentials import (
    BEDROCK_SIGNING_SERVICE,
    CredentialsFileError,
    profile_keys,
)
from controlplane.gatewayapi.credential_override import OverrideRefused, override_for, refuse_aws_override
from controlplane.gatewayapi.fragments import Effect
from controlplane.gatewayapi.grants import denied_message, reference_allowed
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.policy_targets import PolicyTargets, target_key
from controlplane.gatewayapi.recording import policy_target
from controlplane.gatewayapi.registered import NamedTable, Registrations
from controlplane.gatewayapi.report import Report
from controlplane.gatewayapi.token_policies import (
    AWS_EXCHANGE_PATH,
    TOKEN_TYPES,
    aws_keys_request,
    token_request,
)
from controlplane.resources.aigateway import AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.gateway_api import SecretObjectReference
from controlplane.resources.inference import InferencePoolBase
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet
from controlplane.resources.security import (
    API_KEY_SECRET_KEY,
    AWS_CREDENTIALS_SECRET_KEY,
    AWSCredentials,
    SecretKeyRef,
)
from controlplane.tokens.requests import MintRequest
from controlplane.tokens.state import MintedToken, MintFailure, utc_time

# type -> (spec field holding the secret ref, its YAML name, header, value prefix)
_KEY_TYPES: Final = {
    "APIKey": ("api_key", "apiKey", "Authorization", "Bearer "),
    "AzureAPIKey": ("azure_api_key", "azureAPIKey", "api-key", ""),
    "AnthropicAPIKey": ("anthropic_api_key", "anthropicAPIKey", "x-api-key", ""),
}


CREDENTIAL_HEADERS: Final = tuple(sorted({header.lower() for _, _, header, _ in _KEY_TYPES.values()}))
"""Every header a credential travels in, lower case (what an endpoint picker is never sent)."""


class PolicyFailed:
    """Marker: the target has a policy, but it cannot be applied."""


class CredentialResolver:
    FAILED: Final = PolicyFailed()

    def __init__(self, *, resources: ResourceSet, report: Report, memo: TranslationMemo) -> None:
        self._resources = resources
        self._report = report
        self._memo = memo
        self._secrets: Registrations[ir.CredentialSecret] = Registrations()
        self._secret_table: NamedTable[ir.CredentialSecret] = memo.carried("credential secrets", NamedTable)
        """Lists them in name order from the last translation's list (``registered``)."""
        self._mint_requests: dict[ObjectKey, MintRequest] = {}
        # Kept up to date from the last translation's: re-files only the policies and backends changed.
        self._policies = memo.carried("policy targets", PolicyTargets).update(
            resources.security_policies(), resources.backends(), resources=resources, report=report
        )

    @property
    def secrets(self) -> tuple[ir.CredentialSecret, ...]:
        return self._secret_table.values(self._secrets)

    def for_target(
        self, target: AIServiceBackend | InferencePoolBase
    ) -> ir.Credential | ir.AwsSigning | PolicyFailed | None:
        """The credential ``target``'s hops inject; None when no policy applies to it."""
        policy = self.policy_of(target)
        if policy is None:
            return None
        return self.policy_credential(policy)

    def policy_of(self, target: AIServiceBackend | InferencePoolBase) -> BackendSecurityPolicy | None:
        """The BackendSecurityPolicy that applies to ``target``, if any."""
        # Which policy applies changes only with the policies naming this target (the memo marks the read
        # changed for them) and, for a backend naming one the legacy way, with that policy: looked up here
        # so that the read is recorded (the map below, built from every policy, is not a read).
        self._memo.read_key(policy_target(target.kind, target.namespace, target.name))
        legacy = target.spec.backend_security_policy_ref if isinstance(target, AIServiceBackend) else None
        if legacy is not None:
            self._resources.find(BackendSecurityPolicy, target.namespace, legacy.name)
        return self._policies.get(target_key(target.kind, target.namespace, target.name))

    def policy_credential(
        self, policy: BackendSecurityPolicy
    ) -> ir.Credential | ir.AwsSigning | PolicyFailed:
        """The credential of one policy, resolved once per translation whichever targets use it."""
        return self._memo.cached(("policy", policy.key), lambda: self._resolve(policy))

    @property
    def mint_requests(self) -> dict[ObjectKey, MintRequest]:
        """What to mint, per policy whose credential is an access token the control plane mints."""
        return dict(sorted(self._mint_requests.items(), key=lambda item: item[0].order()))

    def replay(self, effect: Effect) -> None:
        """Registers a credential secret or a token to mint (recorded for the memo, or replayed by it)."""
        self._memo.effect(effect)
        _, table, name, value = effect
        if table == "mint":
            self._mint_requests[name] = value
        else:
            self._secrets.put(name, value)

    def register_all(self, table: str, entries: Mapping[Any, Any]) -> None:
        """Registers replayed secrets or tokens to mint at once (not recorded: only the memo replays)."""
        if table == "mint":
            self._mint_requests.update(entries)
        else:
            self._secrets.put_all(entries)

    def _resolve(self, policy: BackendSecurityPolicy) -> ir.Credential | ir.AwsSigning | PolicyFailed:
        spec = policy.spec
        if spec.aws_credentials is not None:
            return self._aws_signing(policy, spec.aws_credentials)
        if spec.type in TOKEN_TYPES:
            request = token_request(policy, read_secret=self.read_secret, report=self._report)
            if request is None:
                return self.FAILED
            self.replay(("register", "mint", policy.key, request))
            minted = self._minted(policy, TOKEN_TYPES[spec.type])
            if isinstance(minted, PolicyFailed):
                return minted
            return self._register(policy, header="Authorization", prefix="Bearer ", key=str(minted.value))
        if spec.type not in _KEY_TYPES:
            self._report.reject(
                policy,
                "spec.type",
                f"{spec.type} credentials are not supported yet",
                reason="UnsupportedValue",
            )
            return self.FAILED
        attribute, yaml_name, header, prefix = _KEY_TYPES[spec.type]
        ref: SecretKeyRef = getattr(spec, attribute)
        value = self.read_secret(
            policy, ref.secret_ref, path=f"spec.{yaml_name}.secretRef", key=API_KEY_SECRET_KEY
        )
        if value is None:
            return self.FAILED
        return self._register(policy, header=header, prefix=prefix, key=value)

    def _aws_signing(
        self, policy: BackendSecurityPolicy, aws: AWSCredentials
    ) -> ir.AwsSigning | PolicyFailed:
        if refuse_aws_override(policy, report=self._report) is not None:
            return self.FAILED
        signing = ir.AwsSigning(region=aws.region, service=BEDROCK_SIGNING_SERVICE)
        if aws.oidc_exchange_token is not None:
            request = aws_keys_request(policy, aws, read_secret=self.read_secret, report=self._report)
            if request is None:
                return self.FAILED
            self.replay(("register", "mint", policy.key, request))
            minted = self._minted(policy, AWS_EXCHANGE_PATH)
            if isinstance(minted, PolicyFailed):
                return minted
            value = minted.value
            # A string here is translate's placeholder (tokens.state.OFFLINE_TOKEN): it mints nothing.
            keys = value if isinstance(value, ir.AwsKeys) else ir.AwsKeys(value, value, value)
            return dataclasses.replace(signing, keys=keys)
        if aws.credentials_file is None:
            return signing
        path = "spec.awsCredentials.credentialsFile"
        text = self.read_secret(
            policy, aws.credentials_file.secret_ref, path=f"{path}.secretRef", key=AWS_CREDENTIALS_SECRET_KEY
        )
        if text is None:
            return self.FAILED
        try:
            keys = profile_keys(text, profile=aws.credentials_file.profile)
        except CredentialsFileError as error:
            secret = aws.credentials_file.secret_ref
            namespace = secret.namespace or policy.namespace
            self._report.unresolved(
                policy,
                f"{path}.{error.field}",
                f"Secret {namespace}/{secret.name} key {AWS_CREDENTIALS_SECRET_KEY} {error}",
            )
            return self.FAILED
        return dataclasses.replace(signing, keys=keys)

    def read_secret(
        self, policy: BackendSecurityPolicy, ref: SecretObjectReference, *, path: str, key: str
    ) -> str | None:
        """The stripped, non-empty value at ``key`` of the Secret ``ref`` names; else None, reported."""
        namespace = ref.namespace or policy.namespace
        if not reference_allowed(
            self._resources,
            source=policy,
            target_group="",
            target_kind="Secret",
            namespace=namespace,
            name=ref.name,
        ):
            message = denied_message(kind="Secret", namespace=namespace, name=ref.name)
            self._report.unresolved(policy, f"{path}.namespace", message)
            return None
        secret = self._resources.secret(namespace, ref.name)
        if secret is None:
            self._report.unresolved(policy, f"{path}.name", f"Secret {namespace}/{ref.name} not found")
            return None
        value = secret.value(key)
        if value is None or not value.get_secret_value().strip():
            self._report.unresolved(
                policy, path, f"Secret {namespace}/{secret.name} has no non-empty key {key}"
            )
            return None
        return value.get_secret_value().strip()

    def _minted(self, policy: BackendSecurityPolicy, field_path: str) -> MintedToken | PolicyFailed:
        """What was minted for the policy, once minted and while valid; else why not, reported at
        ``field_path``."""
        state = self._resources.token(policy.key)
        if state is None:
            self._report.reject(
                policy,
                field_path,
                "the access token is being minted; not used until it is",
                reason="TokenPending",
            )
            return self.FAILED
        if isinstance(state, MintFailure):
            self._report.reject(
                policy, field_path, f"no access token: {state.message}", reason="TokenMintFailed"
            )
            return self.FAILED
        if state.refresh_problem is not None:
            self._report.warn(
                policy,
                field_path,
                f"refreshing the access token failed ({state.refresh_problem}); the current one is used "
                f"until it expires at {utc_time(state.expires_at)}",
                reason="TokenRefreshFailed",
            )
        return state

    def _register(
        self, policy: BackendSecurityPolicy, *, header: str, prefix: str, key: str
    ) -> ir.Credential | PolicyFailed:
        """The configured ``key``, sent as ``header: <prefix><key>`` (or the request's own, if the policy
        overrides it per request)."""
        override = override_for(policy, target_header=header, prefix=prefix, report=self._report)
        if isinstance(override, OverrideRefused):
            return self.FAILED
        name = f"credential/{policy.namespace}/{policy.name}"
        self.replay(("register", "secret", name, ir.CredentialSecret(name=name, header_value=prefix + key)))
        return ir.Credential(secret=name, header=header, override=override)
