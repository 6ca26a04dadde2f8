"""A real Kubernetes API server on loopback for tests and benchmarks: etcd, kube-apiserver and kubectl.

What the Kubernetes source claims (watches, relists after ``410 Gone``, status writes, leader election,
RBAC) is only worth anything against the real API server, so this runs the real binaries (built by
:mod:`controlplane.devtools.gotools`) the way controller-runtime's envtest does, minus everything a control
plane test does not need (no controller manager, scheduler or kubelet: Pods and EndpointSlices are written
by the test itself).

Ports are never guessed: etcd serves on a Unix socket in the work directory, and the API server's port is
reserved here (:class:`~controlplane.netutil.ReservedPort`: bound, never listening, so it receives no
connection) for the whole life of this object; the API server binds the same port with
``--permit-port-sharing``, so no other program can take it between the two, across API server restarts
included.
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from controlplane.devtools.certs import CertificateAuthority
from controlplane.devtools.gotools import GoTools
from controlplane.devtools.procutil import StartStop, dying_with_parent, stop_process
from controlplane.netutil import ReservedPort

ETCD_SOCKET = "localhost:2379"
"""etcd reads a ``unix://host:port`` URL as a socket file of that name in its working directory."""
_ETCD_PEER_SOCKET = "localhost:2380"
_START_TIMEOUT = 60.0
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
"""The admin's group: bypasses RBAC, like a cluster administrator's kubeconfig."""


class KubeError(RuntimeError):
    """etcd or the API server did not start, or a kubectl command failed (the message has its output)."""


