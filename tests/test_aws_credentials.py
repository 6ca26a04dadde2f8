"""An AWS credentials file in a Secret -> the key of the profile a policy picks, or an error quoting none."""

from __future__ import annotations

import pytest

from controlplane import ir
from controlplane.gatewayapi.aws_credentials import CredentialsFileError, profile_keys

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
        ("[default]\n[default]\n", "default", "secretRef", "DuplicateSectionError"),
        (
            "[default]\naws_secret_access_key = a\naws_secret_access_key = loose-secret\n",
            "default",
            "secretRef",
            "DuplicateOptionError",
        ),
    ],
    ids=["no-profile", "no-secret", "empty", "no-header", "unparsable", "two-profiles", "two-settings"],
)
def test_a_file_that_gives_no_key_says_why_and_quotes_nothing(
    text: str, profile: str, field: str, message: str
) -> None:
    with pytest.raises(CredentialsFileError) as raised:
        profile_keys(text, profile=profile)
    assert message in str(raised.value)
    assert raised.value.field == field
    assert "secret" not in str(raised.value).replace("aws_secret_access_key", "")
