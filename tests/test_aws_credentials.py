"""An AWS credentials file in a Secret -> the key of the profile a policy picks, or an error quoting none.

And upstream's AWS examples: their AWSCredentials policies are accepted; what is left reported is only the
AWSBedrock schema (the Converse API) Envoy 1.40 cannot translate to; AWSAnthropic backends are served,
streams included, with nothing reported on them. The Kubernetes source watches a credentials-file Secret by
name, like any other referenced Secret.
"""

from __future__ import annotations

import re

import pytest

from controlplane import ir
from controlplane.devtools.gotools import GoTools
from controlplane.gatewayapi import TranslateOptions
from controlplane.gatewayapi.aws_credentials import CredentialsFileError, profile_keys
from controlplane.pipeline import translate
from controlplane.resources.core import Secret
from controlplane.resources.parse import load_text
from controlplane.resources.problems import Severity
from controlplane.resources.references import referenced_secrets_and_config_maps
from controlplane.sources.file_reading import load_paths
from tests.test_kubernetes_crds import AI_GATEWAY_MODULE

FILE = """
# written by `aws configure`
[default]
aws_access_key_id = AKIADEFAULT
aws_secret_access_key = default-secret

[bedrock]
aws_access_key_id=AKIABEDROCK
aws_secret_access_key=  bedrock-secret
aws_session_token = bedrock-session
region = us-east-1
"""


def test_the_chosen_profile_gives_its_key_and_session_token() -> None:
    assert profile_keys(FILE, profile="bedrock") == ir.AwsKeys(
        access_key_id="AKIABEDROCK", secret_access_key="bedrock-secret", session_token="bedrock-session"
    )
    assert profile_keys(FILE, profile="default") == ir.AwsKeys(
        access_key_id="AKIADEFAULT", secret_access_key="default-secret"
    )


def test_keys_never_show_in_a_repr() -> None:
    keys = profile_keys(FILE, profile="bedrock")
    assert "secret" not in repr(keys)
    assert "AKIA" not in repr(keys)
    assert "bedrock-secret" not in repr(ir.AwsSigning(region="us-east-1", service="bedrock", keys=keys))


@pytest.mark.parametrize(
    ("text", "profile", "field", "message"),
    [
        (FILE, "staging", "profile", "has no profile [staging] (profiles: default, bedrock)"),
        ("[team]\naws_access_key_id = AKIATEAM\n", "team", "profile", "has no aws_secret_access_key"),
        (
            "[team]\naws_access_key_id =\naws_secret_access_key = \n",
            "team",
            "profile",
            "has no aws_access_key_id or aws_secret_access_key",
        ),
        ("aws_secret_access_key = loose-secret\n", "default", "secretRef", "line 1 comes before any"),
        ("[default]\nloose-secret\n", "default", "secretRef", "cannot parse line 2"),
        ("[default]\n[default]\n", "default", "secretRef", "profile [default] appears twice (line 2)"),
        (
            "[default]\naws_secret_access_key = a\naws_secret_access_key = loose-secret\n",
            "default",
            "secretRef",
            "aws_secret_access_key is set twice (line 3)",
        ),
        (
            "[default]\nloose-secret: a\nloose-secret: b\n",
            "default",
            "secretRef",
            "a setting is set twice (line 3)",
        ),
    ],
    ids=[
        "no-profile",
        "no-secret",
        "empty",
        "no-header",
        "unparsable",
        "two-profiles",
        "two-settings",
        "two-pasted-lines",
    ],
)
def test_a_file_that_gives_no_key_says_why_and_quotes_nothing(
    text: str, profile: str, field: str, message: str
) -> None:
    with pytest.raises(CredentialsFileError) as raised:
        profile_keys(text, profile=profile)
    assert message in str(raised.value)
    assert raised.value.field == field
    assert "secret" not in str(raised.value).replace("aws_secret_access_key", "")


@pytest.mark.parametrize(
    "files",
    [
        ("basic/basic.yaml", "basic/aws.yaml"),
        ("basic/basic.yaml", "basic/aws-irsa.yaml"),
        ("basic/basic.yaml", "basic/aws-pod-identity.yaml"),
        ("basic/basic.yaml", "basic/aws-bedrock-openai-anthropic.yaml"),
        ("provider_fallback/base.yaml", "provider_fallback/fallback.yaml"),
    ],
    ids=lambda files: files[-1].removesuffix(".yaml"),
)
def test_upstreams_aws_examples_report_only_the_converse_schema(
    kube_tools: GoTools, files: tuple[str, ...]
) -> None:
    examples = kube_tools.module(AI_GATEWAY_MODULE) / "examples"
    loaded = load_paths([examples / name for name in files])
    result = translate(loaded.resource_set(), options=TranslateOptions(listen_address="127.0.0.1"))
    policies = [key for key in result.statuses if key.kind == "BackendSecurityPolicy"]
    assert policies, "the example has an AWSCredentials policy"
    for key in policies:
        assert all(condition.status for condition in result.statuses[key].conditions), key
    schemas = {backend.name: backend.spec.api_schema.name for backend in loaded.resource_set().backends()}
    assert set(schemas.values()) & {"AWSBedrock", "AWSAnthropic"}, "the example has a Bedrock schema"
    refused = set()
    for problem in result.problems:
        if problem.severity is Severity.ERROR and problem.kind == "AIServiceBackend":
            message = f"{problem.field_path}: {problem.message}"
            assert re.match(r"spec\.schema\.name: schema AWSBedrock ", message), message
            refused.add(problem.name)
    assert refused == {name for name, schema in schemas.items() if schema == "AWSBedrock"}
    claude = {name for name, schema in schemas.items() if schema == "AWSAnthropic"}
    assert [problem for problem in result.problems if problem.name in claude] == []


def test_the_kubernetes_source_watches_a_credentials_file_secret_by_name() -> None:
    policy = """
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata: {name: aws, namespace: team}
spec:
  type: AWSCredentials
  awsCredentials:
    region: us-east-1
    credentialsFile: {secretRef: {name: aws-credentials}, profile: bedrock}
"""
    resources = load_text(policy, file="policy.yaml").resource_set()
    assert referenced_secrets_and_config_maps(resources.security_policies()) == {
        Secret.key_for("team", "aws-credentials")
    }
