"""The load a fake model server reports on ``/metrics``, in vLLM's Prometheus names, set by the test.

An endpoint picker chooses by the load model servers report (queue depth, KV-cache use); a test proves the
picker's choice follows load by making one fake server report a long queue. The names are vLLM's, which the
Inference Extension's picker scrapes by default.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ServerLoad", "prometheus_text"]


@dataclass(frozen=True)
class ServerLoad:
    """Requests waiting in the queue, requests running, and the fraction (0..1) of KV-cache in use."""

    waiting: int = 0
    running: int = 0
    kv_cache_usage: float = 0.0

    def __post_init__(self) -> None:
        if self.waiting < 0 or self.running < 0 or not 0.0 <= self.kv_cache_usage <= 1.0:
            raise ValueError(f"not a possible load: {self}")


def prometheus_text(load: ServerLoad, *, model: str) -> str:
    """The load in Prometheus' text format, labelled with the served model like vLLM's own metrics."""
    label = f'{{model_name="{model}"}}'
    gauges = {
        "vllm:num_requests_waiting": ("Requests waiting to be processed.", load.waiting),
        "vllm:num_requests_running": ("Requests currently running on the GPU.", load.running),
        "vllm:gpu_cache_usage_perc": ("GPU KV-cache usage, 1 means 100 percent.", load.kv_cache_usage),
        "vllm:kv_cache_usage_perc": ("KV-cache usage, 1 means 100 percent.", load.kv_cache_usage),
    }
    lines: list[str] = []
    for name, (help_text, value) in gauges.items():
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name}{label} {value}"]
    # No LoRA adapter is loaded; the picker reads the adapters from this info metric's labels.
    lines += [
        "# HELP vllm:lora_requests_info Running stats on LoRA requests.",
        "# TYPE vllm:lora_requests_info gauge",
        'vllm:lora_requests_info{max_lora="1",running_lora_adapters="",waiting_lora_adapters=""} 1',
    ]
    return "\n".join(lines) + "\n"
