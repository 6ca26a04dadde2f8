"""Status written back to the cluster: once per change, never for nothing, by one replica at a time.

Every status write wakes every watcher of the kind, so the control plane must not rewrite a status that
did not change; with several replicas only the Lease holder writes, and when it dies another takes over
within the lease duration. All against a real API server, with ``controlplane serve`` processes.
"""

from __future__ import annotations

import time
from pathlib import Path

from controlplane.devtools.controlplane_process import ControlPlaneProcess
from controlplane.devtools.kube import LocalKube
from tests.e2e import EXAMPLES
from tests.kube_support import GATEWAY_CLASS, apply_in_namespace, conditions, in_namespace, serve_arguments
from tests.polling import wait_until

SPLIT = EXAMPLES / "001-weighted-split"
LEASE_SECONDS = 3.0


def _route_status(kube: LocalKube, namespace: str, name: str = "qwen") -> dict[str, dict[str, object]]:
    found = conditions(kube, "aigatewayroutes", namespace, name)
    assert found.get("Accepted", {}).get("status") == "True", found
    return found


def _resource_version(kube: LocalKube, namespace: str, name: str = "qwen") -> str:
    return str(kube.get_json("aigatewayroutes", name, "-n", namespace)["metadata"]["resourceVersion"])


def _loads(process: ControlPlaneProcess) -> int:
    return int(process.status()["loads"])


def test_status_is_written_once_and_not_rewritten_when_nothing_changed(
    kube: LocalKube, namespace: str, tmp_path: Path
) -> None:
    kube.apply(GATEWAY_CLASS)
    apply_in_namespace(kube, SPLIT, namespace)
    with ControlPlaneProcess(serve_arguments(kube, namespace), log_file=tmp_path / "serve.log") as process:
        first = wait_until(lambda: _route_status(kube, namespace), timeout=20)
        version = _resource_version(kube, namespace)
        writes = process.status()["source"]["kubernetes"]["statusWrites"]
        loads = _loads(process)

        # Changes that do not touch the route: each is a new load, none may rewrite its status.
        for index in range(3):
            kube.kubectl(
                "create", "service", "clusterip", f"unrelated-{index}", "--tcp=80:80", "-n", namespace
            )
            kube.kubectl("create", "configmap", f"unrelated-{index}", "-n", namespace)
            kube.kubectl("annotate", "aiservicebackend", "qwen-small", "-n", namespace, f"touch-{index}=yes")
        wait_until(lambda: _check_more_loads(process, loads), timeout=20)
        time.sleep(1)  # a status write, were one coming, would follow the load within milliseconds
        assert _resource_version(kube, namespace) == version
        assert process.status()["source"]["kubernetes"]["statusWrites"] == writes

        # A spec change that keeps the verdict: observedGeneration moves, lastTransitionTime does not.
        kube.kubectl("label", "aigatewayroute", "qwen", "-n", namespace, "team=a")  # metadata only
        kube.kubectl(
            "patch", "aigatewayroute", "qwen", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"rules":[{"backendRefs":[{"name":"qwen-small","weight":1}]}]}}',
        )  # fmt: skip

        def observed_generation_two() -> dict[str, dict[str, object]]:
            found = _route_status(kube, namespace)
            assert found["Accepted"]["observedGeneration"] == 2, found
            return found

        second = wait_until(observed_generation_two, timeout=20)
        assert second["Accepted"]["lastTransitionTime"] == first["Accepted"]["lastTransitionTime"]


def _check_more_loads(process: ControlPlaneProcess, before: int) -> bool:
    assert _loads(process) > before
    return True


