"""go-control-plane as a peer: our snapshot exported to a file and served by the reference Go xDS server.

The Go program (``bench/peers/gcpserver``) loads the file with go-control-plane's own types and serves it
over ADS (SotW and Delta), so Envoy gets byte-identical resources from either server and the benchmarks
compare only the servers. It prints every ACK; :class:`GcpServer` turns those into "node holds snapshot"
waits, the same question :class:`bench.acks.Acks` answers for ours.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType

from bench.tools import PeerUnavailable, gcpserver
from controlplane.devtools.procutil import dying_with_parent
from controlplane.xds.cache import Snapshot
from controlplane.xds.content import content_version
from controlplane.xds.resource import CLUSTER, ENDPOINT, LISTENER, ROUTE

TYPES = (CLUSTER, ENDPOINT, LISTENER, ROUTE)
_TIMEOUT = 120.0


def export_snapshot(snapshot: Snapshot, path: Path) -> dict[str, str]:
    """Writes the file gcpserver loads; returns the version of each type (what an ACK carries)."""
    versions = {type_url: content_version(snapshot.get(type_url)) for type_url in TYPES}
    resources = {
        type_url: [base64.b64encode(r.packed.value).decode() for r in snapshot.get(type_url).values()]
        for type_url in TYPES
    }
    path.write_text(json.dumps({"versions": versions, "resources": resources}))
    return versions


class GcpServer:
    """One gcpserver process serving snapshots for one node; use as a context manager."""

    def __init__(self, *, node_id: str) -> None:
        self.node_id = node_id
        self._folder = tempfile.TemporaryDirectory(prefix="gcp-")
        self._acked: dict[str, tuple[str, float]] = {}  # type URL -> (version, perf_counter() of its ACK)
        self._replies: list[str] = []
        self._changed = threading.Condition()
        self._process: subprocess.Popen[str] | None = None
        self._loads = 0
        self.port = 0

    def __enter__(self) -> GcpServer:
        self._process = subprocess.Popen(
            dying_with_parent([str(gcpserver()), "--node", self.node_id]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        first = self._reply()
        if not first.startswith("listening "):
            raise PeerUnavailable(f"gcpserver did not start: {first}")
        self.port = int(first.split()[1])
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait()
        self._folder.cleanup()

    def load(self, snapshot: Snapshot) -> dict[str, str]:
        """Has gcpserver decode `snapshot` (not yet served); returns the versions its ACKs will carry."""
        self._loads += 1
        path = Path(self._folder.name) / f"snapshot-{self._loads}.json"
        versions = export_snapshot(snapshot, path)
        self._command(f"load {path}", expect="loaded")
        return versions

    def serve_loaded(self) -> float:
        """Sets the loaded snapshot for the node; returns perf_counter() just before asking."""
        started = time.perf_counter()
        self._command("set", expect="set")
        return started

    def until_acked(self, versions: dict[str, str]) -> float:
        """perf_counter() once the node has ACKed every type at `versions`."""
        deadline = time.monotonic() + _TIMEOUT
        with self._changed:
            while any(self._acked.get(t, ("", 0.0))[0] != version for t, version in versions.items()):
                if not self._changed.wait(timeout=deadline - time.monotonic()):
                    raise TimeoutError(f"gcpserver: node {self.node_id} never ACKed {versions}")
            return max(self._acked[type_url][1] for type_url in versions)

    def _command(self, line: str, *, expect: str) -> None:
        assert self._process is not None
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()
        reply = self._reply()
        if reply != expect:
            raise PeerUnavailable(f"gcpserver {line.split()[0]}: {reply}")

    def _reply(self) -> str:
        deadline = time.monotonic() + _TIMEOUT
        with self._changed:
            while not self._replies:
                if not self._changed.wait(timeout=deadline - time.monotonic()):
                    raise PeerUnavailable("gcpserver did not answer")
            return self._replies.pop(0)

    def _read(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        for line in self._process.stdout:
            words = line.split()
            arrived = time.perf_counter()
            with self._changed:
                if words[:1] == ["ack"] and len(words) == 4 and words[1] == self.node_id:
                    self._acked[words[2]] = (words[3], arrived)
                elif words[:1] != ["ack"]:
                    self._replies.append(line.strip())
                self._changed.notify_all()
        with self._changed:
            stderr = self._process.stderr.read() if self._process.stderr else ""
            self._replies.append(f"exited: {stderr.strip()[-300:]}")
            self._changed.notify_all()
