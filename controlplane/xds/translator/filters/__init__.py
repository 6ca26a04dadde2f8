"""One module per HTTP filter the translator emits; each returns a ready ``HttpFilter`` message."""
