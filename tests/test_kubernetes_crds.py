"""Our CRDs on a real API server: installed and Established (so structural), taking every example of our
kinds (ours and Envoy AI Gateway's own), refusing each forbidden case of ``tests/crd_cases`` with the
field named in kubectl's message, and matching upstream's CRDs in names, versions and limits.

Objects are applied with server-side dry run (``kubectl apply --dry-run=server``): the API server runs
every check (schema, CEL, unknown fields) and stores nothing, so the cases do not disturb one another.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.crdgen.definitions import crd_file_name, custom_resource_definition, our_kinds
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.kube import LocalKube
from controlplane.resources import Severity
from controlplane.resources.parse import parse_document
from tests.crd_cases import ACCEPTED, FORBIDDEN, UPSTREAM_CASES, UPSTREAM_REFUSED, WE_TAKE, Case
from tests.kube_support import REPO

AI_GATEWAY_MODULE = "github.com/envoyproxy/ai-gateway"
UPSTREAM_CRDS = Path("manifests/charts/ai-gateway-crds-helm/templates")
OUR_KINDS = {kind.kind for kind in our_kinds()}
_LIST_TYPES = ("x-kubernetes-list-type", "x-kubernetes-list-map-keys")
_LIMITS = (
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "minimum",
    "maximum",
    "enum",
    "pattern",
    "required",
)

# Where our schema deliberately differs from upstream's v1beta1 (path, keyword) -> why.
DIFFERENT_FROM_UPSTREAM = {
    ("AIGatewayRoute", "", "required"): "spec is required, as the model requires it",
    ("AIServiceBackend", "", "required"): "spec is required, as the model requires it",
    ("BackendSecurityPolicy", "", "required"): "spec is required, as the model requires it",
    ("AIGatewayRoute", ".spec.llmRequestCosts[].metadataKey", "minLength"): "an empty key names nothing",
    ("AIGatewayRoute", ".spec.rules[]", "x-kubernetes-validations"): "extension: pools and backends mix",
    ("AIGatewayRoute", ".spec.rules[].backendRefs[]", "x-kubernetes-validations"): (
        "seed 002 and AI Gateway v0.2 name a pool by kind alone; v1alpha2 pools are read too"
    ),
    ("AIServiceBackend", ".spec.backendRef", "x-kubernetes-validations"): (
        "extension: a core Service as the backend (upstream issue #902); a missing port is reported on it"
    ),
    (
        "AIGatewayRoute",
        ".spec.rules[].timeouts.request",
        "pattern",
    ): "the same durations, non-capturing groups",
    (
        "AIGatewayRoute",
        ".spec.rules[].timeouts.backendRequest",
        "pattern",
    ): "the same durations, non-capturing",
    ("AIGatewayRoute", ".spec.rules[].backendRefs[].weight", "maximum"): (
        "upstream's int32 weight is documented as Gateway API's, whose CRD caps it at 1,000,000 (it also"
        " keeps a level's sum within Envoy's uint32); 2**70 crashed the translator"
    ),
    ("AIGatewayRoute", ".spec.rules[].backendRefs[].priority", "maximum"): (
        "upstream's int32 format, which the API server does not range-check"
    ),
    ("BackendSecurityPolicy", ".spec.targetRefs", "x-kubernetes-validations"): "checked per item instead",
    ("BackendSecurityPolicy", ".spec.targetRefs[]", "x-kubernetes-validations"): (
        "upstream's list rule per item (the error names spec.targetRefs[i]), without pinning the pool's group"
    ),
}


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")


def _upstream_crd(tools: GoTools, file_name: str) -> dict[str, Any]:
    path = tools.module(AI_GATEWAY_MODULE) / UPSTREAM_CRDS / file_name
    found: dict[str, Any] = yaml.safe_load(path.read_text())
    return found


def _dry_run(kube: LocalKube, namespace: str, objects: list[dict[str, Any]]) -> Any:
    for obj in objects:
        obj.setdefault("metadata", {})["namespace"] = namespace
    text = yaml.safe_dump_all(objects, sort_keys=False)
    return kube.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", "-", stdin=text, check=False)


def _ours(paths: list[Path]) -> list[dict[str, Any]]:
    """Every object of our kinds in ``paths`` (YAML files)."""
    return [
        document
        for path in paths
        for document in yaml.safe_load_all(path.read_text())
        if isinstance(document, dict)
        and str(document.get("apiVersion", "")).startswith("aigateway.envoyproxy.io/")
        and document.get("kind") in OUR_KINDS
    ]


# --- Installed ----------------------------------------------------------------------------------------------


def test_our_crds_are_established_and_structural(kube: LocalKube) -> None:
    for kind in our_kinds():
        crd = kube.get_json("crd", f"{kind.plural}.{kind.group}")
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", conditions
        assert "NonStructuralSchema" not in conditions, conditions
        served = {v["name"]: v["storage"] for v in crd["spec"]["versions"]}
        assert served == {"v1alpha1": False, "v1beta1": True}


# --- Examples apply -----------------------------------------------------------------------------------------


def test_every_example_of_our_kinds_applies(kube: LocalKube, namespace: str) -> None:
    objects = _ours(sorted((REPO / "examples").rglob("*.yaml")))
    assert len(objects) >= 10
    result = _dry_run(kube, namespace, objects)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)


def test_every_upstream_example_of_our_kinds_applies(
    kube: LocalKube, kube_tools: GoTools, namespace: str
) -> None:
    examples = kube_tools.module(AI_GATEWAY_MODULE) / "examples"
    objects = _ours(sorted(examples.rglob("*.yaml")))
    assert len(objects) >= 50
    result = _dry_run(kube, namespace, objects)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("(server dry run)") == len(objects)


@pytest.mark.parametrize("case", ACCEPTED, ids=lambda case: case.id)
def test_the_api_server_takes_what_the_file_source_takes(kube: LocalKube, namespace: str, case: Case) -> None:
    result = _dry_run(kube, namespace, [case.object()])
    assert result.returncode == 0, result.stderr


def test_v1alpha1_is_served_with_upstreams_deprecation_warning(kube: LocalKube, namespace: str) -> None:
    (legacy,) = [case for case in ACCEPTED if case.id == "legacy-v1alpha1-route"]
    result = _dry_run(kube, namespace, [legacy.object()])
    assert result.returncode == 0, result.stderr
    assert (
        "aigateway.envoyproxy.io/v1alpha1 is deprecated; use aigateway.envoyproxy.io/v1beta1" in result.stderr
    )


def test_upstreams_test_objects_get_upstreams_verdict_from_both_sides(
    kube: LocalKube, kube_tools: GoTools, namespace: str
) -> None:
    folder = kube_tools.module(AI_GATEWAY_MODULE) / UPSTREAM_CASES
    verdicts = {}
    for kind in our_kinds():
        for path in sorted((folder / kind.plural).glob("*.yaml")):
            (obj,) = _ours([path])
            _, problems = parse_document(obj)
            file_refuses = any(p.severity is Severity.ERROR for p in problems)
            server_refuses = _dry_run(kube, namespace, [obj]).returncode != 0
            name = f"{kind.plural}/{path.name}"
            assert file_refuses == server_refuses, f"{name}: the file source and the API server disagree"
            verdicts[name] = server_refuses
    assert len(verdicts) >= 40
    expected = {name: name in UPSTREAM_REFUSED and name not in WE_TAKE for name in verdicts}
    assert verdicts == expected


# --- Forbidden objects are refused, the field named ---------------------------------------------------------


@pytest.mark.parametrize("case", FORBIDDEN, ids=lambda case: case.id)
def test_the_api_server_refuses_what_the_crds_forbid(kube: LocalKube, namespace: str, case: Case) -> None:
    result = _dry_run(kube, namespace, [case.object()])
    assert result.returncode != 0, result.stdout
    assert f"{case.field_path}:" in result.stderr or f'"{case.field_path}"' in result.stderr, result.stderr


# --- Status subresource and printer columns -----------------------------------------------------------------


def test_status_is_a_subresource_and_kubectl_get_shows_accepted(kube: LocalKube, namespace: str) -> None:
    (route,) = [case.object() for case in ACCEPTED if case.id == "route"]
    route["metadata"]["namespace"] = namespace
    kube.apply(yaml.safe_dump(route))
    condition = {
        "type": "Accepted",
        "status": "True",
        "reason": "Accepted",
        "message": "translated",
        "observedGeneration": 1,
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }
    patch = json.dumps({"status": {"conditions": [condition]}})
    kube.kubectl(
        "patch",
        "aigatewayroute",
        "case",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    )

    header, row = kube.kubectl("get", "aigatewayroutes", "-n", namespace).stdout.splitlines()
    assert header.split() == ["NAME", "ACCEPTED", "AGE"]
    assert row.split()[:2] == ["case", "True"]

    # A write of the object leaves status alone, a status write the spec: the subresource splits them.
    route["spec"]["hostnames"] = ["ai.example.com"]
    kube.apply(yaml.safe_dump(route))
    stored = kube.get_json("aigatewayroute", "case", "-n", namespace)
    assert stored["status"]["conditions"][0]["status"] == "True"
    assert stored["spec"]["hostnames"] == ["ai.example.com"]

    bad = json.dumps({"status": {"conditions": [{**condition, "status": "Maybe"}]}})
    refused = kube.kubectl(
        "patch",
        "aigatewayroute",
        "case",
        "-n",
        namespace,
        "--subresource=status",
        "--type=merge",
        "-p",
        bad,
        check=False,
    )
    assert refused.returncode != 0
    assert "status.conditions[0].status" in refused.stderr


# --- The same as upstream -----------------------------------------------------------------------------------


def test_names_scope_and_versions_are_upstreams(kube_tools: GoTools) -> None:
    for kind in our_kinds():
        upstream = _upstream_crd(kube_tools, crd_file_name(kind))["spec"]
        ours = custom_resource_definition(kind)["spec"]
        assert ours["names"] == upstream["names"]  # no shortNames on either side
        assert ours["scope"] == upstream["scope"]
        assert ours["group"] == upstream["group"]

        def versions(spec: dict[str, Any]) -> list[tuple[Any, ...]]:
            keys = ("name", "served", "storage", "deprecated", "deprecationWarning")
            return [tuple(v.get(key) for key in keys) for v in spec["versions"]]

        assert versions(ours) == versions(upstream)


def test_limits_are_upstreams_except_where_we_say_why(kube_tools: GoTools) -> None:
    differences = []
    for kind in our_kinds():
        upstream = next(
            v
            for v in _upstream_crd(kube_tools, crd_file_name(kind))["spec"]["versions"]
            if v["name"] == "v1beta1"
        )
        ours = dict(
            _nodes(custom_resource_definition(kind)["spec"]["versions"][-1]["schema"]["openAPIV3Schema"])
        )
        for path, node in _nodes(upstream["schema"]["openAPIV3Schema"]):
            if ".oidc" in path:
                continue  # Envoy Gateway's OIDC settings: kept as given, never read
            assert path in ours, f"{kind.kind}{path}: upstream field missing from our CRD"
            for keyword in (*_LIMITS, *_LIST_TYPES, "x-kubernetes-validations"):
                theirs, mine = node.get(keyword), ours[path].get(keyword)
                if keyword in ("enum", "required") and theirs and mine:
                    theirs, mine = sorted(theirs), sorted(mine)
                if keyword == "x-kubernetes-validations" and theirs and mine:
                    continue  # the same rules in our words (tested case by case in crd_cases)
                if theirs != mine and (kind.kind, path, keyword) not in DIFFERENT_FROM_UPSTREAM:
                    differences.append(f"{kind.kind}{path} {keyword}: upstream {theirs}, ours {mine}")
    assert differences == []
