"""Where resources come from: a folder of YAML files (``files``) or a Kubernetes API server."""
