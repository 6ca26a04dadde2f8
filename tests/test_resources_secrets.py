"""Secret values never leave the Secret model: not through repr, str, dumps, collections or problems."""

from __future__ import annotations

import base64

from controlplane.resources import LoadResult, load_text
from controlplane.resources.core import Secret

PLAIN = "sk-plain-5f3a9c"
ENCODED = "sk-encoded-7b21d4"
BROKEN = "sk-broken-e8c0!!"

SECRETS = f"""
apiVersion: v1
kind: Secret
metadata: {{name: keys, namespace: ai}}
type: Opaque
data:
  apiKey: {base64.b64encode(ENCODED.encode()).decode()}
  other: {base64.b64encode(b"kept").decode()}
stringData:
  apiKey: {PLAIN}
  extra: {PLAIN}
"""


def _load(text: str) -> LoadResult:
    return load_text(text, file="secrets.yaml")


def _secret() -> tuple[LoadResult, Secret]:
    result = _load(SECRETS)
    (loaded,) = result.objects
    assert isinstance(loaded.object, Secret)
    return result, loaded.object


def test_values_are_decoded_and_string_data_wins() -> None:
    result, secret = _secret()
    assert result.problems == []
    assert secret.keys == ["apiKey", "extra", "other"]
    found = secret.value("apiKey")
    assert found is not None
    assert found.get_secret_value() == PLAIN
    other = secret.value("other")
    assert other is not None
    assert other.get_secret_value() == "kept"
    assert secret.data["apiKey"].get_secret_value() == ENCODED
    assert secret.value("missing") is None


def test_no_rendering_of_a_secret_or_its_containers_shows_a_value() -> None:
    result, secret = _secret()
    renderings = [
        repr(secret),
        str(secret),
        str(secret.model_dump()),
        secret.model_dump_json(),
        str(secret.model_dump(mode="json")),
        repr(result),
        repr(result.objects),
        repr(result.resource_set()),
    ]
    for text in renderings:
        assert PLAIN not in text
        assert ENCODED not in text
        assert base64.b64encode(ENCODED.encode()).decode() not in text


def test_invalid_data_is_reported_by_key_without_the_value() -> None:
    text = (
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: bad}}\ndata:\n  apiKey: '{BROKEN}'\n  count: 12\n"
    )
    result = _load(text)
    assert result.objects == []
    lines = [p.format() for p in result.problems]
    assert lines == [
        "secrets.yaml:0: Secret/default/bad: data.apiKey: is not valid base64-encoded UTF-8 text",
        "secrets.yaml:0: Secret/default/bad: data.count: must be a base64-encoded string",
    ]
    assert all(BROKEN not in line for line in lines)
    assert BROKEN not in repr(result)


def test_non_utf8_data_is_reported_without_the_value() -> None:
    raw = base64.b64encode(b"\xff\xfe" + BROKEN.encode()).decode()
    result = _load(f"apiVersion: v1\nkind: Secret\nmetadata: {{name: bad}}\ndata: {{apiKey: {raw}}}\n")
    (problem,) = result.problems
    assert problem.field_path == "data.apiKey"
    assert raw not in problem.format()


def test_yaml_errors_do_not_quote_the_offending_line() -> None:
    result = _load(
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: s}}\nstringData:\n  apiKey: {PLAIN}: [\n"
    )
    (problem,) = result.problems
    assert problem.message.startswith("invalid YAML at line 5")
    assert PLAIN not in problem.format()


def test_wrongly_typed_string_data_is_reported_without_the_value() -> None:
    result = _load("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {apiKey: 918273645}\n")
    (problem,) = result.problems
    assert (problem.field_path, problem.message) == ("stringData.apiKey", "must be a string")
    assert "918273645" not in problem.format()
