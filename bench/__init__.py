"""On-demand benchmarks, run from the repository root as ``python -m bench`` (all, see ``bench/run.py``) or
``python -m bench.NAME`` (one); not part of the tests.

Benchmarks start processes (with a preexec_fn, so by fork) while gRPC servers run on threads of this
process; gRPC's own fork handlers would then run in the child and can abort it before it execs (Envoy
exiting with SIGABRT at 5,000 clusters). Read by grpc when first imported, which is after this package.
"""

import os

os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
