"""Upstream's provider examples (``examples/basic`` of envoyproxy/ai-gateway) translate, and what is reported
on their AIServiceBackends is only what Envoy 1.40 truly cannot serve: the AWSBedrock schema (the Converse
API). Their Claude-on-Vertex, Claude-on-Bedrock (streams included), Cohere, Azure and Anthropic schemas
are served with no warning on them. (``gcp_vertex``'s placeholder key file is
reported on its policy, which then costs its backends: that is the Secret, not the schema.)
"""

from __future__ import annotations

import pytest

from controlplane.devtools.gotools import GoTools
from controlplane.gatewayapi import TranslateOptions
from controlplane.pipeline import translate
from controlplane.resources.problems import Severity
from controlplane.sources.file_reading import load_paths
from tests.test_kubernetes_crds import AI_GATEWAY_MODULE

EXAMPLES = ("anthropic", "aws", "aws-bedrock-openai-anthropic", "azure_openai", "cohere", "gcp_vertex")


@pytest.mark.parametrize("example", EXAMPLES)
def test_upstreams_provider_example_reports_only_the_converse_schema(
    kube_tools: GoTools, example: str
) -> None:
    basic = kube_tools.module(AI_GATEWAY_MODULE) / "examples" / "basic"
    resources = load_paths([basic / "basic.yaml", basic / f"{example}.yaml"]).resource_set()
    result = translate(resources, options=TranslateOptions(listen_address="127.0.0.1"))
    schemas = {backend.name: backend.spec.api_schema.name for backend in resources.backends()}
    refused = {
        problem.name
        for problem in result.problems
        if problem.severity is Severity.ERROR
        and problem.kind == "AIServiceBackend"
        and problem.field_path == "spec.schema.name"
    }
    assert refused == {name for name, schema in schemas.items() if schema == "AWSBedrock"}
    warned = {
        problem.name
        for problem in result.problems
        if problem.severity is Severity.WARNING and problem.kind == "AIServiceBackend"
    }
    assert warned == set()
