"""Where a backendRef leads: AIServiceBackends and InferencePools resolved down to real upstream clusters.

Each AIServiceBackend is resolved once, whichever routes use it; its problems are reported on itself, and a
route that names a backend that could not be resolved only loses that backendRef (``ResolvedRefs=False``).
A backend whose BackendSecurityPolicy cannot be applied is not used at all: sending its traffic without the
credential the user asked for would be worse than failing over to the next backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane import ir
from controlplane.gatewayapi.credentials import CredentialResolver, PolicyFailed
from controlplane.gatewayapi.fragments import Effect
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.pools import PoolResolver
from controlplane.gatewayapi.providers import NotServed, provider_shape
from controlplane.gatewayapi.report import Report
from controlplane.gatewayapi.upstreams import UpstreamResolver
from controlplane.resources.aigateway import AIServiceBackend, BackendSecurityPolicy
from controlplane.resources.gateway_api import HTTPHeader
from controlplane.resources.inference import InferencePoolBase
from controlplane.resources.problems import ObjectKey
from controlplane.resources.resource_set import ResourceSet
from controlplane.tokens.requests import MintRequest


@dataclass(frozen=True, slots=True)
class ResolvedBackend:
    """What every hop to this backend shares; a backendRef adds its own model override and headers."""

    label: str
    upstream: str
    path_prefix: str
    host_rewrite: str | None
    credential: ir.Credential | ir.AwsSigning | None
    headers: ir.HeaderEdits
    picker: ir.EndpointPicker | None = None
    picker_fails_open: bool = False
    """A picker that is down or erroring is bypassed: the Pods are balanced without it."""
    provider_api: ir.ProviderApi | None = None
    transcoding: ir.Transcoding | None = None


@dataclass(frozen=True, slots=True)
class ResolvedPool:
    """A pool's members, and what a route using it is told about the pool's problems."""

    members: list[ResolvedBackend]
    problems: tuple[str, ...]


INFERENCE_EXTENSION_OFF = (
    "the Inference Extension is off: InferencePools are used only with --enable-inference-extension"
)


class BackendResolver:
    def __init__(
        self, *, resources: ResourceSet, report: Report, memo: TranslationMemo, inference_extension: bool
    ) -> None:
        self._resources = resources
        self._report = report
        self._memo = memo
        # Replays go here from now on: the resolvers made next replay what they find unchanged (only
        # report effects until this object is complete).
        memo.bind(self.replay, judged=report.judged, registered=self.registered)
        self.inference_extension = inference_extension
        if not inference_extension:
            for pool in resources.inference_pools():
                report.reject(pool, "", INFERENCE_EXTENSION_OFF, reason="InferenceExtensionDisabled")
        self._upstreams = UpstreamResolver(resources=resources, report=report, memo=memo)
        self._credentials = CredentialResolver(resources=resources, report=report, memo=memo)
        self._pool_pods = PoolResolver(resources=resources, report=report, upstreams=self._upstreams)

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
    def mint_requests(self) -> dict[ObjectKey, MintRequest]:
        return self._credentials.mint_requests

    @property
    def ca_bundles(self) -> tuple[ir.CaBundle, ...]:
        return self._upstreams.ca_bundles

    def ai_service_backend(self, backend: AIServiceBackend) -> ResolvedBackend | None:
        """Resolved once per translation (and kept across translations while what it read is unchanged)."""
        return self._memo.cached(("backend", backend.key), lambda: self._resolve_backend(backend))

    def ai_service_backends(self, backends: list[AIServiceBackend]) -> None:
        """Resolves each of ``backends`` (as ``ai_service_backend``), replaying the unchanged in bulk."""
        self._memo.cached_each("backend", backends, lambda index: self._resolve_backend(backends[index]))

    def inference_pool(self, pool: InferencePoolBase) -> ResolvedPool:
        """The pool's members: AIServiceBackends whose labels match its selector, then its ready Pods."""
        return self._memo.cached(("pool", pool.key), lambda: self._resolve_pool(pool))

    def replay(self, effect: Effect) -> None:
        """Applies a replayed effect of a fragment to this translation (see ``gatewayapi.memo``)."""
        if effect[0] == "report":
            self._report.apply(effect)
        elif effect[0] == "register":
            (self._credentials if effect[1] in ("secret", "mint") else self._upstreams).replay(effect)
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

    def registered(self, tables: Mapping[str, Mapping[Any, Any]]) -> None:
        """Applies replayed registrations, a table at once (``fragments.RegisteredSink``)."""
        for table, entries in tables.items():
            resolver = self._credentials if table in ("secret", "mint") else self._upstreams
            resolver.register_all(table, entries)

    def _resolve_backend(self, backend: AIServiceBackend) -> ResolvedBackend | None:
        self._report.consider(backend)
        schema = backend.spec.api_schema
        policy = self._credentials.policy_of(backend)
        shape = provider_shape(schema, policy=policy.spec if policy is not None else None)
        if isinstance(shape, NotServed):
            self._report.reject(backend, shape.field, shape.message, reason=shape.reason)
            return None
        upstream = self._upstreams.for_backend_ref(backend, backend.spec.backend_ref, "spec.backendRef")
        if upstream is None:
            return None
        # ``for_target(backend)``, with the policy already looked up.
        credential = self._credentials.policy_credential(policy) if policy is not None else None
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
            provider_api=shape.api,
            transcoding=shape.transcoding,
        )

    def _resolve_pool(self, pool: InferencePoolBase) -> ResolvedPool:
        self._report.consider(pool)
        members = [
            backend
            for backend in self._resources.backends()
            if pool.selects(backend.namespace, backend.metadata.labels)
        ]
        resolved = [found for found in map(self.ai_service_backend, members) if found is not None]
        if resolved and pool.endpoint_picker is not None:
            self._report.warn(
                pool,
                pool.endpoint_picker_path,
                "the endpoint picker chooses among the pool's Pods; its AIServiceBackend members are "
                "balanced like a rule's backends",
                reason="PickerNotUsed",
            )
        pods = self._pool_pods.pods(pool)
        problems = list(pods.problems)
        if pods.cluster is not None:
            credential = self._credentials.for_target(pool)
            picker = pods.picker
            if isinstance(credential, ir.Credential) and credential.override and picker is not None:
                # The caller's own credential is withheld from the picker like the configured one.
                withheld = (*picker.withheld_headers, credential.override.header)
                picker = dataclasses.replace(picker, withheld_headers=withheld)
            if isinstance(credential, PolicyFailed):
                self._report.unresolved(pool, "spec", "its BackendSecurityPolicy could not be applied")
            else:
                resolved.append(
                    ResolvedBackend(
                        label=f"{pool.namespace}/{pool.name}",
                        upstream=pods.cluster,
                        path_prefix=ir.OPENAI_PATH_PREFIX,
                        host_rewrite=None,
                        credential=credential,
                        headers=ir.NO_HEADER_EDITS,
                        picker=picker,
                        picker_fails_open=pods.fail_open,
                    )
                )
        if not resolved and not problems:
            why = "no AIServiceBackend or ready Pod in the namespace matches the selector"
            if not pool.target_ports and any(
                pool.selects(pod.namespace, pod.metadata.labels) for pod in self._resources.pods()
            ):
                why = "it selects Pods but names no target port"
            self._report.unresolved(pool, "spec.selector", why)
            problems.append(f"has no members ({why})")
        return ResolvedPool(members=resolved, problems=tuple(problems))


def header_edits(set_headers: Iterable[HTTPHeader], remove: Iterable[str]) -> ir.HeaderEdits:
    if not set_headers and not remove:
        return ir.NO_HEADER_EDITS
    return ir.HeaderEdits(
        set=tuple(sorted((header.name, header.value) for header in set_headers)), remove=tuple(sorted(remove))
    )
