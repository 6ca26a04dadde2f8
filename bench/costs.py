"""What computing CEL costs in Envoy adds to a request: the same route with and without them, in one run.

One local stack (our control plane, a real Envoy) with two Gateways on one fake OpenAI backend. The ``counts``
Gateway's route publishes InputToken, OutputToken and TotalToken costs (``json_to_metadata`` /
``sse_to_metadata`` only); the ``cel`` Gateway's route publishes the same plus two CEL costs, which adds the
Lua filter that evaluates them at the end of each response and, since one reads ``backend``, the header
mutation that hands the Lua the serving endpoint's name (``xds.translator.filters.cost_lua``).
Sequential requests alternate between the two for the same time, unary and streamed, so load and noise hit
both alike; the table gives each one's p50/p99 and the added p50/p99 (cel minus counts). Not a test:
numbers depend on the machine.

    .venv/bin/python -m bench.costs [--seconds 10]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from bench.alternate import alternate, compared_row, warm_up
from bench.report import Table, run_from_command_line
from controlplane.devtools.fake_backend import FakeBackend
from controlplane.devtools.manifests import gateway_yaml, openai_backend_yaml
from controlplane.devtools.stack import LocalStack
from controlplane.netutil import ReservedPort

MODEL = "gpt-bench"
COUNTS = """\
  - {metadataKey: llm_input_token, type: InputToken}
  - {metadataKey: llm_output_token, type: OutputToken}
  - {metadataKey: llm_total_token, type: TotalToken}
"""
CEL = """\
  - metadataKey: weighted
    type: CEL
    cel: "model == 'gpt-bench' ? input_tokens + output_tokens * 4u : total_tokens"
  - metadataKey: cache_aware
    type: CEL
    cel: "backend == 'openai.default' ? (input_tokens - cached_input_tokens) + output_tokens * 3u : 0u"
"""
ROUTE = """\
---
apiVersion: aigateway.envoyproxy.io/v1beta1
kind: AIGatewayRoute
metadata: {{name: {name}, namespace: default}}
spec:
  parentRefs: [{{name: {name}}}]
  llmRequestCosts:
{costs}  rules:
  - matches: [{{headers: [{{name: x-ai-eg-model, value: {model}}}]}}]
    backendRefs: [{{name: openai}}]
"""
KINDS = ("counts", "cel")


def measure(*, seconds: float) -> Table:
    """Alternating sequential requests for ``seconds`` per kind (unary, then streamed)."""
    table = Table(
        rows_of_issue="16",
        title="(issue 16) CEL costs in Envoy: token counts only vs. counts + two CEL costs (Lua)",
        columns=[
            "request",
            "requests each",
            "counts p50 ms",
            "counts p99 ms",
            "cel p50 ms",
            "cel p99 ms",
            "added p50 ms",
            "added p99 ms",
            "non-200",
        ],
        notes=[f"{seconds:.0f} s per kind, the two Gateways alternating; streamed: until the last byte."],
    )
    with (
        tempfile.TemporaryDirectory(prefix="bench-costs-") as folder,
        FakeBackend(name="openai", model=MODEL) as openai,
        ReservedPort() as counts_port,
        ReservedPort() as cel_port,
    ):
        ports = {"counts": counts_port.port, "cel": cel_port.port}
        manifests = Path(folder) / "bench.yaml"
        manifests.write_text(
            "".join(
                gateway_yaml(kind, ports[kind])
                + ROUTE.format(name=kind, model=MODEL, costs=COUNTS + (CEL if kind == "cel" else ""))
                + "---\n"
                for kind in KINDS
            )
            + openai_backend_yaml("openai", [openai.port]).removeprefix("---\n")
        )
        with (
            LocalStack(manifests, workdir=Path(folder) / "stack", fake_backends=False) as stack,
            httpx.Client(timeout=10) as http,
        ):
            targets = {kind: (stack.url(port), MODEL) for kind, port in ports.items()}
            warm_up(http, targets)
            for stream in (False, True):
                samples, failures = alternate(http, targets, stream=stream, seconds=seconds)
                label = "streamed" if stream else "unary"
                table.rows.append(compared_row(label, samples["counts"], samples["cel"], failures))
    return table


def main() -> None:
    run_from_command_line(__doc__, measure)


if __name__ == "__main__":
    main()
