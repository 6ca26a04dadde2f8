"""The ADS server: serves a ``SnapshotCache`` to every connected Envoy, state of the world or incremental.

``XdsServer`` (``ads.py``) owns the gRPC server and the streams; ``stream.py`` is what both protocol variants
share (``sotw.py``, ``delta.py``); ``stream_state.py`` decides what each stream sends next and when;
``events.py`` is what observers see; ``tls.py`` serves the port over TLS or mTLS with certificates re-read
when they rotate.
"""

from controlplane.xds.server.ads import XdsServer, XdsSettings
from controlplane.xds.server.events import XdsEvent, XdsObserver
from controlplane.xds.server.tls import TlsFileError, XdsTlsFiles

__all__ = ["TlsFileError", "XdsEvent", "XdsObserver", "XdsServer", "XdsSettings", "XdsTlsFiles"]
