"""Where a backend's schema sends OpenAI requests: the provider APIs that differ from OpenAI's only in paths.

An ``OpenAI`` backend serves OpenAI's paths under its prefix (the hop's ``path_prefix``). ``AzureOpenAI``
takes the same JSON at its own paths, the deployment (the model the attempt asks for, after
``modelNameOverride``) in the path and the schema's ``version`` as the ``api-version`` query parameter.
Upstream facts (envoyproxy/ai-gateway ``internal/translator/openai_azureopenai*.go`` and
``internal/endpointspec``, v1.0.0): chat completions and embeddings go to
``/openai/deployments/{model}/chat/completions`` and ``.../embeddings``, the Responses API to
``/openai/responses``; every other endpoint is refused for an Azure backend. Azure ignores the body's
``model``, so the path alone chooses the deployment.
"""

from __future__ import annotations

from typing import Final

from controlplane import ir
from controlplane.resources.aigateway import VersionedAPISchema

AZURE_OPENAI: Final = "AzureOpenAI"
AZURE_API_VERSION_PARAMETER: Final = "api-version"
_AZURE_PATHS: Final = (
    ir.ProviderPath(
        openai_path=f"{ir.OPENAI_PATH_PREFIX}/chat/completions",
        provider_path=f"/openai/deployments/{ir.MODEL_IN_PATH}/chat/completions",
    ),
    ir.ProviderPath(
        openai_path=f"{ir.OPENAI_PATH_PREFIX}/embeddings",
        provider_path=f"/openai/deployments/{ir.MODEL_IN_PATH}/embeddings",
    ),
    ir.ProviderPath(openai_path=f"{ir.OPENAI_PATH_PREFIX}/responses", provider_path="/openai/responses"),
)
PATH_SCHEMAS: Final = frozenset({"OpenAI", AZURE_OPENAI})
"""The schemas this module places (the others need their body translated, elsewhere)."""


class SchemaProblem(ValueError):
    """The schema cannot be served as written; ``field`` is its path under ``spec.schema``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def provider_api(schema: VersionedAPISchema) -> ir.ProviderApi | None:
    """The provider paths of ``schema``; None for OpenAI (its prefix is enough). Raises SchemaProblem."""
    if schema.name != AZURE_OPENAI:
        return None
    version = (schema.version or "").strip()
    if not version:
        raise SchemaProblem("version", "AzureOpenAI needs its api-version here (for example 2024-10-21)")
    return ir.ProviderApi(
        schema=AZURE_OPENAI, paths=_AZURE_PATHS, query=((AZURE_API_VERSION_PARAMETER, version),)
    )
