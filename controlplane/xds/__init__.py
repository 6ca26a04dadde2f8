"""Everything Envoy-facing, in the order data flows through it.

- ``translator/``: IR -> Envoy messages (``build_xds``), one module per Envoy concern, ``filters/`` one per
  HTTP filter. Pure and deterministic.
- ``resource.py``: what the rest knows about an Envoy message (type URL, name, content version, the
  resources it references), as an ``XdsResource``.
- ``cache.py``: the ``Snapshot`` of one consistent configuration and the ``SnapshotCache`` that hands it
  to proxies by node group.
- ``server/``: the ADS server (``XdsServer``, in ``ads.py``) serving the cache, state of the world
  (``sotw.py``) and incremental (``delta.py``), with per-stream bookkeeping and metrics.
"""
