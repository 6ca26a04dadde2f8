"""The xDS layer: resources, snapshot cache and the ADS server (state of the world and incremental).

The translator builds a `Snapshot` from Envoy messages and stores it in a `SnapshotCache`; an `XdsServer`
serves the cache to every connected Envoy.
"""

from controlplane.xds.cache import InconsistentSnapshotError, Snapshot, SnapshotCache
from controlplane.xds.server import XdsServer, XdsSettings
from controlplane.xds.stream import XdsEvent, XdsObserver

__all__ = [
    "InconsistentSnapshotError",
    "Snapshot",
    "SnapshotCache",
    "XdsEvent",
    "XdsObserver",
    "XdsServer",
    "XdsSettings",
]
