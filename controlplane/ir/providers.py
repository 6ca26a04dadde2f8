"""What a backend's hop does for a hosted provider: its own paths, the transcoder's conversion, credentials.

Part of the IR: ``controlplane.ir`` re-exports every name here, so the rest of the code says
``ir.Transcoding`` like any other IR type. Kept apart because each provider adds its own shapes while the
routing IR stays put.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

MODEL_IN_PATH = "{model}"
"""Where a provider path names the model (Azure OpenAI's deployment): filled per attempt by the hop."""


@dataclass(frozen=True, slots=True)
class ProviderPath:
    """One endpoint clients call (OpenAI's, or ``COHERE_RERANK_PATH``) and where the provider serves it (may
    hold ``MODEL_IN_PATH``)."""

    client_path: str
    provider_path: str


@dataclass(frozen=True, slots=True)
class ProviderApi:
    """A provider whose requests go as the client sent them, at other paths (Azure OpenAI, Cohere): the hop
    maps each endpoint it serves, adds the query parameters (``api-version``) and refuses every other path."""

    schema: str
    paths: tuple[ProviderPath, ...]
    query: tuple[tuple[str, str], ...] = ()


class LlmApi(StrEnum):
    """A provider's wire API, by the name Envoy's ``envoy.type.ai.v3.LLMProtocol`` gives it."""

    ANTHROPIC_MESSAGES = "ANTHROPIC_MESSAGES"
    GEMINI_GENERATE_CONTENT = "GEMINI_GENERATE_CONTENT"


@dataclass(frozen=True, slots=True)
class ModelPath:
    """A provider path built per attempt from the attempt's model (``MODEL_IN_PATH``), one for unary calls
    and one for streamed ones (chosen by the request's ``stream``)."""

    schema: str
    """The backend's schema (named in the hop's error messages)."""
    unary: str
    streaming: str
    stream_in_body: bool = True
    """The body keeps Anthropic's ``stream`` (Vertex AI); False: the provider refuses the key (Bedrock)."""
    event_stream: bool = False
    """The streamed method answers AWS event-stream frames (Bedrock), which the hop turns into Anthropic's
    server-sent events."""


@dataclass(frozen=True, slots=True)
class Transcoding:
    """The backend speaks another API than the clients' OpenAI Chat Completions: Envoy's transcoder converts
    each request and response (SSE streams included) in the hop (see ``gatewayapi.providers``)."""

    api: LlmApi
    path_pattern: str = ""
    """An RE2 pattern on the path the transcoder leaves (OpenAI's, or Gemini's ``/v1beta/models/...``);
    empty when ``model_path`` names the provider's path instead."""
    path_substitution: str = ""
    """What the matched part becomes: the provider's own path."""
    model_path: ModelPath | None = None
    """The provider's path names the model and the method (Vertex AI rawPredict, Bedrock invoke)."""
    body_version: str | None = None
    """The provider wants the Anthropic body with this ``anthropic_version`` and without ``model``."""
    default_headers: tuple[tuple[str, str], ...] = ()
    """Headers the provider requires, added when the request has none (``anthropic-version``)."""
    native_prefix: str | None = None
    """Clients of the provider's own API call this path (``/anthropic/v1/messages``): their requests go
    through untranscoded, the prefix replaced by ``native_substitution``."""
    native_substitution: str = ""


@dataclass(frozen=True, slots=True)
class CredentialOverride:
    """Per request, the credential from a request header instead (a policy's ``credentialOverride``)."""

    header: str
    """Lower case; removed before the backend sees it."""
    prefix: str
    """Put before the header's value (``Bearer `` for the Authorization header)."""
    fallback: bool
    """Without the header: True, the configured credential; False, 401 and nothing is forwarded."""


@dataclass(frozen=True, slots=True)
class Credential:
    """Which SDS secret a hop injects, and as which header (replacing whatever the client sent)."""

    secret: str
    header: str
    override: CredentialOverride | None = None


@dataclass(frozen=True, slots=True)
class AwsKeys:
    """An AWS access key (and session token, for temporary keys) a hop signs with."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str = field(default="", repr=False)


@dataclass(frozen=True, slots=True)
class AwsSigning:
    """Sign each attempt with AWS Signature V4 (BackendSecurityPolicy AWSCredentials).

    ``keys`` None means Envoy's own default credential chain (its environment, IRSA, Pod Identity, instance
    role), as upstream does when a policy names neither a credentials file nor an OIDC exchange.
    """

    region: str
    service: str
    keys: AwsKeys | None = None


@dataclass(frozen=True, slots=True)
class CredentialSecret:
    """A header value Envoy injects upstream; the value never leaves the snapshot (no logs, no output)."""

    name: str
    header_value: str = field(repr=False)
