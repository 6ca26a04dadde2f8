"""Defaults of ``controlplane serve`` and ``translate``, in one place for the commands, the server and docs.

The command-line flags, ``ServeOptions`` and the xDS server's settings all take their defaults from here, so
a default changed here changes everywhere (the README quotes them too).
"""

from __future__ import annotations

LISTEN_ADDRESS = "0.0.0.0"
"""Address of the Envoy listeners the translation generates (``--listen-address``)."""
LISTENER_PORT = 10080
"""Port of the one Envoy listener generated when no Gateway is given (``--listener-port``)."""
GATEWAY_CLASS_CONTROLLER = "gateway.envoyproxy.io/gatewayclass-controller"
"""The controllerName of the GatewayClasses whose Gateways are ours (``--gateway-class-controller``):
Envoy Gateway's, which Envoy AI Gateway's GatewayClasses name, so their manifests apply as is."""

BIND_ADDRESS = "0.0.0.0"
"""Address the control plane's own xDS and admin ports listen on (``serve --address``)."""
XDS_PORT = 18000
"""The control plane's ADS port (``serve --xds-port``)."""
ADMIN_PORT = 19000
"""The control plane's admin port: metrics, health, status (``serve --admin-port``)."""
ENVOY_ADMIN_PORT = 9901
"""The admin port of the Envoy that ``controlplane bootstrap`` configures (``bootstrap --admin-port``):
Envoy's own documented port, so the README's commands run on one host next to ``serve`` (a test checks
that no two of these defaults are equal)."""

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
"""The levels ``serve --log-level`` takes (any case; ``warn`` too, meaning ``warning``). The Helm chart's
``controller.logLevel`` takes some of them (a test checks that it takes no other)."""
LOG_LEVEL = "info"
"""``serve --log-level`` when not given."""

DEBOUNCE_SECONDS = 0.05
"""Quiet time after file events before reloading (``serve --debounce``): enough for an editor's save or a
``cp`` of a folder to finish; a file caught half-written keeps serving its last good version anyway."""
FILE_RESYNC_SECONDS = 10.0
"""How often the file source checks its files even without file events (filesystems that send none)."""
LEASE_DURATION_SECONDS = 15.0
"""How long a replica that stopped renewing keeps the status-writing Lease (client-go's default;
``serve --leader-election-lease-duration``)."""
KUBECONFIG_LOGIN_TIMEOUT_SECONDS = 30.0
"""How long logging the kubeconfig's user in may take at ``serve --kubernetes``'s start (an expired OIDC
id-token refreshed at its issuer, an exec plugin run), 0 for no limit (``serve --kubeconfig-login-timeout``):
long enough for an issuer or a plugin that answers, not for a login a person finishes in a browser."""
ENVOY_DRAIN_SECONDS = 600.0
"""Envoy's ``--drain-time-s`` default: how long a replaced listener's resources are kept
(``serve --envoy-drain-seconds``)."""

MAX_FILE_BYTES = 8 * 1024 * 1024
"""Largest manifest file read (``--max-file-bytes``); a bigger one is refused unread, as a file that does
not parse is (its last good version keeps serving). Kubernetes caps one object near 1.5 MiB; a file holds
many."""
MAX_OBJECTS = 10_000
"""Most objects a folder of files may hold in all (``--max-objects``); above it the whole load is refused and
the last load within the limit keeps serving, rather than serving some arbitrary part of the configuration."""
