"""What asking the endpoint picker costs a request: latency to an InferencePool with a picker versus the same
Pods without one, in one run.

Serves (file source, ``controlplane serve`` and a real Envoy) two InferencePools over the same three
model-server Pods on 127.0.0.11-13: one with an endpoint picker, one without (least request). Requests
alternate between the two, sequentially, so both see the same machine; the script prints p50/p99 of each
and the difference, which is the picker round trip (Envoy's ext_proc stream in FULL_DUPLEX_STREAMED mode:
headers, body and response echoed through the picker). The picker is ours (``devtools.picker``, Python
and grpcio) unless ``--real-epp`` runs the Inference Extension's own (Go) against a local API server.
Not a test: numbers depend on the machine.

    .venv/bin/python -m bench.inference_picker [--requests 2000] [--real-epp]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import yaml

from controlplane.devtools.crds import start_kube_with_crds
from controlplane.devtools.epp import EppProcess, default_picker_config
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.gotools import ensure_test_tools
from controlplane.devtools.model_pool import ModelPool
from controlplane.devtools.picker import LocalPicker
from controlplane.devtools.stack import LocalStack
from controlplane.log import configure_logging
from controlplane.netutil import ReservedPort
from tests.inference_support import INFERENCE_HEADER, POOL, POOL_LABELS, PoolSetup, pool_manifests

DIRECT_HEADER = "x-bench-direct"
BODY = {"model": "llama3-8b", "messages": [{"role": "user", "content": "hello"}]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="requests to each pool")
    parser.add_argument("--real-epp", action="store_true", help="the Inference Extension's picker (Go)")
    args = parser.parse_args()
    configure_logging(json=False, level="warning")
    workdir = Path(tempfile.mkdtemp(prefix="bench-picker-"))
    with ExitStack() as stack:
        pool = stack.enter_context(ModelPool(name="vllm", model="llama3-8b", size=3))
        plain = stack.enter_context(FakeBackend(name="plain", model="plain-model"))
        namespace = "default"
        if args.real_epp:
            picker_address = stack.enter_context(_real_epp(pool, plain, workdir))
        else:
            picker = stack.enter_context(LocalPicker(endpoints=pool.endpoints))
            picker_address = (picker.host, picker.port)
        setup = PoolSetup(
            namespace=namespace,
            gateway_port=stack.enter_context(ReservedPort()).port,
            pool=pool,
            plain=plain,
            picker_address=picker_address,
        )
        manifests = workdir / "manifests"
        manifests.mkdir()
        (manifests / "pools.yaml").write_text(_with_direct_pool(pool_manifests(setup, with_pods=True)))
        stack.enter_context(LocalStack(manifests, workdir=workdir / "stack", fake_backends=False))
        url = f"http://127.0.0.1:{setup.gateway_port}/v1/chat/completions"
        http = stack.enter_context(httpx.Client(timeout=10))
        _warm_up(http, url)
        picked, direct = _measure(http, url, args.requests)
    picker_name = "Inference Extension epp v1.0.1 (Go)" if args.real_epp else "devtools.picker (Python)"
    print(f"{args.requests} sequential requests to each pool, alternating; picker: {picker_name}")
    print(f"{'pool':28s}{'p50 ms':>10s}{'p99 ms':>10s}")
    for name, latencies in (("without picker", direct), ("with picker", picked)):
        print(f"{name:28s}{_p50(latencies):>10.2f}{_p99(latencies):>10.2f}")
    print(
        f"{'added by the picker':28s}{_p50(picked) - _p50(direct):>10.2f}{_p99(picked) - _p99(direct):>10.2f}"
    )


@contextmanager
def _real_epp(pool: ModelPool, plain: FakeBackend, workdir: Path) -> Iterator[tuple[str, int]]:
    """The real picker on a local API server holding the pool and its Pods (the control plane reads the
    same objects from files)."""
    tools = ensure_test_tools(log=True)
    kube = start_kube_with_crds(tools)
    try:
        namespace = "default"
        epp = EppProcess(
            binary=tools.binary("epp"),
            kubeconfig=kube.kubeconfig,
            pool_name=POOL,
            pool_namespace=namespace,
            log_file=workdir / "epp.log",
            config_text=default_picker_config(tools),
        )
        setup = PoolSetup(
            namespace=namespace, gateway_port=0, pool=pool, plain=plain, picker_address=epp.address
        )
        documents = yaml.safe_load_all(pool_manifests(setup, with_pods=False))
        kube.apply(yaml.safe_dump_all([doc for doc in documents if doc["kind"] == "InferencePool"]))
        pool.create_pods(kube, namespace=namespace, labels=POOL_LABELS)
        with epp:
            yield epp.address
    finally:
        kube.stop()


def _with_direct_pool(text: str) -> str:
    """The manifests plus a second pool over the same Pods without a picker, and a rule sending to it."""
    documents = list(yaml.safe_load_all(text))
    for document in documents:
        if document["kind"] == "InferencePool":
            direct = yaml.safe_load(yaml.safe_dump(document))
            direct["metadata"]["name"] = f"{POOL}-direct"
            direct["spec"].pop("endpointPickerRef", None)
        if document["kind"] == "AIGatewayRoute":
            document["spec"]["rules"].append(
                {
                    "matches": [{"headers": [{"name": DIRECT_HEADER, "value": "yes"}]}],
                    "backendRefs": [
                        {
                            "name": f"{POOL}-direct",
                            "group": "inference.networking.k8s.io",
                            "kind": "InferencePool",
                        }
                    ],
                }
            )
    return yaml.safe_dump_all([*documents, direct], sort_keys=False)


def _warm_up(http: httpx.Client, url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            ok = [
                http.post(url, json=BODY, headers={h: "yes"}).status_code
                for h in (INFERENCE_HEADER, DIRECT_HEADER)
            ]
            if ok == [200, 200]:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the pools never answered through Envoy")


def _measure(http: httpx.Client, url: str, count: int) -> tuple[list[float], list[float]]:
    picked: list[float] = []
    direct: list[float] = []
    for _ in range(count):
        for header, latencies in ((INFERENCE_HEADER, picked), (DIRECT_HEADER, direct)):
            started = time.perf_counter()
            reply = http.post(url, json=BODY, headers={header: "yes"})
            latencies.append((time.perf_counter() - started) * 1000)
            if reply.status_code != 200:
                raise RuntimeError(f"{header}: HTTP {reply.status_code}: {reply.text}")
    return picked, direct


def _p50(latencies: list[float]) -> float:
    return statistics.median(latencies)


def _p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


if __name__ == "__main__":
    main()
