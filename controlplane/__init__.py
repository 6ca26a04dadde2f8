"""An Envoy xDS control plane for AI inference routing.

The pipeline, top to bottom: ``sources`` (files; Kubernetes) -> ``resources`` (typed input objects) ->
``gatewayapi`` (``build_ir``) -> ``ir`` -> ``xds.translator`` (``build_xds``) -> ``xds.cache`` ->
``xds.server`` (ADS). ``pipeline.translate`` runs the pure middle in one call; ``serving`` runs it all.
"""
