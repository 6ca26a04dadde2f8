"""Subcommands of the `controlplane` CLI, one module each (see `controlplane.cli`)."""
