"""Where a backendRef leads: AIServiceBackends and InferencePools resolved down to real upstream clusters.

Each AIServiceBackend is resolved once, whichever routes use it; its problems are reported on itself, and a
route that names a backend that could not be resolved only loses that backendRef (``ResolvedRefs=False``).
A backend whose BackendSecurityPolicy cannot be applied is not used at all: sending its traffic without the
credential the user asked for would be worse than failing over to the next backend.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from controlplane import ir
from controlplane.gatewayapi.credentials import CredentialResolver, PolicyFailed
from controlplane.gatewayapi.memo import Effect, TranslationMemo
from controlplane.gatewayapi.report import Report
from controlplane.gatewayapi.upstreams import UpstreamResolver
from controlplane.resources.aigateway import AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.gateway_api import HTTPHeader
from controlplane.resources.inference import InferencePoolBase, InferencePoolV1Alpha2
from controlplane.resources.resource_set import ResourceSet


@dataclass(frozen=True, slots=True)
class ResolvedBackend:
    """What every hop to this backend shares; a backendRef adds its own model override and headers."""

    label: str
    upstream: str
    path_prefix: str
    host_rewrite: str | None
    credential: ir.Credential | None
    headers: ir.HeaderEdits


class BackendResolver:
    def __init__(self, *, resources: ResourceSet, report: Report, memo: TranslationMemo) -> None:
        self._resources = resources
        self._report = report
        self._memo = memo
        self._upstreams = UpstreamResolver(resources=resources, report=report, memo=memo)
        self._credentials = CredentialResolver(resources=resources, report=report, memo=memo)

    @property
    def resources(self) -> ResourceSet:
        return self._resources

    @property
    def upstreams(self) -> tuple[ir.UpstreamCluster, ...]:
        return self._upstreams.clusters

    @property
    def credentials(self) -> tuple[ir.CredentialSecret, ...]:
        return self._credentials.secrets

    @property
    def ca_bundles(self) -> tuple[ir.CaBundle, ...]:
        return self._upstreams.ca_bundles

    def ai_service_backend(self, backend: AIServiceBackend) -> ResolvedBackend | None:
        """Resolved once per translation (and kept across translations while what it read is unchanged)."""
        return self._memo.cached(("backend", backend.key), lambda: self._resolve_backend(backend))

    def inference_pool(self, pool: InferencePoolBase) -> list[ResolvedBackend]:
        """The pool's members: AIServiceBackends whose labels match its selector, then its ready Pods."""
        return self._memo.cached(("pool", pool.key), lambda: self._resolve_pool(pool))

    def replay(self, effect: Effect) -> None:
        """Applies a replayed effect of a fragment to this translation (see ``gatewayapi.memo``)."""
        if effect[0] == "report":
            self._report.replay(effect)
        elif effect[0] == "register":
            (self._credentials if effect[1] == "secret" else self._upstreams).replay(effect)
        else:
            kind, key = effect[1]
            obj = self._resources.get(key)
            if isinstance(obj, AIServiceBackend) and kind == "backend":
                self.ai_service_backend(obj)
            elif isinstance(obj, InferencePoolBase) and kind == "pool":
                self.inference_pool(obj)
            elif isinstance(obj, BackendSecurityPolicy) and kind == "policy":
                self._credentials.policy_credential(obj)
            else:
                raise AssertionError(f"a replayed fragment used {kind} {key}, which is not in the input")

    def _resolve_backend(self, backend: AIServiceBackend) -> ResolvedBackend | None:
        self._report.consider(backend)
        schema = backend.spec.api_schema
        if schema.name != "OpenAI":
            self._report.reject(
                backend,
                "spec.schema.name",
                f"schema {schema.name} is not supported yet (only OpenAI-compatible backends are translated)",
                reason="UnsupportedValue",
            )
            return None
        upstream = self._upstreams.for_backend_ref(backend, backend.spec.backend_ref, "spec.backendRef")
        if upstream is None:
            return None
        credential = self._credentials.for_target(backend)
        if isinstance(credential, PolicyFailed):
            self._report.unresolved(
                backend, "spec", "its BackendSecurityPolicy could not be applied, so it is not used"
            )
            return None
        mutation = backend.spec.header_mutation
        return ResolvedBackend(
            label=f"{backend.namespace}/{backend.name}",
            upstream=upstream.cluster,
            path_prefix=schema.path_prefix,
            host_rewrite=upstream.hostname,
            credential=credential,
            headers=header_edits(mutation.set if mutation else (), mutation.remove if mutation else ()),
        )

    def _resolve_pool(self, pool: InferencePoolBase) -> list[ResolvedBackend]:
        self._report.consider(pool)
        if pool.endpoint_picker is not None:
            self._report.warn(
                pool,
                "spec.extensionRef" if isinstance(pool, InferencePoolV1Alpha2) else "spec.endpointPickerRef",
                "the endpoint picker is not called yet; the pool's endpoints are balanced round robin",
            )
        members = [
            backend
            for backend in self._resources.backends()
            if pool.selects(backend.namespace, backend.metadata.labels)
        ]
        resolved = [found for found in map(self.ai_service_backend, members) if found is not None]
        pods = self._upstreams.for_pool_pods(pool)
        if pods is not None:
            credential = self._credentials.for_target(pool)
            if isinstance(credential, PolicyFailed):
                self._report.unresolved(pool, "spec", "its BackendSecurityPolicy could not be applied")
            else:
                resolved.append(
                    ResolvedBackend(
                        label=f"{pool.namespace}/{pool.name}",
                        upstream=pods,
                        path_prefix=ir.OPENAI_PATH_PREFIX,
                        host_rewrite=None,
                        credential=credential,
                        headers=ir.HeaderEdits(),
                    )
                )
        if not resolved:
            self._report.unresolved(
                pool,
                "spec.selector",
                "no AIServiceBackend or ready Pod in the namespace matches the selector",
            )
        return resolved


def header_edits(set_headers: Iterable[HTTPHeader], remove: Iterable[str]) -> ir.HeaderEdits:
    return ir.HeaderEdits(
        set=tuple(sorted((header.name, header.value) for header in set_headers)), remove=tuple(sorted(remove))
    )
