# Two entry points for a fresh clone: `make demo` and `make test`. Each creates .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install tools crds protos demo test stress lint fuzz bench soak clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# The Go programs tests run beside the control plane (etcd, kube-apiserver, kubectl, helm, epp), built from
# the pins in tools/*/go.mod into ~/.cache/ai-xds-controlplane/tools: minutes on the first run, then reused;
# then what the benchmarks' smoke test drives (nginx and wrk from Debian, go-control-plane, aigw, LiteLLM).
tools: install
	$(BIN)/python -m controlplane.devtools.gotools
	tools/os-packages.sh
	$(BIN)/python -m bench.tools

# Our CRDs (crds/) are generated from the pydantic models; run after changing a model (a test fails on drift).
crds: install
	$(BIN)/controlplane crds --output crds

# Our own gRPC API: protos/ -> controlplane/_proto (committed; a test fails when they drift).
protos: install
	$(BIN)/python -m controlplane.devtools.protos

demo: install
	$(BIN)/python -m controlplane.devtools.demo examples

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint tools
	$(BIN)/pytest

# The suite under load: STRESS_RUNS times in a row (default 3) with `stress-ng --cpu STRESS_CPUS` (default 2)
# keeping the cores busy, a pass/fail line per run; STRESS_ARGS narrows it (e.g. STRESS_ARGS=tests/test_x.py).
STRESS_ARGS ?=
stress: lint tools
	tools/stress.sh $(BIN)/pytest $(STRESS_ARGS)

# The manifest property tests at full size: 10,000 mutated sets, 400 of them pushed to a real Envoy; the
# statistics print how many ran (CI runs 300).
fuzz: install
	AIXDS_FUZZ_EXAMPLES=10000 $(BIN)/pytest tests/test_fuzz_manifests.py -p no:cacheprovider --timeout 3600 \
		--hypothesis-show-statistics

# The incremental-translation property test with many more edit sequences than CI runs (minutes).
soak: install
	PIPELINE_PROPERTY_EXAMPLES=2000 $(BIN)/pytest -q tests/test_pipeline_incremental.py

# Every benchmark in bench/ next to its peers (go-control-plane, plain Envoy, aigw, LiteLLM; built or
# installed into the tools cache on first use), ~7 minutes on 2 cores (budget 15): bench/RESULTS.md,
# results.json, charts/.
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV)
