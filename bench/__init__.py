"""On-demand benchmarks, run from the repository root as ``python -m bench.NAME`` (not part of the tests)."""