class LocalKube(StartStop):
    """etcd + kube-apiserver (RBAC on) in a private temporary folder; use as a context manager.

    ``stop`` removes the folder; read ``workdir`` (logs, kubeconfig) before that."""

    def __init__(self, *, tools: GoTools) -> None:
        # Short on purpose: etcd's socket lives here and a Unix socket path has at most 107 bytes.
        self.workdir = Path(tempfile.mkdtemp(prefix="kube-"))
        self._tools = tools
        self._reserved = ReservedPort()
        self.port = self._reserved.port
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._ca = CertificateAuthority(common_name="local-kube CA")
        self._pki = self.workdir / "pki"

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """A kubeconfig for the administrator (client certificate in ``system:masters``)."""
        return self.workdir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self._pki / "ca.crt"

    def start(self) -> LocalKube:
        self._write_pki()
        self._start_etcd()
        self._start_apiserver()
        return self

    def stop(self) -> None:
        for process in (self._apiserver, self._etcd):
            if process is not None:
                stop_process(process)
        self._apiserver = self._etcd = None
        self._reserved.release()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- operations tests need ---

    def restart_apiserver(self, *, down_seconds: float = 0.0) -> None:
        """Stops the API server (every watch breaks), waits ``down_seconds``, starts it again on its port."""
        self.stop_apiserver()
        time.sleep(down_seconds)
        self._start_apiserver()

    def stop_apiserver(self) -> None:
        """SIGTERM, then SIGKILL after a few seconds: a graceful stop waits for every open watch to end, and
        a client that is not reading (a paused process) would hold it up."""
        process, self._apiserver = self._apiserver, None
        if process is not None:
            stop_process(process, grace_seconds=5)

    def start_apiserver(self) -> None:
        self._start_apiserver()

    def compact_etcd(self) -> int:
        """Compacts etcd's history up to its current revision, so a watch resumed from an older
        ``resourceVersion`` gets ``410 Gone``. Returns the revision compacted to."""
        reply = self._etcd_call("/v3/kv/range", {"key": base64.b64encode(b"/").decode()})
        revision = int(reply["header"]["revision"])
        self._etcd_call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision

    def kubectl(
        self, *args: str, stdin: str | None = None, kubeconfig: Path | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Runs kubectl against this API server (as the administrator unless ``kubeconfig`` is given)."""
        command = [
            str(self._tools.binary("kubectl")),
            f"--kubeconfig={kubeconfig or self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kubectl-cache'}",
            *args,
        ]
        result = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False, timeout=60)
        if check and result.returncode != 0:
            raise KubeError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr.strip()}"
            )
        return result

    def apply(self, manifest: str | Path, *, namespace: str | None = None) -> str:
        """``kubectl apply`` of a file or of YAML text; returns kubectl's output."""
        target = ["-n", namespace] if namespace else []
        if isinstance(manifest, Path):
            return self.kubectl("apply", *target, "-f", str(manifest)).stdout
        return self.kubectl("apply", *target, "-f", "-", stdin=manifest).stdout

    def get_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def token_kubeconfig(self, *, namespace: str, service_account: str, path: Path) -> Path:
        """A kubeconfig that authenticates as a ServiceAccount with a token from the TokenRequest API."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, "--duration=1h"
        ).stdout.strip()
        path.write_text(
            _kubeconfig(self.url, self.ca_file, {"token": token}, user=f"{namespace}-{service_account}")
        )
        return path

    # --- internals ---

    def _write_pki(self) -> None:
        self._pki.mkdir(parents=True, exist_ok=True)
        self.ca_file.write_bytes(self._ca.certificate_pem())
        server = self._ca.issue(common_name="kube-apiserver", dns_names=("localhost",), ips=("127.0.0.1",))
        (self._pki / "apiserver.crt").write_bytes(server.certificate_pem)
        (self._pki / "apiserver.key").write_bytes(server.key_pem)
        admin = self._ca.issue(common_name=ADMIN_USER, organizations=(ADMIN_GROUP,), client=True)
        (self._pki / "admin.crt").write_bytes(admin.certificate_pem)
        (self._pki / "admin.key").write_bytes(admin.key_pem)
        signing = self._ca.issue(common_name="service-accounts")
        (self._pki / "sa.key").write_bytes(signing.key_pem)
        (self._pki / "sa.pub").write_bytes(signing.public_key_pem)
        credentials = {
            "client-certificate": str(self._pki / "admin.crt"),
            "client-key": str(self._pki / "admin.key"),
        }
        self.kubeconfig.write_text(_kubeconfig(self.url, self.ca_file, credentials, user=ADMIN_USER))

    def _start_etcd(self) -> None:
        log = (self.workdir / "etcd.log").open("wb")
        self._etcd = subprocess.Popen(
            dying_with_parent(
                [
                    str(self._tools.binary("etcd")),
                    "--data-dir=etcd-data",
                    f"--listen-client-urls=unix://{ETCD_SOCKET}",
                    f"--advertise-client-urls=unix://{ETCD_SOCKET}",
                    f"--listen-peer-urls=unix://{_ETCD_PEER_SOCKET}",
                    f"--initial-advertise-peer-urls=unix://{_ETCD_PEER_SOCKET}",
                    f"--initial-cluster=default=unix://{_ETCD_PEER_SOCKET}",
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ]
            ),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait(lambda: self._etcd_healthy(), what="etcd", process=self._etcd, log="etcd.log")

    def _start_apiserver(self) -> None:
        pki = self._pki
        log = (self.workdir / "apiserver.log").open("ab")
        self._apiserver = subprocess.Popen(
            dying_with_parent(
                [
                    str(self._tools.binary("kube-apiserver")),
                    f"--etcd-servers=unix://{ETCD_SOCKET}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    "--permit-port-sharing",
                    f"--tls-cert-file={pki / 'apiserver.crt'}",
                    f"--tls-private-key-file={pki / 'apiserver.key'}",
                    f"--client-ca-file={self.ca_file}",
                    f"--service-account-key-file={pki / 'sa.pub'}",
                    f"--service-account-signing-key-file={pki / 'sa.key'}",
                    "--service-account-issuer=https://kubernetes.default.svc",
                    "--authorization-mode=RBAC",
                    "--service-cluster-ip-range=10.96.0.0/24",
                    # No controller manager creates the "default" ServiceAccount that admission would demand.
                    "--disable-admission-plugins=ServiceAccount",
                    "--endpoint-reconciler-type=none",
                    # Compaction is the test's to trigger (compact_etcd), never a surprise mid-test.
                    "--etcd-compaction-interval=0",
                ]
            ),
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._wait(self._apiserver_ready, what="kube-apiserver", process=self._apiserver, log="apiserver.log")

    def _wait(self, ready: Any, *, what: str, process: subprocess.Popen[bytes], log: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        last = ""
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise KubeError(f"{what} exited with {process.returncode}:\n{self._tail(log)}")
            try:
                if ready():
                    return
                last = "answered, not ready yet"
            except OSError as error:
                last = str(error)
            time.sleep(0.1)
        raise KubeError(f"{what} not ready after {_START_TIMEOUT}s (last: {last}):\n{self._tail(log)}")

    def _tail(self, log: str, lines: int = 30) -> str:
        path = self.workdir / log
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def _apiserver_ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self._pki / "admin.crt"), str(self._pki / "admin.key"))
        connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=context, timeout=5)
        try:
            connection.request("GET", "/readyz")
            return connection.getresponse().status == 200
        finally:
            connection.close()

    def _etcd_healthy(self) -> bool:
        return bool(self._etcd_call("/v3/maintenance/status", {}).get("header"))

    def _etcd_call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        connection = _UnixHTTPConnection(str(self.workdir / ETCD_SOCKET))
        try:
            connection.request(
                "POST", path, body=json.dumps(body), headers={"content-type": "application/json"}
            )
            response = connection.getresponse()
            text = response.read().decode()
            if response.status != 200:
                raise KubeError(f"etcd {path}: HTTP {response.status}: {text}")
            reply: dict[str, Any] = json.loads(text)
            return reply
        finally:
            connection.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def _kubeconfig(server: str, ca_file: Path, credentials: dict[str, str], *, user: str) -> str:
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "local", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
            "current-context": "local",
        },
        indent=2,
    )
