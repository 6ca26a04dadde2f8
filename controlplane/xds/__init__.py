"""Everything Envoy-facing, in the order data flows through it.

- ``translator/``: IR -> Envoy messages (``build_xds``), one module per Envoy concern, ``filters/`` one per
  HTTP filter. Pure and deterministic.
- ``resource.py``: what the rest knows about an Envoy message (type URL, name, the resources it
  references); ``content.py``: a message's content as served, an ``XdsResource`` (bytes, content version,
  references), and the versions of sets of them.
- ``cache.py``: the ``Snapshot`` of one consistent configuration and the ``SnapshotCache`` that hands it
  to proxies by node group.
- ``server/``: the ADS server (``XdsServer``, in ``ads.py``) serving the cache, state of the world
  (``sotw.py``) and incremental (``delta.py``), with per-stream bookkeeping and metrics.
"""
