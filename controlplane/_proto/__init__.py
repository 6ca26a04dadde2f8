"""Messages of our own gRPC API, generated from ``protos/`` by ``make protos`` (do not edit by hand)."""
