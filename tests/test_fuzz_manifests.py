"""Property tests: mutated upstream-shaped manifests never crash the pipeline, and break only themselves.

``tests/fuzz_manifests.py`` builds the sets and states the property. CI runs a few hundred examples
(``AIXDS_FUZZ_EXAMPLES``, 300 by default); ``make fuzz`` runs 10,000 and prints the count. A smaller number
of sets goes to a real Envoy, which must take every translation without a NACK.
"""

from __future__ import annotations

import os
from functools import partial

import pytest
from envoy.config.listener.v3 import listener_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from controlplane.gatewayapi import TranslateOptions
from controlplane.resources import Severity
from controlplane.xds.cache import Snapshot
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE, SECRET
from tests.conftest import EnvoyFactory
from tests.fuzz_manifests import VICTIM, Outcome, check, dump, group, mutated, run
from tests.polling import wait_until
from tests.xds_support import ServerThread

EXAMPLES = int(os.environ.get("AIXDS_FUZZ_EXAMPLES", "300"))
ENVOY_EXAMPLES = max(40, EXAMPLES // 25)
OPTIONS = TranslateOptions(listen_address="127.0.0.1")
CLEAN = [
    *group("good-0", port=20001, backend_ports=(20011, 20012)),
    *group("good-1", port=20002, backend_ports=(20021, 20022)),
]
INTACT_VICTIM = group(VICTIM, port=20003, backend_ports=(20031, 20032))
BASELINE = run(dump(CLEAN), options=OPTIONS)
VICTIMS = mutated(INTACT_VICTIM)
CLEAN_TEXT = dump(CLEAN)
_SLOW_IS_FINE = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]


def test_the_unmutated_sets_are_valid() -> None:
    for outcome in (BASELINE, run(dump(CLEAN + INTACT_VICTIM), options=OPTIONS)):
        assert [p.format() for p in outcome.problems if p.severity is Severity.ERROR] == []
        assert outcome.result.envoy.clusters
        assert all(
            all(c.status for c in s.conditions if c.type != "Warnings")
            for s in outcome.result.statuses.values()
        )


@settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=_SLOW_IS_FINE)
@given(VICTIMS)
def test_mutations_are_rejected_alone_with_their_field(generated: tuple[str, list[str]]) -> None:
    victim, _mutations = generated
    check(run(f"{CLEAN_TEXT}---\n{victim}", options=OPTIONS), BASELINE)


def _ephemeral_ports(snapshot: Snapshot) -> Snapshot:
    """Every listening socket moved to port 0: Envoy binds what the kernel hands out, nothing is guessed."""
    by_type = {
        type_url: [r.message for r in snapshot.get(type_url).values()] for type_url in snapshot.resources
    }
    moved = []
    for message in by_type.get(LISTENER, []):
        listener = listener_pb2.Listener()
        listener.CopyFrom(message)
        if listener.address.HasField("socket_address"):
            listener.address.socket_address.port_value = 0
        moved.append(listener)
    by_type[LISTENER] = moved
    return Snapshot.from_resources(by_type)


def _held_or_refused(xds: ServerThread, snapshot: Snapshot, *, nacks_before: int) -> bool:
    """Envoy refused something (the caller reports it), or took every listener and cluster and the current
    version of everything it asked for by name (an unreferenced secret is never asked for)."""
    if len(xds.events.all(kind="nack")) > nacks_before:
        return True
    for type_url in (LISTENER, CLUSTER):
        acked = xds.events.acked(type_url)
        missing = [name for name, r in snapshot.get(type_url).items() if acked.get(name) != r.version]
        assert not missing, f"{type_url} not acked yet: {missing}"
    for type_url in (ROUTE, ENDPOINT, SECRET):
        wanted = snapshot.get(type_url)
        stale = [n for n, v in xds.events.acked(type_url).items() if n in wanted and wanted[n].version != v]
        assert not stale, f"{type_url} acked at an older version: {stale}"
    return True


@pytest.mark.parametrize("mode", ["sotw"])
def test_envoy_takes_what_is_left_of_every_mutated_set(
    xds: ServerThread, envoys: EnvoyFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    envoys(node_id="fuzz")
    tried: list[Outcome] = []

    # No shrinking: each step is a push to Envoy; the failing example is reported as generated.
    @settings(
        max_examples=ENVOY_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=_SLOW_IS_FINE,
        phases=[Phase.generate],
    )
    @given(generated=VICTIMS, _=st.just(None))
    def pushed(generated: tuple[str, list[str]], _: None) -> None:
        victim, mutations = generated
        outcome = run(f"{CLEAN_TEXT}---\n{victim}", options=OPTIONS)
        tried.append(outcome)
        snapshot = _ephemeral_ports(outcome.result.snapshot())
        nacks_before = len(xds.events.all(kind="nack"))
        xds.cache.set_snapshot(snapshot)
        held = partial(_held_or_refused, xds, snapshot, nacks_before=nacks_before)
        wait_until(held, timeout=30, message=f"Envoy to take {mutations}")
        nacks = xds.events.all(kind="nack")[nacks_before:]
        assert not nacks, f"Envoy refused the translation after {mutations}: {nacks[-1].error}"

    pushed()
    assert len(tried) >= ENVOY_EXAMPLES // 2
    with capsys.disabled():  # the count `make fuzz` prints
        print(f"\n{len(tried)} mutated sets pushed to Envoy, none refused")
