"""The folder ``bench.scale`` serves: one file per AIGatewayRoute with its two Backends and AIServiceBackends,
optionally each AIServiceBackend with an APIKey BackendSecurityPolicy whose key sits in a Secret of its own,
and the rewrites its changes write.

The policies are the benchmark's credential scenario. A credential is where one object reaches furthest: a
policy names the backends it covers, its Secret becomes what Envoy injects, and every backend carrying a
credential keeps a per-attempt hop of its own. So a change elsewhere (a Backend's port) and a change of one
policy are timed in a world full of them, next to the same change without policies. The keys are made up,
and no output of the benchmark may hold one: the smoke test looks for :data:`KEY_PREFIX` in everything it
printed and wrote.
"""

from __future__ import annotations

from pathlib import Path

from bench.manifests import NAMESPACE, gateway_manifests, route_yaml

_OBJECTS_PER_ROUTE = 5
"""Two Backends, two AIServiceBackends and the AIGatewayRoute (``route_file``)."""


def route_file(index: int, *, backend_port: int, match: str | None = None) -> str:
    """Route ``r<index>``: two AIServiceBackends on a Backend each, the first on ``backend_port``; requests
    with ``x-route: <match>`` (by default ``r<index>``)."""
    documents = []
    for side, port in (("a", backend_port), ("b", 18190)):
        documents.append(f"""apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: b{index}-{side}
  namespace: {NAMESPACE}
spec:
  endpoints:
  - ip:
      address: 127.0.0.1
      port: {port}
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIServiceBackend
metadata:
  name: a{index}-{side}
  namespace: {NAMESPACE}
spec:
  schema:
    name: OpenAI
  backendRef:
    name: b{index}-{side}
    kind: Backend
    group: gateway.envoyproxy.io
""")
    documents.append(route_yaml(index, [f"a{index}-a", f"a{index}-b"], value=match))
    return "---\n".join(documents)


KEY_PREFIX = "bench-scale-made-up-key-"
"""Every key starts so; the smoke test searches everything the benchmark printed and wrote for it."""
POLICY_OBJECTS_PER_ROUTE = 4
"""Two policies (one per AIServiceBackend of the route) and two Secrets."""
SIDES = ("a", "b")
"""The route file's AIServiceBackends ``a<index>-a`` and ``a<index>-b`` (see ``route_file``)."""


def policy_documents(index: int, *, first_key_from: str = "a") -> str:
    """Policies ``p<index>-a`` and ``p<index>-b`` on route ``index``'s AIServiceBackends, their keys in the
    Secrets ``s<index>-a`` and ``s<index>-b``; ``p<index>-a`` reads Secret ``s<index>-<first_key_from>``
    (what a policy change rewrites), as one YAML stream."""
    documents = []
    for side in SIDES:
        secret = first_key_from if side == "a" else side
        documents.append(f"""apiVersion: aigateway.envoyproxy.io/v1beta1
kind: BackendSecurityPolicy
metadata:
  name: p{index}-{side}
  namespace: {NAMESPACE}
spec:
  type: APIKey
  targetRefs:
  - group: aigateway.envoyproxy.io
    kind: AIServiceBackend
    name: a{index}-{side}
  apiKey:
    secretRef:
      name: s{index}-{secret}
---
apiVersion: v1
kind: Secret
metadata:
  name: s{index}-{side}
  namespace: {NAMESPACE}
stringData:
  apiKey: {KEY_PREFIX}{index}-{side}
""")
    return "---\n".join(documents)


def objects_in(routes: int, *, policies: bool = False) -> int:
    """How many objects ``write_manifests`` writes for ``routes`` routes: the file source's default
    ``--max-objects`` (10,000) is below what 2,000 routes hold, and a load over it is refused whole."""
    per_route = _OBJECTS_PER_ROUTE + (POLICY_OBJECTS_PER_ROUTE if policies else 0)
    return routes * per_route + len(gateway_manifests(0).split("\n---\n"))


def write_manifests(folder: Path, routes: int, *, gateway_port: int, policies: bool = False) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "shared.yaml").write_text(gateway_manifests(gateway_port))
    for index in range(routes):
        route_path(folder, index).write_text(original_route_file(index, policies=policies))


def original_route_file(index: int, *, policies: bool) -> str:
    """Route file ``index`` as written before the changes (and again after them)."""
    text = route_file(index, backend_port=18190)
    return text + "---\n" + policy_documents(index) if policies else text


def route_path(folder: Path, index: int) -> Path:
    return folder / f"r{index:05d}.yaml"


EDITS = {"backend": "a Backend's port", "route": "a route's match", "policy": "a policy's Secret"}
"""What a change rewrites in a route file, as the table names it."""


def changed_route(attempt: int, *, routes: int) -> int:
    """The route the change numbered ``attempt`` rewrites: spread over the folder, and (7919 being prime)
    every route once before any route again."""
    return attempt * 7919 % routes


def edited_route_file(attempt: int, *, edit: str, routes: int, policies: bool) -> str:
    """The file of ``changed_route(attempt)`` as that change writes it (``edit``: a key of ``EDITS``;
    ``policy`` points the route's first policy at the Secret of its second, so it changes a route once)."""
    index = changed_route(attempt, routes=routes)
    if edit == "policy":
        return route_file(index, backend_port=18190) + "---\n" + policy_documents(index, first_key_from="b")
    if edit == "route":
        text = route_file(index, backend_port=18190, match=f"r{index}-edit{attempt}")
    else:
        text = route_file(index, backend_port=20000 + attempt)
    return text + "---\n" + policy_documents(index) if policies else text
