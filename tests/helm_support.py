"""What the chart's tests share: a ``helm`` to render it with, the rendered release's names, finding objects
(and a Deployment's one container), and RBAC as a set of grants.

RBAC is compared as flat grants (namespace or cluster-wide, group, resource, verb, resource name) bound to
the chart's ServiceAccount, so a test can say exactly what the ServiceAccount may do, and the expected set
is derived from the table the Kubernetes source watches (``kinds.py``), not written out a second time.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from controlplane.devtools.crds import OUR_CRDS
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.helm import Helm
from controlplane.sources.kubernetes.kinds import CRDS, Scope, watched_kinds
from controlplane.sources.kubernetes.leader import LEASES, LeaseSettings

RELEASE_NAMESPACE = "cp"
"""``Helm.template``'s namespace; its release ``rel`` makes every object's name ``FULLNAME``."""
FULLNAME = "rel-ai-xds-controlplane"

Grant = tuple[str | None, str, str, str, str | None]
"""(namespace, None for cluster-wide; API group; resource; verb; resource name, None for any)."""

_READ = ("get", "list", "watch")
_WATCH_BY_NAME = ("list", "watch")
"""Referenced Secrets and ConfigMaps: listed and watched with a ``metadata.name`` field selector."""
_WRITE_STATUS = ("patch", "update")
_LEASE_BY_NAME = ("get", "update")


@pytest.fixture(scope="module")
def helm(kube_tools: GoTools, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """A ``helm`` to render the chart with (no API server: ``test_helm_install.py`` has its own)."""
    return Helm(tools=kube_tools, home=tmp_path_factory.mktemp("helm-home"))


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (found,) = [obj for obj in objects if obj["kind"] == kind and obj["metadata"]["name"] == name]
    return found


def single_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = container
    return found


def our_crd_files() -> list[Path]:
    return sorted(OUR_CRDS.glob("*.yaml"))


def expected_grants(*, inference_extension: bool, watch_namespaces: tuple[str, ...]) -> set[Grant]:
    """What the ServiceAccount needs for ``serve --kubernetes`` with these options, and nothing more."""
    grants: set[Grant] = set()
    for kind in watched_kinds(inference_extension=inference_extension):
        scopes: tuple[str | None, ...] = watch_namespaces if kind.namespaced and watch_namespaces else (None,)
        verbs = _READ if kind.scope is Scope.ALL else _WATCH_BY_NAME
        for scope in scopes:
            grants |= {(scope, kind.group, kind.plural, verb, None) for verb in verbs}
            if kind.writes_status:
                grants |= {(scope, kind.group, f"{kind.plural}/status", verb, None) for verb in _WRITE_STATUS}
    grants |= {(None, CRDS.group, CRDS.plural, verb, None) for verb in _READ}
    lease = LeaseSettings(namespace=RELEASE_NAMESPACE)
    grants.add((lease.namespace, LEASES.group, LEASES.plural, "create", None))
    grants |= {(lease.namespace, LEASES.group, LEASES.plural, verb, lease.name) for verb in _LEASE_BY_NAME}
    return grants


def granted(objects: list[dict[str, Any]], *, service_account: str = FULLNAME) -> set[Grant]:
    """Every grant the rendered (Cluster)Roles give ``service_account`` through the rendered bindings."""
    roles = {
        (obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"]): obj
        for obj in objects
        if obj["kind"] in ("ClusterRole", "Role")
    }
    grants: set[Grant] = set()
    for binding in objects:
        if binding["kind"] not in ("ClusterRoleBinding", "RoleBinding"):
            continue
        subject = {"kind": "ServiceAccount", "name": service_account, "namespace": RELEASE_NAMESPACE}
        if subject not in binding["subjects"]:
            continue
        scope = binding["metadata"]["namespace"] if binding["kind"] == "RoleBinding" else None
        reference = binding["roleRef"]
        role_scope = None if reference["kind"] == "ClusterRole" else scope
        for rule in roles[(reference["kind"], role_scope, reference["name"])]["rules"]:
            names: list[str | None] = list(rule.get("resourceNames") or [None])
            for group, resource, verb, name in itertools.product(
                rule["apiGroups"], rule["resources"], rule["verbs"], names
            ):
                grants.add((scope, group, resource, verb, name))
    return grants
