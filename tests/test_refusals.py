"""A proxy's refusal lands on the object that produced the refused resource, and goes when it changes."""

from __future__ import annotations

from pathlib import Path

from controlplane.gatewayapi.provenance import Owners
from controlplane.pipeline import PipelineResult, TranslateOptions, translate
from controlplane.refusals import PROGRAMMED, REFUSED_BY_PROXY, ProxyRefusals
from controlplane.resources.problems import ObjectKey
from controlplane.sources.file_reading import load_paths
from controlplane.xds.cache import Snapshot
from controlplane.xds.content import XdsResource
from controlplane.xds.resource import CLUSTER, LISTENER, TYPE_URLS
from controlplane.xds.server import XdsEvent

EXAMPLES = Path(__file__).parent.parent / "examples"
ROUTE = ObjectKey("aigateway.envoyproxy.io", "AIGatewayRoute", "default", "qwen")


def _examples() -> PipelineResult:
    options = TranslateOptions(listen_address="127.0.0.1", inference_extension=True)
    return translate(load_paths([EXAMPLES]).resource_set(), options=options)


def _nack(type_url: str, refused: str, version: str, message: str = "port in use") -> XdsEvent:
    return XdsEvent(
        kind="nack",
        mode="sotw",
        node_id="edge-1",
        type_url=type_url,
        nonce="1",
        sent={
            refused: XdsResource.unknown(type_url, refused, version),
            "other": XdsResource.unknown(type_url, "other", "v"),
        },
        error=message,
        refused=(refused,),
    )


def test_every_resource_the_examples_make_has_a_judged_owner() -> None:
    translated = _examples()
    owners = Owners(translated.statuses)
    snapshot = translated.snapshot()
    names = [name for type_url in TYPE_URLS for name in snapshot.get(type_url)]
    # The one exception: a listener made for no Gateway would be `default/<port>`; the examples name theirs.
    assert [name for name in names if owners.owner_of(name) is None] == []


def test_a_refused_cluster_marks_its_route_not_programmed_until_it_changes() -> None:
    translated = _examples()
    snapshot = translated.snapshot()
    cluster = snapshot.get(CLUSTER)["route/default/qwen/rule/0"]
    told = []
    refusals = ProxyRefusals(on_new_refusal=lambda: told.append(True))
    refusals(_nack(CLUSTER, cluster.name, cluster.version, "too many hosts"))
    refusals(_nack(CLUSTER, cluster.name, cluster.version, "too many hosts"))  # another proxy, same refusal
    assert told == [True]

    statuses = refusals.apply(translated.statuses)
    programmed = [c for c in statuses[ROUTE].conditions if c.type == PROGRAMMED]
    assert [(c.status, c.reason) for c in programmed] == [(False, REFUSED_BY_PROXY)]
    assert programmed[0].message == "Envoy edge-1 refused Cluster route/default/qwen/rule/0: too many hosts"
    # Every other object keeps exactly the status the translation gave it.
    assert {k: v for k, v in statuses.items() if k != ROUTE} == {
        k: v for k, v in translated.statuses.items() if k != ROUTE
    }
    assert refusals.count_objects(translated.statuses) == 1

    refusals.forget_outdated(snapshot)  # still served: kept
    assert refusals.count_objects(translated.statuses) == 1
    refusals.forget_outdated(Snapshot.from_resources({}))  # no longer served: cleared
    assert refusals.apply(translated.statuses) == translated.statuses


def test_acks_and_unowned_names_change_nothing() -> None:
    translated = _examples()
    refusals = ProxyRefusals()
    ack = XdsEvent(kind="ack", mode="delta", node_id="n", type_url=LISTENER, nonce="1", sent={})
    refusals(ack)
    refusals(_nack(LISTENER, "default/10080", "v1"))
    assert refusals.apply(translated.statuses) == translated.statuses
