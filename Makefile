# tess — set-up and checks. Every target installs what it needs into $(VENV).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q
CONSTRAINTS := -c constraints.txt
TEST_EXTRAS ?= test,torch,jax,cupy,docs,nir
# Tests run BLAS/OpenMP single-threaded: their matrices are small, and threaded
# OpenBLAS on 2 shared cores was measured 20x slower (0.6 s vs 13 s for 2 epochs of
# digits) whenever another process competes. Benchmarks set threads themselves.
TEST_ENV := OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: demo test docs docs-check bench venv install-demo install-test clean gpu-check

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel

venv: $(BIN)/python

install-demo: venv
	$(PIP) install $(CONSTRAINTS) -e .

# torch==2.13.0 first: the CPU wheel on this machine's disk (no CUDA download).
install-test: venv
	$(PIP) install $(CONSTRAINTS) torch==2.13.0
	$(PIP) install $(CONSTRAINTS) -e '.[$(TEST_EXTRAS)]'
	$(PIP) install --no-deps --no-build-isolation -e examples/example_backend
	# the NIR peer framework of tests/tess/test_export_peer.py (CPU torch is already installed)
	$(PIP) install $(CONSTRAINTS) snntorch nirtorch

# One BLAS/OpenMP thread, chosen on purpose: the demo's matrices are small, and threaded
# BLAS on a busy 2-core machine made it ~3x slower (12.3 s vs 4.3 s; docs/datasets-cli.md).
# `make demo DEMO_THREADS=2` on an idle machine (tess sets OMP_WAIT_POLICY=PASSIVE above one).
DEMO_THREADS ?= 1

demo: install-demo
	$(BIN)/tess train --backend numpy --dataset digits --epochs 10 --seed 0 --threads $(DEMO_THREADS)

test: install-test
	sh docs/scripts/ensure-chromium.sh
	$(TEST_ENV) $(BIN)/python -m pytest -q
	# conformance, ci profile, on every backend whose framework is installed; jax compiles once
	# per drawn config, so it gets 3 Hypothesis examples per property test and float32 only
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend numpy --profile ci
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend torch --profile ci --skip-unavailable
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend jax --profile ci --skip-unavailable --dtype float32 --examples 3
	$(TEST_ENV) $(BIN)/python -m tess.conformance --backend example --profile ci

docs: install-test
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The site built once, then checked: API coverage, generated pages, and a real browser
# (headless Debian Chromium, installed here if missing) typesetting the math offline.
docs-check: install-test
	sh docs/scripts/ensure-chromium.sh
	rm -rf build/docs-site
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/docs-site
	TESS_DOCS_SITE=build/docs-site $(BIN)/python -m pytest -q -p no:cacheprovider tests/docs

bench: install-test
	$(BIN)/python -m benchmarks

clean:
	rm -rf build dist site *.egg-info .pytest_cache

# One time-boxed check on an NVIDIA GPU machine (< 8 min; docs/gpu-check.md): conformance of
# cupy / torch / jax on CUDA, TESS throughput on VGG-9, peak memory TESS vs BPTT, fused-kernel
# bandwidth. Runs from this source tree (no install); Markdown report into $OUT (default
# ./gpu-report). CPU mode: make gpu-check GPU_CHECK_ARGS=--dry-run
gpu-check:
	PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}" $(PYTHON) -m gpu_check --out "$${OUT:-gpu-report}" $(GPU_CHECK_ARGS)