def test_only_the_leader_writes_and_another_replica_takes_over_when_it_dies(
    kube: LocalKube, namespace: str, tmp_path: Path
) -> None:
    kube.apply(GATEWAY_CLASS)
    apply_in_namespace(kube, SPLIT, namespace)
    arguments = [*serve_arguments(kube, namespace), f"--leader-election-lease-duration={LEASE_SECONDS}"]
    with (
        ControlPlaneProcess(arguments, log_file=tmp_path / "first.log") as first,
        ControlPlaneProcess(arguments, log_file=tmp_path / "second.log") as second,
    ):
        wait_until(lambda: _route_status(kube, namespace), timeout=20)

        def one_leader() -> tuple[ControlPlaneProcess, ControlPlaneProcess]:
            leading = [p for p in (first, second) if p.status()["source"]["kubernetes"]["leader"]]
            assert len(leading) == 1, "expected exactly one leader"
            return (first, second) if leading[0] is first else (second, first)

        leader, follower = wait_until(one_leader, timeout=20)
        assert follower.status()["source"]["kubernetes"]["statusWrites"] == 0
        # Both serve xDS from their own watch: the follower translates the route too, to the same version
        # (versions depend on content only), once it has seen what the leader has.
        wait_until(
            lambda: follower.status()["snapshotVersion"] == leader.status()["snapshotVersion"],
            timeout=20,
            message="the follower to serve the leader's snapshot version",
        )

        leader.kill()  # no goodbye: the Lease must expire
        killed_at = time.monotonic()

        def follower_leads() -> bool:
            assert follower.status()["source"]["kubernetes"]["leader"]
            return True

        wait_until(follower_leads, timeout=4 * LEASE_SECONDS)
        took_over_after = time.monotonic() - killed_at
        # Within the lease duration plus one retry period of its own (and slack for a loaded machine).
        assert took_over_after < 3 * LEASE_SECONDS, took_over_after

        kube.kubectl(
            "patch", "aigatewayroute", "qwen", "-n", namespace, "--type=merge",
            "-p", '{"spec":{"rules":[{"backendRefs":[{"name":"no-such-backend"}]}]}}',
        )  # fmt: skip

        def new_leader_wrote() -> bool:
            found = conditions(kube, "aigatewayroutes", namespace, "qwen")
            assert found.get("ResolvedRefs", {}).get("status") == "False", found
            return True

        wait_until(new_leader_wrote, timeout=20)
        assert follower.status()["source"]["kubernetes"]["statusWrites"] >= 1


def test_a_secret_referenced_later_is_watched_by_name_and_its_value_never_shows(
    kube: LocalKube, namespace: str, tmp_path: Path
) -> None:
    failover = (EXAMPLES / "003-model-failover" / "route.yaml").read_text()
    documents = failover.split("\n---\n")
    without_secret = "\n---\n".join(doc for doc in documents if "kind: Secret\n" not in doc)
    secret_value = "sk-kube-test-0123456789-never-shown"
    secret = f"""
apiVersion: v1
kind: Secret
metadata:
  name: openai-secret
  namespace: {namespace}
type: Opaque
stringData:
  apiKey: {secret_value}
"""
    kube.apply(GATEWAY_CLASS)
    kube.apply(in_namespace(without_secret, namespace))
    with ControlPlaneProcess(serve_arguments(kube, namespace), log_file=tmp_path / "serve.log") as process:

        def policy(status: str) -> bool:
            found = conditions(kube, "backendsecuritypolicies", namespace, "openai-apikey")
            assert found.get("ResolvedRefs", {}).get("status") == status, found
            return True

        wait_until(lambda: policy("False"), timeout=20)
        kube.apply(secret)
        wait_until(lambda: policy("True"), timeout=20)

        # An unrelated Secret is not read: only referenced ones are watched, each by name.
        kube.kubectl(
            "create", "secret", "generic", "unrelated", f"--from-literal=key={secret_value}x", "-n", namespace
        )
        kinds = "aigatewayroutes,aiservicebackends,backendsecuritypolicies"
        everything = kube.kubectl("get", kinds, "-n", namespace, "-o", "yaml").stdout
        assert "openai-apikey" in everything
        for text in (everything, process.log(), str(process.status())):
            assert secret_value not in text
