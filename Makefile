# Slipstream developer commands. `make help` lists them.
#
# Python: an active virtualenv ($VIRTUAL_ENV) is used as is; otherwise the Makefile
# creates and uses ./.venv. `make test` and `make run` install everything they need first.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3
ifdef VIRTUAL_ENV
  VENV := $(VIRTUAL_ENV)
else
  VENV := $(CURDIR)/.venv
endif
PY := $(VENV)/bin/python
STAMP := $(VENV)/.slipstream-init
BUILD_STAMP := build/.ext-built
EXT_SOURCES := $(wildcard ext/*.pyx ext/*.pxd) setup.py
PYTEST_ARGS ?=
BENCH_ARGS ?=
BENCH_STORE := benchmarks/baseline
BENCH_TOLERANCE ?= 0.5

.PHONY: help init build services test unit bench bench-baseline run lint annotate wheel audit clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PY):
	$(PYTHON_BOOT) -m venv $(VENV)

$(STAMP): pyproject.toml setup.py | $(PY)
	@bash .ci/prereqs.sh
	$(PY) -m pip install -q --disable-pip-version-check -U pip "setuptools>=74" wheel "Cython>=3.0.11" "numpy>=2"
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[dev]"
	@touch $@

init: $(STAMP) build ## Install prerequisites and the package (editable, dev extra); build ext

$(BUILD_STAMP): $(EXT_SOURCES) $(STAMP)
	$(PY) setup.py -q build_ext --inplace --force -j 2
	@mkdir -p build && touch $@

build: $(BUILD_STAMP) ## (Re)build the compiled ext modules in place when sources changed

services: ## Make sure PostgreSQL and Redis answer on loopback (start them if stopped)
	@bash .ci/services.sh

test: init services ## Run the whole suite (unit + replay + integration + packaging)
	@$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5); failing on purpose" >&2; fi; \
	exit $$rc

unit: init ## Fast subset: unit tests only, no services
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

BENCH_RUN = OPENBLAS_NUM_THREADS=1 $(PY) -m pytest benchmarks --benchmark-only -p no:cacheprovider \
	  --benchmark-columns=min,median,mean,stddev,rounds --benchmark-sort=name $(BENCH_ARGS)
BENCH_BASE = $(wildcard $(BENCH_STORE)/*/0001_baseline.json)

bench: init ## Run benchmarks; gate on ratios to same-run references vs the committed baseline
	@mkdir -p build
	$(BENCH_RUN) --benchmark-storage=file://$(BENCH_STORE) --benchmark-compare=0001 \
	  --benchmark-json=build/bench.json
	@$(PY) benchmarks/gate.py --baseline $(BENCH_BASE) build/bench.json \
	  --tolerance $(BENCH_TOLERANCE) || { \
	  echo "bench: slower than the baseline in this run; measuring again to confirm"; \
	  $(BENCH_RUN) --benchmark-json=build/bench2.json >/dev/null && \
	  $(PY) benchmarks/gate.py --baseline $(BENCH_BASE) build/bench.json build/bench2.json \
	    --tolerance $(BENCH_TOLERANCE); }

bench-baseline: init ## Re-measure and overwrite the committed baseline (see benchmarks/README.rst)
	rm -rf $(BENCH_STORE)
	$(BENCH_RUN) --benchmark-storage=file://$(BENCH_STORE) --benchmark-save=baseline

run: init ## Run the main job on the embedded default (simulator; Ctrl-C to stop)
	$(PY) -m orchestrator $(ARGS)

lint: init ## ruff, mypy on orchestrator, stub check of ext .pyi against the compiled modules
	$(PY) -m ruff check .
	$(PY) -m ruff format --check orchestrator tests benchmarks setup.py
	$(PY) -m mypy
	$(PY) -m mypy.stubtest ext

annotate: init ## Write Cython's annotated HTML (yellow lines = Python interaction) under ext/
	SLIPSTREAM_ANNOTATE=1 $(PY) setup.py -q build_ext --inplace --force -j 2
	@ls ext/*.html

wheel: init ## Build the wheel into dist/ (for manylinux wheels see README: cibuildwheel)
	rm -rf dist
	$(PY) -m pip wheel --no-deps --no-build-isolation -w dist .
	@ls -l dist

audit: init ## Scan the installed dependencies for known vulnerabilities (pip-audit)
	$(PY) -m pip_audit --skip-editable

clean: ## Remove build products (keeps .venv)
	rm -rf build dist wheelhouse *.egg-info ext/*.c ext/*.so ext/*.html .pytest_cache .mypy_cache .ruff_cache outputs multirun
