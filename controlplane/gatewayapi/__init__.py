"""User resources (AI Gateway, Gateway API, Inference Extension, core) -> IR plus a status per object.

Pure: the same ResourceSet always gives the same IR and statuses. Problems are isolated to the object that
has them: a bad route, backend or policy loses only itself (or the references to it), never the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controlplane import defaults, ir
from controlplane.gatewayapi.backends import BackendResolver
from controlplane.gatewayapi.listeners import ListenerBinder
from controlplane.gatewayapi.memo import TranslationMemo
from controlplane.gatewayapi.one_shot import OneShotMemo
from controlplane.gatewayapi.report import Condition, ObjectStatus, Report
from controlplane.gatewayapi.routes import build_routes
from controlplane.resources.notes import FieldState
from controlplane.resources.parse import Loaded
from controlplane.resources.problems import ObjectKey, Problem
from controlplane.resources.resource_set import ResourceSet
from controlplane.tokens.requests import MintRequest

__all__ = ["Condition", "IRResult", "ObjectStatus", "TranslateOptions", "build_ir"]


@dataclass(frozen=True, slots=True, kw_only=True)
class TranslateOptions:
    """How the pipeline places the generated listeners and which Gateways it takes as its own."""

    listen_address: str = defaults.LISTEN_ADDRESS
    default_port: int = defaults.LISTENER_PORT
    """The one listener's port when no Gateway is given."""
    gateway_class_controller: str = defaults.GATEWAY_CLASS_CONTROLLER
    """Gateways whose GatewayClass names another controller are left alone."""
    require_gateway_class: bool = False
    """A Gateway whose GatewayClass does not exist is not ours (in a cluster); files may omit the class."""
    inference_extension: bool = False
    """InferencePools are accepted (``--enable-inference-extension``); off, a rule naming one is told so."""


@dataclass(frozen=True, slots=True)
class IRResult:
    """The IR of every accepted object, a status per input object, and every problem found."""

    infra: ir.Infra
    statuses: dict[ObjectKey, ObjectStatus]
    problems: list[Problem]
    mint_requests: dict[ObjectKey, MintRequest] = field(default_factory=dict)
    """The access tokens the configuration needs minted (``controlplane.tokens``), per policy."""


def build_ir(
    resources: ResourceSet, *, options: TranslateOptions, memo: TranslationMemo | None = None
) -> IRResult:
    """Accepted input objects in; the IR (listeners, routes, clusters, hops, upstreams, secrets) out, with
    each object's conditions and problems. A bad object drops only itself and the references to it.

    ``memo`` (kept by the caller from one translation to the next) lets unchanged parts be reused instead
    of computed again (see ``gatewayapi.memo``); the result is the same either way."""
    if memo is not None:
        try:
            return _build_ir(memo.begin(resources), options=options, memo=memo)
        finally:
            memo.finish()
    one_shot = OneShotMemo()
    try:
        return _build_ir(one_shot.begin(resources), options=options, memo=one_shot)
    finally:
        one_shot.release()


def _build_ir(resources: ResourceSet, *, options: TranslateOptions, memo: TranslationMemo) -> IRResult:
    report = Report(source_of=resources.source, memo=memo)
    _note_fields(resources, report, memo=memo)
    binder = ListenerBinder(
        resources=resources,
        report=report,
        default_port=options.default_port,
        controller_name=options.gateway_class_controller,
        require_gateway_class=options.require_gateway_class,
    )
    backends = BackendResolver(
        resources=resources, report=report, memo=memo, inference_extension=options.inference_extension
    )
    backends.ai_service_backends(resources.backends())
    tables = build_routes(
        resources=resources,
        report=report,
        binder=binder,
        backends=backends,
        listen_address=options.listen_address,
        memo=memo,
    )
    infra = ir.Infra(
        listeners=tables.listeners,
        rule_clusters=tables.rule_clusters,
        hops=tables.hops,
        upstreams=backends.upstreams,
        credentials=backends.credentials,
        ca_bundles=backends.ca_bundles,
    )
    statuses = memo.statuses = report.statuses(managed_parents=binder.our_gateways, previous=memo.statuses)
    return IRResult(
        infra=infra,
        statuses=statuses.by_key,
        problems=report.problems(),
        mint_requests=backends.mint_requests,
    )


def _note_fields(resources: ResourceSet, report: Report, *, memo: TranslationMemo) -> None:
    noted, reloaded = memo.noted, memo.reloaded
    # Last time's objects with noted fields, unless one loaded again had some or has some now.
    if (
        noted is None
        or reloaded is None
        or any(key in noted or _has_notes(resources.source(key)) for key in reloaded)
    ):
        noted = {loaded.key: loaded for loaded in resources if loaded.noted}
    memo.noted = noted
    for loaded in noted.values():
        for field_note in loaded.noted:
            reason = (
                "UnimplementedFields"
                if field_note.note.state is FieldState.UNIMPLEMENTED
                else "DeprecatedFields"
            )
            report.note(loaded.object, field_note.path, field_note.note.reason, reason=reason)


def _has_notes(loaded: Loaded | None) -> bool:
    return loaded is not None and bool(loaded.noted)
